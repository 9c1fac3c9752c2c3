#!/usr/bin/env bash
# `make fuzz`: builds the cargo-fuzz targets of fuzz/ and runs each for a bounded time with
# libFuzzer, on the stable toolchain. Not part of CI. See fuzz/README.md.
#
# cargo-fuzz (pinned) is installed once into .cache/tools/cargo-fuzz. The targets are built
# with `-s none`: no sanitizer, since AddressSanitizer needs `-Zsanitizer`, a nightly flag;
# Shepherd has no unsafe code of its own (unsafe_code is denied), so panics, failed
# assertions, 5xx answers, timeouts and out-of-memory are what the targets look for. The
# SanitizerCoverage instrumentation that guides libFuzzer uses stable `-C` flags only.
#
# Knobs (environment):
#   FUZZ_SECONDS     seconds per target (default 30)
#   FUZZ_TARGETS     targets to run (default: all of `cargo fuzz list`)
#   FUZZ_TARGET_DIR  cargo target directory (default fuzz/target)
#   FUZZ_ARGS        extra libFuzzer options, e.g. "-jobs=2 -workers=2"
#
# Inputs that libFuzzer finds interesting are added to fuzz/corpus/<target>/ (git ignores
# all but the committed seed-* files); a crash is saved in fuzz/artifacts/<target>/ and
# printed with the command that replays it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root/fuzz"

CARGO_FUZZ_VERSION="0.13.2"
seconds=${FUZZ_SECONDS:-30}
target_dir=${FUZZ_TARGET_DIR:-$root/fuzz/target}
tools="$root/.cache/tools/cargo-fuzz"
die() { echo "fuzz: error: $*" >&2; exit 1; }

command -v c++ >/dev/null || die "libFuzzer (libfuzzer-sys) is C++: install a C++ compiler (apt-get install g++)"
if ! "$tools/bin/cargo-fuzz" --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION into $tools" >&2
  cargo install --quiet --root "$tools" --version "$CARGO_FUZZ_VERSION" --locked cargo-fuzz \
    || die "cargo install cargo-fuzz@$CARGO_FUZZ_VERSION failed"
fi
cargo_fuzz() { "$tools/bin/cargo-fuzz" fuzz "$@"; }

# The sqlx query macros of the root crate read the committed .sqlx/ data, never a database.
export SQLX_OFFLINE=true
targets=${FUZZ_TARGETS:-$(cargo_fuzz list)}

echo "fuzz: building $(echo $targets | wc -w) targets (release, debug assertions, SanitizerCoverage, no sanitizer) into $target_dir"
started=$(date +%s)
build_log="$target_dir/build.log"
mkdir -p "$target_dir"
: >"$build_log"
# `cargo fuzz build` takes one target, or none for all of them.
build_args=("")
[ -n "${FUZZ_TARGETS:-}" ] && build_args=($targets)
for target in "${build_args[@]}"; do
  if ! cargo_fuzz build -s none --target-dir "$target_dir" $target >>"$build_log" 2>&1; then
    grep -vE '^\s+(Compiling|Checking|Downloaded|Downloading)' "$build_log" | tail -n 40 >&2
    die "the fuzz targets did not build (log: $build_log)"
  fi
done
echo "fuzz: built in $(( $(date +%s) - started )) s"
# The built binaries are run directly, so that what was built is what runs, even if the
# sources change meanwhile (`cargo fuzz run` would rebuild first).
bin_dir="$target_dir/$(rustc -vV | sed -n 's/^host: //p')/release"

# The identity seeds are real stamps (fuzz/seeds.py signs them as identity::stamp does):
# check that they still verify, or the fuzzer would start from nothing genuine.
if grep -qw identity_stamp <<<"$targets"; then
  if ! FUZZ_EXPECT_GENUINE=1 "$bin_dir/identity_stamp" corpus/identity_stamp/seed-* >"$target_dir/seed-check.log" 2>&1; then
    grep -E -A1 "panicked at" "$target_dir/seed-check.log" >&2 || tail -n 20 "$target_dir/seed-check.log" >&2
    die "the identity_stamp seeds do not verify: run python3 fuzz/seeds.py (log: $target_dir/seed-check.log)"
  fi
  echo "fuzz: identity_stamp: the $(ls corpus/identity_stamp/seed-* | wc -l) seed stamps verify"
fi

failed=()
total_runs=0
for target in $targets; do
  corpus="corpus/$target"
  mkdir -p "$corpus" "artifacts/$target"
  before=$(find "$corpus" -type f | wc -l)
  dict=()
  [ -f "dict/$target.dict" ] && dict=("-dict=dict/$target.dict")
  log=$(mktemp)
  echo
  echo "fuzz: $target for ${seconds}s, starting from $before inputs in fuzz/$corpus"
  status=0
  # -timeout: one input taking 10 s is a finding (a hang); -rss_limit_mb: so is 2 GiB.
  [ -x "$bin_dir/$target" ] || die "no fuzz target $target in $bin_dir"
  "$bin_dir/$target" "$corpus" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="artifacts/$target/" "${dict[@]}" ${FUZZ_ARGS:-} >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  after=$(find "$corpus" -type f | wc -l)
  done_line=$(grep -E '^#[0-9]+\s+DONE' "$log" | tail -n 1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\) .*/\1/p' <<<"$done_line")
  per_second=$(sed -n 's/.* exec\/s: \([0-9]*\).*/\1/p' <<<"$done_line")
  total_runs=$(( total_runs + ${runs:-0} ))
  if [ "$status" = 0 ]; then
    echo "fuzz: $target: ${runs:-?} inputs run (${per_second:-?}/s), corpus $before -> $after inputs, coverage ${cov:-?} edges: no crash, no panic, no 5xx"
  else
    # libFuzzer's report: the panic message, the backtrace and where the input was saved.
    grep -E "panicked at|^thread '|Assertion|ERROR: libFuzzer|SUMMARY|Test unit written|Base64:" "$log" | head -n 20 >&2 || true
    tail -n 40 "$log" >"artifacts/$target/last-run.log"
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    echo "fuzz: $target: FAILED after ${runs:-?} inputs (exit $status); replay with:" >&2
    echo "  cd fuzz && ../.cache/tools/cargo-fuzz/bin/cargo-fuzz fuzz run -s none $target ${artifact:-artifacts/$target/<crash file>}" >&2
    echo "  (or without a rebuild: $bin_dir/$target fuzz/${artifact:-artifacts/$target/<crash file>})" >&2
    failed+=("$target")
  fi
  rm -f "$log"
done

echo
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz: OK: $(echo $targets | wc -w) targets, ${seconds}s each, $total_runs inputs in total: nothing crashed, panicked or answered 5xx"
