# The action's image: a static musl trader-deploy, a pinned helm, CA certificates, nothing else.
# Build: docker build -t ghcr.io/org/trader-deploy:v1 .          (helm 3)
#        docker build --build-arg HELM_MAJOR=4 -t …:v1-helm4 .    (helm 4)

ARG RUST_VERSION=1.95
ARG GO_VERSION=1.26
ARG ALPINE_VERSION=3.22

# --- trader-deploy: static musl binary, rustls (no OpenSSL) ---
FROM rust:${RUST_VERSION}-alpine${ALPINE_VERSION} AS build
RUN apk add --no-cache musl-dev=~1
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY testbed/support ./testbed/support
RUN cargo build --release --locked --bin trader-deploy \
    && cp target/release/trader-deploy /trader-deploy

# --- helm: built from its Go module, whose checksum is pinned here and in Go's checksum DB ---
FROM golang:${GO_VERSION}-alpine${ALPINE_VERSION} AS helm
ARG HELM_MAJOR=3
ARG HELM3_VERSION=v3.22.0
ARG HELM3_SUM=h1:n1if5iQgHYsujPAcO5oonH/KiSNUmqmUF0iGVjSF3AU=
ARG HELM4_VERSION=v4.3.1
ARG HELM4_SUM=h1:UndCoLe9UPmNoL7IvWzaUXveL7T5t/ijoorEmgJdI9g=
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
SHELL ["/bin/ash", "-o", "pipefail", "-c"]
RUN set -eu; \
    if [ "$HELM_MAJOR" = 4 ]; then v=$HELM4_VERSION; want=$HELM4_SUM; \
    elif [ "$HELM_MAJOR" = 3 ]; then v=$HELM3_VERSION; want=$HELM3_SUM; \
    else echo "HELM_MAJOR must be 3 or 4, not $HELM_MAJOR" >&2; exit 1; fi; \
    mod="helm.sh/helm/v$HELM_MAJOR"; \
    got=$(go mod download -json "$mod@$v" | sed -n 's/.*"Sum": "\(.*\)".*/\1/p'); \
    if [ "$got" != "$want" ]; then echo "helm $v checksum mismatch: got $got, want $want" >&2; exit 1; fi; \
    GOBIN=/out go install -ldflags "-s -w -X $mod/internal/version.version=$v" "$mod/cmd/helm@$v"; \
    /out/helm version

FROM alpine:${ALPINE_VERSION} AS certs
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
