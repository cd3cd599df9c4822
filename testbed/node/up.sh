#!/usr/bin/env bash
# Starts one real worker node of the bed next to the kwok nodes (idempotent): a Linux bridge of
# the bed's own with a CNI conflist (bridge + host-local; containerd adds loopback), containerd
# and runc with a private config, socket and state under $TD_BED_DIR/<node>, and a kubelet joined
# to the bed's apiserver, tainted so that only pods asking for the node land on it.
# Needs the cluster and the registry up (the sandbox image is the bed registry's bed/pause).
# TD_BED_NODE / TD_BED_NODE_SLOT pick the node (lib.sh); the default is the bed's real node.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
N=$BED_NODE_DIR
LOGS=$TD_BED_DIR/logs
KUBELET=$BED_BIN/kubelet-$K8S_VERSION
node_ready() {
  kubectl --kubeconfig "$BED_KUBECONFIG" --request-timeout=3s get node "$BED_NODE_NAME" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True
}
containerd_ok() { [ -S "$BED_CONTAINERD_SOCK" ] && ctr --address "$BED_CONTAINERD_SOCK" version >/dev/null 2>&1; }
kubelet_ok() { http_ok "http://127.0.0.1:$BED_KUBELET_HEALTHZ_PORT/healthz"; }

if pid_alive "$BED_NODE_ID/containerd" "$N/containerd/config.toml" && pid_alive "$BED_NODE_ID/kubelet" "$N/kubelet" \
  && kubelet_ok && node_ready; then
  bed_log "node $BED_NODE_NAME already up ($N)"
  exit 0
fi
for b in "$KUBELET" /usr/bin/containerd "$(command -v runc || echo /usr/sbin/runc)" "$BED_CNI_BIN/bridge" "$BED_CNI_BIN/host-local" "$BED_CNI_BIN/loopback"; do
  [ -x "$b" ] || { bed_log "missing $b: run 'make tools' (install-deps.sh, build-tools.sh kubelet)"; exit 1; }
done
cluster_ok || { bed_log "node: the cluster is not up"; exit 1; }
# Whatever is left of an earlier start goes first (processes, mounts, links, cgroups).
"$BED_REPO/testbed/node/down.sh" >/dev/null 2>&1 || true
mkdir -p "$N"/{containerd,run,kubelet/root,kubelet/pki,kubelet/volume-plugins,cni/net.d,cni/ipam,pod-logs} "$LOGS"
# What this node is made of, for tests and for whoever debugs it (kept in the bed's logs).
cat >"$LOGS/$BED_NODE_ID-node.info" <<INFO
NAME=$BED_NODE_NAME
DIR=$N
BRIDGE=$BED_NODE_BRIDGE
NET=$BED_NODE_NET.0/24
CGROUP=$BED_NODE_CGROUP
SOCK=$BED_CONTAINERD_SOCK
KUBELET_PORT=$BED_KUBELET_PORT
INFO

# 1. The node's network: a bridge with the gateway address, created here (not by the CNI bridge
# plugin's isGateway, which would also turn on the host's IP forwarding). Pods get an address on
# it and no other route: they reach the host's end of the bridge, and nothing beyond.
ip link add "$BED_NODE_BRIDGE" type bridge
[ -w "/proc/sys/net/ipv6/conf/$BED_NODE_BRIDGE/disable_ipv6" ] && echo 1 >"/proc/sys/net/ipv6/conf/$BED_NODE_BRIDGE/disable_ipv6"
ip addr add "$BED_NODE_GW/24" dev "$BED_NODE_BRIDGE"
ip link set "$BED_NODE_BRIDGE" up
cat >"$N/cni/net.d/10-bed.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "$BED_CLUSTER-$BED_NODE_ID",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BED_NODE_BRIDGE",
      "isGateway": false,
      "ipMasq": false,
      "hairpinMode": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "$N/cni/ipam",
        "ranges": [[{"subnet": "$BED_NODE_NET.0/24", "rangeStart": "$BED_NODE_NET.2",
                     "rangeEnd": "$BED_NODE_NET.254", "gateway": "$BED_NODE_GW"}]],
        "routes": []
      }
    }
  ]
}
JSON

# 2. containerd: everything private to this node (socket, root, state, runc root, netns mounts).
# restrict_oom_score_adj: this machine forbids lowering oom_score_adj, and without it every
# sandbox fails in runc ("can't get final child's PID from pipe: EOF").
cat >"$N/containerd/config.toml" <<TOML
# containerd of the bed's node $BED_NODE_NAME (written by testbed/node/up.sh)
version = 2
root = "$N/containerd/root"
state = "$N/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "$BED_CONTAINERD_SOCK"
[plugins."io.containerd.internal.v1.opt"]
  path = "$N/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$BED_PAUSE_IMAGE"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$BED_CNI_BIN"
    conf_dir = "$N/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$N/run/runc"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$BED_REGISTRY"]
    endpoint = ["http://$BED_REGISTRY"]
TOML
bed_log "node $BED_NODE_NAME: starting containerd ($BED_CONTAINERD_SOCK)"
setsid containerd --config "$N/containerd/config.toml" >>"$LOGS/$BED_NODE_ID-containerd.log" 2>&1 </dev/null &
echo $! >"$N/containerd.pid"
wait_for "containerd of $BED_NODE_NAME" 30 containerd_ok

# 3. The kubelet (v$K8S_VERSION, as the control plane). cgroup v1 here: failCgroupV1 false, the
# cgroupfs driver, no QoS cgroups; every pod's cgroups go under /$BED_NODE_CGROUP. Anonymous,
# AlwaysAllow auth on 127.0.0.1 only (the apiserver's port-forwards and logs come that way).
cat >"$N/kubelet/config.yaml" <<YAML
# kubelet of the bed's node $BED_NODE_NAME (written by testbed/node/up.sh)
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: true
cgroupRoot: /$BED_NODE_CGROUP
enforceNodeAllocatable: []
failSwapOn: false
containerRuntimeEndpoint: unix://$BED_CONTAINERD_SOCK
address: 127.0.0.1
port: $BED_KUBELET_PORT
healthzBindAddress: 127.0.0.1
healthzPort: $BED_KUBELET_HEALTHZ_PORT
readOnlyPort: 0
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
podLogsDir: $N/pod-logs
volumePluginDir: $N/kubelet/volume-plugins
resolvConf: ""
hairpinMode: none
serializeImagePulls: false
containerLogMaxSize: 1Mi
evictionHard: {memory.available: 50Mi, nodefs.available: 1%, imagefs.available: 1%}
registerWithTaints:
- {key: $BED_NODE_LABEL, value: $BED_NODE_LABEL_VALUE, effect: NoSchedule}
YAML
# The cgroup root must exist in every v1 hierarchy (name=systemd too) before the kubelet starts.
for h in /sys/fs/cgroup/*/; do
  case "$h" in */unified/) continue ;; esac
  mkdir -p "$h$BED_NODE_CGROUP"
done
bed_log "node $BED_NODE_NAME: starting kubelet (port $BED_KUBELET_PORT)"
setsid "$KUBELET" --config "$N/kubelet/config.yaml" --kubeconfig "$BED_KUBECONFIG" \
  --root-dir "$N/kubelet/root" --cert-dir "$N/kubelet/pki" \
  --hostname-override "$BED_NODE_NAME" --node-ip "$BED_NODE_GW" \
  --node-labels "$BED_NODE_LABEL=$BED_NODE_LABEL_VALUE" \
  >>"$LOGS/$BED_NODE_ID-kubelet.log" 2>&1 </dev/null &
echo $! >"$N/kubelet.pid"
# Ready, or the kubelet is gone (a bad config ends it at once: no point waiting).
ready_or_gone() {
  node_ready && return 0
  pid_alive "$BED_NODE_ID/kubelet" "$N/kubelet" && return 1
  bed_log "node $BED_NODE_NAME: the kubelet exited; last lines of $LOGS/$BED_NODE_ID-kubelet.log:"
  tail -n 15 "$LOGS/$BED_NODE_ID-kubelet.log" | cut -c1-400 >&2
  exit 1
}
wait_for "node $BED_NODE_NAME Ready" 120 ready_or_gone || {
  tail -n 30 "$LOGS/$BED_NODE_ID-kubelet.log" | cut -c1-400 >&2
  exit 1
}
bed_log "node $BED_NODE_NAME Ready (${SECONDS}s)"
