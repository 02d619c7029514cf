// VXLAN header codec (RFC 7348), as strict as the Linux driver.
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |R|R|R|R|I|R|R|R|            Reserved                           |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                VXLAN Network Identifier (VNI) |   Reserved    |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// RFC 7348 says receivers ignore reserved bits; Linux (without GBP/GPE extensions) drops a
// packet with any of them set, and so do we: a header we do not fully understand is not
// forwarded onto the segment.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ovl {

constexpr uint32_t kVxlanHeaderSize = 8;
constexpr uint8_t kVxlanFlagVniValid = 0x08;  // the I flag
constexpr uint32_t kVxlanMaxVni = 0xFFFFFF;

enum class VxlanStatus {
  ok,
  malformed,  // too short, I flag missing, a reserved bit set, or the inner frame is a runt
  wrong_vni,
};

// Writes the 8-byte header at `header`.
void vxlan_encode(uint8_t* header, uint32_t vni);

// Validates a VXLAN payload of `length` bytes (header + inner Ethernet frame) for `expected_vni`.
VxlanStatus vxlan_decode(const uint8_t* packet, size_t length, uint32_t expected_vni);

// The VNI field of a header that vxlan_decode has already checked for length.
inline uint32_t vxlan_vni(const uint8_t* header) {
  return uint32_t{header[4]} << 16 | uint32_t{header[5]} << 8 | header[6];
}

}  // namespace ovl
