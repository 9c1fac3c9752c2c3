#!/usr/bin/env bash
# Installs a pinned kubernetes-validate (offline JSON schemas of Kubernetes' built-in kinds, up to
# 1.37) into the project cache from PyPI and prints the path of its command.
set -euo pipefail
WHEEL="kubernetes-validate==1.37.0"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir="$root/.cache/tools/kubernetes-validate"
if [ ! -x "$dir/bin/kubernetes-validate" ]; then
  echo "kubernetes-validate: installing $WHEEL into $dir" >&2
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --target "$dir" "$WHEEL" \
    || { echo "kubernetes-validate: error: pip could not install $WHEEL" >&2; exit 1; }
fi
cmd="$dir/bin/kubernetes-validate"
cat > "$dir/run" <<RUN
#!/usr/bin/env bash
PYTHONPATH="$dir\${PYTHONPATH:+:\$PYTHONPATH}" exec python3 "$cmd" "\$@"
RUN
chmod +x "$dir/run"
"$dir/run" --version >/dev/null 2>&1 || { echo "kubernetes-validate: error: $cmd does not run" >&2; exit 1; }
echo "$dir/run"
