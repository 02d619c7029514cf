#include "tunnel/esp/replay_window.h"

namespace ovl {

namespace {

constexpr uint64_t kSubspace = uint64_t{1} << 32;  // numbers per value of the high 32 bits

}  // namespace

ReplayCheck ReplayWindow::check_full(uint64_t sequence) const {
  if (sequence == 0) return ReplayCheck::too_old;
  if (sequence > top_) return ReplayCheck::fresh;
  if (top_ - sequence >= kSize) return ReplayCheck::too_old;
  const uint64_t block = blocks_[(sequence / kBlockBits) % kBlocks];
  return (block >> (sequence % kBlockBits)) & 1 ? ReplayCheck::duplicate : ReplayCheck::fresh;
}

ReplayCheck ReplayWindow::check(uint32_t wire, uint64_t* sequence) const {
  if (!esn_) {
    *sequence = wire;
    return check_full(wire);
  }
  // RFC 4303 Appendix A2.2, with T = top (Th, Tl its halves), W = kSize, Seql = wire.
  const uint32_t top_low = static_cast<uint32_t>(top_);
  const uint64_t top_high = top_ >> 32;
  // The low half of the window's bottom, T - W + 1, modulo 2^32.
  const uint32_t bottom_low = static_cast<uint32_t>(top_low - kSize + 1);
  uint64_t high;
  if (top_low >= kSize - 1) {
    // Case A: the whole window lies in block Th. Below its bottom means the next block.
    high = wire >= bottom_low ? top_high : top_high + 1;
  } else {
    // Case B: the window starts in block Th - 1 (bottom_low is up near 2^32) and ends in Th.
    if (wire >= bottom_low) {
      if (top_high == 0) return ReplayCheck::too_old;  // before the first number there is
      high = top_high - 1;
    } else {
      high = top_high;
    }
  }
  // The high half cannot pass 2^32 - 1: a sender stops at 2^64 - 1 (esp_sequence.h).
  if (high >= kSubspace) return ReplayCheck::too_old;
  *sequence = high << 32 | wire;
  return check_full(*sequence);
}

bool ReplayWindow::update(uint64_t sequence) {
  if (check_full(sequence) != ReplayCheck::fresh) return false;
  const uint64_t index = sequence / kBlockBits;
  if (sequence > top_) {
    // Clear the blocks the window moves onto: those after the top's, up to the new one. A jump
    // of kBlocks blocks or more clears them all, so the loop never runs more than kBlocks times.
    const uint64_t current = top_ / kBlockBits;
    const uint64_t steps = index - current < kBlocks ? index - current : kBlocks;
    for (uint64_t i = 1; i <= steps; i++) blocks_[(current + i) % kBlocks] = 0;
    top_ = sequence;
  }
  blocks_[index % kBlocks] |= uint64_t{1} << (sequence % kBlockBits);
  return true;
}

void ReplayWindow::reset() {
  top_ = 0;
  for (auto& block : blocks_) block = 0;
}

}  // namespace ovl
