#include "tunnel/geneve_codec.h"

#include "wire/ethernet.h"

namespace ovl {

namespace {
constexpr size_t kMinimumIpHeaderSize = 20;
}  // namespace

void geneve_encode(uint8_t* header, uint32_t vni, uint16_t protocol) {
  header[0] = 0;  // version 0, no options
  header[1] = 0;  // neither O nor C
  store_be16(header + 2, protocol);
  header[4] = static_cast<uint8_t>(vni >> 16);
  header[5] = static_cast<uint8_t>(vni >> 8);
  header[6] = static_cast<uint8_t>(vni);
  header[7] = 0;
}

GeneveStatus geneve_decode(const uint8_t* packet, size_t length, uint32_t expected_vni, uint32_t* inner_offset,
                           bool carries_ip, uint16_t* protocol) {
  if (length < kGeneveHeaderSize) return GeneveStatus::malformed;
  if ((packet[0] >> 6) != 0) return GeneveStatus::malformed;
  const size_t options_length = size_t{packet[0] & 0x3fu} * 4;
  const size_t inner = kGeneveHeaderSize + options_length;
  // The smallest inner frame: an Ethernet header, or an IPv4 header.
  if (length < inner + (carries_ip ? kMinimumIpHeaderSize : kEthernetHeaderSize)) return GeneveStatus::malformed;
  // The options must tile their space exactly; a critical one is one we cannot honour.
  for (size_t at = kGeneveHeaderSize; at < inner;) {
    if (inner - at < 4) return GeneveStatus::malformed;
    const size_t option_length = 4 + size_t{packet[at + 3] & 0x1fu} * 4;
    if (option_length > inner - at) return GeneveStatus::malformed;
    if (packet[at + 2] & kGeneveOptionCritical) return GeneveStatus::unknown_option;
    at += option_length;
  }
  if (packet[1] & kGeneveFlagCritical) return GeneveStatus::unknown_option;
  if (packet[1] & kGeneveFlagOam) return GeneveStatus::oam;
  const uint16_t type = load_be16(packet + 2);
  if (carries_ip ? (type != kEtherTypeIpv4 && type != kEtherTypeIpv6) : type != kGeneveProtocolEthernet) {
    return GeneveStatus::wrong_protocol;
  }
  if (protocol) *protocol = type;
  const uint32_t vni = uint32_t{packet[4]} << 16 | uint32_t{packet[5]} << 8 | packet[6];
  if (vni != expected_vni) return GeneveStatus::wrong_vni;
  *inner_offset = static_cast<uint32_t>(inner);
  return GeneveStatus::ok;
}

}  // namespace ovl
