#!/usr/bin/env bash
# Stops one real node of the bed (testbed/node/up.sh) and leaves nothing of it behind: the
# kubelet, every container (runc, shims) and containerd; then every mount under the node's state
# dir (rootfs overlays, shm, netns, kubelet volumes), the pods' veths and the bridge, the node's
# cgroups, and the state dir itself. Also deletes the Node object when the cluster answers.
# TD_BED_NODE / TD_BED_NODE_SLOT pick the node (lib.sh). Exit 1 if something could not be removed.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
N=$BED_NODE_DIR
status=0

pid_stop "$BED_NODE_ID/kubelet" "$N/kubelet"
if [ -S "$BED_CONTAINERD_SOCK" ] && pid_alive "$BED_NODE_ID/containerd" "$N/containerd/config.toml"; then
  c=(ctr --address "$BED_CONTAINERD_SOCK" --namespace k8s.io)
  for t in $("${c[@]}" tasks ls -q 2>/dev/null); do
    timeout 10 "${c[@]}" tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
  done
  for t in $("${c[@]}" tasks ls -q 2>/dev/null); do
    timeout 20 "${c[@]}" tasks rm -f "$t" >/dev/null 2>&1 || true
  done
fi
pid_stop "$BED_NODE_ID/containerd" "$N/containerd/config.toml"

# Any process left of this node: in its cgroups, or a shim serving its containerd.
node_pids() {
  {
    find /sys/fs/cgroup/*/"$BED_NODE_CGROUP" -name cgroup.procs -exec cat {} + 2>/dev/null || true
    for p in /proc/[0-9]*; do
      if tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -- "$BED_CONTAINERD_SOCK"; then echo "${p#/proc/}"; fi
    done
  } | sort -un
}
for i in $(seq 1 50); do
  pids=$(node_pids)
  [ -z "$pids" ] && break
  # shellcheck disable=SC2086
  kill -9 $pids 2>/dev/null || true
  sleep 0.2
done
[ -z "$(node_pids)" ] || { bed_log "node $BED_NODE_NAME: processes left: $(node_pids | tr '\n' ' ')"; status=1; }

# Mounts under the state dir, deepest first (overlay rootfs, shm, netns, kubelet tmpfs).
node_mounts() { awk -v d="$N/" '{ gsub(/\\040/, " ", $5); if (index($5 "/", d) == 1) print $5 }' /proc/self/mountinfo | sort -r; }
for i in 1 2 3; do
  for m in $(node_mounts); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
done
[ -z "$(node_mounts)" ] || { bed_log "node $BED_NODE_NAME: mounts left: $(node_mounts | tr '\n' ' ')"; status=1; }

# The pods' host-side veths, then the bridge.
if ip link show "$BED_NODE_BRIDGE" >/dev/null 2>&1; then
  for l in $(ip -o link show master "$BED_NODE_BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$l" 2>/dev/null || true
  done
  ip link del "$BED_NODE_BRIDGE" || status=1
fi

# cgroups (deepest first, in every hierarchy).
for h in /sys/fs/cgroup/*/"$BED_NODE_CGROUP"; do
  [ -d "$h" ] || continue
  find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  [ ! -d "$h" ] || { bed_log "node $BED_NODE_NAME: cgroup $h left"; status=1; }
done

# The kubelet's /var/log/containers links into this node's pod logs.
for l in /var/log/containers/*.log; do
  [ -L "$l" ] && case "$(readlink "$l")" in "$N"/*) rm -f "$l" ;; esac
done
[ -z "$(node_mounts)" ] && rm -rf "$N"
if cluster_ok; then
  kubectl --kubeconfig "$BED_KUBECONFIG" --request-timeout=10s delete node "$BED_NODE_NAME" \
    --ignore-not-found --wait=false >/dev/null 2>&1 || true
fi
bed_log "node $BED_NODE_NAME down"
exit $status
