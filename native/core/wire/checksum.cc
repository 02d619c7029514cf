#include "wire/checksum.h"

#include <cstring>

namespace ovl {

namespace {

// One's complement addition of 64-bit words: add, then add the carry back in ("end-around").
// The one's complement sum is independent of the word size (RFC 1071 §2(C)), so 64-bit words
// folded down to 16 bits give the same result as 16-bit words.
inline uint64_t add_with_carry(uint64_t sum, uint64_t word) {
  sum += word;
  return sum + (sum < word);
}

inline uint16_t fold64(uint64_t sum) {
  sum = (sum & 0xFFFFFFFFu) + (sum >> 32);  // at most 33 bits
  sum = (sum & 0xFFFFFFFFu) + (sum >> 32);  // 32 bits
  return checksum_fold(static_cast<uint32_t>(sum));
}

}  // namespace

uint32_t checksum_add(const uint8_t* data, size_t length, uint32_t initial) {
  // Words are loaded in host byte order. The one's complement sum is byte-order independent
  // (RFC 1071 §2(B)): summing little-endian words yields the byte-swapped big-endian sum. So
  // sum natively, fold to 16 bits, and swap once at the end on a little-endian host.
  uint64_t sum = 0;
  while (length >= 32) {
    uint64_t w[4];
    std::memcpy(w, data, 32);
    sum = add_with_carry(sum, w[0]);
    sum = add_with_carry(sum, w[1]);
    sum = add_with_carry(sum, w[2]);
    sum = add_with_carry(sum, w[3]);
    data += 32;
    length -= 32;
  }
  while (length >= 8) {
    uint64_t w;
    std::memcpy(&w, data, 8);
    sum = add_with_carry(sum, w);
    data += 8;
    length -= 8;
  }
  // Fewer than 8 bytes left: gather them into one zero-padded word. Copying into a zeroed
  // word at offset 0 keeps every byte at its position within its 16-bit word (offsets stay
  // even), and an odd final byte lands as the high byte of a zero-padded big-endian word.
  if (length > 0) {
    uint64_t w = 0;
    std::memcpy(&w, data, length);
    sum = add_with_carry(sum, w);
  }
  uint16_t folded = fold64(sum);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  folded = static_cast<uint16_t>(folded << 8 | folded >> 8);
#endif
  return checksum_combine(initial, folded);
}

uint32_t pseudo_header_sum_ipv4(const uint8_t* source, const uint8_t* destination, uint8_t protocol,
                                uint32_t l4_length) {
  uint32_t sum = checksum_add(source, 4, 0);
  sum = checksum_add(destination, 4, sum);
  // {zero, protocol} and the 16-bit length (IPv4 L4 lengths fit 16 bits; wider values are
  // folded in by the sum arithmetic, which is harmless for callers that already bounded them).
  return checksum_combine(sum, uint32_t{protocol} + (l4_length & 0xFFFF) + (l4_length >> 16));
}

uint32_t pseudo_header_sum_ipv6(const uint8_t* source, const uint8_t* destination, uint8_t next_header,
                                uint32_t l4_length) {
  uint32_t sum = checksum_add(source, 16, 0);
  sum = checksum_add(destination, 16, sum);
  // 32-bit upper-layer length as two 16-bit words, then {0, 0, 0, next header}.
  return checksum_combine(sum, (l4_length >> 16) + (l4_length & 0xFFFF) + next_header);
}

uint16_t ipv4_header_checksum(const uint8_t* header, size_t header_length) {
  // Everything before the checksum field, then everything after it: the field counts as zero.
  uint32_t sum = checksum_add(header, 10, 0);
  sum = checksum_add(header + 12, header_length - 12, sum);
  return checksum_finish(sum);
}

}  // namespace ovl
