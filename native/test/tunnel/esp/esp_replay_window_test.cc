// Anti-replay window: the cases one by one, then random traffic against a plain reference
// (a set of accepted numbers and the definition of the window, and for ESN the unique number
// congruent to the wire value in [top - W + 1, top - W + 2^32], RFC 4303 Appendix A).
#include "tunnel/esp/replay_window.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <set>

#include "test.h"

using namespace ovl;

namespace {

constexpr uint64_t W = ReplayWindow::kSize;
constexpr uint64_t k2to32 = uint64_t{1} << 32;

ReplayCheck check(const ReplayWindow& window, uint64_t wire, uint64_t* sequence = nullptr) {
  uint64_t scratch = 0;
  return window.check(static_cast<uint32_t>(wire), sequence ? sequence : &scratch);
}

// Accepts the number the way the codec does: check, then (the ICV verified) update.
bool receive(ReplayWindow& window, uint64_t sequence) {
  uint64_t inferred = 0;
  if (window.check(static_cast<uint32_t>(sequence), &inferred) != ReplayCheck::fresh) return false;
  if (inferred != sequence) return false;  // would fail the ICV
  return window.update(inferred);
}

TEST(replay_window_size) {
  CHECK(W >= 1024);
  CHECK_EQ(W, 1984u);
  CHECK_EQ(ReplayWindow::kBlocks * ReplayWindow::kBlockBits, ReplayWindow::kBits);
}

TEST(replay_in_order) {
  for (bool esn : {false, true}) {
    ReplayWindow window(esn);
    for (uint64_t sequence = 1; sequence <= 10000; sequence++) CHECK(receive(window, sequence));
    CHECK_EQ(window.top(), 10000u);
  }
}

TEST(replay_out_of_order_within_the_window) {
  ReplayWindow window(false);
  CHECK(receive(window, 5000));
  // Every number the window spans, newest first, then the first one outside.
  for (uint64_t sequence = 4999; sequence > 5000 - W; sequence--) CHECK(receive(window, sequence));
  CHECK(check(window, 5000 - W + 1) == ReplayCheck::duplicate);
  CHECK(check(window, 5000 - W) == ReplayCheck::too_old);
  CHECK(check(window, 1) == ReplayCheck::too_old);
  CHECK(!receive(window, 5000 - W));
  CHECK_EQ(window.top(), 5000u);
}

TEST(replay_duplicates) {
  ReplayWindow window(false);
  for (uint64_t sequence : {7, 3, 9, 8, 100, 64, 65, 63, 128}) {
    CHECK(receive(window, sequence));
    uint64_t inferred = 0;
    CHECK(window.check(static_cast<uint32_t>(sequence), &inferred) == ReplayCheck::duplicate);
    CHECK(!window.update(sequence));
  }
  CHECK(check(window, 10) == ReplayCheck::fresh);
  CHECK(check(window, 127) == ReplayCheck::fresh);
}

TEST(replay_too_old_and_zero) {
  ReplayWindow window(false);
  CHECK(check(window, 0) == ReplayCheck::too_old);
  CHECK(!window.update(0));
  CHECK(receive(window, 1));
  CHECK(receive(window, 100000));
  CHECK(check(window, 100000 - W) == ReplayCheck::too_old);
  CHECK(check(window, 100000 - W + 1) == ReplayCheck::fresh);
  CHECK(check(window, 2) == ReplayCheck::too_old);
  CHECK(check(window, 0) == ReplayCheck::too_old);
}

// check() changes nothing, however often it is called; only update() does.
TEST(replay_check_does_not_update) {
  ReplayWindow window(true);
  CHECK(receive(window, 10));
  for (int i = 0; i < 3; i++) {
    uint64_t inferred = 0;
    CHECK(window.check(50, &inferred) == ReplayCheck::fresh);
    CHECK_EQ(inferred, 50u);
    CHECK(window.check(5, &inferred) == ReplayCheck::fresh);
    CHECK(window.check(100000, &inferred) == ReplayCheck::fresh);
  }
  CHECK_EQ(window.top(), 10u);
  CHECK(window.update(5));
  CHECK(check(window, 5) == ReplayCheck::duplicate);
  CHECK(check(window, 50) == ReplayCheck::fresh);
}

// Two copies of a packet both pass check() in one batch; the second update() refuses. So does
// an update for a number the window has moved past since its check().
TEST(replay_update_rechecks) {
  ReplayWindow window(false);
  CHECK(receive(window, 100));
  uint64_t first = 0, second = 0;
  CHECK(window.check(90, &first) == ReplayCheck::fresh);
  CHECK(window.check(90, &second) == ReplayCheck::fresh);
  CHECK(window.update(first));
  CHECK(!window.update(second));
  uint64_t late = 0;
  CHECK(window.check(50, &late) == ReplayCheck::fresh);
  CHECK(receive(window, 5000));
  CHECK(!window.update(late));
  CHECK_EQ(window.top(), 5000u);
}

// Moving far ahead clears what the ring held, so old marks cannot show up as duplicates of
// new numbers that share their block and bit.
TEST(replay_huge_jumps) {
  ReplayWindow window(false);
  for (uint64_t sequence = 1; sequence <= 100; sequence++) CHECK(receive(window, sequence));
  // 2053 sits in the same ring block and bit as 5 (2048 = the ring's length in bits).
  CHECK(receive(window, 2100));
  CHECK(check(window, 2053) == ReplayCheck::fresh);
  CHECK(check(window, 2100 - W + 1) == ReplayCheck::fresh);
  // Exactly one ring ahead, several rings ahead, and far beyond.
  for (uint64_t jump : {uint64_t{2048}, uint64_t{2048 * 5 + 17}, uint64_t{1} << 31, uint64_t{0xFFFFFFFF}}) {
    ReplayWindow w(false);
    for (uint64_t sequence = 1; sequence <= 2000; sequence++) CHECK(receive(w, sequence));
    const uint64_t top = std::min<uint64_t>(2000 + jump, 0xFFFFFFFF);
    CHECK(receive(w, top));
    int duplicates = 0;
    for (uint64_t sequence = top - W + 1; sequence < top; sequence++) {
      duplicates += check(w, sequence) != ReplayCheck::fresh;
    }
    CHECK_EQ(duplicates, 0);
    CHECK(check(w, top - W) == ReplayCheck::too_old);
  }
}

// ESN across 2^32: forward into the next block, late packets from the previous one, and a low
// half of 0 that is a real number there.
TEST(replay_esn_wrap) {
  ReplayWindow window(true);
  CHECK(window.update(k2to32 - 5));
  uint64_t inferred = 0;
  CHECK(window.check(3, &inferred) == ReplayCheck::fresh);
  CHECK_EQ(inferred, k2to32 + 3);
  CHECK(window.update(inferred));
  CHECK(window.check(0xFFFFFFF9u, &inferred) == ReplayCheck::fresh);  // late, from before the wrap
  CHECK_EQ(inferred, k2to32 - 7);
  CHECK(window.update(inferred));
  CHECK(window.check(0, &inferred) == ReplayCheck::fresh);  // 2^32 itself
  CHECK_EQ(inferred, k2to32);
  CHECK(window.update(inferred));
  CHECK(window.check(0xFFFFFFFBu, &inferred) == ReplayCheck::duplicate);  // 2^32 - 5, the first one
  // The window is [2^32 + 3 - W + 1, 2^32 + 3]: its bottom is still in block 0...
  CHECK(window.check(static_cast<uint32_t>(k2to32 - W + 4), &inferred) == ReplayCheck::fresh);
  CHECK_EQ(inferred, k2to32 - W + 4);
  // ...and a low half just below it is taken to be in block 2 (far ahead), not too old.
  CHECK(window.check(static_cast<uint32_t>(k2to32 - W + 3), &inferred) == ReplayCheck::fresh);
  CHECK_EQ(inferred, 2 * k2to32 - W + 3);
  // The window wholly inside block 1 (case A): a low half below its bottom is the next block.
  CHECK(window.update(k2to32 + 5000));
  CHECK(window.check(100, &inferred) == ReplayCheck::fresh);
  CHECK_EQ(inferred, 2 * k2to32 + 100);
  CHECK(window.check(4000, &inferred) == ReplayCheck::fresh);
  CHECK_EQ(inferred, k2to32 + 4000);
  CHECK(window.check(0xFFFFFFF0u, &inferred) == ReplayCheck::fresh);
  CHECK_EQ(inferred, 2 * k2to32 - 16);
}

// The edges of the 64-bit space: nothing before 1, nothing after 2^64 - 1.
TEST(replay_esn_edges) {
  ReplayWindow fresh(true);
  uint64_t inferred = 0;
  CHECK(fresh.check(0, &inferred) == ReplayCheck::too_old);
  CHECK(fresh.check(0xFFFFFFFFu, &inferred) == ReplayCheck::too_old);  // would be block -1
  CHECK(fresh.check(1, &inferred) == ReplayCheck::fresh);
  CHECK(fresh.check(0xFFFFFFFFu - static_cast<uint32_t>(W) + 1, &inferred) == ReplayCheck::fresh);  // block 0, ahead
  CHECK_EQ(inferred, 0xFFFFFFFFu - W + 1);
  ReplayWindow plain(false);
  CHECK(plain.check(0xFFFFFFFFu, &inferred) == ReplayCheck::fresh);
  CHECK_EQ(inferred, 0xFFFFFFFFu);

  ReplayWindow end(true);
  CHECK(end.update(~uint64_t{0} - 1));
  CHECK(end.check(0xFFFFFFFFu, &inferred) == ReplayCheck::fresh);
  CHECK_EQ(inferred, ~uint64_t{0});
  CHECK(end.check(5, &inferred) == ReplayCheck::too_old);  // would be block 2^32
  CHECK(end.update(~uint64_t{0}));
  CHECK(end.check(0xFFFFFFFFu, &inferred) == ReplayCheck::duplicate);
  end.reset();
  CHECK_EQ(end.top(), 0u);
  CHECK(end.check(7, &inferred) == ReplayCheck::fresh);
}

// What the window should say, by definition.
struct Reference {
  bool esn;
  uint64_t top = 0;
  std::set<uint64_t> accepted;

  // The full number for a wire value, or false if there is none (RFC 4303 A2.2 in closed form).
  bool infer(uint32_t wire, uint64_t* sequence) const {
    if (!esn) {
      *sequence = wire;
      return true;
    }
    using u128 = unsigned __int128;
    // Candidates live in [top - W + 1, top - W + 2^32]; shift by 2^32 so the bottom is positive.
    const u128 low = u128{top} + k2to32 - W + 1;
    const u128 candidate = low + ((u128{wire} - low) & (k2to32 - 1));
    if (candidate < u128{k2to32}) return false;                       // before number 0
    if (candidate - k2to32 > u128{~uint64_t{0}}) return false;        // after 2^64 - 1
    *sequence = static_cast<uint64_t>(candidate - k2to32);
    return true;
  }
  ReplayCheck verdict(uint64_t sequence) const {
    if (sequence == 0) return ReplayCheck::too_old;
    if (sequence > top) return ReplayCheck::fresh;
    if (top - sequence >= W) return ReplayCheck::too_old;
    return accepted.count(sequence) ? ReplayCheck::duplicate : ReplayCheck::fresh;
  }
};

// Random traffic: mostly near the top (reordering, duplicates, stale packets), sometimes big
// jumps, starting at various places including just below 2^32 boundaries; 90% of fresh packets
// "verify" and are marked.
TEST(replay_random_against_reference) {
  std::mt19937_64 random(6479);
  int mismatches = 0;
  for (bool esn : {false, true}) {
    for (uint64_t start : {uint64_t{0}, uint64_t{5000}, k2to32 - 3000, 3 * k2to32 - 10, ~uint64_t{0} - 100000}) {
      if (!esn && start > 0xFFFFFFFFu - 200000) continue;
      ReplayWindow window(esn);
      Reference reference{esn};
      if (start > 0) {
        CHECK(window.update(start));
        reference.top = start;
        reference.accepted.insert(start);
      }
      for (int i = 0; i < 60000; i++) {
        const uint64_t r = random() % 100;
        int64_t delta;
        if (r < 60) delta = static_cast<int64_t>(random() % 64) - 48;          // reordering, duplicates
        else if (r < 85) delta = static_cast<int64_t>(random() % (3 * W)) - static_cast<int64_t>(2 * W);
        else if (r < 98) delta = static_cast<int64_t>(random() % 5000);        // ahead
        else delta = static_cast<int64_t>(random() % (uint64_t{1} << 31));     // far ahead
        uint64_t sequence = reference.top + static_cast<uint64_t>(delta);
        if (delta < 0 && static_cast<uint64_t>(-delta) > reference.top) sequence = 0;
        if (delta > 0 && sequence < reference.top) sequence = ~uint64_t{0};      // overflowed
        if (!esn && sequence > 0xFFFFFFFFu) sequence = 0xFFFFFFFFu;
        const uint32_t wire = static_cast<uint32_t>(sequence);

        uint64_t expected_sequence = 0;
        const bool inferable = reference.infer(wire, &expected_sequence);
        const ReplayCheck expected = inferable ? reference.verdict(expected_sequence) : ReplayCheck::too_old;
        uint64_t got_sequence = 0;
        const ReplayCheck got = window.check(wire, &got_sequence);
        if (got != expected || (got == ReplayCheck::fresh && got_sequence != expected_sequence)) {
          if (mismatches++ < 5) {
            std::fprintf(stderr, "  esn=%d top=%llu wire=%u: got %d/%llu, expected %d/%llu\n", esn,
                         static_cast<unsigned long long>(reference.top), wire, static_cast<int>(got),
                         static_cast<unsigned long long>(got_sequence), static_cast<int>(expected),
                         static_cast<unsigned long long>(expected_sequence));
          }
          continue;
        }
        if (got == ReplayCheck::fresh && random() % 10 != 0) {
          CHECK(window.update(got_sequence));
          reference.accepted.insert(got_sequence);
          if (got_sequence > reference.top) reference.top = got_sequence;
          CHECK_EQ(window.top(), reference.top);
        }
      }
    }
  }
  CHECK_EQ(mismatches, 0);
}

}  // namespace
