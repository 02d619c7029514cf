// Sender sequence counter: starts at 1, never wraps, warns before the end, hands out every
// number exactly once across threads.
#include "tunnel/esp/esp_sequence.h"

#include <algorithm>
#include <thread>
#include <vector>

#include "test.h"

using namespace ovl;

namespace {

TEST(esp_sequence_starts_at_one) {
  EspSequence counter(true);
  uint64_t sequence = 0;
  CHECK_EQ(counter.last(), 0u);
  for (uint64_t expected = 1; expected <= 1000; expected++) {
    CHECK(counter.next(&sequence));
    CHECK_EQ(sequence, expected);
  }
  CHECK_EQ(counter.last(), 1000u);
  CHECK(!counter.nearing_limit());
  CHECK(!counter.exhausted());
}

TEST(esp_sequence_default_limits) {
  EspSequence esn(true), plain(false);
  CHECK_EQ(esn.limit(), ~uint64_t{0});
  CHECK_EQ(esn.soft_limit(), ~uint64_t{0} - (uint64_t{1} << 32));
  CHECK_EQ(plain.limit(), 0xFFFFFFFFu);
  CHECK_EQ(plain.soft_limit(), 0xFFFFFFFFu - (uint64_t{1} << 30));
}

// Without ESN the last number is 2^32 - 1, then nothing, for good.
TEST(esp_sequence_never_wraps_32) {
  EspSequence counter(EspSequence::kPlainLimit, EspSequence::kPlainLimit - EspSequence::kPlainSoftMargin,
                      0xFFFFFFFFu - 3);
  uint64_t sequence = 0;
  for (uint64_t expected = 0xFFFFFFFFu - 2; expected <= 0xFFFFFFFFu; expected++) {
    CHECK(counter.next(&sequence));
    CHECK_EQ(sequence, expected);
  }
  CHECK(counter.exhausted());
  for (int i = 0; i < 5; i++) {
    sequence = 12345;
    CHECK(!counter.next(&sequence));
    CHECK_EQ(sequence, 12345u);  // untouched
  }
  CHECK_EQ(counter.last(), 0xFFFFFFFFu);
}

// With ESN the last number is 2^64 - 1; the counter itself must not overflow to 0 after it.
TEST(esp_sequence_never_wraps_64) {
  EspSequence counter(EspSequence::kEsnLimit, EspSequence::kEsnLimit - EspSequence::kEsnSoftMargin, ~uint64_t{0} - 2);
  CHECK(counter.nearing_limit());
  uint64_t sequence = 0;
  CHECK(counter.next(&sequence));
  CHECK_EQ(sequence, ~uint64_t{0} - 1);
  CHECK(counter.next(&sequence));
  CHECK_EQ(sequence, ~uint64_t{0});
  CHECK(counter.exhausted());
  CHECK(!counter.next(&sequence));
  uint64_t first = 0;
  CHECK_EQ(counter.reserve(64, &first), 0u);
  CHECK_EQ(counter.last(), ~uint64_t{0});
}

// The soft limit turns nearing_limit() on once it has been handed out; configurable for tests.
TEST(esp_sequence_nearing_limit) {
  EspSequence counter(100, 90);
  uint64_t sequence = 0;
  for (int i = 0; i < 89; i++) CHECK(counter.next(&sequence));
  CHECK(!counter.nearing_limit());
  CHECK(counter.next(&sequence));
  CHECK_EQ(sequence, 90u);
  CHECK(counter.nearing_limit());
  CHECK(!counter.exhausted());
  for (int i = 0; i < 10; i++) CHECK(counter.next(&sequence));
  CHECK_EQ(sequence, 100u);
  CHECK(counter.exhausted());
  CHECK(!counter.next(&sequence));
}

// A batch reserves a run; at the limit it gets what is left, then nothing.
TEST(esp_sequence_reserve) {
  EspSequence counter(100, 50);
  uint64_t first = 0;
  CHECK_EQ(counter.reserve(64, &first), 64u);
  CHECK_EQ(first, 1u);
  CHECK_EQ(counter.reserve(30, &first), 30u);
  CHECK_EQ(first, 65u);
  CHECK_EQ(counter.reserve(64, &first), 6u);
  CHECK_EQ(first, 95u);
  CHECK_EQ(counter.reserve(1, &first), 0u);
  CHECK_EQ(counter.reserve(0, &first), 0u);
  CHECK_EQ(counter.last(), 100u);
}

// Workers share an SA's counter: every number is handed out exactly once, none past the limit.
TEST(esp_sequence_threads_share_one_counter) {
  constexpr uint64_t kLimit = 200000;
  EspSequence counter(kLimit, kLimit / 2);
  constexpr int kThreads = 4;
  std::vector<std::vector<uint64_t>> taken(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      uint64_t first = 0;
      for (;;) {
        const uint32_t granted = counter.reserve(1 + static_cast<uint32_t>(t) * 7, &first);
        if (granted == 0) break;
        for (uint32_t i = 0; i < granted; i++) taken[t].push_back(first + i);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::vector<uint64_t> all;
  for (const auto& part : taken) all.insert(all.end(), part.begin(), part.end());
  std::sort(all.begin(), all.end());
  CHECK_EQ(all.size(), kLimit);
  bool contiguous = true;
  for (size_t i = 0; i < all.size(); i++) contiguous &= all[i] == i + 1;
  CHECK(contiguous);
  CHECK(counter.exhausted());
}

}  // namespace
