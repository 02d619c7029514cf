#include "tunnel/geneve_codec.h"

#include <cstring>
#include <vector>

#include "wire/ethernet.h"
#include "test.h"

using namespace ovl;

namespace {

// A Geneve payload: header for `vni`, the given option bytes, then a minimal inner frame.
std::vector<uint8_t> packet(uint32_t vni, const std::vector<uint8_t>& options = {}, size_t inner_length = 60) {
  std::vector<uint8_t> p(kGeneveHeaderSize);
  geneve_encode(p.data(), vni);
  p[0] = static_cast<uint8_t>(options.size() / 4);
  p.insert(p.end(), options.begin(), options.end());
  std::vector<uint8_t> inner(inner_length, 0);
  if (inner_length >= 12) {
    inner[0] = 0x02;
    inner[5] = 2;
    inner[6] = 0x02;
    inner[11] = 1;
  }
  p.insert(p.end(), inner.begin(), inner.end());
  return p;
}

uint32_t decode(const std::vector<uint8_t>& p, uint32_t vni, GeneveStatus* status) {
  uint32_t inner = 0;
  *status = geneve_decode(p.data(), p.size(), vni, &inner);
  return inner;
}

}  // namespace

TEST(geneve_encode_matches_rfc8926_layout) {
  uint8_t header[8];
  std::memset(header, 0xAA, sizeof header);
  geneve_encode(header, 0xABCDEF);
  const uint8_t expected[8] = {0x00, 0x00, 0x65, 0x58, 0xAB, 0xCD, 0xEF, 0x00};
  CHECK(std::memcmp(header, expected, 8) == 0);
}

TEST(geneve_decode_accepts_good_packet) {
  GeneveStatus status;
  CHECK_EQ(decode(packet(42), 42, &status), kGeneveHeaderSize);
  CHECK(status == GeneveStatus::ok);
}

TEST(geneve_decode_skips_non_critical_options) {
  // Two options: class 0x0102 type 0x01 with 4 bytes of data, class 0xffff type 0x7f with none.
  const std::vector<uint8_t> options = {0x01, 0x02, 0x01, 0x01, 1, 2, 3, 4, 0xff, 0xff, 0x7f, 0x00};
  GeneveStatus status;
  CHECK_EQ(decode(packet(42, options), 42, &status), kGeneveHeaderSize + 12);
  CHECK(status == GeneveStatus::ok);
}

TEST(geneve_decode_drops_critical_options) {
  const std::vector<uint8_t> options = {0x01, 0x02, 0x81, 0x00};
  GeneveStatus status;
  decode(packet(42, options), 42, &status);
  CHECK(status == GeneveStatus::unknown_option);
  auto flagged = packet(42);
  flagged[1] = kGeneveFlagCritical;  // C bit promises a critical option
  decode(flagged, 42, &status);
  CHECK(status == GeneveStatus::unknown_option);
}

TEST(geneve_decode_drops_oam_and_other_protocols) {
  GeneveStatus status;
  auto oam = packet(42);
  oam[1] = kGeneveFlagOam;
  decode(oam, 42, &status);
  CHECK(status == GeneveStatus::oam);
  auto ipv4 = packet(42);
  store_be16(&ipv4[2], kEtherTypeIpv4);
  decode(ipv4, 42, &status);
  CHECK(status == GeneveStatus::wrong_protocol);
}

TEST(geneve_decode_checks_version_vni_and_lengths) {
  GeneveStatus status;
  auto v1 = packet(42);
  v1[0] |= 0x40;
  decode(v1, 42, &status);
  CHECK(status == GeneveStatus::malformed);
  decode(packet(42), 7, &status);
  CHECK(status == GeneveStatus::wrong_vni);
  // Options length pointing past the end.
  auto overrun = packet(42, {}, 14);
  overrun[0] = 0x3f;
  decode(overrun, 42, &status);
  CHECK(status == GeneveStatus::malformed);
  // An option whose own length runs past the options area.
  decode(packet(42, {0x01, 0x02, 0x01, 0x02, 0, 0, 0, 0}), 42, &status);
  CHECK(status == GeneveStatus::malformed);
  // Runt inner frame, and every truncation of the fixed header.
  auto p = packet(42, {}, 14);
  for (size_t length = 0; length < p.size(); length++) {
    uint32_t inner = 0;
    if (geneve_decode(p.data(), length, 42, &inner) != GeneveStatus::malformed) CHECK(!"truncation accepted");
  }
  // Reserved fields are ignored on receipt (RFC 8926 §3.4).
  auto reserved = packet(42);
  reserved[1] |= 0x3f;
  reserved[7] = 0xff;
  decode(reserved, 42, &status);
  CHECK(status == GeneveStatus::ok);
}
