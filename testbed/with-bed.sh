#!/usr/bin/env bash
# Runs CMD against the test bed: brings the bed up if it is not running, runs CMD with the bed's
# env, tears down only the parts it brought up, and exits with CMD's exit code.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
[ $# -gt 0 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
# What runs before: those parts are left running afterwards.
started=()
cluster_ok || started+=(cluster)
region2_ok || started+=(region2)
token_webhook_ok || started+=(webhook)
registry_ok || started+=(registry)
app_ok || started+=(app)
node_ok || started+=(node)
if [ -x "$BED_REPO/testbed/github/up.sh" ] && [ "${TD_BED_GITHUB:-1}" != 0 ] \
  && ! pid_alive github/standin github_standin; then
  started+=(github)
fi
if [ ${#started[@]} -gt 0 ] || ! bed_ok; then
  bed_log "bringing the bed up (starting: ${started[*]:-nothing new})"
  if ! "$BED_REPO/testbed/up.sh" >/dev/null; then
    bed_log "bringing the bed up failed; tearing down what this run started"
    [ ${#started[@]} -eq 0 ] || "$BED_REPO/testbed/down.sh" "${started[@]}" || true
    exit 1
  fi
fi
# shellcheck disable=SC1091
. "$TD_BED_DIR/env"
export TD_BED_ENV=$TD_BED_DIR/env
status=0
"$@" || status=$?
if [ ${#started[@]} -gt 0 ]; then
  "$BED_REPO/testbed/down.sh" "${started[@]}" || bed_log "down.sh failed (CMD exit code $status kept)"
fi
exit $status
