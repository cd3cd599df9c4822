#!/usr/bin/env bash
# Tears the test bed down: the GitHub stand-in, the fake app, the real node (testbed/node/down.sh:
# no process, mount, netns, veth, bridge or cgroup of it is left), the registry and the kwok
# cluster (everything up.sh started). The registry's storage and the build caches are kept.
# usage: testbed/down.sh [github] [app] [webhook] [node] [registry] [cluster] [region2]
# (default: all of them; `cluster` takes region 2 down too)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
parts=" ${*:-github app webhook node registry cluster region2} "
want() { [[ $parts == *" $1 "* ]]; }
status=0
if want github && [ -x "$BED_REPO/testbed/github/down.sh" ]; then
  TD_BED_DIR=$TD_BED_DIR "$BED_REPO/testbed/github/down.sh" || { bed_log "testbed/github/down.sh failed"; status=1; }
fi
want app && pid_stop fake_app fake_app
want webhook && pid_stop token_webhook token_webhook
if want node; then
  "$BED_REPO/testbed/node/down.sh" || { bed_log "testbed/node/down.sh failed"; status=1; }
fi
want registry && pid_stop registry docker-registry
if want cluster && [ -x "$KWOKCTL" ] && [ -d "$KWOK_WORKDIR/clusters/$BED_CLUSTER" ]; then
  bed_log "deleting kwok cluster $BED_CLUSTER"
  mkdir -p "$TD_BED_DIR/logs"
  timeout 120 "$KWOKCTL" --name "$BED_CLUSTER" delete cluster --kubeconfig "$BED_KUBECONFIG" \
    >>"$TD_BED_DIR/logs/kwokctl.log" 2>&1 || { bed_log "kwokctl delete cluster failed"; status=1; }
  rm -f "$BED_KUBECONFIG"
fi
if { want cluster || want region2; } && [ -x "$KWOKCTL" ] && [ -d "$KWOK_WORKDIR/clusters/$BED_REGION2_CLUSTER" ]; then
  bed_log "deleting kwok cluster $BED_REGION2_CLUSTER (region 2)"
  timeout 120 "$KWOKCTL" --name "$BED_REGION2_CLUSTER" delete cluster --kubeconfig "$BED_REGION2_KUBECONFIG" \
    >>"$TD_BED_DIR/logs/kwokctl.log" 2>&1 || { bed_log "kwokctl delete cluster $BED_REGION2_CLUSTER failed"; status=1; }
  rm -f "$BED_REGION2_KUBECONFIG"
fi
# Whatever went down, the env no longer describes a running bed.
rm -f "$TD_BED_DIR/env"
bed_log "down:${parts% }"
exit $status
