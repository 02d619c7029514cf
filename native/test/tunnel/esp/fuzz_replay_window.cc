// Fuzz target, differential: the ESP anti-replay window (replay_window.h: an RFC 6479 bitmap
// ring with RFC 4303 Appendix A's ESN inference) against a plain model, a set of the numbers
// accepted so far and the top, with the inference stated another way: the full number is the one
// congruent to the wire's low 32 bits that lies in [T - W + 1, T - W + 1 + 2^32), where T is the
// top and W the window size; below 1 or above 2^64 - 1 there is none. Every check() status and
// inferred number, every update() result and the top must agree.
//
// Input: byte 0 bit 0 picks ESN; then 5-byte operations [op, 4-byte value]. The values are taken
// relative to the top most of the time, so that operations land in the window, at its edges and
// at the 2^32 boundaries, where the bitmap wraps and the inference switches cases.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "tunnel/esp/replay_window.h"

namespace {

using ovl::ReplayCheck;
using ovl::ReplayWindow;

constexpr uint64_t kWindow = ReplayWindow::kSize;

struct Model {
  bool esn;
  uint64_t top = 0;
  std::set<uint64_t> accepted;  // only those still inside the window

  ReplayCheck check_full(uint64_t sequence) const {
    if (sequence == 0) return ReplayCheck::too_old;
    if (sequence > top) return ReplayCheck::fresh;
    if (top - sequence >= kWindow) return ReplayCheck::too_old;
    return accepted.count(sequence) ? ReplayCheck::duplicate : ReplayCheck::fresh;
  }

  ReplayCheck check(uint32_t wire, uint64_t* sequence) const {
    if (!esn) {
      *sequence = wire;
      return check_full(wire);
    }
    const __int128 bottom = static_cast<__int128>(top) - static_cast<__int128>(kWindow) + 1;
    const __int128 subspace = static_cast<__int128>(1) << 32;
    // The number congruent to `wire` in [bottom, bottom + 2^32).
    __int128 low_of_bottom = bottom % subspace;
    if (low_of_bottom < 0) low_of_bottom += subspace;
    __int128 candidate = bottom - low_of_bottom + wire;
    if (candidate < bottom) candidate += subspace;
    if (candidate < 1 || candidate > static_cast<__int128>(~uint64_t{0})) return ReplayCheck::too_old;
    *sequence = static_cast<uint64_t>(candidate);
    return check_full(*sequence);
  }

  bool update(uint64_t sequence) {
    if (check_full(sequence) != ReplayCheck::fresh) return false;
    accepted.insert(sequence);
    if (sequence > top) top = sequence;
    // Forget what fell out of the window.
    while (!accepted.empty() && top - *accepted.begin() >= kWindow) accepted.erase(accepted.begin());
    return true;
  }

  void reset() {
    top = 0;
    accepted.clear();
  }
};

const char* name(ReplayCheck c) {
  return c == ReplayCheck::fresh ? "fresh" : c == ReplayCheck::duplicate ? "duplicate" : "too_old";
}

[[noreturn]] void fail(const char* what, uint32_t wire, ReplayCheck got, ReplayCheck expected, uint64_t got_seq,
                       uint64_t expected_seq, uint64_t top) {
  std::fprintf(stderr,
               "fuzz_replay_window: %s: wire %08x, top %016llx: %s (%016llx), expected %s (%016llx)\n", what, wire,
               static_cast<unsigned long long>(top), name(got), static_cast<unsigned long long>(got_seq), name(expected),
               static_cast<unsigned long long>(expected_seq));
  std::abort();
}

uint32_t be32(const uint8_t* p) { return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3]; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool esn = data[0] & 1;
  ReplayWindow window(esn);
  Model model{esn};
  // Without ESN a sender never goes past 2^32 - 1: keep updates there.
  const uint64_t limit = esn ? ~uint64_t{0} : 0xFFFFFFFFu;
  auto clamp = [&](__int128 v) -> uint64_t {
    if (v < 0) return 0;
    if (v > static_cast<__int128>(limit)) return limit;
    return static_cast<uint64_t>(v);
  };

  for (size_t at = 1; at + 5 <= size; at += 5) {
    const uint8_t op = data[at];
    const uint32_t value = be32(data + at + 1);
    const int32_t near = static_cast<int16_t>(value & 0xFFFF);  // a small signed distance
    const __int128 top = model.top;
    uint32_t wire = value;
    bool accept = false;  // check, and if fresh, update as an authentic packet would
    switch (op & 7) {
      case 0: break;                                                                // check a raw wire value
      case 1: wire = static_cast<uint32_t>(top + near); break;                      // near the top
      case 2: wire = static_cast<uint32_t>(top - kWindow + 1 + near); break;        // near the bottom
      case 3: accept = true; break;                                                 // accept a raw wire value
      case 4: accept = true; wire = static_cast<uint32_t>(top + near); break;
      case 5: accept = true; wire = static_cast<uint32_t>(top - kWindow + 1 + near); break;
      case 6: {  // update a full number directly: a jump, possibly over 2^32 boundaries
        const __int128 jump = (op & 0x08) ? static_cast<__int128>(value) << ((op >> 4) * 2)
                                          : static_cast<__int128>(static_cast<int32_t>(value));
        const uint64_t sequence = clamp(top + jump);
        const bool got = window.update(sequence), expected = model.update(sequence);
        if (got != expected) {
          fail("update differs", static_cast<uint32_t>(sequence), got ? ReplayCheck::fresh : ReplayCheck::duplicate,
               expected ? ReplayCheck::fresh : ReplayCheck::duplicate, sequence, sequence, model.top);
        }
        if (window.top() != model.top) fail("top differs", 0, ReplayCheck::fresh, ReplayCheck::fresh, window.top(), model.top, model.top);
        continue;
      }
      case 7:
        if (op & 0x80) {
          window.reset();
          model.reset();
          continue;
        }
        accept = true;
        wire = static_cast<uint32_t>(value >> (op >> 3 & 15));
        break;
    }
    uint64_t got_seq = 0, expected_seq = 0;
    const ReplayCheck got = window.check(wire, &got_seq);
    const ReplayCheck expected = model.check(wire, &expected_seq);
    if (got != expected || (expected == ReplayCheck::fresh && got_seq != expected_seq)) {
      fail("check differs", wire, got, expected, got_seq, expected_seq, model.top);
    }
    if (accept && expected == ReplayCheck::fresh) {
      if (esn || expected_seq <= limit) {
        const bool ok = window.update(got_seq);
        if (!ok || !model.update(expected_seq)) fail("update of a fresh number failed", wire, got, expected, got_seq, expected_seq, model.top);
        // A second update of the same number (two copies in one batch) must fail.
        if (window.update(got_seq)) fail("a duplicate update passed", wire, got, expected, got_seq, expected_seq, model.top);
      }
    }
    if (window.top() != model.top) fail("top differs", wire, got, expected, window.top(), model.top, model.top);
  }
  return 0;
}
