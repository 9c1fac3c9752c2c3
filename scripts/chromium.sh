#!/usr/bin/env bash
# Installs Debian's chromium and chromium-driver into the project cache without root and
# prints the directory holding bin/chromium and bin/chromedriver (wrappers that find the
# extracted libraries). The packages come from this machine's apt sources: `apt-get download`
# checks each against the signed package index, and `dpkg -x` unpacks them. Only the packages
# this machine lacks are fetched. The version is whatever Debian's security archive carries:
# pinning an exact Debian security release would break as soon as it is superseded there.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir="${SHEPHERD_CHROMIUM_DIR:-$root/.cache/tools/chromium}"
die() { echo "chromium: error: $*" >&2; exit 1; }
if [ -n "${SHEPHERD_CHROMIUM_DIR:-}" ]; then
  # A directory of the user's own with bin/chromium and bin/chromedriver: only checked below.
  :
elif [ ! -x "$dir/bin/chromium" ] || [ ! -x "$dir/bin/chromedriver" ]; then
  command -v apt-get >/dev/null && command -v dpkg >/dev/null \
    || die "needs Debian's apt-get and dpkg (apt-get download, dpkg -x); install chromium and chromium-driver yourself and set SHEPHERD_CHROMIUM_DIR to a directory whose bin/ holds both"
  echo "chromium: installing Debian's chromium and chromium-driver into $dir" >&2
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # "Inst <package> (<version> <archive> [<arch>])" for each package this machine lacks.
  packages=$(apt-get install -s --no-install-recommends chromium chromium-driver 2>/dev/null \
    | awk '/^Inst /{print $2 "=" substr($3, 2)}')
  if [ -z "$packages" ]; then
    # Both are installed already: use them.
    mkdir -p "$dir/bin"
    for tool in chromium chromedriver; do
      printf '#!/bin/sh\nexec "%s" "$@"\n' "$(command -v "$tool")" >"$dir/bin/$tool"
      chmod 0755 "$dir/bin/$tool"
    done
  else
    # shellcheck disable=SC2086 # one word per package
    (cd "$work" && apt-get download -q $packages >"$work/download.log" 2>&1) \
      || { tail -n 5 "$work/download.log" >&2; die "apt-get download failed"; }
    mkdir -p "$work/root"
    for deb in "$work"/*.deb; do dpkg -x "$deb" "$work/root"; done
    rm -rf "$dir"
    mkdir -p "$dir/bin"
    mv "$work/root" "$dir/root"
    libs="$dir/root/usr/lib/x86_64-linux-gnu:$dir/root/usr/lib/x86_64-linux-gnu/pulseaudio:$dir/root/usr/lib/chromium"
    for tool in chromium:usr/lib/chromium/chromium chromedriver:usr/bin/chromedriver; do
      printf '#!/bin/sh\nLD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' \
        "$libs" "$dir/root/${tool#*:}" >"$dir/bin/${tool%%:*}"
      chmod 0755 "$dir/bin/${tool%%:*}"
    done
  fi
fi
"$dir/bin/chromium" --version >/dev/null 2>&1 || die "$dir/bin/chromium does not run"
"$dir/bin/chromedriver" --version >/dev/null 2>&1 || die "$dir/bin/chromedriver does not run"
echo "$dir"
