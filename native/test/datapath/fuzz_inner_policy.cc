// Fuzz target: the inner-packet policy (datapath/inner_policy.h) on what a tunnel delivered or a
// device read: inspect_inner, then accept_ip (TUN: version, TTL, anti-spoofing by longest
// allowedIps match, RFC 6040 ECN, MSS clamp) or accept_ethernet (TAP: source MAC, loop, ECN,
// learning), and too_big / build_too_big (path MTU signalling).
//
// Every verdict is compared with a reference written from the policy's rules (the route of the
// source by a linear scan over the peers' prefixes, ECN by RFC 6040's table), and what a pass
// changes is checked: only the ECN bits (and the IPv4 header checksum, which stays valid), or with
// the clamp on the TCP MSS option and checksum; the learned FDB then points the source MAC at
// the sender. An ICMP error that is built must parse and go back to the packet's source.
//
// Input: byte 0 the configuration (bit 0 TAP, bit 1 learning, bit 2 MSS clamp, bit 3 an inner
// MTU, bits 4-5 the EtherType the tunnel claimed), byte 1 the sender (bit 0 the peer) and the
// outer ECN (bit 2 known, bits 3-4 its value), then the frame.
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "base/socket_address.h"
#include "base/stats_layout.h"
#include "datapath/inner_policy.h"
#include "datapath/worker_config.h"
#include "offload/offload_segment.h"
#include "tables/learned_fdb.h"
#include "tables/peer_table.h"
#include "wire/checksum.h"
#include "wire/ecn.h"
#include "wire/ethernet.h"
#include "wire/ip_packet.h"

namespace {

using namespace ovl;
using Bytes = std::vector<uint8_t>;

constexpr uint32_t kSlots = 4;
constexpr MacKey kDeviceMac = 0x02AA00000001ull;
constexpr MacKey kStaticMac = 0x020000000002ull;

[[noreturn]] void fail(const char* what, const Verdict& got, const Verdict& expected) {
  std::fprintf(stderr, "fuzz_inner_policy: %s (got %s, expected %s)\n", what, got.ok() ? "pass" : counter_name(got.reason()),
               expected.ok() ? "pass" : counter_name(expected.reason()));
  std::abort();
}
void require(bool condition, const char* what) {
  if (!condition) fail(what, Verdict::pass(), Verdict::pass());
}

RoutePrefix prefix(const char* text) { return *parse_route_prefix(text, 0); }

struct Peers {
  std::vector<std::vector<RoutePrefix>> routes = {
      {prefix("198.19.0.2/32"), prefix("10.2.0.0/16"), prefix("fd00:198:19::2/128"), prefix("fd00:2::/32")},
      {prefix("0.0.0.0/1"), prefix("198.19.0.0/24"), prefix("10.2.3.0/24"), prefix("::/1"), prefix("fd00::/8")},
  };
  std::unique_ptr<PeerTable> table;
  Peers() {
    std::vector<PeerSpec> specs(2);
    specs[0].slot = 0;
    specs[0].endpoint = *parse_socket_address("198.18.0.2", 4789);
    specs[0].allowed_ips = routes[0];
    specs[0].macs = {kStaticMac};
    specs[1].slot = 1;
    specs[1].endpoint = *parse_socket_address("fd00:198:18::3", 4789);
    specs[1].allowed_ips = routes[1];
    table = std::make_unique<PeerTable>(specs);
  }
  // The reference route: the longest prefix holding `address`, by a linear scan.
  uint32_t route(const uint8_t* address, bool ipv6) const {
    int best = -1;
    uint32_t peer = PeerTable::kNone;
    for (uint32_t p = 0; p < routes.size(); p++) {
      for (const RoutePrefix& r : routes[p]) {
        if (r.ipv6 != ipv6 || static_cast<int>(r.length) <= best) continue;
        bool inside = true;
        for (unsigned bit = 0; bit < r.length && inside; bit++) {
          const uint8_t mask = static_cast<uint8_t>(0x80 >> (bit % 8));
          inside = (r.address[bit / 8] & mask) == (address[bit / 8] & mask);
        }
        if (inside) {
          best = r.length;
          peer = p;
        }
      }
    }
    return peer;
  }
};

const Peers& peers() {
  static const Peers instance;
  return instance;
}

bool same(const Verdict& a, const Verdict& b) { return a.ok() == b.ok() && (a.ok() || a.reason() == b.reason()); }

// RFC 6040 §4.2 for the policy: outer CE over inner Not-ECT drops; otherwise the inner result.
Verdict reference_ecn(const InnerFrame& inner, const OuterInfo& outer) {
  if (!outer.ecn_known || !inner.ip_valid) return Verdict::pass();
  if (inner.parsed.ecn == kEcnNotEct && (outer.ecn & 3) == kEcnCe) return Verdict::drop(kDropEcn);
  return Verdict::pass();
}

// Which bytes of the frame a passing packet may have changed.
void check_changes(const Bytes& before, const uint8_t* after, const InnerFrame& inner, uint32_t link, bool clamp,
                   const OuterInfo& outer) {
  if (!inner.ip_valid) {
    require(before.empty() || std::memcmp(before.data(), after, before.size()) == 0, "a non-IP frame was changed");
    return;
  }
  const InnerIp& ip = inner.parsed;
  const bool tcp = ip.protocol == kIpProtocolTcp;
  for (size_t i = 0; i < before.size(); i++) {
    if (before[i] == after[i]) continue;
    const size_t at = i - link;
    const bool ecn_byte = i >= link && at == 1;
    const bool checksum = i >= link && ip.version == 4 && (at == 10 || at == 11);
    const bool clamped = clamp && tcp && i >= link && at >= ip.header_length;
    require(ecn_byte || checksum || clamped, "a pass changed a byte outside ECN, checksum and MSS");
  }
  InnerIp again;
  require(parse_ip_packet(after + link, before.size() - link, &again) == IpParse::ok, "no longer parses");
  const uint8_t expected_ecn = outer.ecn_known ? ecn_decapsulate(ip.ecn, outer.ecn).inner_result : ip.ecn;
  require(again.ecn == expected_ecn, "inner ECN is not RFC 6040's");
  require(again.dscp == ip.dscp && again.ttl == ip.ttl && again.total_length == ip.total_length, "header changed");
  if (ip.version == 4 && checksum_fold(checksum_add(before.data() + link, ip.header_length, 0)) == 0xFFFF) {
    require(checksum_fold(checksum_add(after + link, ip.header_length, 0)) == 0xFFFF, "IPv4 checksum broken");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t setup = data[0], sender = data[1];
  const Bytes frame(data + 2, data + size);

  WorkerConfig config;
  config.layer = (setup & 1) ? DeviceLayer::ethernet : DeviceLayer::ip;
  config.local = *parse_socket_address("198.18.0.1", 4789);
  config.learning = (setup & 2) != 0;
  config.mss_clamp_v4 = (setup & 4) ? 1360 : 0;
  config.mss_clamp_v6 = (setup & 4) ? 1340 : 0;
  config.max_inner_packet = (setup & 8) ? 60 + (sender >> 5) * 40 : 0;
  config.device_mac = kDeviceMac;
  const uint32_t link = config.link_header();
  std::vector<uint64_t> counters((kSlots + 1) * kSectionSize);
  WorkerContext context(config, WorkerStats(counters.data(), kSlots));
  context.table = peers().table.get();
  context.now = 1000;
  LearnedFdb fdb(64, 300);
  InnerPolicy policy(context, fdb);

  const uint32_t peer = sender & 1;
  OuterInfo outer;
  outer.ecn_known = (sender & 4) != 0;
  outer.ecn = (sender >> 3) & 3;

  // Exactly sized, so that ASan sees any read past the frame.
  std::unique_ptr<uint8_t[]> exact(new uint8_t[frame.empty() ? 1 : frame.size()]);
  if (!frame.empty()) std::memcpy(exact.get(), frame.data(), frame.size());
  const uint32_t length = static_cast<uint32_t>(frame.size());

  const InnerFrame inner = inspect_inner(exact.get(), length, link);
  const bool ip_frame = link == 0 || (length >= 14 && (load_be16(exact.get() + 12) == kEtherTypeIpv4 ||
                                                        load_be16(exact.get() + 12) == kEtherTypeIpv6));
  require((inner.ip != nullptr) == ip_frame, "inspect_inner: IP or not");
  if (inner.ip != nullptr) {
    require(inner.ip == exact.get() + link && inner.ip_length == length - link, "inspect_inner: where");
    InnerIp ip;
    require(inner.ip_valid == (parse_ip_packet(inner.ip, inner.ip_length, &ip) == IpParse::ok), "inspect_inner: valid");
  } else {
    require(!inner.ip_valid, "inspect_inner: valid without IP");
  }

  // The path MTU check, and the ICMP error it leads to.
  // As the transmitter asks it (for a runt frame the length wraps, but such a frame is not IP).
  const uint32_t packet = inner.length - link;
  const bool too_big = policy.too_big(inner, packet);
  require(too_big == (config.max_inner_packet != 0 && packet > config.max_inner_packet && inner.ip_valid &&
                      inner.parsed.dont_fragment),
          "too_big");
  if (too_big) {
    const uint8_t* icmp = nullptr;
    const uint32_t built = policy.build_too_big(inner, (sender & 2) != 0, &icmp);
    if (built != 0) {
      const uint32_t vnet = (sender & 2) ? kVirtioNetHeaderSize : 0;
      require(icmp != nullptr && built > vnet + link, "build_too_big: length");
      InnerIp reply;
      require(parse_ip_packet(icmp + vnet + link, built - vnet - link, &reply) == IpParse::ok, "ICMP does not parse");
      const size_t address = reply.version == 4 ? 4 : 16;
      require(reply.version == inner.parsed.version, "ICMP: IP version");
      require(std::memcmp(reply.destination, inner.parsed.source, address) == 0, "ICMP goes elsewhere");
      if (link) require(std::memcmp(icmp + vnet, exact.get() + 6, 6) == 0, "ICMP frame to another MAC");
    }
  }

  // Out of the tunnel.
  const Bytes before(exact.get(), exact.get() + length);
  if (link == 0) {
    static const uint16_t kTypes[4] = {kEtherTypeIpv4, kEtherTypeIpv6, kEtherTypeIpv4, kEtherTypeTransparentEthernet};
    const uint16_t ethertype = (setup & 0x30) == 0 && length > 0 && exact[0] >> 4 == 6 ? kEtherTypeIpv6
                                                                                       : kTypes[(setup >> 4) & 3];
    Verdict expected = Verdict::pass();
    const InnerIp& ip = inner.parsed;
    const bool version_matches = (ethertype == kEtherTypeIpv4 && ip.version == 4) || (ethertype == kEtherTypeIpv6 && ip.version == 6);
    if (!inner.ip_valid || !version_matches) expected = Verdict::drop(kDropMalformed);
    else if (ip.ttl == 0) expected = Verdict::drop(kDropTtlExpired);
    else if (peers().route(ip.source, ip.version == 6) != peer) expected = Verdict::drop(kDropSpoofed);
    else expected = reference_ecn(inner, outer);
    const Verdict got = policy.accept_ip(inner, ethertype, peer, outer);
    if (!same(got, expected)) fail("accept_ip", got, expected);
    if (got.ok()) check_changes(before, exact.get(), inner, 0, config.mss_clamp_v4 != 0, outer);
    else require(length == 0 || std::memcmp(before.data(), exact.get(), length) == 0, "a drop changed the packet");
  } else {
    Verdict expected = Verdict::pass();
    MacKey source = 0;
    if (length < kEthernetHeaderSize || !mac_is_valid_source(exact.get() + 6)) {
      expected = Verdict::drop(kDropMalformed);
    } else {
      source = mac_key(exact.get() + 6);
      expected = source == kDeviceMac ? Verdict::drop(kDropLoop) : reference_ecn(inner, outer);
    }
    const Verdict got = policy.accept_ethernet(inner, peer, outer);
    if (!same(got, expected)) fail("accept_ethernet", got, expected);
    if (got.ok()) {
      check_changes(before, exact.get(), inner, kEthernetHeaderSize, config.mss_clamp_v4 != 0, outer);
      const bool learnt = config.learning && source != kStaticMac;
      require(fdb.lookup(source, context.now) == (learnt ? peer : LearnedFdb::kNone), "learning");
      require(policy.learned_slot(source) == (learnt ? peer : LearnedFdb::kNone), "learned_slot");
    } else {
      require(length == 0 || std::memcmp(before.data(), exact.get(), length) == 0, "a drop changed the frame");
      require(fdb.size() == 0, "a dropped frame was learned");
    }
  }
  return 0;
}
