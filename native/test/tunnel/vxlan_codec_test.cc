#include "tunnel/vxlan_codec.h"

#include <cstring>
#include <vector>

#include "test.h"

using namespace ovl;

namespace {

// A VXLAN payload as it leaves the wire: header for `vni`, then a minimal inner frame.
std::vector<uint8_t> packet(uint32_t vni, size_t inner_length = 60) {
  std::vector<uint8_t> p(kVxlanHeaderSize + inner_length, 0);
  vxlan_encode(p.data(), vni);
  uint8_t* inner = p.data() + kVxlanHeaderSize;
  const uint8_t dst[6] = {0x02, 0, 0, 0, 0, 2}, src[6] = {0x02, 0, 0, 0, 0, 1};
  if (inner_length >= 12) {
    std::memcpy(inner, dst, 6);
    std::memcpy(inner + 6, src, 6);
  }
  return p;
}

}  // namespace

TEST(vxlan_encode_matches_rfc7348_layout) {
  uint8_t header[8];
  std::memset(header, 0xAA, sizeof header);
  vxlan_encode(header, 0x123456);
  const uint8_t expected[8] = {0x08, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x00};
  CHECK(std::memcmp(header, expected, 8) == 0);
  CHECK_EQ(vxlan_vni(header), 0x123456u);
}

TEST(vxlan_encode_extreme_vnis) {
  uint8_t header[8];
  vxlan_encode(header, 0);
  CHECK_EQ(vxlan_vni(header), 0u);
  vxlan_encode(header, kVxlanMaxVni);
  CHECK_EQ(vxlan_vni(header), kVxlanMaxVni);
  CHECK_EQ(header[7], 0);
}

TEST(vxlan_decode_accepts_good_packet) {
  auto p = packet(42);
  CHECK(vxlan_decode(p.data(), p.size(), 42) == VxlanStatus::ok);
}

TEST(vxlan_decode_rejects_wrong_vni) {
  auto p = packet(42);
  CHECK(vxlan_decode(p.data(), p.size(), 43) == VxlanStatus::wrong_vni);
}

TEST(vxlan_decode_rejects_every_reserved_bit) {
  // Every bit of the header other than I and the VNI is reserved: each alone must drop.
  for (size_t byte : {0, 1, 2, 3, 7}) {
    for (int bit = 0; bit < 8; bit++) {
      auto p = packet(42);
      p[byte] ^= static_cast<uint8_t>(1 << bit);
      if (byte == 0 && bit == 3) {
        // Clearing the I flag is malformed too.
        CHECK(vxlan_decode(p.data(), p.size(), 42) == VxlanStatus::malformed);
        continue;
      }
      if (vxlan_decode(p.data(), p.size(), 42) != VxlanStatus::malformed) {
        CHECK(!"reserved bit accepted");
      }
    }
  }
}

TEST(vxlan_decode_rejects_truncated_and_runt) {
  auto p = packet(42, 14);
  CHECK(vxlan_decode(p.data(), p.size(), 42) == VxlanStatus::ok);  // exactly an Ethernet header
  for (size_t length = 0; length < kVxlanHeaderSize + 14; length++) {
    CHECK(vxlan_decode(p.data(), length, 42) == VxlanStatus::malformed);
  }
}

TEST(vxlan_decode_checks_flags_before_vni) {
  // A packet with a reserved bit and another VNI is malformed, not wrongVni: the header is not
  // trusted enough to read a VNI from.
  auto p = packet(7);
  p[1] = 0x01;
  CHECK(vxlan_decode(p.data(), p.size(), 42) == VxlanStatus::malformed);
}
