#!/usr/bin/env bash
# Tears the test bed down: the GitHub stand-in, the fake app, the registry and the kwok cluster
# (everything up.sh started). The registry's storage and the build caches are kept.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
status=0
if [ -x "$BED_REPO/testbed/github/down.sh" ]; then
  TD_BED_DIR=$TD_BED_DIR "$BED_REPO/testbed/github/down.sh" || { bed_log "testbed/github/down.sh failed"; status=1; }
fi
pid_stop fake_app fake_app
pid_stop registry docker-registry
if [ -x "$KWOKCTL" ] && [ -d "$KWOK_WORKDIR/clusters/$BED_CLUSTER" ]; then
  bed_log "deleting kwok cluster $BED_CLUSTER"
  mkdir -p "$TD_BED_DIR/logs"
  timeout 120 "$KWOKCTL" --name "$BED_CLUSTER" delete cluster --kubeconfig "$BED_KUBECONFIG" \
    >>"$TD_BED_DIR/logs/kwokctl.log" 2>&1 || { bed_log "kwokctl delete cluster failed"; status=1; }
fi
rm -f "$TD_BED_DIR/env" "$BED_KUBECONFIG"
bed_log "down"
exit $status
