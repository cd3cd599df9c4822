# Shared helpers of the bed scripts (up.sh, down.sh, with-bed.sh): paths, pid files, health checks.
# Sourced, not run. Everything the bed starts listens on 127.0.0.1 only.
# shellcheck shell=bash
BED_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=versions.env
. "$BED_REPO/testbed/versions.env"
TD_BED_DIR=${TD_BED_DIR:-$BED_REPO/target/testbed}
BED_CACHE=${TRADER_DEPLOY_CACHE:-$HOME/.cache/trader-deploy}
BED_BIN=$BED_CACHE/bin
# The defaults are the one bed of a machine; the TD_BED_* overrides let a second bed (another
# state dir) run beside it, e.g. to try the scripts while tests use the first.
BED_CLUSTER=${TD_BED_CLUSTER:-trader-bed}
BED_REGISTRY=127.0.0.1:${TD_BED_REGISTRY_PORT:-45000}
BED_APP_CONTROL=127.0.0.1:${TD_BED_APP_PORT:-45020}
BED_APP_FALLBACK=127.0.0.1:${TD_BED_APP_FALLBACK_PORT:-45021}
BED_APP_POOL=${TD_BED_APP_POOL:-45030-45079}
# The EKS token authenticator (token_webhook): its port (chosen by the OS on first start, kept in
# this file so the apiserver's webhook config stays right) and the AWS key it knows, test only.
BED_TOKEN_WEBHOOK_PORT_FILE=$TD_BED_DIR/token-webhook.port
BED_AWS_ACCESS_KEY_ID=AKIABEDEXAMPLE000001
BED_AWS_SECRET_ACCESS_KEY=bedSecret/Example+Key0123456789abcdefghij
BED_AWS_USER=arn:aws:iam::111122223333:user/bed-deployer
# The key the GKE/AKS token stand-ins sign their tokens with (tests/common/cloud_standin.rs), which
# the webhook checks them with: written once, random, test only.
BED_CLOUD_TOKEN_KEY_FILE=$TD_BED_DIR/cloud-token.key
export KWOK_WORKDIR=$TD_BED_DIR/kwok
BED_KUBECONFIG=$TD_BED_DIR/kubeconfig
# A second cluster beside the first, for releases across regions (tests/bed_regions.rs): kwok
# nodes only, no real node, fake app or webhook.
BED_REGION2_CLUSTER=${TD_BED_REGION2_CLUSTER:-$BED_CLUSTER-r2}
BED_REGION2_KUBECONFIG=$TD_BED_DIR/kubeconfig-region2
KWOKCTL=$BED_BIN/kwokctl-$KWOK_VERSION

bed_log() { printf '[testbed] %s\n' "$*" >&2; }

# pid_alive NAME PATTERN: the process recorded in $TD_BED_DIR/NAME.pid runs a command line
# containing PATTERN (so a recycled pid is never taken for ours).
pid_alive() {
  local f=$TD_BED_DIR/$1.pid pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}

# pid_stop NAME PATTERN: stops the process recorded in NAME.pid if it still runs PATTERN
# (TERM, then KILL after 10 s).
pid_stop() {
  local f=$TD_BED_DIR/$1.pid pid i
  [ -f "$f" ] || return 0
  if pid_alive "$1" "$2"; then
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    if [ -d "/proc/$pid" ]; then
      bed_log "$1 (pid $pid) ignored TERM for 10 s: KILL"
      kill -9 "$pid" 2>/dev/null || true
    fi
    bed_log "stopped $1 (pid $pid)"
  fi
  rm -f "$f"
}

# http_ok URL: answers 2xx within 3 s.
http_ok() { curl -fsS -o /dev/null --max-time 3 "$1" 2>/dev/null; }

cluster_ok() {
  [ -f "$BED_KUBECONFIG" ] && kubectl --kubeconfig "$BED_KUBECONFIG" --request-timeout=3s \
    get --raw /readyz >/dev/null 2>&1
}
region2_ok() {
  [ "${TD_BED_REGION2:-1}" = 0 ] && return 0
  [ -f "$BED_REGION2_KUBECONFIG" ] && kubectl --kubeconfig "$BED_REGION2_KUBECONFIG" --request-timeout=3s \
    get --raw /readyz >/dev/null 2>&1
}
registry_ok() { http_ok "http://$BED_REGISTRY/v2/"; }
app_ok() { http_ok "http://$BED_APP_CONTROL/healthz"; }
token_webhook_ok() {
  [ -f "$BED_TOKEN_WEBHOOK_PORT_FILE" ] \
    && http_ok "http://127.0.0.1:$(cat "$BED_TOKEN_WEBHOOK_PORT_FILE")/healthz"
}

# node_ok: the real node's kubelet answers and the node is Ready (or the bed runs without it,
# TD_BED_REAL_NODE=0).
node_ok() {
  [ "${TD_BED_REAL_NODE:-1}" = 0 ] && return 0
  http_ok "http://127.0.0.1:$BED_KUBELET_HEALTHZ_PORT/healthz" && cluster_ok \
    && kubectl --kubeconfig "$BED_KUBECONFIG" --request-timeout=3s get node "$BED_NODE_NAME" \
      -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True
}

# bed_ok: the parts this repo's scripts start are all up and answering.
bed_ok() { [ -f "$TD_BED_DIR/env" ] && cluster_ok && region2_ok && registry_ok && app_ok && token_webhook_ok && node_ok; }

# wait_for DESC SECONDS CMD...: polls CMD every 0.5 s until it succeeds or the deadline passes.
wait_for() {
  local desc=$1 secs=$2 deadline; shift 2
  deadline=$((SECONDS + secs))
  until "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      bed_log "timed out after ${secs}s waiting for $desc"
      return 1
    fi
    sleep 0.5
  done
}

# The real node (testbed/node/): containerd + runc + a kubelet joined to the bed's apiserver.
# TD_BED_NODE names a node of this bed: `node` (the default) is the one the tests and the demo
# deploy to; another name (with TD_BED_NODE_SLOT 1 or 2: higher slots would take other bed ports)
# is an extra node, e.g. the teardown test's.
# Everything that could collide between beds or nodes derives from the bed's registry port and
# the slot: state dir, bridge, subnet, cgroup, kubelet ports, containerd socket.
BED_NODE_ID=${TD_BED_NODE:-node}
if [ "$BED_NODE_ID" = node ]; then BED_NODE_SLOT=0; else BED_NODE_SLOT=${TD_BED_NODE_SLOT:?TD_BED_NODE_SLOT (1 or 2) for node $BED_NODE_ID}; fi
case "$BED_NODE_SLOT" in 0 | 1 | 2) ;; *) echo "lib.sh: TD_BED_NODE_SLOT is 1 or 2, not $BED_NODE_SLOT" >&2; exit 2 ;; esac
bed_reg_port=${BED_REGISTRY##*:}
bed_node_base=$((bed_reg_port - 45000))
BED_NODE_DIR=$TD_BED_DIR/$BED_NODE_ID
# The node's name is its Hostname address, and the apiserver reaches kubelets by Hostname
# (kwokctl.yaml): only `localhost` resolves to loopback without a DNS query. Extra nodes are
# never reached by the apiserver (no logs or port-forwards), so they get a name of their own.
if [ "$BED_NODE_ID" = node ]; then BED_NODE_NAME=localhost; else BED_NODE_NAME=$BED_CLUSTER-$BED_NODE_ID; fi
BED_NODE_LABEL=trader-deploy.test/node
BED_NODE_LABEL_VALUE=$([ "$BED_NODE_ID" = node ] && echo real || echo "$BED_NODE_ID")
BED_NODE_NET=${TD_BED_NODE_NET:-10.244.$((bed_node_base + BED_NODE_SLOT))}
BED_NODE_GW=$BED_NODE_NET.1
BED_NODE_BRIDGE=td$(printf '%s/%s' "$TD_BED_DIR" "$BED_NODE_ID" | sha256sum | cut -c1-10)
BED_NODE_CGROUP=td-$BED_CLUSTER-$BED_NODE_ID
BED_KUBELET_PORT=${TD_BED_KUBELET_PORT:-$((bed_reg_port + 5 + 2 * BED_NODE_SLOT))}
BED_KUBELET_HEALTHZ_PORT=$((BED_KUBELET_PORT + 1))
BED_CONTAINERD_SOCK=$BED_NODE_DIR/run/containerd.sock
BED_PAUSE_IMAGE=$BED_REGISTRY/bed/pause:3.10
BED_CNI_BIN=${TD_BED_CNI_BIN:-/usr/lib/cni}
