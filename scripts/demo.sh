#!/usr/bin/env bash
# make demo: the shipped pipeline on the local test bed, as a user would watch it on GitHub.
#   1. a push to main deploys sha-<8> to dev                   (examples/workflows/deploy-dev.yml)
#   2. the v1.2.0 tag deploys to prod behind `production`: refused while unapproved, then
#      deployed once a reviewer approved it
#                                                              (examples/workflows/release.yml)
#   3. a broken tag (its image cannot be pulled) is dispatched to dev: caught, rolled back
#                                                              (examples/workflows/deploy-manual.yml)
# The real trader-deploy binary runs each step as the docker action would (INPUT_*, GITHUB_*, an
# event payload), against the bed's Kubernetes, registry, and GitHub stand-in behind the Prism
# validator. The pods run on the bed's real node (containerd, runc, kubelet: real containers of
# the test app, real probes, a real failed pull); TD_DEMO_NODE=kwok puts them on the kwok nodes.
# It brings the bed up if needed and tears down what it started.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

# Run inside testbed/with-bed.sh: the bed comes up when it is not running, and only the parts
# this run started go down again at the end.
if [ -z "${TD_DEMO_INNER:-}" ]; then
  exec env TD_DEMO_INNER=1 "$ROOT/testbed/with-bed.sh" "$ROOT/scripts/demo.sh" "$@"
fi

for v in KUBECONFIG TD_REGISTRY TD_HELM3 GITHUB_API_URL TD_GITHUB_STANDIN_URL; do
  [ -n "${!v:-}" ] || { echo "demo: the bed's env has no $v (is the GitHub stand-in up?)" >&2; exit 1; }
done
DEMO_NODE=${TD_DEMO_NODE:-real}
case "$DEMO_NODE" in
  real) [ -n "${TD_REAL_NODE:-}" ] || { echo "demo: the bed runs without its real node (TD_BED_REAL_NODE=0); run with TD_DEMO_NODE=kwok" >&2; exit 1; } ;;
  kwok) ;;
  *) echo "demo: TD_DEMO_NODE is real or kwok, not $DEMO_NODE" >&2; exit 2 ;;
esac

if [ -t 1 ]; then
  B=$'\e[1m' DIM=$'\e[2m' RED=$'\e[31m' GREEN=$'\e[32m' YELLOW=$'\e[33m' CYAN=$'\e[36m' R=$'\e[0m'
else
  B='' DIM='' RED='' GREEN='' YELLOW='' CYAN='' R=''
fi
say() { printf '%s\n' "$*"; }
scene() { printf '\n%s══ %s ══%s\n' "$B$CYAN" "$*" "$R"; }
note() { printf '%s%s%s\n' "$DIM" "$*" "$R"; }

ID=$$
WORK=$ROOT/target/demo/$ID
mkdir -p "$WORK"
NS_DEV=trader-dev-demo-$ID
NS_PROD=trader-prod-demo-$ID
REPO_NAME=trader-demo-$ID
REPO=acme/$REPO_NAME
TOKEN=ghs_bed_full
MAIN_SHA=0123abcd4e5f60718293a4b5c6d7e8f90a1b2c3d
PREV_SHA=ee3b2f7904fd6c989c87d6b5f7ecd382679612f4

cleanup() {
  status=$?
  note "Tearing down the demo: namespaces $NS_DEV and $NS_PROD."
  kubectl delete namespace "$NS_DEV" "$NS_PROD" --wait=false --ignore-not-found >/dev/null 2>&1 || true
  exit $status
}
trap cleanup EXIT

scene "Setting up"
note "Building trader-deploy (cargo build)…"
(cd "$ROOT" && cargo build -q --workspace --bins)
target_dir=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
BIN=$target_dir/debug/trader-deploy

# The repository on the GitHub stand-in: the default fixture, with main's tip at MAIN_SHA (the
# commit CI built as sha-0123abcd), the v1.2.0 tag on it, and the demo's own workflow runs. Run 2002
# (the tag) was approved for `production` by alice; carol pushed it. Run 2004 has no approval.
jq --arg name "$REPO_NAME" --arg sha "$MAIN_SHA" --arg prev "$PREV_SHA" '
  .repository.name = $name
  | .commits += [{sha: $sha, message: "Scanner: 15-symbol universe for prod", author: "carol",
                  parents: [$prev], statuses: {ci: "success"}}]
  | .branches.main = $sha
  | .tags["v1.2.0"] = $sha
  | .runs = [
      {id: 2001, actor: "carol", event: "push", head_branch: "main", head_sha: $sha},
      {id: 2002, actor: "carol", event: "push", head_branch: "v1.2.0", head_sha: $sha,
       approvals: [{environments: ["production"], state: "approved", user: "alice",
                    comment: "Market is closed: ship it"}],
       jobs: [{name: "deploy", environment: "production"}]},
      {id: 2003, actor: "carol", event: "workflow_dispatch", head_branch: "main", head_sha: $sha},
      {id: 2004, actor: "carol", event: "push", head_branch: "v1.2.0", head_sha: $sha,
       jobs: [{name: "deploy", environment: "production"}]}]
' "$ROOT/tests/fixtures/github/default.json" >"$WORK/fixture.json"
curl -fsS -X POST -H 'content-type: application/json' --data @"$WORK/fixture.json" \
  "$TD_GITHUB_STANDIN_URL/_standin/repos" >/dev/null
kubectl create namespace "$NS_DEV" >/dev/null
kubectl create namespace "$NS_PROD" >/dev/null
EXTRA_VALUES=""
if [ "$DEMO_NODE" = real ]; then
  # Both components on the real node: its label and a toleration of its taint.
  cat >"$WORK/real-node.yaml" <<'YAML'
# scripts/demo.sh: the traderadmin pods on the bed's real node (testbed/node/up.sh)
pythonOrch:
  nodeSelector: {trader-deploy.test/node: real}
  tolerations: [{key: trader-deploy.test/node, operator: Equal, value: real, effect: NoSchedule}]
goScanner:
  nodeSelector: {trader-deploy.test/node: real}
  tolerations: [{key: trader-deploy.test/node, operator: Equal, value: real, effect: NoSchedule}]
YAML
  EXTRA_VALUES=$'\n'$WORK/real-node.yaml
  # The Secrets the chart references (by name, never values): a real kubelet will not start a
  # container whose required Secret is missing. Demo placeholders only.
  kubectl -n "$NS_DEV" create secret generic ibkr-credentials-paper \
    --from-literal=IBKR_USERNAME=demo-paper --from-literal=IBKR_PASSWORD=demo-only >/dev/null
  kubectl -n "$NS_PROD" create secret generic ibkr-credentials-live \
    --from-literal=IBKR_USERNAME=demo-live --from-literal=IBKR_PASSWORD=demo-only >/dev/null
  for ns in "$NS_DEV" "$NS_PROD"; do
    kubectl -n "$ns" create secret generic market-data-api --from-literal=API_KEY=demo-only >/dev/null
  done
fi
say "GitHub:     repository $REPO on the stand-in, through Prism at $GITHUB_API_URL"
if [ "$DEMO_NODE" = real ]; then
  say "Kubernetes: the bed's cluster stands in for both clusters: namespace $NS_DEV (dev), $NS_PROD (prod);"
  say "            the pods run on its real node $TD_REAL_NODE (containerd, runc, kubelet)"
else
  say "Kubernetes: one local kwok cluster stands in for both clusters: namespace $NS_DEV (dev), $NS_PROD (prod)"
fi
say "Registry:   $TD_REGISTRY (acme/python-orch, acme/go-scanner)"
say "Chart:      examples/charts/traderadmin, values deploy/values/values-<env>.yaml, smoke tests examples/smoke-tests.yaml"

# Undoes the workflow-command escapes (%0A newline, %0D, %3A ':', %2C ',', %25 '%').
unescape() {
  local s=$1
  s=${s//%0A/$'\n'}; s=${s//%0D/}; s=${s//%3A/:}; s=${s//%2C/,}; s=${s//%25/%}
  printf '%s\n' "$s"
}

# Prints an action log as the Actions UI shows it: groups as headings, annotations called out,
# masks hidden.
render_log() {
  while IFS= read -r line; do
    case $line in
      ::add-mask::*) ;;
      ::endgroup::) ;;
      ::group::*) printf '  %s▸ %s%s\n' "$B" "${line#::group::}" "$R" ;;
      ::error*)
        msg=${line#*::}; msg=${msg#*::}; title=${line#::error title=}; title=${title%%::*}
        printf '  %s✗ Error: %s%s\n' "$RED$B" "$(unescape "$title")" "$R"
        unescape "$msg" | sed 's/^/      /' ;;
      ::warning*)
        msg=${line#*::}; msg=${msg#*::}
        printf '  %s! Warning: %s%s\n' "$YELLOW" "${msg//%0A/ }" "$R" ;;
      *) printf '      %s\n' "$line" ;;
    esac
  done
}

# play NAME RUN_ID EVENT REF SHA NAMESPACE EVENT_JSON INPUT=VALUE... : runs the action once.
play() {
  local name=$1 run_id=$2 event=$3 ref=$4 sha=$5 ns=$6 payload=$7
  shift 7
  local dir=$WORK/$name
  mkdir -p "$dir/helm"
  printf '%s\n' "$payload" >"$dir/event.json"
  : >"$dir/output"
  : >"$dir/summary"
  local -a envs=(
    PATH="$PATH" HOME="$HOME"
    GITHUB_ACTIONS=true GITHUB_EVENT_NAME="$event" GITHUB_EVENT_PATH="$dir/event.json"
    GITHUB_REF="$ref" GITHUB_REF_NAME="${ref#refs/*/}" GITHUB_SHA="$sha"
    GITHUB_REPOSITORY="$REPO" GITHUB_RUN_ID="$run_id" GITHUB_RUN_ATTEMPT=1 GITHUB_ACTOR=carol RUNNER_NAME="GitHub Actions 1"
    GITHUB_JOB=deploy GITHUB_API_URL="$GITHUB_API_URL" GITHUB_SERVER_URL=https://github.com
    GITHUB_WORKSPACE="$ROOT" GITHUB_OUTPUT="$dir/output" GITHUB_STEP_SUMMARY="$dir/summary"
    HELM_CONFIG_HOME="$dir/helm/config" HELM_CACHE_HOME="$dir/helm/cache" HELM_DATA_HOME="$dir/helm/data"
    INPUT_CHART=examples/charts/traderadmin
    "INPUT_IMAGES=image.pythonOrch=$TD_REGISTRY/acme/python-orch"$'\n'"image.goScanner=$TD_REGISTRY/acme/go-scanner"
    INPUT_SMOKE_TESTS=examples/smoke-tests.yaml
    INPUT_NAMESPACE="$ns"
    INPUT_KUBECONFIG="$(cat "$KUBECONFIG")"
    INPUT_GITHUB_TOKEN="$TOKEN"
    INPUT_HELM="$TD_HELM3"
  )
  local kv
  for kv in "$@"; do envs+=("INPUT_$(printf '%s' "${kv%%=*}" | tr '[:lower:]' '[:upper:]')=${kv#*=}"); done
  local code=0
  env -i "${envs[@]}" "$BIN" >"$dir/log" 2>"$dir/stderr" || code=$?
  render_log <"$dir/log"
  if [ -s "$dir/stderr" ]; then sed 's/^/      /' "$dir/stderr"; fi
  printf '  %sexit code %s%s   ' "$DIM" "$code" "$R"
  output() { awk -v k="$1" 'index($0, k"<<")==1 {getline; print; exit}' "$dir/output"; }
  local status; status=$(output status)
  case $status in
    success) printf '%sstatus: success%s' "$GREEN$B" "$R" ;;
    rolled_back) printf '%sstatus: rolled_back%s' "$YELLOW$B" "$R" ;;
    *) printf '%sstatus: %s%s' "$RED$B" "${status:-none}" "$R" ;;
  esac
  printf '   version %s   revision %s (previous %s)   deployment #%s   %ss\n' \
    "$(output version)" "$(output revision)" "$(output previous_revision)" \
    "$(output deployment_id)" "$(output duration_seconds)"
  printf '\n  %sJob summary (what GitHub shows under the run):%s\n' "$B" "$R"
  sed 's/^/  │ /' "$dir/summary"
  LAST_CODE=$code LAST_STATUS=$status
}

push_payload() { # ref sha
  jq -n --arg ref "$1" --arg sha "$2" --arg repo "$REPO" --arg prev "$PREV_SHA" \
    '{ref: $ref, before: $prev, after: $sha, created: false, deleted: false, forced: false,
      repository: {full_name: $repo, default_branch: "main"}, pusher: {name: "carol"}}'
}

failures=0
expect() { # what expected_code expected_status
  if [ "$LAST_CODE" = "$2" ] && [ "$LAST_STATUS" = "$3" ]; then
    printf '\n  %s✓ %s%s\n' "$GREEN" "$1" "$R"
  else
    printf '\n  %s✗ expected %s (exit %s, %s); got exit %s, %s%s\n' "$RED" "$1" "$2" "$3" \
      "$LAST_CODE" "${LAST_STATUS:-none}" "$R"
    failures=$((failures + 1))
  fi
}

scene "1. carol pushes to main → deploy-dev.yml deploys sha-0123abcd to dev"
play push-main 2001 push refs/heads/main "$MAIN_SHA" "$NS_DEV" "$(push_payload refs/heads/main "$MAIN_SHA")" \
  environment=dev "values_files=deploy/values/values-dev.yaml$EXTRA_VALUES" timeout=5m
expect "dev runs sha-0123abcd" 0 success

scene "2a. the v1.2.0 tag's first run, before any reviewer approved it"
note "Run 2004 has no approval for production: the action refuses before touching the cluster."
play tag-unapproved 2004 push refs/tags/v1.2.0 "$MAIN_SHA" "$NS_PROD" "$(push_payload refs/tags/v1.2.0 "$MAIN_SHA")" \
  environment=production "values_files=deploy/values/values-prod.yaml$EXTRA_VALUES" version=v1.2.0 \
  require_distinct_approver=true timeout=10m
expect "the unapproved run was refused" 1 failed
LAST_CODE=0 LAST_STATUS=$(kubectl -n "$NS_PROD" get deployments -o name | wc -l | tr -d ' ')
expect "nothing was deployed to prod" 0 0

scene "2. carol tags v1.2.0 → release.yml deploys it to prod, behind the production environment"
note "GitHub held the job until alice (a required reviewer of production) approved run 2002;"
note "the action checks that approval itself (not by carol, who pushed the tag) and records the deployment."
note "A protected environment deploys by digest (pin_digests is on by default there): prod runs the"
note "image the registry named when the run was approved, even if the tag moves later."
PIN=()
if [ "$DEMO_NODE" = kwok ]; then
  note "(Off in the kwok demo: kwok's stand-in app tells its version from the image tag, which a"
  note " digest-pinned image does not have, so the version smoke check would fail.)"
  PIN=(pin_digests=false)
fi
play tag-v1.2.0 2002 push refs/tags/v1.2.0 "$MAIN_SHA" "$NS_PROD" "$(push_payload refs/tags/v1.2.0 "$MAIN_SHA")" \
  environment=production "values_files=deploy/values/values-prod.yaml$EXTRA_VALUES" version=v1.2.0 \
  require_distinct_approver=true timeout=10m "${PIN[@]}"
expect "prod runs v1.2.0" 0 success

scene "3. someone dispatches deploy-manual.yml with a broken tag (broken-pull) for dev"
note "The image's tag exists in the registry, but its pods cannot pull it (the registry lost a layer:"
note "containerd's pull fails): the rollout must be caught within seconds and dev rolled back to the"
note "last good revision (sha-0123abcd)."
play broken-tag 2003 workflow_dispatch refs/heads/main "$MAIN_SHA" "$NS_DEV" \
  "$(jq -n --arg repo "$REPO" '{ref: "refs/heads/main", inputs: {environment: "dev", version: "broken-pull"},
     repository: {full_name: $repo, default_branch: "main"}, sender: {login: "carol"}}')" \
  environment=dev "values_files=deploy/values/values-dev.yaml$EXTRA_VALUES" version=broken-pull timeout=5m
expect "the broken release was caught and rolled back" 1 rolled_back

scene "Where things stand"
for ns in "$NS_DEV" "$NS_PROD"; do
  say "${B}helm history traderadmin -n $ns${R}"
  KUBECONFIG=$KUBECONFIG "$TD_HELM3" history traderadmin -n "$ns" 2>&1 | sed 's/^/  /'
  say "${B}images running in $ns${R}"
  kubectl -n "$ns" get deployments -o \
    custom-columns='DEPLOYMENT:.metadata.name,READY:.status.readyReplicas,WANT:.spec.replicas,IMAGE:.spec.template.spec.containers[0].image' \
    2>&1 | sed 's/^/  /'
  say "${B}pods in $ns${R}"
  kubectl -n "$ns" get pods -o wide 2>&1 | sed 's/^/  /'
  kubectl -n "$ns" get configmap traderadmin-config -o json \
    | jq -r '"  strategy config: TWS \(.data.TWS_HOST):\(.data.TWS_PORT), universe \(.data.SCANNER_UNIVERSE | split(",") | length) symbols (\(.data.SCANNER_UNIVERSE))"'
done
ready() { kubectl -n "$1" get deployment "$2" -o jsonpath='{.status.readyReplicas}'; }
LAST_CODE=0 LAST_STATUS="$(ready "$NS_DEV" traderadmin-python-orch)+$(ready "$NS_DEV" traderadmin-go-scanner)"
expect "dev runs 1+1 replicas" 0 "1+1"
LAST_CODE=0 LAST_STATUS="$(ready "$NS_PROD" traderadmin-python-orch)+$(ready "$NS_PROD" traderadmin-go-scanner)"
expect "prod runs 2+2 replicas" 0 "2+2"
say "${B}GitHub deployments of $REPO (newest first)${R}"
curl -fsS "$TD_GITHUB_STANDIN_URL/_standin/state" | jq -r --arg repo "$REPO" '
  (.repos[$repo].deployments // [])
  | sort_by(-.id)[]
  | "  #\(.id) \(.environment): \(.description // "GitHub'"'"'s deployment of the job"): " + ([.statuses[]? | .state] | join(" → "))'

if [ "$failures" -eq 0 ]; then
  printf '\n%s✓ The demo ran as expected.%s Logs and summaries: %s\n' "$GREEN$B" "$R" "$WORK"
else
  printf '\n%s✗ %s scene(s) did not end as expected.%s Logs: %s\n' "$RED$B" "$failures" "$R" "$WORK"
  exit 1
fi
