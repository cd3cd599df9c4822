#!/usr/bin/env bash
#! Assembles the action's image without a Docker engine, as the Dockerfile's final stage defines
#! it (two static binaries, CA certificates, a sticky /tmp, PATH/SSL_CERT_FILE/TMPDIR and the
#! entrypoint), from what `make static` and the bed's helm builds already produce, into the local
#! containers storage: localhost/trader-deploy:dev (helm 3) and localhost/trader-deploy:dev-helm4.
#! The Dockerfile stays the source of the published image; tests/image.rs proves the two hold the
#! same files, modes, environment and entrypoint.
#!
#! Usage: scripts/image.sh <static trader-deploy binary>
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../testbed/versions.env
. "$here/testbed/versions.env"
CACHE=${TRADER_DEPLOY_CACHE:-$HOME/.cache/trader-deploy}
bin=${1:?usage: scripts/image.sh <static trader-deploy binary>}
certs=/etc/ssl/certs/ca-certificates.crt
log() { printf '[image] %s\n' "$*" >&2; }

for f in "$bin" "$CACHE/bin/helm-$HELM3_VERSION" "$CACHE/bin/helm-$HELM4_VERSION" "$certs"; do
  [ -f "$f" ] || { echo "[image] missing $f (make static tools)" >&2; exit 1; }
done
# A static binary only: the image has no libc.
if file -L "$bin" | grep -q 'dynamically linked'; then
  echo "[image] $bin is dynamically linked; the image needs the static musl build (make static)" >&2
  exit 1
fi

build() { # tag helm-binary
  local tag=$1 helm=$2 c mnt
  c=$(buildah from --quiet scratch)
  # shellcheck disable=SC2064
  trap "buildah rm $c >/dev/null 2>&1 || true" RETURN
  mnt=$(buildah mount "$c")
  # The Dockerfile's COPY lines, with the modes its stages give them.
  install -D -m 0644 "$certs" "$mnt/etc/ssl/certs/ca-certificates.crt"
  install -d -m 1777 "$mnt/tmp"
  install -D -m 0755 "$helm" "$mnt/usr/local/bin/helm"
  install -D -m 0755 "$bin" "$mnt/usr/local/bin/trader-deploy"
  buildah umount "$c" >/dev/null
  buildah config \
    --env PATH=/usr/local/bin \
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --env TMPDIR=/tmp \
    --entrypoint '["/usr/local/bin/trader-deploy"]' \
    --cmd '' \
    "$c"
  buildah commit --quiet --rm "$c" "$tag" >/dev/null
  trap - RETURN
  log "$tag ($(podman image inspect --format '{{.Id}}' "$tag" | cut -c1-12))"
}

build localhost/trader-deploy:dev "$CACHE/bin/helm-$HELM3_VERSION"
build localhost/trader-deploy:dev-helm4 "$CACHE/bin/helm-$HELM4_VERSION"
# Old builds' layers, once their tags have moved on.
podman image prune --force >/dev/null 2>&1 || true
