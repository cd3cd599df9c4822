#!/usr/bin/env bash
# Pushes the bed's test images to the bed registry with curl over plain HTTP: OCI images with no
# base, made by hand from the real test app (testbed/support/testapp, a static binary at /app).
# Each tag's image config sets the app's behaviour (APP_MODE) and version (APP_VERSION), so the
# real node runs what the tag says; kwok's stages read the same tags. Idempotent: an existing
# blob is not uploaded again, a manifest is simply put again.
# usage: TD_TESTAPP_BIN=path/to/testapp testbed/push-images.sh [REGISTRY]
#        (default $TD_REGISTRY or 127.0.0.1:45000)
set -euo pipefail
REG=${1:-${TD_REGISTRY:-127.0.0.1:45000}}
APP_BIN=${TD_TESTAPP_BIN:?set TD_TESTAPP_BIN to the static test app binary}
REPOS=(acme/python-orch acme/go-scanner)
# v9.9.9 is deliberately absent: it is the missing-image case.
TAGS=(v1.0.0 v1.1.0 v1.2.0 v1.3.0-rc.1 broken-pull crashloop never-ready unready-app slow-start sha-0123abcd)
# The real node's pod sandbox ("pause") image: the same binary, sleeping.
PAUSE_REPO=bed/pause
PAUSE_TAG=3.10
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl_() { curl -sS --fail-with-body --max-time 20 "$@"; }

sha() { sha256sum "$1" | cut -d' ' -f1; }

mode_of() {
  case "$1" in
    crashloop) echo crash ;;
    never-ready) echo never-ready ;;
    unready-app) echo unready ;;
    slow-start) echo slow-start ;;
    *) echo healthy ;;
  esac
}

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

# layer DIR OUT: a reproducible gzipped tar of DIR's contents.
layer() {
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='2024-01-01 00:00Z' \
    -C "$1" -cf - . | gzip -n >"$2"
}
diff_id() { echo "sha256:$(gzip -dc "$1" | sha256sum | cut -d' ' -f1)"; }

# The app layer, shared by every image.
mkdir -p "$work/app"
install -m 0755 "$APP_BIN" "$work/app/app"
layer "$work/app" "$work/app.tar.gz"
app_diff=$(diff_id "$work/app.tar.gz")
app_size=$(stat -c %s "$work/app.tar.gz")

# push_image REPO TAG ENV_JSON [VERSION_LAYER]: the app layer (and a one-file layer naming the
# image, so every tag has its own digest); prints the digest of that second layer.
push_image() {
  local repo=$1 tag=$2 env=$3 app config config_size v v_diff v_size layers diff_ids
  app=$(push_blob "$repo" "$work/app.tar.gz")
  layers=$(printf '{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}' "$app" "$app_size")
  diff_ids="\"$app_diff\""
  v=""
  if [ "${4:-}" = version-layer ]; then
    rm -rf "$work/v" && mkdir -p "$work/v"
    printf '%s:%s\n' "$repo" "$tag" >"$work/v/VERSION"
    layer "$work/v" "$work/v.tar.gz"
    v=$(push_blob "$repo" "$work/v.tar.gz")
    v_diff=$(diff_id "$work/v.tar.gz")
    v_size=$(stat -c %s "$work/v.tar.gz")
    layers="$layers,$(printf '{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}' "$v" "$v_size")"
    diff_ids="$diff_ids,\"$v_diff\""
  fi
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/app"],"Env":%s,"ExposedPorts":{"8080/tcp":{}},"Labels":{"org.opencontainers.image.version":"%s"}},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
    "$env" "$tag" "$diff_ids" >"$work/config.json"
  config=$(push_blob "$repo" "$work/config.json")
  config_size=$(stat -c %s "$work/config.json")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[%s]}' \
    "$config" "$config_size" "$layers" >"$work/manifest.json"
  curl_ -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$work/manifest.json" -o /dev/null "http://$REG/v2/$repo/manifests/$tag"
  echo "$v"
}

for repo in "${REPOS[@]}"; do
  for tag in "${TAGS[@]}"; do
    env=$(printf '["APP_VERSION=%s","APP_MODE=%s"]' "$tag" "$(mode_of "$tag")")
    v=$(push_image "$repo" "$tag" "$env" version-layer)
    if [ "$tag" = broken-pull ]; then
      # The manifest stays (a HEAD finds the tag, as the action's image check does) but its own
      # layer is deleted from the repository: pulling it fails for real (blob unknown).
      code=$(curl -sS -o /dev/null --max-time 20 -w '%{http_code}' -X DELETE "http://$REG/v2/$repo/blobs/$v")
      case "$code" in 202|404) ;; *) echo "push-images: DELETE $repo blob $v answered $code" >&2; exit 1 ;; esac
    fi
  done
  echo "push-images: $repo: ${TAGS[*]}" >&2
done
# Last: up.sh takes its presence for "all pushed".
push_image "$PAUSE_REPO" "$PAUSE_TAG" '["APP_MODE=pause"]' >/dev/null
echo "push-images: $PAUSE_REPO:$PAUSE_TAG" >&2
