// The sender's ESP sequence counter. It never wraps: RFC 4303 §3.3.3 forbids cycling the
// counter within an SA, and here the sequence number is also the IV, so a repeat would reuse a
// GCM / ChaCha20-Poly1305 nonce under the same key, which gives away the authentication key and
// the XOR of two plaintexts. Once `limit` has been handed out, next() fails for good and the SA
// can only stop sending until it is replaced.
//
// Limits: with ESN the counter is 64 bits and the last number is 2^64 - 1; without, the wire
// field is the whole number and the last is 2^32 - 1. `soft_limit` is where nearing_limit()
// turns true, for the caller to poll (after each batch, say) and raise a rekey event to
// TypeScript: by default 2^32 numbers before the end with ESN (hours at any packet rate we
// reach), and 2^30 before the end (a quarter of the space) without.
//
// Shared by every worker that sends on the SA, so the counter is atomic. The first number is 1
// (RFC 4303 §3.3.3: the counter starts at 0 and is incremented before each packet).
#pragma once

#include <atomic>
#include <cstdint>

namespace ovl {

class EspSequence {
 public:
  static constexpr uint64_t kEsnLimit = ~uint64_t{0};
  static constexpr uint64_t kEsnSoftMargin = uint64_t{1} << 32;
  static constexpr uint64_t kPlainLimit = 0xFFFFFFFFu;
  static constexpr uint64_t kPlainSoftMargin = uint64_t{1} << 30;

  // The limits of an SA with or without extended sequence numbers.
  explicit EspSequence(bool esn)
      : EspSequence(esn ? kEsnLimit : kPlainLimit, esn ? kEsnLimit - kEsnSoftMargin : kPlainLimit - kPlainSoftMargin) {}
  // Explicit limits (tests, or a stricter policy): the last number handed out is `limit`, and
  // nearing_limit() is true once `soft_limit` has been. `start` is the last number already
  // used (0 for a new SA).
  EspSequence(uint64_t limit, uint64_t soft_limit, uint64_t start = 0)
      : last_(start), limit_(limit), soft_limit_(soft_limit) {}

  EspSequence(const EspSequence&) = delete;
  EspSequence& operator=(const EspSequence&) = delete;

  // The next sequence number in *sequence; false, forever after, once the limit is reached.
  bool next(uint64_t* sequence) { return reserve(1, sequence) == 1; }

  // Up to `count` consecutive numbers with one atomic operation, for a batch: returns how many
  // were granted (fewer only at the limit, 0 once exhausted) and the first in *first.
  uint32_t reserve(uint32_t count, uint64_t* first) {
    uint64_t last = last_.load(std::memory_order_relaxed);
    for (;;) {
      if (last >= limit_ || count == 0) return 0;
      const uint64_t room = limit_ - last;  // >= 1, and last + granted cannot overflow
      const uint32_t granted = room < count ? static_cast<uint32_t>(room) : count;
      // compare_exchange reloads `last` on failure; relaxed is enough, the number is the only
      // thing published and nothing else is ordered by it.
      if (last_.compare_exchange_weak(last, last + granted, std::memory_order_relaxed)) {
        *first = last + 1;
        return granted;
      }
    }
  }

  // The last number handed out (0: none yet).
  uint64_t last() const { return last_.load(std::memory_order_relaxed); }
  uint64_t limit() const { return limit_; }
  uint64_t soft_limit() const { return soft_limit_; }
  // Time to rekey: the soft limit has been handed out.
  bool nearing_limit() const { return last() >= soft_limit_; }
  // No number left: the SA must not send again.
  bool exhausted() const { return last() >= limit_; }

 private:
  std::atomic<uint64_t> last_;
  const uint64_t limit_;
  const uint64_t soft_limit_;
};

}  // namespace ovl
