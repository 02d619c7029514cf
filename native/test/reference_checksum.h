// An RFC 1071 checksum for tests, independent of native/core/wire/checksum.cc: one byte at a time,
// big-endian 16-bit words (an odd last byte is the high half of a zero-padded word).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ovl_test {

// The folded one's-complement sum (not complemented): 0xFFFF over a packet whose checksum verifies.
inline uint16_t ref_fold(const std::vector<uint8_t>& bytes) {
  uint32_t sum = 0;
  for (size_t i = 0; i < bytes.size(); i++) sum += (i % 2 == 0) ? uint32_t{bytes[i]} << 8 : bytes[i];
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// Pseudo-header bytes (RFC 793/768 for IPv4, RFC 8200 §8.1 for IPv6) followed by the L4 bytes.
// `final_destination` replaces the IPv4 destination when a source route names another one.
inline std::vector<uint8_t> ref_pseudo_and_l4(const uint8_t* ip, int version, const uint8_t* l4, size_t l4_length,
                                              uint8_t protocol, const uint8_t* final_destination = nullptr) {
  std::vector<uint8_t> bytes;
  if (version == 4) {
    bytes.insert(bytes.end(), ip + 12, ip + 16);
    const uint8_t* dst = final_destination ? final_destination : ip + 16;
    bytes.insert(bytes.end(), dst, dst + 4);
    bytes.insert(bytes.end(), {0, protocol, static_cast<uint8_t>(l4_length >> 8), static_cast<uint8_t>(l4_length)});
  } else {
    bytes.insert(bytes.end(), ip + 8, ip + 40);
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<uint8_t>(l4_length >> shift));
    bytes.insert(bytes.end(), {0, 0, 0, protocol});
  }
  bytes.insert(bytes.end(), l4, l4 + l4_length);
  return bytes;
}

}  // namespace ovl_test
