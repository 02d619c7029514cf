// Writes the seed corpus of every fuzz target (native/test/corpus/<target>/): real packets, built
// by the core's own encoders (the tunnels, GRE, ESP) around hand-built IPv4/IPv6/TCP/UDP/ICMP
// packets and Ethernet frames with correct checksums, laid out as each target reads its input
// (selector bytes first, where a target has them). Run by hand after a target's input layout
// changes:
//
//   cmake --build native/build --target make_seed_corpus && native/build/make_seed_corpus native/test/corpus
//
// It writes gen-* files and leaves others (inputs the fuzzer found and someone kept) alone. Every
// file is small: the whole corpus stays a few hundred KB.
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "base/packet_buffer.h"
#include "base/socket_address.h"
#include "tables/peer_table.h"
#include "tunnel/esp/esp_codec.h"
#include "tunnel/esp/esp_sa.h"
#include "tunnel/geneve_codec.h"
#include "tunnel/gre_codec.h"
#include "tunnel/tunnel.h"
#include "tunnel/vxlan_codec.h"
#include "wire/ethernet.h"
#include "reference_checksum.h"

namespace {

using namespace ovl;
using Bytes = std::vector<uint8_t>;

std::string root;
size_t files_written = 0, bytes_written = 0;

void put16(Bytes& b, size_t at, uint32_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}
void put32(Bytes& b, size_t at, uint32_t v) {
  put16(b, at, v >> 16);
  put16(b, at + 2, v & 0xFFFF);
}
Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

void write_seed(const std::string& target, const std::string& name, const Bytes& bytes) {
  const std::string dir = root + "/" + target;
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    std::perror(dir.c_str());
    std::exit(1);
  }
  const std::string path = dir + "/gen-" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr || (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) ||
      std::fclose(f) != 0) {
    std::perror(path.c_str());
    std::exit(1);
  }
  files_written++;
  bytes_written += bytes.size();
}

// ---- inner packets ----

const Bytes kSrc4 = {198, 19, 0, 2}, kDst4 = {198, 19, 0, 1};
const Bytes kSrc6 = {0xfd, 0, 0x01, 0x98, 0, 0x19, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
const Bytes kDst6 = {0xfd, 0, 0x01, 0x98, 0, 0x19, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

struct Ip {
  int version = 4;
  Bytes source, destination;
  uint8_t protocol = 6;
  uint8_t tos = 0;  // DSCP << 2 | ECN
  uint8_t ttl = 64;
  bool dont_fragment = true;
  uint16_t id = 0x1c46;
  Bytes options;  // IPv4 options, a multiple of 4
};

Ip v4(uint8_t protocol = 6) {
  Ip ip;
  ip.source = kSrc4;
  ip.destination = kDst4;
  ip.protocol = protocol;
  return ip;
}
Ip v6(uint8_t protocol = 6) {
  Ip ip;
  ip.version = 6;
  ip.source = kSrc6;
  ip.destination = kDst6;
  ip.protocol = protocol;
  return ip;
}

// The IP header in front of `l4` (whose checksum, at `checksum_at` when given, gets filled in).
Bytes ip_packet(const Ip& ip, Bytes l4, int checksum_at = -1) {
  if (checksum_at >= 0) {
    put16(l4, static_cast<size_t>(checksum_at), 0);
    Bytes pseudo_ip(ip.version == 4 ? 20 : 40, 0);
    if (ip.version == 4) {
      std::memcpy(&pseudo_ip[12], ip.source.data(), 4);
      std::memcpy(&pseudo_ip[16], ip.destination.data(), 4);
    } else {
      std::memcpy(&pseudo_ip[8], ip.source.data(), 16);
      std::memcpy(&pseudo_ip[24], ip.destination.data(), 16);
    }
    const Bytes all = ovl_test::ref_pseudo_and_l4(pseudo_ip.data(), ip.version, l4.data(), l4.size(), ip.protocol);
    uint16_t sum = static_cast<uint16_t>(~ovl_test::ref_fold(all));
    if (ip.protocol == 17 && sum == 0) sum = 0xFFFF;
    put16(l4, static_cast<size_t>(checksum_at), sum);
  }
  Bytes h;
  if (ip.version == 4) {
    h.assign(20 + ip.options.size(), 0);
    h[0] = static_cast<uint8_t>(0x40 | h.size() / 4);
    h[1] = ip.tos;
    put16(h, 2, static_cast<uint32_t>(h.size() + l4.size()));
    put16(h, 4, ip.id);
    put16(h, 6, ip.dont_fragment ? 0x4000 : 0);
    h[8] = ip.ttl;
    h[9] = ip.protocol;
    std::memcpy(&h[12], ip.source.data(), 4);
    std::memcpy(&h[16], ip.destination.data(), 4);
    std::copy(ip.options.begin(), ip.options.end(), h.begin() + 20);
    put16(h, 10, static_cast<uint16_t>(~ovl_test::ref_fold(h)));
  } else {
    h.assign(40, 0);
    h[0] = static_cast<uint8_t>(0x60 | ip.tos >> 4);
    h[1] = static_cast<uint8_t>((ip.tos & 0x0F) << 4 | 0x0A);
    put16(h, 2, 0xBCDE);
    put16(h, 4, static_cast<uint32_t>(l4.size()));
    h[6] = ip.protocol;
    h[7] = ip.ttl;
    std::memcpy(&h[8], ip.source.data(), 16);
    std::memcpy(&h[24], ip.destination.data(), 16);
  }
  return cat({h, l4});
}

Bytes pattern(size_t n, uint8_t seed = 0) {
  Bytes p(n);
  for (size_t i = 0; i < n; i++) p[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 8));
  return p;
}

// A TCP segment: flags (0x02 SYN, 0x10 ACK, 0x18 PSH|ACK), options as given, then payload.
Bytes tcp(uint8_t flags, Bytes options, size_t payload, uint32_t seq = 0x1000, uint16_t sport = 40000) {
  while (options.size() % 4) options.push_back(1);
  Bytes t(20, 0);
  put16(t, 0, sport);
  put16(t, 2, 443);
  put32(t, 4, seq);
  put32(t, 8, (flags & 0x10) ? 0x2000 : 0);
  t[12] = static_cast<uint8_t>((20 + options.size()) / 4 << 4);
  t[13] = flags;
  put16(t, 14, 64240);
  return cat({t, options, pattern(payload, static_cast<uint8_t>(seq))});
}
const Bytes kSynOptions = {2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 1, 3, 3, 7};  // MSS 1460, SACK, TS, WS

Bytes udp(size_t payload, uint16_t dport = 53) {
  Bytes u(8, 0);
  put16(u, 0, 51000);
  put16(u, 2, dport);
  put16(u, 4, static_cast<uint32_t>(8 + payload));
  return cat({u, pattern(payload, 0x55)});
}

Bytes icmp_echo(int version, size_t payload) {
  Bytes e(8, 0);
  e[0] = version == 4 ? 8 : 128;
  put16(e, 4, 0x4242);
  put16(e, 6, 1);
  return cat({e, pattern(payload, 0x33)});
}

Bytes tcp4(uint8_t flags, size_t payload, Ip ip = v4()) {
  return ip_packet(ip, tcp(flags, flags & 0x02 ? kSynOptions : Bytes{}, payload), 16);
}
Bytes tcp6(uint8_t flags, size_t payload, Ip ip = v6()) {
  return ip_packet(ip, tcp(flags, flags & 0x02 ? kSynOptions : Bytes{}, payload), 16);
}
Bytes udp4(size_t payload, Ip ip = v4(17)) { return ip_packet(ip, udp(payload), 6); }
Bytes udp6(size_t payload, Ip ip = v6(17)) { return ip_packet(ip, udp(payload), 6); }
Bytes ping4(size_t payload) {
  Bytes e = icmp_echo(4, payload);
  put16(e, 2, static_cast<uint16_t>(~ovl_test::ref_fold(e)));
  return ip_packet(v4(1), e);
}
Bytes ping6(size_t payload) { return ip_packet(v6(58), icmp_echo(6, payload), 2); }

const Bytes kMacA = {0x02, 0, 0, 0, 0, 0x01}, kMacB = {0x02, 0, 0, 0, 0, 0x02};
const Bytes kBroadcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

Bytes ether(const Bytes& dst, const Bytes& src, uint16_t type, const Bytes& payload, int tags = 0) {
  Bytes f = cat({dst, src});
  for (int t = 0; t < tags; t++) {
    Bytes tag(4);
    put16(tag, 0, tags == 2 && t == 0 ? 0x88A8 : 0x8100);
    put16(tag, 2, static_cast<uint32_t>(100 + t));
    f = cat({f, tag});
  }
  Bytes type_bytes(2);
  put16(type_bytes, 0, type);
  return cat({f, type_bytes, payload});
}
Bytes arp_request() {
  Bytes a = {0, 1, 0x08, 0, 6, 4, 0, 1};
  return ether(kBroadcast, kMacA, 0x0806, cat({a, kMacA, kSrc4, Bytes(6, 0), kDst4}));
}

// A handful of inner frames of every kind, for the targets that take any frame.
std::vector<std::pair<std::string, Bytes>> ip_packets() {
  Ip ect = v4();
  ect.tos = 0x2a;  // DSCP 10, ECT(0)
  Ip ce6 = v6();
  ce6.tos = 0x03;
  Ip options = v4();
  options.options = {0x94, 0x04, 0, 0};  // router alert
  Ip fragment = v4(17);
  fragment.dont_fragment = false;
  return {
      {"ipv4-tcp-syn", tcp4(0x02, 0)},         {"ipv4-tcp-ack-data", tcp4(0x18, 120)},
      {"ipv4-tcp-ect", tcp4(0x10, 40, ect)},   {"ipv4-udp", udp4(60)},
      {"ipv4-udp-no-df", udp4(30, fragment)},  {"ipv4-icmp-echo", ping4(56)},
      {"ipv4-options", tcp4(0x10, 16, options)}, {"ipv6-tcp-syn", tcp6(0x02, 0)},
      {"ipv6-tcp-data", tcp6(0x18, 100)},      {"ipv6-tcp-ce", tcp6(0x10, 20, ce6)},
      {"ipv6-udp", udp6(48)},                  {"ipv6-icmp-echo", ping6(56)},
  };
}
std::vector<std::pair<std::string, Bytes>> ethernet_frames() {
  return {
      {"eth-ipv4-tcp", ether(kMacB, kMacA, 0x0800, tcp4(0x18, 64))},
      {"eth-ipv6-udp", ether(kMacB, kMacA, 0x86DD, udp6(32))},
      {"eth-arp", arp_request()},
      {"eth-vlan-ipv4", ether(kMacB, kMacA, 0x0800, ping4(24), 1)},
      {"eth-broadcast-ipv4", ether(kBroadcast, kMacA, 0x0800, udp4(20))},
  };
}

// ---- per target ----

void address_text() {
  const char* texts[] = {"02:00:5e:10:00:0a", "02:AB:cd:Ef:00:0A", "ff:ff:ff:ff:ff:ff", "02:00:5e:10:00",
                         "198.18.0.1", "255.255.255.255", "0.0.0.0", "fd00::1", "fd00:198:18::2", "::ffff:198.18.0.1",
                         "::", "fe80::1%lo", "2001:db8:0:0:1:0:0:1", "198.19.0.0/16", "198.19.0.1/32",
                         "0.0.0.0/0", "fd00:198:19::/64", "::/0", "fd00::2/128", "198.19.0.0/33", "fd00::/129",
                         "10.0.0.0/024", "1.2.3.4/", "::1/1x"};
  int n = 0;
  for (const char* t : texts) {
    write_seed("fuzz_address_text", std::to_string(n++), Bytes(t, t + std::strlen(t)));
  }
}

void checksum() {
  int n = 0;
  for (const auto& [name, packet] : ip_packets()) {
    if (n >= 6) break;
    const uint8_t selectors[2] = {static_cast<uint8_t>(n * 9), static_cast<uint8_t>(0x40 | n)};
    for (uint8_t s : selectors) {
      Bytes input(packet);
      input[0] = s;
      write_seed("fuzz_checksum", name + "-" + std::to_string(s), input);
    }
    n++;
  }
  Bytes stretched = tcp4(0x10, 40);
  stretched[0] = 0xC1;  // stretched past 64 KB
  stretched[1] = 0xF0;
  write_seed("fuzz_checksum", "stretched", stretched);
}

void esp_decode() {
  // Selector bits: 0-1 cipher, 2 ESN, 3 Ethernet device, 4 sequence past 2^32, 5 repair the
  // trailer, 6-7 the next header repair picks. The rest is the plaintext: payload, padding, pad
  // length, next header.
  auto plaintext = [](const Bytes& payload, uint8_t next_header) {
    Bytes p(payload);
    const size_t pad = (4 - (p.size() + 2) % 4) % 4;
    for (size_t i = 0; i < pad; i++) p.push_back(static_cast<uint8_t>(i + 1));
    p.push_back(static_cast<uint8_t>(pad));
    p.push_back(next_header);
    return p;
  };
  const auto packets = ip_packets();
  for (size_t i = 0; i < packets.size(); i += 2) {
    const Bytes& packet = packets[i].second;
    const uint8_t nh = packet[0] >> 4 == 6 ? 41 : 4;
    const uint8_t selector = static_cast<uint8_t>((i / 2) % 3 | (i & 4 ? 0x04 : 0) | (i & 8 ? 0x10 : 0));
    write_seed("fuzz_esp_decode", packets[i].first, cat({{selector}, plaintext(packet, nh)}));
  }
  const auto frames = ethernet_frames();
  write_seed("fuzz_esp_decode", "eth-frame", cat({{0x09}, plaintext(frames[0].second, 143)}));
  write_seed("fuzz_esp_decode", "dummy", cat({{0x02}, plaintext(pattern(30), 59)}));
  write_seed("fuzz_esp_decode", "repaired-v6", cat({{0x66}, pattern(70)}));
  write_seed("fuzz_esp_decode", "repaired-eth", cat({{0xAD}, pattern(40)}));
  write_seed("fuzz_esp_decode", "tfc-padding", cat({{0x01}, plaintext(cat({udp4(20), Bytes(17, 0)}), 4)}));
}

Bytes gre(uint16_t protocol, const Bytes& payload, bool checksum, std::optional<uint32_t> key, bool sequence,
          uint32_t sequence_number = 7) {
  GreOptions options;
  options.checksum = checksum;
  options.key = key;
  options.sequence = sequence;
  Bytes packet(gre_header_size(options) + payload.size());
  std::copy(payload.begin(), payload.end(), packet.begin() + gre_header_size(options));
  gre_encode(packet.data(), options, protocol, sequence_number, packet.data() + gre_header_size(options), payload.size());
  return packet;
}

void gre_decode() {
  const Bytes ip4 = tcp4(0x18, 40), ip6 = udp6(30), frame = ethernet_frames()[0].second;
  write_seed("fuzz_gre_decode", "ipv4", gre(0x0800, ip4, false, std::nullopt, false));
  write_seed("fuzz_gre_decode", "ipv6", gre(0x86DD, ip6, false, std::nullopt, false));
  write_seed("fuzz_gre_decode", "ethernet", gre(0x6558, frame, false, std::nullopt, false));
  write_seed("fuzz_gre_decode", "ipv4-key", gre(0x0800, ip4, false, 42u, false));
  write_seed("fuzz_gre_decode", "ipv4-csum", gre(0x0800, ip4, true, std::nullopt, false));
  write_seed("fuzz_gre_decode", "ipv6-csum-key-seq", gre(0x86DD, ip6, true, 0x01020304u, true));
  write_seed("fuzz_gre_decode", "ethernet-key-seq", gre(0x6558, frame, false, 7u, true, 0xFFFFFFFF));
  write_seed("fuzz_gre_decode", "ethernet-csum-key", gre(0x6558, frame, true, 0u, false));
  Bytes version1 = gre(0x0800, ip4, false, std::nullopt, false);
  version1[1] |= 1;  // version 1 (PPTP): refused
  write_seed("fuzz_gre_decode", "version-1", version1);
}

void icmp_too_big() {
  for (const auto& [name, packet] : ip_packets()) write_seed("fuzz_icmp_too_big", name, packet);
  write_seed("fuzz_icmp_too_big", "ipv4-large", tcp4(0x10, 1400));
  write_seed("fuzz_icmp_too_big", "ipv6-large", tcp6(0x10, 1400));
  for (const auto& [name, frame] : ethernet_frames()) write_seed("fuzz_icmp_too_big", name, frame);
}

void inner_policy() {
  // Byte 0: bit 0 TAP, 1 learning, 2 MSS clamp, 3 an inner MTU, 4-5 the claimed EtherType.
  // Byte 1: bit 0 the second peer, 1 vnet, 2 outer ECN known, 3-4 its value, 5-7 the MTU step.
  int n = 0;
  for (const auto& [name, packet] : ip_packets()) {
    const uint8_t setup = static_cast<uint8_t>((n % 2 ? 0x04 : 0) | (n % 3 == 0 ? 0x08 : 0));
    const uint8_t sender = static_cast<uint8_t>((n % 4 == 1 ? 0x04 | 0x18 : 0) | (n % 5 == 2 ? 0x04 | 0x10 : 0) | (n % 3 << 5));
    write_seed("fuzz_inner_policy", "tun-" + name, cat({{setup, sender}, packet}));
    n++;
  }
  Ip other = v4();
  other.source = {10, 2, 3, 4};  // routed to the second peer by its /24
  write_seed("fuzz_inner_policy", "tun-second-peer", cat({{0x00, 0x01}, tcp4(0x10, 20, other)}));
  Ip expired = v6();
  expired.ttl = 0;
  write_seed("fuzz_inner_policy", "tun-ttl-0", cat({{0x10, 0x00}, tcp6(0x10, 8, expired)}));
  for (const auto& [name, frame] : ethernet_frames()) {
    write_seed("fuzz_inner_policy", "tap-" + name, cat({{0x0F, 0x44}, frame}));
  }
  write_seed("fuzz_inner_policy", "tap-syn-clamp", cat({{0x07, 0x00}, ether(kMacB, kMacA, 0x0800, tcp4(0x02, 0))}));
  write_seed("fuzz_inner_policy", "tap-own-mac",
             cat({{0x03, 0x00}, ether(kMacB, {0x02, 0xAA, 0, 0, 0, 0x01}, 0x0800, udp4(10))}));
  write_seed("fuzz_inner_policy", "tap-big-df-v6", cat({{0x09, 0x02}, ether(kMacB, kMacA, 0x86DD, tcp6(0x10, 300))}));
}

void ip_packet_target() {
  for (const auto& [name, packet] : ip_packets()) write_seed("fuzz_ip_packet", name, packet);
  // Outer IPv4 around an inner packet, as a raw socket delivers IP-in-IP.
  Ip outer4 = v4(4);
  outer4.source = {198, 18, 0, 1};
  outer4.destination = {198, 18, 0, 2};
  write_seed("fuzz_ip_packet", "outer-ipip", ip_packet(outer4, tcp4(0x10, 20)));
  Ip outer6 = outer4;
  outer6.protocol = 41;
  write_seed("fuzz_ip_packet", "outer-ipv6-in-ipv4", ip_packet(outer6, udp6(20)));
  Ip outer_gre = outer4;
  outer_gre.protocol = 47;
  write_seed("fuzz_ip_packet", "outer-gre", ip_packet(outer_gre, gre(0x0800, udp4(12), false, std::nullopt, false)));
}

void learned_fdb() {
  // [cap, ageing], then [op, mac, slot, time]: op % 5 0-1 learn, 2 lookup, 3 expire (bit 6) or
  // retain (slot byte = mask of slots kept), 4 snapshot; op bit 7 spreads the MAC.
  const std::vector<Bytes> sequences = {
      {8, 10, 0, 1, 0, 1, 0, 2, 1, 1, 2, 1, 0, 1, 2, 2, 0, 1, 4, 0, 0, 0, 3 | 0x40, 0, 0, 20, 2, 1, 0, 0},
      {2, 5, 0, 1, 0, 0, 0, 2, 1, 0, 0, 3, 2, 0, 2, 3, 0, 0, 4, 0, 0, 0xFF, 2, 1, 0, 1, 3, 0, 0x02, 0},
      {31, 64, 0x80, 7, 3, 1, 0x81, 9, 4, 1, 2, 7, 0, 70, 4, 0, 0, 0, 1, 7, 5, 0xFF, 2, 7, 0, 0, 3, 0, 0xF0, 0},
      {0, 1, 0, 1, 0, 0, 2, 1, 0, 0, 4, 0, 0, 0},
      {16, 30, 0, 1, 0, 29, 2, 1, 0, 1, 2, 1, 0, 0xFF, 0, 2, 1, 1, 3, 0x40, 0, 30, 2, 2, 0, 0, 4, 0, 0, 0},
  };
  for (size_t i = 0; i < sequences.size(); i++) write_seed("fuzz_learned_fdb", std::to_string(i), sequences[i]);
}

void mss_clamp() {
  Ip ip = v4();
  ip.options = {1, 1, 1, 0};
  const Bytes syn_ack4 = ip_packet(v4(), tcp(0x12, {2, 4, 0x23, 0x28, 1, 1, 4, 2}, 0), 16);
  const Bytes syn_no_mss = ip_packet(v4(), tcp(0x02, {1, 3, 3, 7}, 0), 16);
  const Bytes syn_two_mss = ip_packet(v6(), tcp(0x02, {2, 4, 0x05, 0xb4, 2, 4, 0x20, 0x00}, 0), 16);
  const std::vector<std::pair<std::string, Bytes>> packets = {
      {"ipv4-syn", tcp4(0x02, 0)},          {"ipv6-syn", tcp6(0x02, 0)},
      {"ipv4-syn-options", tcp4(0x02, 0, ip)}, {"ipv4-syn-ack", syn_ack4},
      {"ipv4-syn-no-mss", syn_no_mss},      {"ipv6-syn-two-mss", syn_two_mss},
      {"ipv4-ack", tcp4(0x10, 30)},         {"ipv6-udp", udp6(20)},
  };
  for (const auto& [name, packet] : packets) {
    write_seed("fuzz_mss_clamp", name, packet);
  }
}

void offload_coalesce() {
  // [mode, sizing] then control bytes: mode bit 0 Ethernet, 1 IPv6, 2 generated segments, 3 small
  // buffers, 4 two flows; sizing: MSS 1 + sizing % 40, count 2 + (sizing >> 6) * 4.
  const std::vector<Bytes> inputs = {
      {0x05, 0xE7, 3, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
      {0x07, 0xD0, 1, 0x00, 0x00, 0x18, 0x00, 0x00, 0x20, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00},
      {0x14, 0x8F, 2, 0x00, 0x01, 0x00, 0x01, 0x06, 0x01, 0x80, 0x05, 0x10, 0x00, 0x01},
      {0x16, 0xC9, 0, 0x00, 0x00, 0x01, 0x01, 0x00, 0x01, 0x70, 0x02, 0x00, 0x00, 0x01, 0x00},
      {0x0D, 0x63, 3, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
      {0x04, 0x05, 1, 0x00, 0x78, 0x12, 0x00, 0x00},
  };
  for (size_t i = 0; i < inputs.size(); i++) write_seed("fuzz_offload_coalesce", "generated-" + std::to_string(i), inputs[i]);
  // Raw mode: frames cut from the input, each a length byte then its bytes.
  Bytes raw = {0x01, 0x00};
  for (const Bytes& frame : {ether(kMacB, kMacA, 0x0800, tcp4(0x10, 20)), ether(kMacB, kMacA, 0x0800, tcp4(0x10, 20))}) {
    raw.push_back(static_cast<uint8_t>(frame.size()));
    raw.insert(raw.end(), frame.begin(), frame.end());
  }
  write_seed("fuzz_offload_coalesce", "raw-ethernet", raw);
}

void offload_segment() {
  // [mode, shape, gso_size, out count, hdr_len], then the super-frame. mode & 7: 0 none, 1 TCPv4,
  // 2 TCPv6, 3 UDP L4; bits 3-4 the vnet flags (1 NEEDS_CSUM). shape bit 0 Ethernet, 1 repair.
  const Bytes tso4 = ether(kMacB, kMacA, 0x0800, tcp4(0x18, 400));
  const Bytes tso6 = ether(kMacB, kMacA, 0x86DD, tcp6(0x18, 300));
  const Bytes uso4 = udp4(350);
  write_seed("fuzz_offload_segment", "tcpv4-eth", cat({{0x09, 0x01, 99, 47, 14 + 20 + 20}, tso4}));
  write_seed("fuzz_offload_segment", "tcpv6-eth", cat({{0x0A, 0x01, 59, 47, 14 + 40 + 20}, tso6}));
  write_seed("fuzz_offload_segment", "tcpv4-eth-repair", cat({{0x09, 0x03, 31, 30, 0x80}, tso4}));
  write_seed("fuzz_offload_segment", "udp-ip-repair", cat({{0x0B, 0x02, 63, 20, 0x80}, uso4}));
  write_seed("fuzz_offload_segment", "tcpv6-ip-repair-hbh", cat({{0x0A, 0x22, 40, 40, 0x80}, tcp6(0x10, 200)}));
  write_seed("fuzz_offload_segment", "none-needs-csum", cat({{0x08, 0x00, 0xFF, 1, 20}, udp4(40)}));
  write_seed("fuzz_offload_segment", "tcpv4-chunk", cat({{0x09, 0x43, 20, 5, 0x83}, tso4}));
  write_seed("fuzz_offload_segment", "tcpv4-ecn", cat({{0x0C, 0x01, 60, 47, 54}, tso4}));
}

void packet_frame() {
  // [repair, vlan case], then the frame; repair bit 0 on, 1 IPv6, 2 a tag, 3 UDP, 4 two tags.
  auto partial = [](Bytes frame, size_t l3, int version, size_t field) {
    // What a sender offloading its checksum leaves: the pseudo-header sum in the field.
    const size_t l4 = l3 + (version == 4 ? size_t{frame[l3] & 0x0Fu} * 4 : 40);
    const uint8_t protocol = version == 4 ? frame[l3 + 9] : frame[l3 + 6];
    const Bytes pseudo = ovl_test::ref_pseudo_and_l4(&frame[l3], version, &frame[l4], 0, protocol);
    Bytes with_length(pseudo);
    const size_t l4_length = frame.size() - l4;
    if (version == 4) put16(with_length, 10, static_cast<uint32_t>(l4_length));
    else put32(with_length, 32, static_cast<uint32_t>(l4_length));
    put16(frame, l4 + field, ovl_test::ref_fold(with_length));
    return frame;
  };
  write_seed("fuzz_packet_frame", "tcpv4", cat({{0x00, 0x04}, partial(ether(kMacB, kMacA, 0x0800, tcp4(0x18, 60)), 14, 4, 16)}));
  write_seed("fuzz_packet_frame", "udpv6", cat({{0x00, 0x05}, partial(ether(kMacB, kMacA, 0x86DD, udp6(40)), 14, 6, 6)}));
  write_seed("fuzz_packet_frame", "vlan-tcpv6",
             cat({{0x00, 0x1C}, partial(ether(kMacB, kMacA, 0x86DD, tcp6(0x10, 30), 1), 18, 6, 16)}));
  write_seed("fuzz_packet_frame", "qinq-udpv4",
             cat({{0x00, 0x07}, partial(ether(kMacB, kMacA, 0x0800, udp4(30), 2), 22, 4, 6)}));
  write_seed("fuzz_packet_frame", "repair-v4-tcp", cat({{0x01, 0x10}, ether(kMacB, kMacA, 0x0800, pattern(80))}));
  write_seed("fuzz_packet_frame", "repair-v6-udp-vlan", cat({{0x0F, 0x11}, ether(kMacB, kMacA, 0x86DD, pattern(90))}));
  write_seed("fuzz_packet_frame", "repair-qinq", cat({{0x13, 0x13}, pattern(120)}));
  write_seed("fuzz_packet_frame", "arp", cat({{0x00, 0x10}, arp_request()}));
  Bytes padded = ether(kMacB, kMacA, 0x0800, ping4(4));
  padded.resize(60, 0);  // padded to the Ethernet minimum
  write_seed("fuzz_packet_frame", "padded-icmp", cat({{0x00, 0x0C}, padded}));
  // With a vnet header in front, for insert_vlan_tag (byte 1 bit 0).
  const Bytes vnet = {0x01, 0x01, 0x36, 0x00, 0x5a, 0x05, 0x22, 0x00, 0x10, 0x00};
  write_seed("fuzz_packet_frame", "vnet-frame", cat({{0x00, 0x11}, vnet, ether(kMacB, kMacA, 0x0800, tcp4(0x10, 20))}));
}

void replay_window() {
  // [esn], then [op, 4-byte value]: op & 7: 0-2 check (raw / near the top / near the bottom),
  // 3-5 accept likewise, 6 update a full number (bit 3: value << (op >> 4) * 2), 7 accept value >>
  // bits, or with bit 7 reset.
  auto op = [](uint8_t o, uint32_t v) { return Bytes{o, static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16), static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)}; };
  Bytes in_order = {0};
  for (uint32_t s = 1; s <= 8; s++) in_order = cat({in_order, op(3, s)});
  in_order = cat({in_order, op(0, 3), op(0, 9), op(4, 0xFFFF), op(1, 1)});
  write_seed("fuzz_replay_window", "in-order", in_order);
  Bytes jumps = {0};
  jumps = cat({jumps, op(3, 100), op(3, 5000), op(0, 3017), op(0, 3016), op(3, 3100), op(5, 0), op(2, 0), op(0, 4000)});
  write_seed("fuzz_replay_window", "jumps", jumps);
  Bytes esn = {1};
  esn = cat({esn, op(6, 0xFFFFFFF0u), op(4, 0x0008), op(4, 0x0020), op(0, 0xFFFFFFF8u), op(0, 5), op(5, 0x0001),
             op(6 | 0x08 | 0x20, 1), op(1, 0xFFFF), op(2, 0)});
  write_seed("fuzz_replay_window", "esn-boundary", esn);
  Bytes esn_far = {1};
  esn_far = cat({esn_far, op(6 | 0x08 | 0xF0, 0x3FFFFFFF), op(6, 0x7FFFFFFF), op(1, 0), op(0, 0), op(0x87, 0), op(3, 1)});
  write_seed("fuzz_replay_window", "esn-far", esn_far);
  Bytes reverse = {1};
  for (uint32_t s = 2000; s > 1990; s--) reverse = cat({reverse, op(3, s)});
  reverse = cat({reverse, op(3, 10), op(3, 16), op(3, 17)});
  write_seed("fuzz_replay_window", "reverse", reverse);
}

void route_table() {
  // 16 bytes of base address, then [kind, a, b, c]: kind bit 0 IPv6, bit 7 a lookup, bits 1-3
  // the peer; a the length (255: one too long).
  const Bytes base4 = {198, 19, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  const Bytes base6 = {0xfd, 0, 1, 0x98, 0, 0x19, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  write_seed("fuzz_route_table", "v4-nested",
             cat({base4, {0x00, 16, 31, 0}, {0x02, 24, 31, 0}, {0x04, 32, 31, 0}, {0x80, 31, 30, 29}, {0x80, 20, 5, 5}}));
  write_seed("fuzz_route_table", "v6-nested",
             cat({base6, {0x01, 48, 127, 0}, {0x03, 64, 127, 0}, {0x05, 128, 127, 0}, {0x81, 100, 120, 127}}));
  write_seed("fuzz_route_table", "mixed", cat({base6, {0x00, 0, 0, 0}, {0x01, 0, 0, 0}, {0x82, 3, 4, 5}, {0x0F, 8, 9, 0x40}}));
  write_seed("fuzz_route_table", "too-long", cat({base4, {0x00, 255, 1, 0}}));
  write_seed("fuzz_route_table", "conflict", cat({base4, {0x00, 24, 31, 0}, {0x02, 24, 31, 0}}));
  write_seed("fuzz_route_table", "cidr-text", Bytes{'1', '9', '8', '.', '1', '9', '.', '0', '.', '0', '/', '1', '6', 0, 0, 0, 0x00, 8, 1, 0});
}

// What fuzz_tunnel.cc keys its SAs with (its key_for): keep the two the same, or the ESP seeds
// stop being authentic there.
std::vector<uint8_t> tunnel_key(EspCipher cipher, uint8_t seed) {
  std::vector<uint8_t> key(esp_key_material_size(cipher));
  for (size_t i = 0; i < key.size(); i++) key[i] = static_cast<uint8_t>(seed * 31 + i * 7 + 1);
  return key;
}

void tunnel() {
  // Byte 0: bits 0-2 the mode (vxlan, geneve, gre-udp, gre, ipip, esp), 3 TUN, 4-6 GRE C/K/S or
  // 4 ESN and 5-6 the cipher, 7 ESP in UDP. Byte 1: bit 0 the second peer, bit 1 outer
  // protocol 41. Then a datagram as that tunnel sends it (a's encapsulation), when it can.
  struct Case {
    const char* name;
    uint8_t selector;
    bool ethernet;
  };
  const Case cases[] = {
      {"vxlan", 0x00, true},          {"geneve-tap", 0x01, true},      {"geneve-tun", 0x09, false},
      {"gre-udp-tun", 0x0A, false},   {"gre-udp-tap-key", 0x22, true}, {"gre-csum-key-seq", 0x7B, false},
      {"gre-tap-csum", 0x13, true},   {"gre-seq", 0x4E, false},        {"ipip", 0x0C, false},
      {"esp-udp-tun", 0x8D, false},   {"esp-ip-tap-esn", 0x15, true},  {"esp-udp-chacha", 0xCD, false},
      {"esp-ip-tun-aes128", 0x0D, false},
  };
  static const TunnelMode kModes[8] = {TunnelMode::vxlan, TunnelMode::geneve, TunnelMode::gre_udp, TunnelMode::gre,
                                       TunnelMode::ipip,  TunnelMode::esp,    TunnelMode::gre,     TunnelMode::esp};
  static const EspCipher kCiphers[4] = {EspCipher::aes128_gcm, EspCipher::aes256_gcm, EspCipher::chacha20_poly1305,
                                        EspCipher::aes256_gcm};
  int n = 0;
  for (const Case& c : cases) {
    TunnelConfig config;
    config.mode = kModes[c.selector & 7];
    config.vni = 0x00ABCD;
    config.carries_ip = (c.selector & 0x08) != 0;
    config.cipher = kCiphers[(c.selector >> 5) & 3];
    config.esp_udp = (c.selector & 0x80) != 0;
    const bool esn = (c.selector & 0x10) != 0;
    if (config.mode == TunnelMode::gre || config.mode == TunnelMode::gre_udp) {
      config.gre.checksum = (c.selector & 0x10) != 0;
      if (c.selector & 0x20) config.gre.key = 0x01020304;
      config.gre.sequence = (c.selector & 0x40) != 0;
    }
    PeerSpec to_b{};
    to_b.slot = 0;
    to_b.endpoint = *parse_socket_address("198.18.0.2", 4789);
    if (config.mode == TunnelMode::esp) {
      to_b.sa_out = std::make_shared<EspSaState>(0x1001, config.cipher, tunnel_key(config.cipher, 1), esn);
    }
    PeerTable table({to_b});
    auto a = make_tunnel(config, 4, 64);
    a->table_changed(table);
    const Bytes inner = c.ethernet ? ethernet_frames()[n % 2].second : ip_packets()[static_cast<size_t>(n) % 12].second;
    BufferPool pool(1, 4096);
    PacketBuffer& b = pool[0];
    b.reset();
    std::memcpy(b.data(), inner.data(), inner.size());
    b.length = static_cast<uint32_t>(inner.size());
    const uint16_t type = c.ethernet ? kEtherTypeTransparentEthernet : inner[0] >> 4 == 6 ? kEtherTypeIpv6 : kEtherTypeIpv4;
    if (!a->encapsulate(b, type, &table.peers()[0]).ok()) {
      std::fprintf(stderr, "make_seed_corpus: %s did not encapsulate\n", c.name);
      std::exit(1);
    }
    const Bytes wire(b.data(), b.data() + b.length);
    const uint8_t sender = config.mode == TunnelMode::ipip && inner[0] >> 4 == 6 ? 0x02 : 0x00;
    write_seed("fuzz_tunnel", c.name, cat({{c.selector, sender}, wire}));
    n++;
  }
  // Port 4500's other traffic: a NAT keepalive and an IKE_SA_INIT header behind the marker.
  write_seed("fuzz_tunnel", "esp-udp-keepalive", {0x8D, 0x00, 0xFF});
  Bytes ike = {0x8D, 0x00, 0, 0, 0, 0};
  const Bytes header = {1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0, 33, 0x20, 34, 0x08, 0, 0, 0, 0, 0, 0, 0, 28};
  write_seed("fuzz_tunnel", "esp-udp-ike", cat({ike, header}));
  write_seed("fuzz_tunnel", "esp-udp-short-ike", cat({ike, Bytes(header.begin(), header.begin() + 10)}));
  write_seed("fuzz_tunnel", "ipip-v6-from-second", cat({{0x0C, 0x03}, ip_packets()[8].second}));
}

void vxlan_decap() {
  const auto frames = ethernet_frames();
  for (size_t i = 0; i < frames.size(); i++) {
    Bytes vxlan(8);
    vxlan_encode(vxlan.data(), static_cast<uint32_t>(42 + i));
    write_seed("fuzz_vxlan_decap", "vxlan-" + frames[i].first, cat({vxlan, frames[i].second}));
    Bytes geneve(8);
    geneve_encode(geneve.data(), static_cast<uint32_t>(0x1000 + i));
    write_seed("fuzz_vxlan_decap", "geneve-" + frames[i].first, cat({geneve, frames[i].second}));
  }
  // Geneve with options: a non-critical one (skipped), a critical one (refused), and OAM.
  Bytes options(8);
  geneve_encode(options.data(), 0x1000);
  options[0] = 3;  // 12 bytes of options
  const Bytes option1 = {0x01, 0x02, 0x03, 0x01, 0xAA, 0xBB, 0xCC, 0xDD};  // class 0x0102, type 3, 4 bytes
  const Bytes option2 = {0xFF, 0xFF, 0x01, 0x00};
  write_seed("fuzz_vxlan_decap", "geneve-options", cat({options, option1, option2, frames[0].second}));
  Bytes critical(options);
  write_seed("fuzz_vxlan_decap", "geneve-critical", cat({critical, option1, {0xFF, 0xFF, 0x81, 0x00}, frames[1].second}));
  Bytes oam(8);
  geneve_encode(oam.data(), 0x1000);
  oam[1] = 0x80;
  write_seed("fuzz_vxlan_decap", "geneve-oam", cat({oam, frames[2].second}));
  Bytes reserved(8);
  vxlan_encode(reserved.data(), 42);
  reserved[1] = 0x40;  // a reserved bit (GBP's G flag): refused
  write_seed("fuzz_vxlan_decap", "vxlan-reserved-bit", cat({reserved, frames[0].second}));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s native/test/corpus\n", argv[0]);
    return 2;
  }
  root = argv[1];
  if (mkdir(root.c_str(), 0755) != 0 && errno != EEXIST) {
    std::perror(root.c_str());
    return 1;
  }
  address_text();
  checksum();
  esp_decode();
  gre_decode();
  icmp_too_big();
  inner_policy();
  ip_packet_target();
  learned_fdb();
  mss_clamp();
  offload_coalesce();
  offload_segment();
  packet_frame();
  replay_window();
  route_table();
  tunnel();
  vxlan_decap();
  std::printf("make_seed_corpus: %zu files, %zu bytes under %s\n", files_written, bytes_written, root.c_str());
  return 0;
}
