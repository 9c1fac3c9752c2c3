#!/usr/bin/env bash
# Makes KubeVirt's OpenAPI document (swagger.json, pinned to one KubeVirt commit) available
# at .cache/kubevirt/swagger.json and prints that path. The tests validate rendered
# VirtualMachines and the simulator's objects against it.
#
# Sources, in order: the cache (checksum verified); a sibling checkout's copy at
# ../shared/kubevirt/swagger.json (same checksum); a download from the pinned URL.
set -euo pipefail
KUBEVIRT_COMMIT="d923fdb815cd2016ddaebdaaa51db04133576d72"
SHA256="92b7a06a64069cdf1422b32f14a8e29744e5b51921b6d28056e92b32917d39d6"
URL="https://raw.githubusercontent.com/kubevirt/kubevirt/$KUBEVIRT_COMMIT/api/openapi-spec/swagger.json"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir="$root/.cache/kubevirt"
file="$dir/swagger.json"
die() { echo "kubevirt-swagger: error: $*" >&2; exit 1; }
matches() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$SHA256" ]; }

if matches "$file"; then echo "$file"; exit 0; fi
mkdir -p "$dir"
tmp="$file.partial"
trap 'rm -f "$tmp"' EXIT
sibling="$root/../shared/kubevirt/swagger.json"
if matches "$sibling"; then
  cp "$sibling" "$tmp"
else
  echo "kubevirt-swagger: fetching KubeVirt $KUBEVIRT_COMMIT's swagger.json" >&2
  python3 - "$URL" "$tmp" <<'PY' || die "could not download $URL (network needed once; the file is then cached)"
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=60) as r, open(sys.argv[2], "wb") as f:
    f.write(r.read())
PY
fi
matches "$tmp" || die "the downloaded swagger.json does not have the pinned checksum $SHA256"
mv "$tmp" "$file"
echo "$file"
