#!/usr/bin/env bash
#! Starts the GitHub part of the bed: the stand-in (127.0.0.1:45011) behind Prism (127.0.0.1:45010),
#! which checks every request and response against GitHub's OpenAPI description. Idempotent.
#! stdout: only the `export ...` lines for the bed env file; everything else goes to stderr.
#! Pid files and logs: ${TD_BED_DIR:-<repo>/target/testbed}/github/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../versions.env
. "$root/testbed/versions.env"
CACHE=${TRADER_DEPLOY_CACHE:-$HOME/.cache/trader-deploy}
BED=${TD_BED_DIR:-$root/target/testbed}/github
PRISM_PORT=${TD_GITHUB_PRISM_PORT:-45010}
STANDIN_PORT=${TD_GITHUB_STANDIN_PORT:-45011}
FIXTURE=${TD_GITHUB_FIXTURE:-$root/tests/fixtures/github/default.json}
PRISM_LOG_LEVEL=${TD_PRISM_LOG_LEVEL:-info}
PRISM_URL=http://127.0.0.1:$PRISM_PORT
STANDIN_URL=http://127.0.0.1:$STANDIN_PORT
mkdir -p "$BED"
log() { printf '[github-up] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
now_ms() { date +%s%3N; }

# alive PIDFILE PATTERN: the pid in the file runs a command line containing PATTERN.
alive() {
  local pid
  [ -f "$1" ] || return 1
  pid=$(cat "$1")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}
# wait_http URL SECONDS PIDFILE PATTERN: until URL answers any HTTP status, or the deadline, or the process dies.
wait_http() {
  local deadline=$(( $(date +%s) + $2 ))
  while :; do
    code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true)
    [ -n "$code" ] && [ "$code" != 000 ] && return 0
    alive "$3" "$4" || return 1
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}
port_busy() { curl -s -o /dev/null -m 1 "http://127.0.0.1:$1/" 2>/dev/null; }

prism="$CACHE/npm/node_modules/.bin/prism"
[ -x "$prism" ] || die "Prism is missing ($prism): run testbed/install-deps.sh"
[ -f "$FIXTURE" ] || die "fixture $FIXTURE not found"
spec=$(node "$here/cut-spec.mjs") || die "cutting the OpenAPI description failed"

# The stand-in.
standin_pid=$BED/standin.pid
if alive "$standin_pid" github_standin && curl -sf -m 2 "$STANDIN_URL/_standin/health" >/dev/null; then
  log "stand-in already running (pid $(cat "$standin_pid")) on $STANDIN_URL"
else
  port_busy "$STANDIN_PORT" && die "port $STANDIN_PORT is taken by another program"
  log "building the stand-in"
  (cd "$root" && cargo build -q --workspace --bins) >&2 || die "cargo build failed"
  bin=${CARGO_TARGET_DIR:-$root/target}/debug/github_standin
  t0=$(now_ms)
  nohup "$bin" --fixture "$FIXTURE" --addr "127.0.0.1:$STANDIN_PORT" --api-url "$PRISM_URL" \
    </dev/null >>"$BED/standin.log" 2>&1 &
  echo $! >"$standin_pid"
  wait_http "$STANDIN_URL/_standin/health" 30 "$standin_pid" github_standin \
    || { tail -20 "$BED/standin.log" >&2; die "the stand-in did not come up within 30 s (log: $BED/standin.log)"; }
  log "stand-in up on $STANDIN_URL in $(( $(now_ms) - t0 )) ms (pid $(cat "$standin_pid"), fixture $FIXTURE)"
fi

# Prism in front of it.
prism_pid=$BED/prism.pid
if alive "$prism_pid" prism && wait_http "$PRISM_URL/" 2 "$prism_pid" prism; then
  log "Prism already running (pid $(cat "$prism_pid")) on $PRISM_URL"
else
  port_busy "$PRISM_PORT" && die "port $PRISM_PORT is taken by another program"
  t0=$(now_ms)
  nohup "$prism" proxy "$spec" "$STANDIN_URL" --errors --host 127.0.0.1 --port "$PRISM_PORT" \
    --cors false -v "$PRISM_LOG_LEVEL" </dev/null >>"$BED/prism.log" 2>&1 &
  echo $! >"$prism_pid"
  wait_http "$PRISM_URL/" 60 "$prism_pid" prism \
    || { tail -20 "$BED/prism.log" >&2; die "Prism did not come up within 60 s (log: $BED/prism.log)"; }
  log "Prism $PRISM_VERSION up on $PRISM_URL in $(( $(now_ms) - t0 )) ms (pid $(cat "$prism_pid"), spec $spec)"
fi

echo "export GITHUB_API_URL=$PRISM_URL"
echo "export TD_GITHUB_STANDIN_URL=$STANDIN_URL"
