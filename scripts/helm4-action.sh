#!/usr/bin/env bash
# Generates helm4/action.yml (`uses: org/trader-deploy/helm4@v1`) from action.yml: the same
# inputs and outputs, line for line, with its own header, name, description and image (the helm 4
# build of the same release, tag `<major>-helm4`). Edit action.yml, never helm4/action.yml, then
# re-run this; tests/contract.rs fails while the committed file differs from what it generates.
#
#   scripts/helm4-action.sh          rewrites helm4/action.yml
#   scripts/helm4-action.sh -        prints it on stdout (what the test compares)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=$root/action.yml
out=$root/helm4/action.yml

generate() {
  awk '
    BEGIN {
      print "# GENERATED from ../action.yml by scripts/helm4-action.sh: do not edit, edit action.yml"
      print "# and re-run the script. The helm 4 variant of the action: `uses: org/trader-deploy/helm4@v1`"
      print "# runs the same binary with helm 4 in its image; inputs and outputs are action.yml'"'"'s."
      header = 1
    }
    # action.yml'"'"'s own header comment is replaced by the one above.
    header && /^#/ { next }
    { header = 0 }
    /^[^ #]/ { in_runs = ($0 ~ /^runs:[ ]*$/) }
    /^name: / { sub(/[ ]*$/, ""); print $0 " (helm 4)"; names++; next }
    /^description: / { sub(/[ ]*$/, ""); print $0 " This variant runs helm 4."; descriptions++; next }
    in_runs && /^  image: / {
      if ($0 !~ /^  image: docker:\/\/[^@ ]+:[A-Za-z0-9_.-]+[ ]*$/) { bad = $0; next }
      sub(/[ ]*$/, ""); print $0 "-helm4"; images++; next
    }
    { print }
    END {
      if (bad != "") { print "action.yml: runs.image must be a docker://…:<tag> reference on a branch, not " bad > "/dev/stderr"; exit 1 }
      if (names != 1 || descriptions != 1 || images != 1) {
        print "action.yml: expected one top-level name, description and runs.image line, found " names ", " descriptions ", " images > "/dev/stderr"
        exit 1
      }
    }
  ' "$src"
}

if [ "${1:-}" = - ]; then
  generate
else
  mkdir -p "$(dirname "$out")"
  tmp=$(mktemp "$out.XXXXXX")
  trap 'rm -f "$tmp"' EXIT
  generate >"$tmp"
  chmod 644 "$tmp"
  mv "$tmp" "$out"
  trap - EXIT
  echo "wrote ${out#"$root"/}" >&2
fi
