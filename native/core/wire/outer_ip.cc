#include "wire/outer_ip.h"

#include <cstring>

#include "wire/checksum.h"
#include "wire/ecn.h"
#include "wire/ethernet.h"

namespace ovl {

namespace {

constexpr uint8_t kProtocolIpInIpv4 = 4;
constexpr uint8_t kProtocolIpInIpv6 = 41;
constexpr uint16_t kFlagDontFragment = 0x4000;
constexpr uint16_t kFragmentMask = 0x3FFF;  // MF and the offset: anything but a whole datagram

uint8_t outer_ttl(const InnerIp& inner, uint8_t configured_ttl) {
  if (configured_ttl != 0) return configured_ttl;
  return inner.ttl != 0 ? inner.ttl : kDefaultOuterTtl;
}

bool protocol_expected(uint8_t protocol, uint8_t expected_protocol) {
  if (expected_protocol != 0) return protocol == expected_protocol;
  return protocol == kProtocolIpInIpv4 || protocol == kProtocolIpInIpv6;
}

}  // namespace

OuterFields outer_fields_for(const InnerIp& inner, uint8_t configured_ttl, bool copy_dscp) {
  OuterFields fields;
  const uint8_t dscp = copy_dscp ? inner.dscp : 0;
  fields.tos = static_cast<uint8_t>(dscp << 2 | ecn_outer_for(inner.ecn));
  fields.ttl = outer_ttl(inner, configured_ttl);
  // InnerIp already reports DF for every IPv6 packet.
  fields.dont_fragment = inner.dont_fragment;
  return fields;
}

void ipv4_outer_encode(uint8_t* header, const uint8_t source[4], const uint8_t destination[4], uint8_t protocol,
                       uint16_t total_length, uint8_t tos, uint8_t ttl, bool dont_fragment, uint16_t id) {
  header[0] = 0x45;  // version 4, IHL 5
  header[1] = tos;
  store_be16(header + 2, total_length);
  store_be16(header + 4, id);
  store_be16(header + 6, dont_fragment ? kFlagDontFragment : 0);
  header[8] = ttl;
  header[9] = protocol;
  std::memcpy(header + 12, source, 4);
  std::memcpy(header + 16, destination, 4);
  store_be16(header + 10, ipv4_header_checksum(header, kOuterIpv4HeaderSize));
}

void ipv6_outer_encode(uint8_t* header, const uint8_t source[16], const uint8_t destination[16], uint8_t next_header,
                       uint16_t payload_length, uint8_t traffic_class, uint8_t hop_limit, uint32_t flow_label) {
  // version(4) | traffic class(8) | flow label(20)
  store_be32(header, uint32_t{6} << 28 | uint32_t{traffic_class} << 20 | (flow_label & 0xFFFFF));
  store_be16(header + 4, payload_length);
  header[6] = next_header;
  header[7] = hop_limit;
  std::memcpy(header + 8, source, 16);
  std::memcpy(header + 24, destination, 16);
}

OuterStatus ipv4_outer_decode(const uint8_t* packet, size_t length, uint8_t expected_protocol, OuterIpv4* out) {
  if (length == 0) return OuterStatus::truncated;
  if (packet[0] >> 4 != 4) return OuterStatus::bad_version;
  if (length < kOuterIpv4HeaderSize) return OuterStatus::truncated;
  const uint32_t header_length = uint32_t{packet[0] & 0x0Fu} * 4;
  if (header_length < kOuterIpv4HeaderSize) return OuterStatus::bad_header_length;
  if (header_length > length) return OuterStatus::truncated;
  const uint32_t total_length = load_be16(packet + 2);
  if (total_length < header_length) return OuterStatus::bad_total_length;
  if (total_length > length) return OuterStatus::truncated;
  if ((load_be16(packet + 6) & kFragmentMask) != 0) return OuterStatus::fragment;
  const uint8_t protocol = packet[9];
  if (!protocol_expected(protocol, expected_protocol)) return OuterStatus::wrong_protocol;
  out->payload_offset = header_length;
  out->payload_length = total_length - header_length;
  out->protocol = protocol;
  out->source = packet + 12;
  out->destination = packet + 16;
  out->tos = packet[1];
  out->ecn = packet[1] & kEcnMask;
  out->ttl = packet[8];
  return OuterStatus::ok;
}

}  // namespace ovl
