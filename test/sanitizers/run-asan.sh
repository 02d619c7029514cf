#!/usr/bin/env bash
# The network-namespace suites that move traffic, over the ASan + UBSan build of the addon
# (npm run build:asan) instead of node-gyp's: every forwarder the tests start, in the vitest fork
# and in the CLI processes some of them run (`overlayfwd up`), is the instrumented one.
#
#   bash test/sanitizers/run-asan.sh                  the suites below
#   bash test/sanitizers/run-asan.sh test/netns/X.ts  only those
#
# A finding fails the run however the process that had it ended: ASan and UBSan write every
# report to build-asan/reports/ (log_path) and abort the process (abort_on_error), and this script
# fails when that directory holds a report at the end, printing them all. Leak detection stays on
# for every node process, with no suppression.
#
# Node itself is not instrumented, so the ASan runtime must come first in the process
# (LD_PRELOAD): the runtime the addon links, taken from the addon itself. vitest.config.ts
# preloads it into the netns forks only (not vitest's own process), and they pass it on to the
# node processes they start; lab tools (ip, iperf3, python3, ...) do not get it
# (lab/sanitizer-env.ts).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

# The suites that move packets through the data path: interop with independent implementations
# (the kernel's VXLAN device, Open vSwitch), transfers in every mode and offload setting, hostile
# and malformed input, lifecycle and table swaps under traffic.
suites=(
  test/netns/kernel-interop.test.ts
  test/netns/ovs-interop.test.ts
  test/netns/offload-transfer.test.ts
  test/netns/tun-modes.test.ts
  test/netns/tun-wire.test.ts
  test/netns/geneve.test.ts
  test/netns/gre-udp.test.ts
  test/netns/esp.test.ts
  test/netns/ipv6-underlay.test.ts
  test/netns/packet-device.test.ts
  test/netns/bad-input.test.ts
  test/netns/ike-hostile.test.ts
  test/netns/drops.test.ts
  test/netns/path-mtu.test.ts
  test/netns/faults.test.ts
  test/netns/route-swap.test.ts
  test/netns/lifecycle.test.ts
  test/netns/cli.test.ts
)
[ "$#" -gt 0 ] && suites=("$@")

fail() { echo "test/sanitizers/run-asan.sh: $*" >&2; exit 1; }

started=$(date +%s)
echo "asan: building the instrumented addon (npm run build:asan)"
mkdir -p build-asan
npm run --silent build:asan > build-asan/build.log 2>&1 || { cat build-asan/build.log; fail "the ASan build failed (above)"; }
addon="$root/build-asan/Debug/overlayfwd.node"
[ -f "$addon" ] || fail "$addon was not built"
[ -f dist/lib/cli/main.js ] || fail "dist/ is not built (npx tsc -p tsconfig.json)"
runtime="$(ldd "$addon" | awk '$1 ~ /asan/ { print $3 }')"
[ -n "$runtime" ] && [ -f "$runtime" ] || fail "$addon does not link an ASan runtime (ldd: $(ldd "$addon" | tr '\n' ' '))"

reports="$root/build-asan/reports"
notes="$root/build-asan/notes"
rm -rf "$reports" "$notes"
mkdir -p "$reports"

export OVERLAYFWD_ADDON="$addon"
export OVERLAYFWD_SANITIZER_PRELOAD="$runtime"
# Where a fork that could not end in time for its leak check says so (test/sanitizers/fork-exit.ts).
export OVERLAYFWD_SANITIZER_NOTES="$notes"
# detect_leaks: at every node process's normal exit (the CLI, the vitest fork). abort_on_error: a
# child that hits one dies by SIGABRT, which its test sees. check_initialization_order: static
# constructors of the addon that read another's globals.
export ASAN_OPTIONS="log_path=$reports/asan:abort_on_error=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1:abort_on_error=1"
export OVERLAYFWD_REQUIRE_NETNS="${OVERLAYFWD_REQUIRE_NETNS:-1}"

# The instrumented addon is what node loads through the facade, with the runtime in place.
LD_PRELOAD="$runtime${LD_PRELOAD:+:$LD_PRELOAD}" node -e '
  const { loadNative } = require("./dist/lib/native");
  loadNative();
  const maps = require("fs").readFileSync("/proc/self/maps", "utf8");
  for (const want of [process.env.OVERLAYFWD_ADDON, process.env.OVERLAYFWD_SANITIZER_PRELOAD]) {
    if (!maps.includes(require("fs").realpathSync(want))) { console.error("not mapped: " + want); process.exit(1); }
  }
' || fail "node did not load $addon under $runtime"
echo "asan: ${#suites[@]} suites over $addon (runtime $runtime)"

status=0
npx vitest run --project netns "${suites[@]}" || status=$?

for note in "$notes"/held-open.*; do
  [ -e "$note" ] || continue
  echo "asan: warning: no leak check in a fork that stayed up after its tests (handles still open): $(cat "$note")"
done
# LeakSanitizer writes one line to the log when a thread it stops for the leak check is just
# exiting ("Running thread N was not suspended. False leaks are possible."): a note about the
# check, not a finding. A log holding only such lines is printed as a note; anything else fails.
benign='^==[0-9]+==Running thread [0-9]+ was not suspended\. False leaks are possible\.$'
found=()
for report in "$reports"/*; do
  [ -e "$report" ] || continue
  if grep -qvE "$benign" "$report"; then
    found+=("$report")
  else
    echo "asan: note: $(basename "$report"): $(head -1 "$report")"
  fi
done
if [ "${#found[@]}" -gt 0 ]; then
  for report in "${found[@]}"; do
    echo "---- $(basename "$report")"
    cat "$report"
  done
  echo "asan: ${#found[@]} sanitizer report(s) above, in $reports"
  status=1
fi
echo "asan: $(($(date +%s) - started)) s, vitest exit $status"
[ "$status" -eq 0 ] || fail "sanitizer suites failed"
