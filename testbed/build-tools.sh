#!/usr/bin/env bash
#! Builds the test bed's upstream programs once, pinned, into ~/.cache/trader-deploy/bin.
# Go is test tooling only: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok,
# kwokctl, helm 3 and helm 4, and the real node's kubelet, all from the Go module proxy. Each binary is built only when
# missing, so a warm run does nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

CACHE=${TRADER_DEPLOY_CACHE:-$HOME/.cache/trader-deploy}
BIN=$CACHE/bin
mkdir -p "$BIN" "$CACHE/go"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
export GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build GOPATH=$CACHE/go/path

log() { printf '[build-tools] %s\n' "$*" >&2; }
have() { [ -x "$BIN/$1" ]; }

build_helm() { # major version
  local major=$1 version name
  if [ "$major" = 3 ]; then version=$HELM3_VERSION; else version=$HELM4_VERSION; fi
  name=helm-$version
  have "$name" && return 0
  log "building helm $version"
  local ldflags
  if [ "$major" = 3 ]; then
    ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
  else
    ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$version"
  fi
  GOBIN=$CACHE/go/tmpbin-helm$major go install -ldflags "$ldflags" "helm.sh/helm/v$major/cmd/helm@$version"
  mv "$CACHE/go/tmpbin-helm$major/helm" "$BIN/$name"
}

build_kwok() {
  have "kwok-$KWOK_VERSION" && have "kwokctl-$KWOK_VERSION" && return 0
  log "building kwok and kwokctl $KWOK_VERSION"
  local ld="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
  GOBIN=$CACHE/go/tmpbin-kwok go install -ldflags "$ld" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
  mv "$CACHE/go/tmpbin-kwok/kwok" "$BIN/kwok-$KWOK_VERSION"
  mv "$CACHE/go/tmpbin-kwok/kwokctl" "$BIN/kwokctl-$KWOK_VERSION"
}

build_etcd() {
  have "etcd-$ETCD_VERSION" && return 0
  log "building etcd $ETCD_VERSION"
  local mod=$CACHE/go/etcd-tools
  mkdir -p "$mod"
  (
    cd "$mod"
    [ -f go.mod ] || go mod init trader-deploy.test/etcd-tools >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    go build -ldflags "-s -w" -o "$BIN/etcd-$ETCD_VERSION" go.etcd.io/etcd/server/v3
  )
}

# kube_module DIR CMD...: writes a tools module in DIR that requires k8s.io/kubernetes@$K8S_VERSION,
# replaces every staging module with its published $K8S_STAGING_VERSION and imports the given
# k8s.io/kubernetes/cmd/CMD packages; then `go mod tidy`. DIR is rebuilt from scratch.
kube_module() {
  local mod=$1; shift
  rm -rf "$mod" && mkdir -p "$mod"
  local info gomod c
  info=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION")
  gomod=$(printf '%s' "$info" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$gomod" ] || { log "no go.mod for k8s.io/kubernetes@$K8S_VERSION"; exit 1; }
  {
    echo "module trader-deploy.test/$(basename "$mod")"
    echo
    grep -E '^go [0-9]' "$gomod"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    sed -n 's#^[[:space:]]*\(k8s.io/[^[:space:]]*\) => ./staging/.*#\1#p' "$gomod" \
      | while read -r m; do echo "	$m => $m $K8S_STAGING_VERSION"; done
    echo ")"
  } >"$mod/go.mod"
  {
    echo '//go:build tools'
    echo
    echo 'package tools'
    echo
    echo 'import ('
    for c in "$@"; do echo "	_ \"k8s.io/kubernetes/cmd/$c\""; done
    echo ')'
  } >"$mod/tools.go"
  (
    cd "$mod"
    go mod tidy -e >/dev/null 2>&1 || true
    GOFLAGS="$GOFLAGS -tags=tools" go mod tidy
  )
}

# kube_build DIR CMD...: builds each CMD of the module in DIR into $BIN/CMD-$K8S_VERSION, with the
# version ldflags (else /version says v0.0.0 and helm's kubeVersion checks break). Each binary is
# written to a temporary name and renamed, so a reader never sees half a binary.
kube_build() {
  local mod=$1; shift
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local ld="-s -w" c
  ld="$ld -X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
  ld="$ld -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  ld="$ld -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
  ld="$ld -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  for c in "$@"; do
    log "  go build $c"
    (cd "$mod" && go build -ldflags "$ld" -o "$BIN/.$c-$K8S_VERSION.tmp" "k8s.io/kubernetes/cmd/$c")
    mv "$BIN/.$c-$K8S_VERSION.tmp" "$BIN/$c-$K8S_VERSION"
  done
}

build_kube() {
  have "kube-apiserver-$K8S_VERSION" && have "kube-controller-manager-$K8S_VERSION" \
    && have "kube-scheduler-$K8S_VERSION" && return 0
  log "building kube-apiserver, kube-controller-manager, kube-scheduler $K8S_VERSION (slow the first time)"
  kube_module "$CACHE/go/kube-tools" kube-apiserver kube-controller-manager kube-scheduler
  kube_build "$CACHE/go/kube-tools" kube-apiserver kube-controller-manager kube-scheduler
}

# The real node's kubelet, same version and same way as the control plane, in a module dir of its
# own (kube-tools is rebuilt from scratch by build_kube, which may run at the same time). The
# packages it shares with the control plane come from the shared Go build cache.
build_kubelet() {
  have "kubelet-$K8S_VERSION" && return 0
  log "building kubelet $K8S_VERSION"
  kube_module "$CACHE/go/kubelet-tools" kubelet
  kube_build "$CACHE/go/kubelet-tools" kubelet
}

# timed NAME CMD...: runs a build step and logs how long it took (the cold build times in the
# issue notes come from these lines).
timed() {
  local name=$1 start=$SECONDS; shift
  "$@"
  log "timing: $name took $((SECONDS - start))s"
}

what=${1:-all}
case "$what" in
  helm) timed helm3 build_helm 3; timed helm4 build_helm 4 ;;
  kwok) timed kwok build_kwok ;;
  etcd) timed etcd build_etcd ;;
  kube) timed kube build_kube ;;
  kubelet) timed kubelet build_kubelet ;;
  all) timed helm3 build_helm 3; timed helm4 build_helm 4; timed kwok build_kwok; timed etcd build_etcd; timed kube build_kube; timed kubelet build_kubelet ;;
  *) echo "usage: $0 [all|helm|kwok|etcd|kube|kubelet]" >&2; exit 2 ;;
esac
log "done: $what"
