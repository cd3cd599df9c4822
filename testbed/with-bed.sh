#!/usr/bin/env bash
# Runs CMD against the test bed: brings the bed up if it is not running, runs CMD with the bed's
# env, tears down only what it brought up, and exits with CMD's exit code.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
[ $# -gt 0 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
started=0
if ! bed_ok; then
  started=1
  if ! "$BED_REPO/testbed/up.sh" >/dev/null; then
    bed_log "bringing the bed up failed; tearing down what came up"
    "$BED_REPO/testbed/down.sh" || true
    exit 1
  fi
fi
# shellcheck disable=SC1091
. "$TD_BED_DIR/env"
export TD_BED_ENV=$TD_BED_DIR/env
status=0
"$@" || status=$?
if [ "$started" = 1 ]; then
  "$BED_REPO/testbed/down.sh" || bed_log "down.sh failed (CMD exit code $status kept)"
fi
exit $status
