#include "wire/ip_packet.h"

#include <cstring>
#include <random>

#include "ip_test_packets.h"
#include "test.h"

using namespace ovl;
using namespace ovl_test;

namespace {

IpParse parse(const Bytes& b, InnerIp* out = nullptr) {
  InnerIp scratch;
  return parse_ip_packet(b.data(), b.size(), out != nullptr ? out : &scratch);
}

}  // namespace

TEST(ip_parse_ipv4_fields) {
  // The classic header (192.168.0.1 -> 192.168.0.199, UDP, DF, TTL 64, total 0x73).
  Bytes b = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
             0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  b.resize(0x73, 0xAA);
  InnerIp ip;
  CHECK(parse(b, &ip) == IpParse::ok);
  CHECK_EQ(ip.version, 4);
  CHECK_EQ(ip.header_length, 20u);
  CHECK_EQ(ip.total_length, 0x73u);
  CHECK_EQ(ip.ttl, 64);
  CHECK_EQ(ip.ecn, 0);
  CHECK_EQ(ip.dscp, 0);
  CHECK(ip.dont_fragment);
  CHECK_EQ(ip.protocol, 17);
  CHECK(ip.source == b.data() + 12);
  CHECK(ip.destination == b.data() + 16);
  CHECK_EQ(ip.fragment_offset, 0);
  CHECK(!ip.more_fragments);
}

TEST(ip_parse_ipv4_tos_fragments_options) {
  Ipv4Spec spec;
  spec.tos = 0xBA;  // DSCP 46 (EF), ECT(0)
  spec.flags_fragment = 0x2000 | 0x0123;  // MF, offset 0x123, no DF
  spec.options = 4;
  const Bytes b = make_ipv4(spec, 100);
  InnerIp ip;
  CHECK(parse(b, &ip) == IpParse::ok);
  CHECK_EQ(ip.dscp, 46);
  CHECK_EQ(ip.ecn, 2);
  CHECK(!ip.dont_fragment);
  CHECK(ip.more_fragments);
  CHECK_EQ(ip.fragment_offset, 0x123);
  CHECK_EQ(ip.header_length, 24u);
  CHECK_EQ(ip.total_length, 100u);
  CHECK_EQ(ip.ttl, 63);
  // The evil bit and DF together: only DF is reported.
  Bytes c = make_ipv4(Ipv4Spec{}, 40);
  put16(c, 6, 0xC000);
  CHECK(parse(c, &ip) == IpParse::ok);
  CHECK(ip.dont_fragment && !ip.more_fragments && ip.fragment_offset == 0);
}

TEST(ip_parse_ipv4_rejects) {
  const Bytes good = make_ipv4(Ipv4Spec{}, 60);
  CHECK(parse(good) == IpParse::ok);
  CHECK(parse(Bytes{}) == IpParse::truncated);
  CHECK(parse(Bytes(good.begin(), good.begin() + 19)) == IpParse::truncated);
  for (uint8_t version : {0, 1, 5, 7, 15}) {
    Bytes b = good;
    b[0] = static_cast<uint8_t>(version << 4 | 5);
    CHECK(parse(b) == IpParse::bad_version);
  }
  for (uint8_t ihl = 0; ihl < 5; ihl++) {
    Bytes b = good;
    b[0] = static_cast<uint8_t>(0x40 | ihl);
    CHECK(parse(b) == IpParse::bad_header_length);
  }
  Bytes long_header = good;
  long_header[0] = 0x4F;  // 60-byte header in a 60-byte packet: fits
  CHECK(parse(long_header) == IpParse::ok);
  long_header.resize(59);
  put16(long_header, 2, 59);
  CHECK(parse(long_header) == IpParse::truncated);
  Bytes b = good;
  put16(b, 2, 19);
  CHECK(parse(b) == IpParse::bad_total_length);
  put16(b, 2, 20);  // a bare header is a packet
  CHECK(parse(b) == IpParse::ok);
  put16(b, 2, 61);
  CHECK(parse(b) == IpParse::truncated);
  // Trailing bytes (Ethernet padding) are allowed; total_length says where the packet ends.
  Bytes padded = make_ipv4(Ipv4Spec{}, 28);
  padded.resize(46, 0);
  InnerIp ip;
  CHECK(parse(padded, &ip) == IpParse::ok);
  CHECK_EQ(ip.total_length, 28u);
}

TEST(ip_parse_leaves_output_alone_on_error) {
  InnerIp ip;
  ip.ttl = 77;
  Bytes b = make_ipv4(Ipv4Spec{}, 60);
  put16(b, 2, 10);
  CHECK(parse(b, &ip) != IpParse::ok);
  CHECK_EQ(ip.ttl, 77);
  CHECK(ip.source == nullptr);
}

TEST(ip_parse_ipv6_fields) {
  Ipv6Spec spec;
  spec.traffic_class = 0xB9;  // DSCP 46, ECT(1)
  spec.hop_limit = 5;
  spec.next_header = 17;
  const Bytes b = make_ipv6(spec, 140);
  InnerIp ip;
  CHECK(parse(b, &ip) == IpParse::ok);
  CHECK_EQ(ip.version, 6);
  CHECK_EQ(ip.header_length, 40u);
  CHECK_EQ(ip.total_length, 140u);
  CHECK_EQ(ip.ttl, 5);
  CHECK_EQ(ip.dscp, 46);
  CHECK_EQ(ip.ecn, 1);
  CHECK(ip.dont_fragment);
  CHECK_EQ(ip.protocol, 17);
  CHECK(ip.source == b.data() + 8);
  CHECK(ip.destination == b.data() + 24);
  // Every traffic class value comes out right, whatever the flow label.
  for (int tc = 0; tc < 256; tc++) {
    Ipv6Spec s;
    s.traffic_class = static_cast<uint8_t>(tc);
    s.flow_label = 0xFFFFF;
    const Bytes p = make_ipv6(s, 40);
    CHECK(parse(p, &ip) == IpParse::ok);
    if (ip.dscp != tc >> 2 || ip.ecn != (tc & 3)) CHECK(!"traffic class misread");
  }
}

TEST(ip_parse_ipv6_rejects) {
  const Bytes good = make_ipv6(Ipv6Spec{}, 80);
  CHECK(parse(Bytes(good.begin(), good.begin() + 39)) == IpParse::truncated);
  Bytes b = good;
  put16(b, 4, 41);  // claims one byte more than there is
  CHECK(parse(b) == IpParse::truncated);
  // Padding after the stated length is fine.
  put16(b, 4, 10);
  InnerIp ip;
  CHECK(parse(b, &ip) == IpParse::ok);
  CHECK_EQ(ip.total_length, 50u);
  // Payload length 0: a jumbogram when a hop-by-hop header follows, else a bare header.
  put16(b, 4, 0);
  b[6] = 0;
  CHECK(parse(b) == IpParse::bad_total_length);
  b[6] = 59;  // no next header
  CHECK(parse(b, &ip) == IpParse::ok);
  CHECK_EQ(ip.total_length, 40u);
}

TEST(ip_ethertype_for_version) {
  CHECK_EQ(ethertype_for_ip_version(4), 0x0800);
  CHECK_EQ(ethertype_for_ip_version(6), 0x86DD);
  CHECK_EQ(ethertype_for_ip_version(0), 0);
  CHECK_EQ(ethertype_for_ip_version(5), 0);
}

TEST(ip_set_ecn_ipv4_keeps_checksum_and_dscp) {
  std::mt19937 random(11);
  for (int tos = 0; tos < 256; tos++) {
    for (uint8_t ecn = 0; ecn < 4; ecn++) {
      Ipv4Spec spec;
      spec.tos = static_cast<uint8_t>(tos);
      spec.id = static_cast<uint16_t>(random());
      spec.ttl = static_cast<uint8_t>(random());
      spec.options = (random() % 11) * 4;
      const Bytes before = make_ipv4(spec, 20 + spec.options + random() % 50);
      Bytes after = before;
      ip_set_ecn(after.data(), ecn);
      if (after[1] != ((tos & 0xFC) | ecn)) CHECK(!"TOS byte wrong");
      if (!ipv4_checksum_ok(after)) CHECK(!"header checksum broken by the ECN rewrite");
      // Exactly the TOS byte and the checksum changed, and the checksum equals a recomputation.
      Bytes recomputed = after;
      fix_ipv4_checksum(recomputed);
      if (get16(recomputed, 10) != get16(after, 10)) CHECK(!"incremental checksum differs from recomputation");
      for (size_t i = 0; i < before.size(); i++) {
        if (i != 1 && i != 10 && i != 11 && before[i] != after[i]) CHECK(!"ip_set_ecn touched another byte");
      }
    }
  }
  // Out-of-range ECN values are masked.
  Bytes b = make_ipv4(Ipv4Spec{}, 40);
  ip_set_ecn(b.data(), 0xFF);
  CHECK_EQ(b[1], 3);
  CHECK(ipv4_checksum_ok(b));
}

TEST(ip_set_ecn_ipv4_keeps_a_bad_checksum_bad) {
  Bytes b = make_ipv4(Ipv4Spec{}, 40);
  b[10] ^= 0x10;
  for (uint8_t ecn = 0; ecn < 4; ecn++) {
    ip_set_ecn(b.data(), ecn);
    CHECK(!ipv4_checksum_ok(b));
  }
  // Exactly as wrong as before: fixing the damage makes it right.
  b[10] ^= 0x10;
  CHECK(ipv4_checksum_ok(b));
}

TEST(ip_set_ecn_ipv6_touches_only_the_ecn_bits) {
  for (int tc = 0; tc < 256; tc++) {
    for (uint8_t ecn = 0; ecn < 4; ecn++) {
      Ipv6Spec spec;
      spec.traffic_class = static_cast<uint8_t>(tc);
      spec.flow_label = 0xABCDE;
      const Bytes before = make_ipv6(spec, 60);
      Bytes after = before;
      ip_set_ecn(after.data(), ecn);
      InnerIp ip;
      CHECK(parse(after, &ip) == IpParse::ok);
      if (ip.ecn != ecn || ip.dscp != tc >> 2) CHECK(!"traffic class wrong after ip_set_ecn");
      if ((after[1] & 0xCF) != (before[1] & 0xCF) || after[0] != before[0] ||
          !std::equal(before.begin() + 2, before.end(), after.begin() + 2)) {
        CHECK(!"ip_set_ecn touched version, flow label or more");
      }
    }
  }
}
