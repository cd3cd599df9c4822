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
export KWOK_WORKDIR=$TD_BED_DIR/kwok
BED_KUBECONFIG=$TD_BED_DIR/kubeconfig
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
registry_ok() { http_ok "http://$BED_REGISTRY/v2/"; }
app_ok() { http_ok "http://$BED_APP_CONTROL/healthz"; }

# bed_ok: the parts this repo's scripts start are all up and answering.
bed_ok() { [ -f "$TD_BED_DIR/env" ] && cluster_ok && registry_ok && app_ok; }

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
