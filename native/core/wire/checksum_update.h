// Incremental update of an Internet checksum field when one 16-bit word of the data it covers
// changes (RFC 1624). Rewriting a TOS byte, or lowering a TCP MSS, touches two bytes: summing
// the whole header or segment again for that would cost far more than the change.
#pragma once

#include <cstdint>

#include "wire/checksum.h"

namespace ovl {

// The new checksum field value after the covered word `old_word` became `new_word`, computed
// as RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'). Eqn. 3 (not eqn. 2 of RFC 1141) is the one that
// never turns a correct checksum into the "-0" form a full recomputation would not produce.
// A wrong checksum stays exactly as wrong: the receiver still sees the original damage.
inline uint16_t checksum_replace_word(uint16_t checksum, uint16_t old_word, uint16_t new_word) {
  const uint32_t sum = uint32_t{static_cast<uint16_t>(~checksum)} + static_cast<uint16_t>(~old_word) + new_word;
  return checksum_finish(sum);
}

// The same for a 16-bit value that sits at an odd offset from the start of what the checksum
// covers: its high byte is the low half of one covered word and its low byte the high half of
// the next, so it enters the sum byte-swapped (the one's complement sum commutes with the swap,
// RFC 1071 §2(B)).
inline uint16_t checksum_replace_value(uint16_t checksum, uint16_t old_value, uint16_t new_value, bool odd_offset) {
  if (odd_offset) {
    old_value = static_cast<uint16_t>(old_value << 8 | old_value >> 8);
    new_value = static_cast<uint16_t>(new_value << 8 | new_value >> 8);
  }
  return checksum_replace_word(checksum, old_value, new_value);
}

}  // namespace ovl
