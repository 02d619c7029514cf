#include "wire/outer_ip.h"

#include <cstring>
#include <random>

#include "wire/ecn.h"
#include "ip_test_packets.h"
#include "test.h"

using namespace ovl;
using namespace ovl_test;

namespace {

InnerIp parsed(const Bytes& b) {
  InnerIp ip;
  if (parse_ip_packet(b.data(), b.size(), &ip) != IpParse::ok) CHECK(!"test packet does not parse");
  return ip;
}

OuterStatus decode(const Bytes& b, uint8_t expected, OuterIpv4* out = nullptr) {
  OuterIpv4 scratch;
  return ipv4_outer_decode(b.data(), b.size(), expected, out != nullptr ? out : &scratch);
}

// An outer IPv4 packet (header by ipv4_outer_encode) carrying `payload` bytes.
Bytes outer_packet(uint8_t protocol, size_t payload, uint8_t tos = 0, uint16_t fragment = 0x4000) {
  const uint8_t source[4] = {198, 18, 0, 1}, destination[4] = {198, 18, 0, 2};
  Bytes b(20 + payload, 0x5A);
  ipv4_outer_encode(b.data(), source, destination, protocol, static_cast<uint16_t>(b.size()), tos, 64, true, 7);
  put16(b, 6, fragment);
  fix_ipv4_checksum(b);
  return b;
}

}  // namespace

TEST(outer_ipv4_encode_known_header) {
  // The classic 192.168.0.1 -> 192.168.0.199 UDP header, checksum b861.
  const uint8_t source[4] = {192, 168, 0, 1}, destination[4] = {192, 168, 0, 199};
  uint8_t header[21];
  header[20] = 0xEE;
  ipv4_outer_encode(header, source, destination, 17, 0x73, 0, 64, true, 0);
  const Bytes expected = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                          0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  CHECK(Bytes(header, header + 20) == expected);
  CHECK_EQ(header[20], 0xEE);  // exactly 20 bytes written
}

TEST(outer_ipv4_encode_checksum_matches_reference) {
  std::mt19937 random(5);
  for (int i = 0; i < 5000; i++) {
    uint8_t source[4], destination[4];
    for (auto& byte : source) byte = static_cast<uint8_t>(random());
    for (auto& byte : destination) byte = static_cast<uint8_t>(random());
    const uint8_t protocol = static_cast<uint8_t>(random());
    const uint16_t total = static_cast<uint16_t>(random());
    const uint8_t tos = static_cast<uint8_t>(random()), ttl = static_cast<uint8_t>(random());
    const bool df = random() & 1;
    const uint16_t id = static_cast<uint16_t>(random());
    Bytes h(20, 0xCC);  // garbage in the checksum field must not matter
    ipv4_outer_encode(h.data(), source, destination, protocol, total, tos, ttl, df, id);
    if (ref_fold(h) != 0xFFFF) CHECK(!"outer IPv4 header checksum does not verify");
    if (h[0] != 0x45 || h[1] != tos || get16(h, 2) != total || get16(h, 4) != id ||
        get16(h, 6) != (df ? 0x4000 : 0) || h[8] != ttl || h[9] != protocol ||
        std::memcmp(&h[12], source, 4) != 0 || std::memcmp(&h[16], destination, 4) != 0) {
      CHECK(!"outer IPv4 header field wrong");
    }
  }
}

TEST(outer_ipv6_encode_fields) {
  uint8_t source[16], destination[16];
  for (int i = 0; i < 16; i++) {
    source[i] = static_cast<uint8_t>(0x20 + i);
    destination[i] = static_cast<uint8_t>(0x40 + i);
  }
  Bytes h(41, 0xEE);
  ipv6_outer_encode(h.data(), source, destination, 47, 1234, 0xB9, 17, 0xFFABCDEF);
  CHECK_EQ(h[0], 0x6B);  // version 6, traffic class high nibble B
  CHECK_EQ(h[1], 0x9B);  // traffic class low nibble 9, flow label bits 19-16 (B of ABCDE)
  CHECK_EQ(get16(h, 2), 0xCDEF);
  CHECK_EQ(get16(h, 4), 1234);
  CHECK_EQ(h[6], 47);
  CHECK_EQ(h[7], 17);
  CHECK(std::memcmp(&h[8], source, 16) == 0);
  CHECK(std::memcmp(&h[24], destination, 16) == 0);
  CHECK_EQ(h[40], 0xEE);
  // What parse_ip_packet reads back.
  Bytes packet(h.begin(), h.begin() + 40);
  packet.resize(40 + 1234);
  const InnerIp ip = parsed(packet);
  CHECK_EQ(ip.dscp, 0xB9 >> 2);
  CHECK_EQ(ip.ecn, 1);
  CHECK_EQ(ip.ttl, 17);
  CHECK_EQ(ip.total_length, 40u + 1234u);
}

TEST(outer_fields_ttl) {
  Ipv4Spec spec;
  spec.ttl = 9;
  const InnerIp v4 = parsed(make_ipv4(spec, 40));
  CHECK_EQ(outer_fields_for(v4, kDefaultOuterTtl).ttl, 64);
  CHECK_EQ(outer_fields_for(v4, 200).ttl, 200);
  CHECK_EQ(outer_fields_for(v4, 0).ttl, 9);  // inherit
  Ipv6Spec spec6;
  spec6.hop_limit = 3;
  CHECK_EQ(outer_fields_for(parsed(make_ipv6(spec6, 40)), 0).ttl, 3);
  spec.ttl = 0;  // never forwarded by a router; a 0 TTL may not be sent
  CHECK_EQ(outer_fields_for(parsed(make_ipv4(spec, 40)), 0).ttl, kDefaultOuterTtl);
}

TEST(outer_fields_tos_copies_dscp_and_ecn) {
  for (int tos = 0; tos < 256; tos++) {
    Ipv4Spec spec;
    spec.tos = static_cast<uint8_t>(tos);
    const InnerIp v4 = parsed(make_ipv4(spec, 40));
    if (outer_fields_for(v4, 64).tos != tos) CHECK(!"IPv4 TOS not copied");
    if (outer_fields_for(v4, 64, false).tos != (tos & 3)) CHECK(!"DSCP not cleared, or ECN not copied");
    Ipv6Spec spec6;
    spec6.traffic_class = static_cast<uint8_t>(tos);
    const InnerIp v6 = parsed(make_ipv6(spec6, 40));
    if (outer_fields_for(v6, 64).tos != tos) CHECK(!"IPv6 traffic class not copied");
  }
  // CE in, CE out (RFC 6040 normal mode, unlike RFC 3168's reset to ECT(0)).
  Ipv4Spec ce;
  ce.tos = 0x03;
  CHECK_EQ(outer_fields_for(parsed(make_ipv4(ce, 40)), 64).tos & 3, kEcnCe);
}

TEST(outer_fields_df) {
  Ipv4Spec spec;
  spec.flags_fragment = 0x4000;
  CHECK(outer_fields_for(parsed(make_ipv4(spec, 40)), 64).dont_fragment);
  spec.flags_fragment = 0;
  CHECK(!outer_fields_for(parsed(make_ipv4(spec, 40)), 64).dont_fragment);
  CHECK(outer_fields_for(parsed(make_ipv6(Ipv6Spec{}, 40)), 64).dont_fragment);
}

TEST(outer_ipv4_decode_good) {
  Bytes b = outer_packet(47, 100, 0xBA);
  OuterIpv4 outer;
  CHECK(decode(b, 47, &outer) == OuterStatus::ok);
  CHECK_EQ(outer.payload_offset, 20u);
  CHECK_EQ(outer.payload_length, 100u);
  CHECK_EQ(outer.protocol, 47);
  CHECK(outer.source == b.data() + 12);
  CHECK(outer.destination == b.data() + 16);
  CHECK_EQ(outer.tos, 0xBA);
  CHECK_EQ(outer.ecn, 2);
  CHECK_EQ(outer.ttl, 64);
  // Trailing bytes beyond the total length are not payload.
  b.resize(b.size() + 6, 0);
  CHECK(decode(b, 47, &outer) == OuterStatus::ok);
  CHECK_EQ(outer.payload_length, 100u);
  // An empty payload is a valid packet (the codec above decides whether it is enough).
  CHECK(decode(outer_packet(47, 0), 47) == OuterStatus::ok);
}

TEST(outer_ipv4_decode_options) {
  Ipv4Spec spec;
  spec.protocol = 4;
  spec.options = 8;
  const Bytes b = make_ipv4(spec, 28 + 20);
  OuterIpv4 outer;
  CHECK(decode(b, 4, &outer) == OuterStatus::ok);
  CHECK_EQ(outer.payload_offset, 28u);
  CHECK_EQ(outer.payload_length, 20u);
}

TEST(outer_ipv4_decode_protocols) {
  CHECK(decode(outer_packet(4, 20), 0) == OuterStatus::ok);
  CHECK(decode(outer_packet(41, 40), 0) == OuterStatus::ok);
  CHECK(decode(outer_packet(47, 20), 0) == OuterStatus::wrong_protocol);
  CHECK(decode(outer_packet(4, 20), 41) == OuterStatus::wrong_protocol);
  CHECK(decode(outer_packet(41, 20), 4) == OuterStatus::wrong_protocol);
  CHECK(decode(outer_packet(17, 20), 47) == OuterStatus::wrong_protocol);
  CHECK(decode(outer_packet(47, 20), 47) == OuterStatus::ok);
}

TEST(outer_ipv4_decode_fragments) {
  CHECK(decode(outer_packet(47, 40, 0, 0x0000), 47) == OuterStatus::ok);  // no DF: still whole
  CHECK(decode(outer_packet(47, 40, 0, 0x8000), 47) == OuterStatus::ok);  // reserved bit: not a fragment
  CHECK(decode(outer_packet(47, 40, 0, 0x2000), 47) == OuterStatus::fragment);  // MF, offset 0
  CHECK(decode(outer_packet(47, 40, 0, 0x0001), 47) == OuterStatus::fragment);  // last fragment
  CHECK(decode(outer_packet(47, 40, 0, 0x5FFF), 47) == OuterStatus::fragment);
  // A fragment is reported before a wrong protocol.
  CHECK(decode(outer_packet(17, 40, 0, 0x2000), 47) == OuterStatus::fragment);
}

TEST(outer_ipv4_decode_malformed) {
  const Bytes good = outer_packet(47, 30);
  CHECK(decode(Bytes{}, 47) == OuterStatus::truncated);
  CHECK(decode(Bytes(good.begin(), good.begin() + 19), 47) == OuterStatus::truncated);
  CHECK(decode(make_ipv6(Ipv6Spec{}, 60), 47) == OuterStatus::bad_version);
  Bytes b = good;
  b[0] = 0x44;
  CHECK(decode(b, 47) == OuterStatus::bad_header_length);
  b = good;
  b[0] = 0x4F;  // 60-byte header, 50 bytes there
  CHECK(decode(b, 47) == OuterStatus::truncated);
  b = good;
  put16(b, 2, 19);
  CHECK(decode(b, 47) == OuterStatus::bad_total_length);
  put16(b, 2, static_cast<uint16_t>(good.size() + 1));
  CHECK(decode(b, 47) == OuterStatus::truncated);
  // Out is left alone on failure.
  OuterIpv4 outer;
  outer.ttl = 99;
  CHECK(decode(b, 47, &outer) != OuterStatus::ok);
  CHECK_EQ(outer.ttl, 99);
}

TEST(outer_round_trip_encode_decode_with_inner) {
  // Encapsulate an inner IPv6 packet the way the worker will and decode it back.
  Ipv6Spec spec6;
  spec6.traffic_class = 0x2F;  // DSCP 11, CE
  spec6.hop_limit = 20;
  const Bytes inner = make_ipv6(spec6, 200);
  const InnerIp ip = parsed(inner);
  const OuterFields fields = outer_fields_for(ip, kDefaultOuterTtl);
  Bytes packet(20 + inner.size());
  std::copy(inner.begin(), inner.end(), packet.begin() + 20);
  const uint8_t source[4] = {198, 18, 0, 1}, destination[4] = {198, 18, 0, 2};
  ipv4_outer_encode(packet.data(), source, destination, 41, static_cast<uint16_t>(packet.size()), fields.tos,
                    fields.ttl, fields.dont_fragment, 0);
  CHECK(ipv4_checksum_ok(packet));
  OuterIpv4 outer;
  CHECK(decode(packet, 0, &outer) == OuterStatus::ok);
  CHECK_EQ(outer.protocol, 41);
  CHECK_EQ(outer.tos, 0x2F);
  CHECK_EQ(outer.ttl, 64);
  CHECK_EQ(get16(packet, 6), 0x4000);  // DF for IPv6 inside
  CHECK(Bytes(packet.begin() + outer.payload_offset, packet.end()) == inner);
  const EcnDecap ecn = ecn_decapsulate(ip.ecn, outer.ecn);
  CHECK(!ecn.drop);
  CHECK_EQ(ecn.inner_result, kEcnCe);
}

TEST(outer_fields_defaults_for_non_ip_payloads) {
  const OuterFields fields;
  CHECK_EQ(fields.tos, 0);
  CHECK_EQ(fields.ttl, kDefaultOuterTtl);
  CHECK(fields.dont_fragment);
}
