# The action's image: a static musl trader-deploy, a pinned helm, CA certificates, nothing else,
# for linux/amd64 and linux/arm64. .github/workflows/release.yml builds and pushes it:
#   docker buildx build --platform linux/amd64,linux/arm64 .                     (helm 3)
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg HELM_MAJOR=4 .   (helm 4)
# Every stage that runs a command runs on the build machine ($BUILDPLATFORM, an amd64 runner) and
# cross-compiles for $TARGETARCH; the final stage only copies files. So an arm64 image needs no
# emulation to build, and each platform's binaries come from the same sources and pins.

ARG RUST_VERSION=1.95
ARG GO_VERSION=1.26
ARG ALPINE_VERSION=3.22

# --- trader-deploy: static musl binary, rustls (no OpenSSL), full [profile.release] ---
# amd64 builds natively (the image's own musl target). arm64 cross-builds with no cross gcc:
# clang compiles ring's C and assembly for aarch64 without a target sysroot (ring passes
# -nostdlibinc for musl targets other than x86_64), and rust-lld links against the musl C
# library and start files that Rust's aarch64-unknown-linux-musl target ships (self-contained).
# `make arm64` builds the same way on Debian and runs the result under qemu-user in `make test`.
FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-alpine${ALPINE_VERSION} AS build
ARG TARGETARCH
RUN apk add --no-cache musl-dev=~1 clang20=~20
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY testbed/support ./testbed/support
SHELL ["/bin/ash", "-o", "pipefail", "-c"]
RUN set -eu; \
    case "$TARGETARCH" in \
      amd64) target=x86_64-unknown-linux-musl ;; \
      arm64) target=aarch64-unknown-linux-musl; rustup target add "$target" ;; \
      *) echo "TARGETARCH must be amd64 or arm64, not $TARGETARCH" >&2; exit 1 ;; \
    esac; \
    clang=$(command -v clang || command -v clang-20 || command -v /usr/lib/llvm20/bin/clang); \
    CC_aarch64_unknown_linux_musl="$clang" \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
    cargo build --release --locked --target "$target" --bin trader-deploy; \
    cp "target/$target/release/trader-deploy" /trader-deploy

# --- helm: built from its Go module, whose checksum is pinned here and in Go's checksum DB ---
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-alpine${ALPINE_VERSION} AS helm
ARG TARGETARCH
ARG HELM_MAJOR=3
ARG HELM3_VERSION=v3.22.0
ARG HELM3_SUM=h1:n1if5iQgHYsujPAcO5oonH/KiSNUmqmUF0iGVjSF3AU=
ARG HELM4_VERSION=v4.3.1
ARG HELM4_SUM=h1:UndCoLe9UPmNoL7IvWzaUXveL7T5t/ijoorEmgJdI9g=
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false GOOS=linux
SHELL ["/bin/ash", "-o", "pipefail", "-c"]
# `go install` puts a cross-compiled binary in $GOPATH/bin/linux_<arch>/ (it refuses GOBIN then),
# a native one in $GOPATH/bin/. A cross-compiled helm cannot run here: `go version -m` checks
# that it was built for the target architecture instead.
RUN set -eu; \
    if [ "$HELM_MAJOR" = 4 ]; then v=$HELM4_VERSION; want=$HELM4_SUM; \
    elif [ "$HELM_MAJOR" = 3 ]; then v=$HELM3_VERSION; want=$HELM3_SUM; \
    else echo "HELM_MAJOR must be 3 or 4, not $HELM_MAJOR" >&2; exit 1; fi; \
    mod="helm.sh/helm/v$HELM_MAJOR"; \
    got=$(go mod download -json "$mod@$v" | sed -n 's/.*"Sum": "\(.*\)".*/\1/p'); \
    if [ "$got" != "$want" ]; then echo "helm $v checksum mismatch: got $got, want $want" >&2; exit 1; fi; \
    GOARCH=$TARGETARCH go install -ldflags "-s -w -X $mod/internal/version.version=$v" "$mod/cmd/helm@$v"; \
    gopath=$(go env GOPATH); \
    mkdir /out; \
    if [ -f "$gopath/bin/linux_$TARGETARCH/helm" ]; then mv "$gopath/bin/linux_$TARGETARCH/helm" /out/helm; \
    else mv "$gopath/bin/helm" /out/helm; fi; \
    go version -m /out/helm | grep -q "GOARCH=$TARGETARCH\$"; \
    if [ "$TARGETARCH" = "$(go env GOHOSTARCH)" ]; then /out/helm version; fi

# CA certificates and an empty /tmp: data, the same for every platform.
FROM --platform=$BUILDPLATFORM alpine:${ALPINE_VERSION} AS certs
RUN apk add --no-cache ca-certificates=~20 && mkdir -m 1777 /rootfs-tmp

# --- the final image: two static binaries and CA certificates ---
FROM scratch
COPY --from=certs /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=certs /rootfs-tmp /tmp
COPY --from=helm /out/helm /usr/local/bin/helm
COPY --from=build /trader-deploy /usr/local/bin/trader-deploy
ENV PATH=/usr/local/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    TMPDIR=/tmp
# No USER: docker actions run as root so that the step can read and write the workspace.
ENTRYPOINT ["/usr/local/bin/trader-deploy"]
