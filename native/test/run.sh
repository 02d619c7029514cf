#!/usr/bin/env bash
# Builds the core on its own (ASan + UBSan) and runs its unit tests and fuzz targets.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
# OVERLAYFWD_NATIVE_BUILD lets parallel builds (several checkouts, helpers) use their own directory.
build="${OVERLAYFWD_NATIVE_BUILD:-$here/build}"
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Debug > "$build.log" 2>&1 || { cat "$build.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" >> "$build.log" 2>&1 || { cat "$build.log"; exit 1; }
"$build/core_tests"
for fuzz in "$build"/fuzz_*; do
  [ -x "$fuzz" ] || continue
  if [ -n "${OVERLAYFWD_FUZZ_SECONDS:-}" ] && "$fuzz" -help=1 >/dev/null 2>&1; then
    "$fuzz" -max_total_time="$OVERLAYFWD_FUZZ_SECONDS"
  else
    "$fuzz" "${OVERLAYFWD_FUZZ_ITERATIONS:-200000}"
  fi
done
