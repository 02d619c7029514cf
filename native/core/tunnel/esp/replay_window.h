// ESP anti-replay window (RFC 4303 §3.4.3) kept as the bitmap of RFC 6479, with the
// extended-sequence-number inference of RFC 4303 Appendix A.
//
// The bitmap is a ring of 64-bit blocks, one bit per sequence number: number n lives in bit
// n % 64 of block (n / 64) % kBlocks. Moving the window forward clears whole blocks instead of
// shifting the bitmap (RFC 6479 §2.3), so advancing costs at most kBlocks stores however far
// it jumps. The block that holds the top of the window is only partly in use, which is why the
// usable window is one block short of the bitmap: kSize = kBits - 64 = 1984 packets, the
// numbers top - kSize + 1 .. top.
//
// Two steps, because the ICV has to be verified in between (RFC 4303 §3.4.3: the window "is
// updated only if the integrity verification succeeds"):
//   check(wire)  before decryption: infers the full 64-bit number, rejects duplicates and
//                numbers left of the window. Changes nothing, so a forged packet cannot move
//                the window or burn a number.
//   update(seq)  after the ICV verified: marks the number and moves the window. It checks
//                again and returns false for a duplicate, because two copies of one packet can
//                both pass check() within a batch before either is marked.
//
// Without ESN the number on the wire is the whole number (a sender never goes past 2^32 - 1,
// RFC 4303 §3.3.3). With ESN the wire carries the low 32 bits and the receiver infers the high
// ones from the top of its window (RFC 4303 Appendix A2.2): a low half at or above the window's
// bottom is taken to be in the top's 2^32-block, one below it in the next block (or, when the
// window straddles a block boundary, in the previous and in the top's block). A wrong guess
// (more than 2^32 - kSize packets lost in a row) makes the ICV fail, because the high bits are
// part of the AAD; RFC 4303 A3's resynchronisation after many such failures is not done here.
//
// Sequence number 0 is never sent (the first packet carries 1), so it is always refused.
//
// Not thread-safe: one owner (the worker that receives the SA), or the caller serialises.
#pragma once

#include <cstdint>

namespace ovl {

enum class ReplayCheck {
  fresh,      // not seen and inside (or right of) the window: go on and verify the ICV
  duplicate,  // inside the window and already marked
  too_old,    // left of the window, or 0, or before the first ESN block: cannot be told apart from a replay
};

class ReplayWindow {
 public:
  static constexpr uint32_t kBlockBits = 64;
  static constexpr uint32_t kBits = 2048;
  static constexpr uint32_t kBlocks = kBits / kBlockBits;
  static constexpr uint64_t kSize = kBits - kBlockBits;  // packets the window spans: 1984

  explicit ReplayWindow(bool esn) : esn_(esn) {}

  bool esn() const { return esn_; }
  // The highest sequence number accepted so far (0: none yet).
  uint64_t top() const { return top_; }

  // Decides on the sequence number `wire` read from a packet, before its ICV is checked. On
  // fresh, *sequence is the full number (with ESN, the inferred high 32 bits and `wire`); its
  // high half goes into the AAD. Does not change the window.
  ReplayCheck check(uint32_t wire, uint64_t* sequence) const;

  // Marks `sequence` (from check()) as received, once its ICV verified, moving the window
  // forward if it is the new top. False, changing nothing, if it is a duplicate or has fallen
  // out of the window since check(): the packet must then be dropped as a replay.
  bool update(uint64_t sequence);

  // Back to the empty window of a new SA.
  void reset();

 private:
  // check() for a full number.
  ReplayCheck check_full(uint64_t sequence) const;

  bool esn_;
  uint64_t top_ = 0;
  uint64_t blocks_[kBlocks] = {};
};

}  // namespace ovl
