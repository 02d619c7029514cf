#!/usr/bin/env bash
# Builds device_io_bench and runs it inside a throw-away network namespace (root needed).
#   bash bench/device-io/run.sh [extra args for device_io_bench, e.g. --seconds 0.3 --reps 3]
# Also runs the write()/read() baselines without IFF_VNET_HDR for comparison.
# Total runtime: about 60 s on a 2-core VM.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="${TMPDIR:-/tmp}/device-io-bench.$$"
mkdir -p "$out"

if [ "$(id -u)" != 0 ]; then
  echo "run.sh: needs root (network namespaces, TAP devices)" >&2
  exit 1
fi

if [ ! -e /usr/include/liburing.h ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q liburing-dev >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q liburing-dev >/dev/null; }
fi

gcc -O2 -g -Wall -Wextra -std=gnu11 -o "$out/device_io_bench" "$here/device_io_bench.c" -luring

ns="ovl-devio-$$"
bench_pid=""
cleanup() {
  # The namespace's processes first, then the namespace, which takes the TAP with it.
  if ip netns list 2>/dev/null | grep -qw "$ns"; then
    # SIGTERM first: the bench then kills and reaps its helpers; SIGKILL whatever is left after 3 s.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 30); do
      [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break
      sleep 0.1
    done
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    # and wait until the bench has finished exiting (closing the TAP frees its queued frames)
    if [ -n "$bench_pid" ]; then wait "$bench_pid" 2>/dev/null || true; fi
    ip netns del "$ns" 2>/dev/null || true
  fi
  rm -rf "$out"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$ns"

# The commit measured (the same record as the JSON benches' provenance): HEAD, and whether the
# tree had changes (git status --porcelain, bench/results/ left out).
commit="$(git -C "$here" rev-parse HEAD 2>/dev/null || echo unknown)"
changes="$(git -C "$here/../.." status --porcelain 2>/dev/null | grep -v ' bench/results/' || true)"
echo "commit $commit$([ -n "$changes" ] && echo ' (dirty: work tree has changes)')"
echo "kernel $(uname -r), $(nproc) CPUs, liburing $(dpkg-query -W -f='${Version}' liburing-dev 2>/dev/null || echo '?')"
echo "io_uring_disabled=$(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo n/a)"

# 5 reps of 0.25 s rather than 3 of 0.4 s: same time, and the shared VM is noisy.
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--reps 5 --seconds 0.25)

# In the background + wait, so that a signal runs the cleanup at once instead of after the run.
bench() {
  local limit=$1
  shift
  timeout "$limit" ip netns exec "$ns" "$out/device_io_bench" "$@" &
  bench_pid=$!
  wait "$bench_pid"
  bench_pid=""
}

echo "=== with IFF_VNET_HDR, as the worker opens the device when offloads are on ==="
bench 100 "${args[@]}"

echo
echo "=== without IFF_VNET_HDR (offloads off) ==="
bench 60 --no-vnet --paths write,read "${args[@]}"
