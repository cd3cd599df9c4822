#!/usr/bin/env bash
# Brings the test bed up (kwok cluster, the real node, OCI registry, fake app, GitHub stand-in) and writes
# $TD_BED_DIR/env with `export KEY=VALUE` lines; idempotent: a healthy bed is left as it is.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
mkdir -p "$TD_BED_DIR/logs"
LOGS=$TD_BED_DIR/logs
github_up=$BED_REPO/testbed/github/up.sh
# TD_BED_GITHUB=0 leaves the GitHub stand-in out (e.g. while another bed holds its ports).
[ "${TD_BED_GITHUB:-1}" = 0 ] && github_up=/nonexistent

if bed_ok && { [ ! -x "$github_up" ] || grep -q GITHUB_API_URL "$TD_BED_DIR/env"; }; then
  bed_log "already up ($TD_BED_DIR)"
  # The stand-in's own up.sh is idempotent too: let it check (and heal) its part.
  if [ -x "$github_up" ]; then
    TD_BED_DIR=$TD_BED_DIR "$github_up" >"$LOGS/github-env" 2>>"$LOGS/github-up.log"
  fi
  cat "$TD_BED_DIR/env"
  exit 0
fi

for b in "$KWOKCTL" "$BED_BIN/kwok-$KWOK_VERSION" "$BED_BIN/etcd-$ETCD_VERSION" \
  "$BED_BIN/kube-apiserver-$K8S_VERSION" "$BED_BIN/kube-controller-manager-$K8S_VERSION" \
  "$BED_BIN/kube-scheduler-$K8S_VERSION" "$BED_BIN/helm-$HELM3_VERSION" "$BED_BIN/helm-$HELM4_VERSION"; do
  [ -x "$b" ] || { bed_log "missing $b: run 'make tools' (testbed/build-tools.sh all)"; exit 1; }
done
command -v kubectl >/dev/null || { bed_log "kwokctl needs kubectl on PATH"; exit 1; }

# 1. The fake app's binary and the real test app (static, for the images) built first: cargo is
# the slow part when cold.
bed_log "cargo build --workspace --bins; the static test app"
(cd "$BED_REPO" && cargo build -q --workspace --bins \
  && cargo build -q --release --target x86_64-unknown-linux-musl -p trader-deploy-testapp)
bed_log "  built (${SECONDS}s)"
target_dir=$(cd "$BED_REPO" && cargo metadata --format-version 1 --no-deps \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
FAKE_APP=${target_dir:-$BED_REPO/target}/debug/fake_app
TOKEN_WEBHOOK=${target_dir:-$BED_REPO/target}/debug/token_webhook
TESTAPP=${target_dir:-$BED_REPO/target}/x86_64-unknown-linux-musl/release/testapp

# 2. Registry.
if ! registry_ok; then
  pid_stop registry docker-registry
  mkdir -p "$TD_BED_DIR/registry/storage"
  sed -e "s#@STORAGE@#$TD_BED_DIR/registry/storage#" -e "s#@ADDR@#$BED_REGISTRY#" \
    "$BED_REPO/testbed/registry/config.yml.in" \
    >"$TD_BED_DIR/registry/config.yml"
  bed_log "starting registry on $BED_REGISTRY"
  setsid docker-registry serve "$TD_BED_DIR/registry/config.yml" >>"$LOGS/registry.log" 2>&1 </dev/null &
  echo $! >"$TD_BED_DIR/registry.pid"
  wait_for "registry on $BED_REGISTRY" 20 registry_ok
fi
# The pause image is pushed last: when it is there, all are; the stamp says which test app and
# which push-images.sh made them (the registry's storage outlives the bed).
stamp=$(cat "$TESTAPP" "$BED_REPO/testbed/push-images.sh" | sha256sum | cut -c1-16)
if [ "$(cat "$TD_BED_DIR/registry/pushed" 2>/dev/null)" != "$stamp" ] \
  || ! curl -fsS -o /dev/null --max-time 3 -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://$BED_REGISTRY/v2/bed/pause/manifests/3.10" 2>/dev/null; then
  bed_log "pushing test images"
  TD_REGISTRY=$BED_REGISTRY TD_TESTAPP_BIN=$TESTAPP "$BED_REPO/testbed/push-images.sh" 2>>"$LOGS/push-images.log"
  echo "$stamp" >"$TD_BED_DIR/registry/pushed"
fi

# 2b. The cloud token authenticator (EKS presigned URLs; the GKE and AKS stand-ins' tokens), before the cluster: kube-apiserver asks it about the bearer
# tokens it does not know itself (--authentication-token-webhook-config-file), on the port it got
# on its first start.
[ -s "$BED_CLOUD_TOKEN_KEY_FILE" ] || (umask 077 && head -c 32 /dev/urandom | base64 >"$BED_CLOUD_TOKEN_KEY_FILE")
if ! token_webhook_ok; then
  pid_stop token_webhook token_webhook
  port=$(cat "$BED_TOKEN_WEBHOOK_PORT_FILE" 2>/dev/null || echo 0)
  bed_log "starting the token webhook (port $port; 0: any)"
  setsid "$TOKEN_WEBHOOK" --listen "127.0.0.1:$port" --port-file "$BED_TOKEN_WEBHOOK_PORT_FILE" \
    --cluster-id "$BED_CLUSTER" \
    --key "$BED_AWS_ACCESS_KEY_ID=$BED_AWS_SECRET_ACCESS_KEY=$BED_AWS_USER" \
    --cloud-token-key-file "$BED_CLOUD_TOKEN_KEY_FILE" \
    >>"$LOGS/token_webhook.log" 2>&1 </dev/null &
  echo $! >"$TD_BED_DIR/token_webhook.pid"
  wait_for "token webhook" 20 token_webhook_ok
fi
cat >"$TD_BED_DIR/token-webhook.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: token-webhook
  cluster: {server: "http://127.0.0.1:$(cat "$BED_TOKEN_WEBHOOK_PORT_FILE")/authenticate"}
users:
- name: kube-apiserver
  user: {}
contexts:
- name: token-webhook
  context: {cluster: token-webhook, user: kube-apiserver}
current-context: token-webhook
EOF
# kwokctl.yaml with the apiserver's webhook flags (no cache: every review is asked afresh).
awk -v cfg="$TD_BED_DIR/token-webhook.kubeconfig" '
  { print }
  /value: Hostname/ {
    print "  - key: authentication-token-webhook-config-file"
    print "    value: " cfg
    print "  - key: authentication-token-webhook-cache-ttl"
    print "    value: 0s"
  }' "$BED_REPO/testbed/kwok/kwokctl.yaml" >"$TD_BED_DIR/kwokctl.yaml"

# 3. Cluster. One made before the real node (its kwok managing every node, and so fighting the
# kubelet) is made again.
if cluster_ok && grep -q -- '--manage-all-nodes=true' "$KWOK_WORKDIR/clusters/$BED_CLUSTER/kwok.yaml" 2>/dev/null; then
  bed_log "cluster $BED_CLUSTER's kwok manages every node: recreating the cluster for the real node"
  "$BED_REPO/testbed/node/down.sh" >>"$LOGS/node-up.log" 2>&1 || true
  timeout 120 "$KWOKCTL" --name "$BED_CLUSTER" delete cluster --kubeconfig "$BED_KUBECONFIG" >>"$LOGS/kwokctl.log" 2>&1 || true
fi
if ! cluster_ok; then
  if "$KWOKCTL" get clusters 2>/dev/null | grep -qx "$BED_CLUSTER"; then
    bed_log "cluster $BED_CLUSTER exists but does not answer: recreating it"
    "$KWOKCTL" --name "$BED_CLUSTER" delete cluster --kubeconfig "$BED_KUBECONFIG" >>"$LOGS/kwokctl.log" 2>&1 || true
  fi
  bed_log "creating kwok cluster $BED_CLUSTER (kube $K8S_VERSION, etcd $ETCD_VERSION)"
  rm -f "$BED_KUBECONFIG"
  # The fallback port-forward target is the fake app's fallback port.
  sed "s/port: 45021/port: ${BED_APP_FALLBACK##*:}/" "$BED_REPO/testbed/kwok/port-forward.yaml" \
    >"$TD_BED_DIR/kwok-port-forward.yaml"
  if ! timeout 300 "$KWOKCTL" --name "$BED_CLUSTER" create cluster --runtime binary \
    --etcd-binary "$BED_BIN/etcd-$ETCD_VERSION" \
    --kube-apiserver-binary "$BED_BIN/kube-apiserver-$K8S_VERSION" \
    --kube-controller-manager-binary "$BED_BIN/kube-controller-manager-$K8S_VERSION" \
    --kube-scheduler-binary "$BED_BIN/kube-scheduler-$K8S_VERSION" \
    --kwok-controller-binary "$BED_BIN/kwok-$KWOK_VERSION" \
    --enable-crds PortForward \
    -c "$TD_BED_DIR/kwokctl.yaml" \
    -c "$BED_REPO/testbed/kwok/default-stages.yaml" \
    -c "$BED_REPO/testbed/kwok/failure-stages.yaml" \
    -c "$TD_BED_DIR/kwok-port-forward.yaml" \
    --kubeconfig "$BED_KUBECONFIG" --wait 2m >>"$LOGS/kwokctl.log" 2>&1; then
    bed_log "kwokctl create cluster failed; last lines of $LOGS/kwokctl.log:"
    tail -n 30 "$LOGS/kwokctl.log" >&2
    exit 1
  fi
  timeout 60 "$KWOKCTL" --name "$BED_CLUSTER" scale node --replicas 2 >>"$LOGS/kwokctl.log" 2>&1
  wait_for "2 Ready nodes" 60 bash -c \
    "[ \"\$(kubectl --kubeconfig '$BED_KUBECONFIG' get nodes --no-headers 2>/dev/null | grep -cw Ready)\" -ge 2 ]"
  wait_for "default service account" 60 bash -c \
    "kubectl --kubeconfig '$BED_KUBECONFIG' --request-timeout=3s get serviceaccount default -n default >/dev/null 2>&1"
  bed_log "  cluster up (${SECONDS}s)"
  # A fake app from before watches the old cluster (old kubeconfig): start it afresh.
  pid_stop fake_app fake_app
fi

# 3b. The second cluster ("region 2"), kwok nodes only, with the same pod stages.
if [ "${TD_BED_REGION2:-1}" != 0 ] && ! region2_ok; then
  if "$KWOKCTL" get clusters 2>/dev/null | grep -qx "$BED_REGION2_CLUSTER"; then
    "$KWOKCTL" --name "$BED_REGION2_CLUSTER" delete cluster --kubeconfig "$BED_REGION2_KUBECONFIG" >>"$LOGS/kwokctl.log" 2>&1 || true
  fi
  bed_log "creating kwok cluster $BED_REGION2_CLUSTER (region 2)"
  rm -f "$BED_REGION2_KUBECONFIG"
  if ! timeout 300 "$KWOKCTL" --name "$BED_REGION2_CLUSTER" create cluster --runtime binary \
    --etcd-binary "$BED_BIN/etcd-$ETCD_VERSION" \
    --kube-apiserver-binary "$BED_BIN/kube-apiserver-$K8S_VERSION" \
    --kube-controller-manager-binary "$BED_BIN/kube-controller-manager-$K8S_VERSION" \
    --kube-scheduler-binary "$BED_BIN/kube-scheduler-$K8S_VERSION" \
    --kwok-controller-binary "$BED_BIN/kwok-$KWOK_VERSION" \
    -c "$BED_REPO/testbed/kwok/kwokctl.yaml" \
    -c "$BED_REPO/testbed/kwok/default-stages.yaml" \
    -c "$BED_REPO/testbed/kwok/failure-stages.yaml" \
    --kubeconfig "$BED_REGION2_KUBECONFIG" --wait 2m >>"$LOGS/kwokctl.log" 2>&1; then
    bed_log "kwokctl create cluster $BED_REGION2_CLUSTER failed; last lines of $LOGS/kwokctl.log:"
    tail -n 30 "$LOGS/kwokctl.log" >&2
    exit 1
  fi
  # kwokctl writes the cluster into the kubeconfig given: keep it to this cluster alone.
  timeout 60 "$KWOKCTL" --name "$BED_REGION2_CLUSTER" scale node --replicas 1 >>"$LOGS/kwokctl.log" 2>&1
  wait_for "region 2: a Ready node" 60 bash -c \
    "kubectl --kubeconfig '$BED_REGION2_KUBECONFIG' get nodes --no-headers 2>/dev/null | grep -qw Ready"
  wait_for "region 2: default service account" 60 bash -c \
    "kubectl --kubeconfig '$BED_REGION2_KUBECONFIG' --request-timeout=3s get serviceaccount default -n default >/dev/null 2>&1"
  bed_log "  region 2 up (${SECONDS}s)"
fi

# 4. Fake app (after the cluster: it watches pods and creates their PortForward objects).
if ! app_ok; then
  pid_stop fake_app fake_app
  bed_log "starting fake app on $BED_APP_CONTROL"
  KUBECONFIG=$BED_KUBECONFIG setsid "$FAKE_APP" --control "$BED_APP_CONTROL" \
    --fallback "$BED_APP_FALLBACK" --pool "$BED_APP_POOL" >>"$LOGS/fake_app.log" 2>&1 </dev/null &
  echo $! >"$TD_BED_DIR/fake_app.pid"
  wait_for "fake app on $BED_APP_CONTROL" 20 app_ok
fi

# 5. The real node (containerd, runc, kubelet) next to the kwok nodes.
if [ "${TD_BED_REAL_NODE:-1}" != 0 ]; then
  "$BED_REPO/testbed/node/up.sh" 2>>"$LOGS/node-up.log" || {
    bed_log "testbed/node/up.sh failed; see $LOGS/node-up.log"
    tail -n 20 "$LOGS/node-up.log" >&2
    exit 1
  }
fi

# 6. The GitHub stand-in (another part of the bed; its up.sh prints its export lines).
: >"$LOGS/github-env"
if [ -x "$github_up" ]; then
  bed_log "starting the GitHub stand-in (testbed/github/up.sh)"
  TD_BED_DIR=$TD_BED_DIR "$github_up" >"$LOGS/github-env" 2>>"$LOGS/github-up.log" || {
    bed_log "testbed/github/up.sh failed; see $LOGS/github-up.log"
    tail -n 20 "$LOGS/github-up.log" >&2
    exit 1
  }
fi

{
  echo "export KUBECONFIG=$BED_KUBECONFIG"
  echo "export TD_HELM3=$BED_BIN/helm-$HELM3_VERSION"
  echo "export TD_HELM4=$BED_BIN/helm-$HELM4_VERSION"
  echo "export TD_REGISTRY=$BED_REGISTRY"
  echo "export TD_APP_URL=http://$BED_APP_CONTROL"
  echo "export TD_BED_DIR=$TD_BED_DIR"
  echo "export TD_BED_CLUSTER=$BED_CLUSTER"
  [ "${TD_BED_REGION2:-1}" = 0 ] || echo "export TD_REGION2_KUBECONFIG=$BED_REGION2_KUBECONFIG"
  echo "export TD_TOKEN_WEBHOOK_URL=http://127.0.0.1:$(cat "$BED_TOKEN_WEBHOOK_PORT_FILE")"
  echo "export TD_BED_AWS_ACCESS_KEY_ID=$BED_AWS_ACCESS_KEY_ID"
  echo "export TD_BED_AWS_SECRET_ACCESS_KEY=$BED_AWS_SECRET_ACCESS_KEY"
  echo "export TD_BED_AWS_USER=$BED_AWS_USER"
  echo "export TD_BED_CLOUD_TOKEN_KEY_FILE=$BED_CLOUD_TOKEN_KEY_FILE"
  [ "${TD_BED_REAL_NODE:-1}" = 0 ] || echo "export TD_REAL_NODE=$BED_NODE_NAME"
  grep '^export ' "$LOGS/github-env" || true
} >"$TD_BED_DIR/env.tmp"
mv "$TD_BED_DIR/env.tmp" "$TD_BED_DIR/env"
bed_log "up in ${SECONDS}s; env in $TD_BED_DIR/env"
cat "$TD_BED_DIR/env"
