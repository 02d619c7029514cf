#include "wire/ip_packet.h"

#include "wire/checksum_update.h"
#include "wire/ethernet.h"

namespace ovl {

namespace {

constexpr size_t kIpv4Fixed = 20;
constexpr size_t kIpv6Fixed = 40;
constexpr uint8_t kNextHeaderHopByHop = 0;

IpParse parse_ipv4(const uint8_t* packet, size_t length, InnerIp* out) {
  if (length < kIpv4Fixed) return IpParse::truncated;
  const uint32_t header_length = uint32_t{packet[0] & 0x0Fu} * 4;
  if (header_length < kIpv4Fixed) return IpParse::bad_header_length;
  if (header_length > length) return IpParse::truncated;
  const uint32_t total_length = load_be16(packet + 2);
  if (total_length < header_length) return IpParse::bad_total_length;
  if (total_length > length) return IpParse::truncated;
  const uint16_t fragment = load_be16(packet + 6);  // reserved bit, DF, MF, 13-bit offset
  out->version = 4;
  out->header_length = header_length;
  out->total_length = total_length;
  out->ttl = packet[8];
  out->ecn = packet[1] & 0x03;
  out->dscp = packet[1] >> 2;
  out->dont_fragment = (fragment & 0x4000) != 0;
  out->protocol = packet[9];
  out->source = packet + 12;
  out->destination = packet + 16;
  out->fragment_offset = fragment & 0x1FFF;
  out->more_fragments = (fragment & 0x2000) != 0;
  return IpParse::ok;
}

IpParse parse_ipv6(const uint8_t* packet, size_t length, InnerIp* out) {
  if (length < kIpv6Fixed) return IpParse::truncated;
  const uint32_t payload_length = load_be16(packet + 4);
  const uint8_t next_header = packet[6];
  if (payload_length == 0 && next_header == kNextHeaderHopByHop) return IpParse::bad_total_length;
  if (payload_length > length - kIpv6Fixed) return IpParse::truncated;
  // Traffic Class straddles the first two bytes: version(4) | TC(8) | flow label(20).
  const uint8_t traffic_class = static_cast<uint8_t>((packet[0] & 0x0F) << 4 | packet[1] >> 4);
  out->version = 6;
  out->header_length = kIpv6Fixed;
  out->total_length = kIpv6Fixed + payload_length;
  out->ttl = packet[7];
  out->ecn = traffic_class & 0x03;
  out->dscp = traffic_class >> 2;
  out->dont_fragment = true;
  out->protocol = next_header;
  out->source = packet + 8;
  out->destination = packet + 24;
  out->fragment_offset = 0;
  out->more_fragments = false;
  return IpParse::ok;
}

}  // namespace

IpParse parse_ip_packet(const uint8_t* packet, size_t length, InnerIp* out) {
  if (length == 0) return IpParse::truncated;
  switch (packet[0] >> 4) {
    case 4: return parse_ipv4(packet, length, out);
    case 6: return parse_ipv6(packet, length, out);
    default: return IpParse::bad_version;
  }
}

uint16_t ethertype_for_ip_version(uint8_t version) {
  if (version == 4) return kEtherTypeIpv4;
  if (version == 6) return kEtherTypeIpv6;
  return 0;
}

void ip_set_ecn(uint8_t* packet, uint8_t ecn) {
  ecn &= 0x03;
  const uint8_t version = packet[0] >> 4;
  if (version == 4) {
    // The TOS byte is the low half of the header's first 16-bit word.
    const uint16_t old_word = load_be16(packet);
    packet[1] = static_cast<uint8_t>((packet[1] & 0xFC) | ecn);
    const uint16_t new_word = load_be16(packet);
    store_be16(packet + 10, checksum_replace_word(load_be16(packet + 10), old_word, new_word));
  } else if (version == 6) {
    // The ECN bits are the low 2 bits of the Traffic Class, i.e. bits 5..4 of the second byte.
    packet[1] = static_cast<uint8_t>((packet[1] & 0xCF) | ecn << 4);
  }
}

}  // namespace ovl
