// Fuzz target for the IP header helpers: parse_ip_packet, ipv4_outer_decode, ip_set_ecn,
// outer_fields_for, ecn_decapsulate. Promises checked: an ok parse describes bytes inside the
// input and consistent lengths; the outer decoder agrees with the inner parser on what they
// share; rewriting ECN changes only the ECN bits (and, for IPv4, keeps a correct header
// checksum correct); an outer header encoded from the parsed fields decodes back to them.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "wire/checksum.h"
#include "wire/ecn.h"
#include "wire/ethernet.h"
#include "wire/ip_packet.h"
#include "wire/outer_ip.h"

namespace {

using namespace ovl;
using Bytes = std::vector<uint8_t>;

void require(bool condition) {
  if (!condition) std::abort();
}

bool inside(const uint8_t* p, size_t n, const Bytes& b) { return p >= b.data() && p + n <= b.data() + b.size(); }

void check_parse(const Bytes& b) {
  InnerIp ip;
  if (parse_ip_packet(b.data(), b.size(), &ip) != IpParse::ok) return;
  const size_t address = ip.version == 4 ? 4 : 16;
  require(ip.version == 4 || ip.version == 6);
  require(ip.header_length <= ip.total_length && ip.total_length <= b.size());
  require(inside(ip.source, address, b) && inside(ip.destination, address, b));
  require(ip.ecn < 4 && ip.dscp < 64);
  require(ethertype_for_ip_version(ip.version) == (ip.version == 4 ? 0x0800 : 0x86DD));

  // ECN rewrite: only the ECN bits (and the IPv4 checksum) change; a good checksum stays good.
  const bool checksum_good = ip.version == 4 && checksum_fold(checksum_add(b.data(), ip.header_length, 0)) == 0xFFFF;
  for (uint8_t ecn = 0; ecn < 4; ecn++) {
    Bytes c(b);
    ip_set_ecn(c.data(), ecn);
    InnerIp again;
    require(parse_ip_packet(c.data(), c.size(), &again) == IpParse::ok);
    require(again.ecn == ecn && again.dscp == ip.dscp && again.total_length == ip.total_length);
    for (size_t i = 0; i < c.size(); i++) {
      const bool may_change = i == 1 || (ip.version == 4 && (i == 10 || i == 11));
      if (!may_change) require(c[i] == b[i]);
    }
    if (checksum_good) require(checksum_fold(checksum_add(c.data(), ip.header_length, 0)) == 0xFFFF);
  }

  // Encapsulate with the derived outer fields and decode the outer header back.
  const OuterFields fields = outer_fields_for(ip, b.size() > 1 ? b[b.size() - 1] : 0, (b[0] & 1) != 0);
  require(fields.ttl != 0);
  require((fields.tos & 3) == ip.ecn);
  require(fields.dont_fragment == (ip.version == 6 || ip.dont_fragment));
  const uint8_t protocol = ip.version == 4 ? 4 : 41;
  Bytes packet(20 + ip.total_length);
  std::memcpy(packet.data() + 20, b.data(), ip.total_length);
  const uint8_t source[4] = {198, 18, 0, 1}, destination[4] = {198, 18, 0, 2};
  ipv4_outer_encode(packet.data(), source, destination, protocol, static_cast<uint16_t>(packet.size()), fields.tos,
                    fields.ttl, fields.dont_fragment, 1);
  if (packet.size() <= 0xFFFF) {
    OuterIpv4 outer;
    require(ipv4_outer_decode(packet.data(), packet.size(), 0, &outer) == OuterStatus::ok);
    require(outer.payload_offset == 20 && outer.payload_length == ip.total_length);
    require(outer.tos == fields.tos && outer.ttl == fields.ttl && outer.protocol == protocol);
    const EcnDecap decap = ecn_decapsulate(ip.ecn, outer.ecn);
    require(!decap.drop && !decap.unusual && decap.inner_result == ip.ecn);
  }
}

void check_outer(const Bytes& b, uint8_t expected) {
  OuterIpv4 outer;
  if (ipv4_outer_decode(b.data(), b.size(), expected, &outer) != OuterStatus::ok) return;
  require(outer.payload_offset >= 20 && outer.payload_offset + outer.payload_length <= b.size());
  require(expected == 0 ? (outer.protocol == 4 || outer.protocol == 41) : outer.protocol == expected);
  require((load_be16(b.data() + 6) & 0x3FFF) == 0);
  InnerIp ip;
  require(parse_ip_packet(b.data(), b.size(), &ip) == IpParse::ok);
  require(ip.version == 4 && ip.header_length == outer.payload_offset && ip.protocol == outer.protocol);
  require(ip.total_length == outer.payload_offset + outer.payload_length && ip.ecn == outer.ecn);
  require(outer.source == ip.source && outer.ttl == ip.ttl);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes b(data, data + size);
  check_parse(b);
  for (uint8_t expected : {0, 4, 41, 47}) check_outer(b, expected);
  if (size == 0) return 0;
  // Repaired: a consistent version, IHL and length, so the accepting paths are covered.
  const uint8_t selector = data[size - 1];
  if (selector & 1) {
    if (b.size() < 40) b.resize(40, 0);
    b[0] = static_cast<uint8_t>(0x60 | (b[0] & 0x0F));
    store_be16(&b[4], static_cast<uint16_t>(b.size() - 40 - (selector >> 5)));
    if (b[6] == 0) b[6] = 6;
  } else {
    if (b.size() < 24) b.resize(24, 0);
    b[0] = static_cast<uint8_t>(0x45 + (selector >> 1 & 1));
    store_be16(&b[2], static_cast<uint16_t>(b.size() - (selector >> 5)));
    if (selector & 0x04) store_be16(&b[6], load_be16(&b[6]) & 0x4000);
    b[9] = (selector & 0x08) ? 4 : 41;
    store_be16(&b[10], 0);
    store_be16(&b[10], ipv4_header_checksum(b.data(), size_t{b[0] & 0x0Fu} * 4));
  }
  check_parse(b);
  for (uint8_t expected : {0, 4, 41, 47}) check_outer(b, expected);
  return 0;
}
