#!/usr/bin/env bash
# Pushes the bed's small test images (OCI manifests, one tiny layer each) to the bed registry with
# curl over plain HTTP. Idempotent: an existing blob or manifest is simply pushed again.
# usage: testbed/push-images.sh [REGISTRY]   (default $TD_REGISTRY or 127.0.0.1:45000)
set -euo pipefail
REG=${1:-${TD_REGISTRY:-127.0.0.1:45000}}
REPOS=(acme/python-orch acme/go-scanner)
# v9.9.9 is deliberately absent: it is the missing-image case.
TAGS=(v1.0.0 v1.1.0 v1.2.0 v1.3.0-rc.1 broken-pull crashloop never-ready unready-app sha-0123abcd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl_() { curl -sS --fail-with-body --max-time 20 "$@"; }

sha() { sha256sum "$1" | cut -d' ' -f1; }

# push_blob REPO FILE: prints the digest
push_blob() {
  local repo=$1 file=$2 digest loc
  digest=sha256:$(sha "$file")
  if curl -sS -o /dev/null --max-time 20 -w '%{http_code}' -I "http://$REG/v2/$repo/blobs/$digest" | grep -qx 200; then
    echo "$digest"; return 0
  fi
  loc=$(curl_ -X POST -D - -o /dev/null "http://$REG/v2/$repo/blobs/uploads/" \
    | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
  [ -n "$loc" ] || { echo "push-images: no upload location for $repo" >&2; return 1; }
  case "$loc" in http*) ;; *) loc="http://$REG$loc" ;; esac
  case "$loc" in *\?*) loc="$loc&digest=$digest" ;; *) loc="$loc?digest=$digest" ;; esac
  curl_ -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$file" -o /dev/null "$loc"
  echo "$digest"
}

for repo in "${REPOS[@]}"; do
  for tag in "${TAGS[@]}"; do
    # A one-file layer naming the image, so every tag has its own digest.
    mkdir -p "$work/root"
    printf '%s:%s\n' "$repo" "$tag" >"$work/root/VERSION"
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='2024-01-01 00:00Z' \
      -C "$work/root" -cf - VERSION | gzip -n >"$work/layer.tar.gz"
    diff_id=sha256:$(gzip -dc "$work/layer.tar.gz" | sha256sum | cut -d' ' -f1)
    layer=$(push_blob "$repo" "$work/layer.tar.gz")
    layer_size=$(stat -c %s "$work/layer.tar.gz")
    printf '{"architecture":"amd64","os":"linux","config":{"Env":["APP_VERSION=%s"],"Labels":{"org.opencontainers.image.version":"%s"}},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
      "$tag" "$tag" "$diff_id" >"$work/config.json"
    config=$(push_blob "$repo" "$work/config.json")
    config_size=$(stat -c %s "$work/config.json")
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}]}' \
      "$config" "$config_size" "$layer" "$layer_size" >"$work/manifest.json"
    curl_ -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
      --data-binary "@$work/manifest.json" -o /dev/null "http://$REG/v2/$repo/manifests/$tag"
  done
  echo "push-images: $repo: ${TAGS[*]}" >&2
done
