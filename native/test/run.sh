#!/usr/bin/env bash
# Builds the core on its own (ASan + UBSan), runs its unit tests, runs the threaded ones again in a
# ThreadSanitizer build ($build/tsan: the forwarder's workers beside table swaps, the publisher,
# the FDB, the drop ring, the ESP sequence counter, the control channel), replays every fuzz target's seed
# corpus (native/test/corpus/<target>/) and regression inputs (native/test/regressions/<target>/),
# then fuzzes each target for a bounded time: under libFuzzer with coverage when clang can build
# it (a second build of the core, instrumented), else under the stand-in driver
# (libfuzzer_standin.cc), which mutates the corpus without coverage feedback.
#
#   OVERLAYFWD_FUZZ_SECONDS     seconds per target (default 20; 0: replay only, no fuzzing)
#   OVERLAYFWD_FUZZ_ITERATIONS  stop a target after this many inputs instead (with SECONDS too: whichever first)
#   OVERLAYFWD_FUZZ_ENGINE      auto (default: libFuzzer when clang++ links it), libfuzzer, standin
#   OVERLAYFWD_FUZZ_JOBS        targets fuzzed at once (default: nproc)
#   OVERLAYFWD_FUZZ_TARGETS     only these targets (space-separated names, e.g. "fuzz_gre_decode")
#   OVERLAYFWD_NATIVE_BUILD     the build directory (default native/build)
#
# A target that crashes, hangs (-timeout), or executes no input at all fails the run; a crash
# input is written under $build/fuzz-artifacts/<target>/ and printed (base64) in the log.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
tests="$here/test"
# OVERLAYFWD_NATIVE_BUILD lets parallel builds (several checkouts, helpers) use their own directory.
build="${OVERLAYFWD_NATIVE_BUILD:-$here/build}"
iterations="${OVERLAYFWD_FUZZ_ITERATIONS:-}"
# 20 s per target unless a count was asked for instead.
seconds="${OVERLAYFWD_FUZZ_SECONDS:-$([ -n "$iterations" ] && echo 0 || echo 20)}"
engine="${OVERLAYFWD_FUZZ_ENGINE:-auto}"
jobs="${OVERLAYFWD_FUZZ_JOBS:-$(nproc)}"

fail() { echo "native/test/run.sh: $*" >&2; exit 1; }
[[ "$seconds" =~ ^[0-9]+$ ]] || fail "OVERLAYFWD_FUZZ_SECONDS must be a whole number of seconds, not '$seconds'"
[[ -z "$iterations" || "$iterations" =~ ^[0-9]+$ ]] || fail "OVERLAYFWD_FUZZ_ITERATIONS must be a count, not '$iterations'"
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || fail "OVERLAYFWD_FUZZ_JOBS must be a positive count, not '$jobs'"
case "$engine" in auto | libfuzzer | standin) ;; *) fail "OVERLAYFWD_FUZZ_ENGINE must be auto, libfuzzer or standin, not '$engine'" ;; esac

mkdir -p "$build"
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Debug > "$build.log" 2>&1 || { cat "$build.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" >> "$build.log" 2>&1 || { cat "$build.log"; exit 1; }
"$build/core_tests"

# The threaded tests again under ThreadSanitizer: a build of their own ($build/tsan), since TSan
# and ASan cannot share a process. A data race or a lock-order inversion fails the run.
cmake -S "$here" -B "$build/tsan" -DCMAKE_BUILD_TYPE=Debug -DOVERLAYFWD_TSAN=ON > "$build/tsan.log" 2>&1 || { cat "$build/tsan.log"; exit 1; }
cmake --build "$build/tsan" -j "$(nproc)" >> "$build/tsan.log" 2>&1 || { cat "$build/tsan.log"; fail "the ThreadSanitizer build failed (above)"; }
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}" "$build/tsan/core_tests_tsan" || fail "core_tests_tsan failed under ThreadSanitizer (above)"

targets=()
for fuzz in "$build"/fuzz_*; do
  [ -x "$fuzz" ] && [ -f "$fuzz" ] || continue
  name="$(basename "$fuzz")"
  if [ -n "${OVERLAYFWD_FUZZ_TARGETS:-}" ] && [[ " $OVERLAYFWD_FUZZ_TARGETS " != *" $name "* ]]; then continue; fi
  targets+=("$name")
done
[ "${#targets[@]}" -gt 0 ] || fail "no fuzz targets built in $build (OVERLAYFWD_FUZZ_TARGETS='${OVERLAYFWD_FUZZ_TARGETS:-}')"

# Every target keeps a seed corpus; regressions are optional.
inputs_of() {
  local dirs=("$tests/corpus/$1")
  [ -d "$tests/regressions/$1" ] && dirs+=("$tests/regressions/$1")
  printf '%s\n' "${dirs[@]}"
}
for name in "${targets[@]}"; do
  [ -n "$(ls -A "$tests/corpus/$name" 2>/dev/null)" ] || fail "$name has no seed corpus: add inputs to native/test/corpus/$name/"
done

# 1. Replay: every corpus and regression input through the ordinary build's targets.
for name in "${targets[@]}"; do
  mapfile -t dirs < <(inputs_of "$name")
  "$build/$name" -runs=0 "${dirs[@]}" > "$build/$name.replay.log" 2>&1 || {
    cat "$build/$name.replay.log"
    fail "$name failed on its corpus or regression inputs (above)"
  }
  echo "replay: $(tail -n 1 "$build/$name.replay.log")"
done

[ "$seconds" -gt 0 ] || [ -n "$iterations" ] || { echo "fuzz: OVERLAYFWD_FUZZ_SECONDS=0, replay only"; exit 0; }

# 2. The engine: libFuzzer from a clang build of the core with coverage, or the stand-in.
fuzz_build="$build"
kind="stand-in (no coverage feedback)"
if [ "$engine" != standin ]; then
  # Configuring checks that clang can link -fsanitize=fuzzer (its runtime is a package of its own);
  # once it can, a build that fails is a failure, not a reason to fall back.
  if ! command -v clang++ > /dev/null 2>&1; then
    why="no clang++ here"
  elif ! cmake -S "$here" -B "$build/libfuzzer" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++ \
    -DOVERLAYFWD_LIBFUZZER=ON > "$build/libfuzzer.log" 2>&1; then
    why="clang++ cannot build libFuzzer targets ($(grep -m 1 -o 'install its runtime.*' "$build/libfuzzer.log" || echo "see $build/libfuzzer.log"))"
  else
    cmake --build "$build/libfuzzer" -j "$(nproc)" >> "$build/libfuzzer.log" 2>&1 || { cat "$build/libfuzzer.log"; fail "the libFuzzer build failed (above)"; }
    fuzz_build="$build/libfuzzer"
    kind="libFuzzer ($(clang++ --version | head -n 1))"
  fi
  if [ "$fuzz_build" = "$build" ]; then
    [ "$engine" = libfuzzer ] && fail "OVERLAYFWD_FUZZ_ENGINE=libfuzzer, but $why"
    echo "fuzz: $why (Debian: apt-get install clang libclang-rt-14-dev); using the stand-in driver"
  fi
fi

limit=()
[ "$seconds" -gt 0 ] && limit+=("-max_total_time=$seconds")
[ -n "$iterations" ] && limit+=("-runs=$iterations")
echo "fuzz: ${#targets[@]} targets, ${limit[*]} each, $jobs at a time, $kind"

fuzz_one() {
  local name="$1" work="$build/fuzz-work/$1" artifacts="$build/fuzz-artifacts/$1" log="$build/$1.fuzz.log"
  mkdir -p "$work" "$artifacts"
  mapfile -t dirs < <(inputs_of "$name")
  # The first directory receives what the fuzzer finds; the repo's corpus is only read.
  local status=0
  "$fuzz_build/$name" "${limit[@]}" -timeout=25 -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$work" "${dirs[@]}" > "$log" 2>&1 || status=$?
  echo "$status" > "$log.status"
}

started=$(date +%s)
for name in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  fuzz_one "$name" &
done
wait

failed=()
for name in "${targets[@]}"; do
  log="$build/$name.fuzz.log"
  status="$(cat "$log.status" 2>/dev/null || echo 1)"
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
  # libFuzzer's last status line: "#N DONE cov: C ft: F corp: U/SIZE ..."
  coverage="$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1 | sed -E 's/.*(cov: [0-9]+ ft: [0-9]+ corp: [0-9]+).*/\1/' || true)"
  found="$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -n 1)"
  line="$(printf '%-24s runs %9s  %7s/s' "$name" "${runs:-?}" "${rate:-?}")"
  [ -n "$coverage" ] && line+="  $coverage${found:+ (+$found new)}"
  if [ "$status" != 0 ] || [ -z "$runs" ] || [ "$runs" = 0 ]; then
    echo "fuzz: FAIL $line (exit $status)"
    failed+=("$name")
  else
    echo "fuzz: ok   $line"
  fi
done
echo "fuzz: $(($(date +%s) - started)) s for ${#targets[@]} targets"

for name in "${failed[@]}"; do
  log="$build/$name.fuzz.log"
  echo "---- $name: the end of $log"
  tail -n 80 "$log"
  for artifact in "$build/fuzz-artifacts/$name"/*; do
    [ -f "$artifact" ] || continue
    echo "---- $name: $(basename "$artifact") ($(stat -c %s "$artifact") bytes), base64:"
    head -c 65536 "$artifact" | base64
    echo "---- keep it as a regression: native/test/regressions/$name/<what it found>, then fix the bug"
  done
done
[ "${#failed[@]}" -eq 0 ] || fail "fuzzing failed: ${failed[*]}"
