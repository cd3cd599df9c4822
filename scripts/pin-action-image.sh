#!/usr/bin/env bash
# Pins the images a release runs: rewrites `runs.image` of action.yml and helm4/action.yml to
# `docker://IMAGE@sha256:…`, the digests the release workflow's builds just pushed
# (.github/workflows/release.yml), and changes nothing else in them. Refuses (exit 1, files
# untouched) a malformed image or digest, one digest for both images, and a file without exactly
# one runs.image line. tests/release.rs runs it on copies of the two files.
#
#   scripts/pin-action-image.sh IMAGE HELM3_DIGEST HELM4_DIGEST [DIR]
#
# IMAGE is the repository without tag or digest (ghcr.io/org/trader-deploy, lower case); DIR is
# the checkout holding the two files (default: this script's repository).
set -euo pipefail
die() { printf 'pin-action-image: %s\n' "$*" >&2; exit 1; }

[ $# -eq 3 ] || [ $# -eq 4 ] || die "usage: $0 IMAGE HELM3_DIGEST HELM4_DIGEST [DIR]"
image=$1 helm3=$2 helm4=$3
dir=${4:-$(cd "$(dirname "$0")/.." && pwd)}

# A registry host, then lower-case path components (OCI distribution's grammar, simplified):
# no tag, no digest, nothing a YAML plain scalar would read differently.
[[ $image =~ ^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)+$ ]] ||
  die "image $image: expected a repository such as ghcr.io/org/trader-deploy (lower case, no tag, no digest)"
for d in "$helm3" "$helm4"; do
  [[ $d =~ ^sha256:[0-9a-f]{64}$ ]] || die "digest $d: expected sha256: and 64 lower-case hex digits"
done
[ "$helm3" != "$helm4" ] || die "the helm 3 and helm 4 images have one digest ($helm3): one build's output was used twice"

# Rewrites the one `image:` line of the top-level `runs:` mapping of $1 into $2.
pin() {
  awk -v ref="docker://$image@$3" '
    /^[^ #]/ { in_runs = ($0 ~ /^runs:[ ]*$/) }
    in_runs && /^  image:[ ]/ { print "  image: " ref; n++; next }
    { print }
    END { if (n != 1) exit 3 }
  ' "$1" >"$2" || die "$1: expected exactly one runs.image line"
  # Belt and braces: exactly one line differs.
  changed=$(diff "$1" "$2" | grep -c '^[<>]' || true)
  [ "$changed" = 2 ] || die "$1: the rewrite changed $changed lines, expected one"
}

files=("$dir/action.yml" "$dir/helm4/action.yml")
digests=("$helm3" "$helm4")
tmps=()
trap 'rm -f "${tmps[@]}"' EXIT
for i in 0 1; do
  [ -f "${files[$i]}" ] || die "${files[$i]}: missing"
  tmp=$(mktemp "${files[$i]}.XXXXXX")
  tmps+=("$tmp")
  pin "${files[$i]}" "$tmp" "${digests[$i]}"
done
# Both rewrites succeeded: only now replace the files.
for i in 0 1; do
  chmod 644 "${tmps[$i]}"
  mv "${tmps[$i]}" "${files[$i]}"
  printf 'pinned %s: docker://%s@%s\n' "${files[$i]#"$dir"/}" "$image" "${digests[$i]}" >&2
done
