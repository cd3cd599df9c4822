#!/usr/bin/env bash
#! Stops the GitHub part of the bed (Prism and the stand-in) that testbed/github/up.sh started,
#! by the pids in its pid files only. Idempotent; every wait has a deadline.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BED=${TD_BED_DIR:-$root/target/testbed}/github
log() { printf '[github-down] %s\n' "$*" >&2; }

# stop PIDFILE PATTERN: TERM, up to 10 s, then KILL; only if the pid still runs PATTERN.
stop() {
  local file=$1 pattern=$2 pid deadline
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$pattern"; then
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$(( $(date +%s) + 10 ))
    while [ -d "/proc/$pid" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
    if [ -d "/proc/$pid" ]; then
      log "$pattern (pid $pid) ignored TERM for 10 s: KILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $pattern (pid $pid)"
  fi
  rm -f "$file"
}
stop "$BED/prism.pid" prism
stop "$BED/standin.pid" github_standin
