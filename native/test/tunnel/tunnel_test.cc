// The Tunnel interface, one implementation per mode: the mode table and the overheads derived
// from it (worked out by hand from the RFCs), encapsulate/decapsulate round trips on packet
// buffers with the header bytes checked against the wire formats, the drop reasons each mode
// returns, and ESP between two tunnels with mirrored SAs in peer tables.
#include "tunnel/tunnel.h"

#include <sys/socket.h>

#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "base/packet_buffer.h"
#include "base/socket_address.h"
#include "base/stats_layout.h"
#include "base/verdict.h"
#include "tables/peer_table.h"
#include "tunnel/esp/esp_codec.h"
#include "tunnel/esp/esp_sa.h"
#include "tunnel/geneve_codec.h"
#include "tunnel/gre_codec.h"
#include "tunnel/vxlan_codec.h"
#include "wire/ethernet.h"
#include "ip_test_packets.h"
#include "reference_checksum.h"
#include "test.h"

using namespace ovl;
using ovl_test::Bytes;

namespace {

constexpr uint32_t kSlots = 4;
constexpr uint32_t kMaxFrame = 2048;
constexpr uint32_t kVni = 0x123456;
constexpr TunnelMode kAllModes[] = {TunnelMode::vxlan, TunnelMode::geneve, TunnelMode::gre_udp,
                                    TunnelMode::gre,   TunnelMode::ipip,   TunnelMode::esp};
constexpr EspCipher kCiphers[] = {EspCipher::aes128_gcm, EspCipher::aes256_gcm, EspCipher::chacha20_poly1305};

const char* verdict_name(const Verdict& verdict) { return verdict.ok() ? "pass" : counter_name(verdict.reason()); }

}  // namespace

#define CHECK_PASS(expression)                                                                               \
  do {                                                                                                       \
    const Verdict ovl_v = (expression);                                                                      \
    if (!ovl_v.ok()) {                                                                                       \
      ovl_test::record_failure(__FILE__, __LINE__, std::string(#expression " passes, got ") + verdict_name(ovl_v)); \
    }                                                                                                        \
  } while (0)

#define CHECK_DROP(expression, counter)                                                                     \
  do {                                                                                                      \
    const Verdict ovl_v = (expression);                                                                     \
    if (ovl_v.ok() || ovl_v.reason() != (counter)) {                                                        \
      ovl_test::record_failure(__FILE__, __LINE__,                                                          \
                               std::string(#expression " drops as ") + counter_name(counter) + ", got " +   \
                                   verdict_name(ovl_v));                                                    \
    }                                                                                                       \
  } while (0)

namespace {

TunnelConfig config_of(TunnelMode mode, bool carries_ip) {
  TunnelConfig config;
  config.mode = mode;
  config.vni = kVni;
  config.carries_ip = carries_ip;
  return config;
}

Bytes ipv4_packet(size_t total = 100) { return ovl_test::make_ipv4(ovl_test::Ipv4Spec{}, total); }
Bytes ipv6_packet(size_t total = 120) { return ovl_test::make_ipv6(ovl_test::Ipv6Spec{}, total); }

// An Ethernet frame from 02:00:00:00:00:01 to 02:00:00:00:00:02 around an IPv4 packet.
Bytes ethernet_frame(size_t ip_total = 100) {
  Bytes frame = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00};
  const Bytes ip = ipv4_packet(ip_total);
  frame.insert(frame.end(), ip.begin(), ip.end());
  return frame;
}

// One packet buffer of its own pool, holding `inner` right after the headroom.
struct Loaded {
  explicit Loaded(const Bytes& inner, uint32_t capacity = kMaxFrame) : pool(1, capacity) {
    PacketBuffer& b = buffer();
    b.reset();
    std::memcpy(b.data(), inner.data(), inner.size());
    b.length = static_cast<uint32_t>(inner.size());
  }
  PacketBuffer& buffer() { return pool[0]; }
  Bytes bytes() { return Bytes(buffer().data(), buffer().data() + buffer().length); }
  BufferPool pool;
};

// Encapsulates `inner` (of `ethertype`) and returns the bytes on the wire; checks that the
// tunnel grew the packet at the front by exactly its headroom (ESP also grows it at the back).
Bytes encapsulate(Tunnel& tunnel, const Bytes& inner, uint16_t ethertype, const Peer* peer = nullptr) {
  Loaded loaded(inner);
  const Verdict verdict = tunnel.encapsulate(loaded.buffer(), ethertype, peer);
  CHECK_PASS(verdict);
  if (!verdict.ok()) return {};
  CHECK_EQ(loaded.buffer().offset, kHeadroom - tunnel.headroom());
  CHECK(loaded.buffer().length >= inner.size() + tunnel.headroom());
  CHECK(loaded.buffer().length <= inner.size() + tunnel.headroom() + tunnel.tailroom());
  return loaded.bytes();
}

// Decapsulates a copy of `wire` held in an allocation of its exact size (ASan sees any read
// past its end); `out`, when given, receives the decapsulated bytes.
Verdict decapsulate(Tunnel& tunnel, const Bytes& wire, const ReceivedFrom& from, Inner* inner,
                    Bytes* out = nullptr) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[wire.size() ? wire.size() : 1]);
  if (!wire.empty()) std::memcpy(copy.get(), wire.data(), wire.size());
  const Verdict verdict = tunnel.decapsulate(copy.get(), static_cast<uint32_t>(wire.size()), from, inner);
  if (out != nullptr) out->assign(copy.get(), copy.get() + wire.size());
  return verdict;
}

Verdict decapsulate(Tunnel& tunnel, const Bytes& wire, const ReceivedFrom& from = ReceivedFrom{0, 0, 0}) {
  Inner inner;
  return decapsulate(tunnel, wire, from, &inner);
}

// Checks that `wire` decapsulates to exactly `expected` at `offset`, of `ethertype`.
void check_round_trip(Tunnel& receiver, const Bytes& wire, const Bytes& expected, uint32_t offset,
                      uint16_t ethertype, const ReceivedFrom& from = ReceivedFrom{0, 0, 0}) {
  Inner inner;
  Bytes plain;
  CHECK_PASS(decapsulate(receiver, wire, from, &inner, &plain));
  CHECK_EQ(inner.offset, offset);
  CHECK_EQ(inner.length, static_cast<uint32_t>(expected.size()));
  CHECK_EQ(inner.ethertype, ethertype);
  if (inner.offset + inner.length <= plain.size() && inner.length == expected.size()) {
    CHECK(std::memcmp(plain.data() + inner.offset, expected.data(), expected.size()) == 0);
  }
}

// A GRE packet built by hand (RFC 2784, 2890): C, K, S words as given, checksum over all of it.
Bytes gre_packet(uint16_t protocol, const Bytes& payload, bool checksum, std::optional<uint32_t> key,
                 std::optional<uint32_t> sequence, uint16_t extra_flags = 0) {
  Bytes p(4);
  const uint16_t flags = static_cast<uint16_t>((checksum ? 0x8000 : 0) | (key ? 0x2000 : 0) |
                                               (sequence ? 0x1000 : 0) | extra_flags);
  ovl_test::put16(p, 0, flags);
  ovl_test::put16(p, 2, protocol);
  if (checksum) p.insert(p.end(), 4, 0);
  const auto word = [&](uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) p.push_back(static_cast<uint8_t>(v >> shift));
  };
  if (key) word(*key);
  if (sequence) word(*sequence);
  p.insert(p.end(), payload.begin(), payload.end());
  if (checksum) ovl_test::put16(p, 4, static_cast<uint16_t>(~ovl_test::ref_fold(p)));
  return p;
}

// ESP key material (cipher key || salt) for `cipher`, different per seed.
std::vector<uint8_t> esp_key(EspCipher cipher, uint8_t seed) {
  std::vector<uint8_t> key(esp_key_material_size(cipher));
  for (size_t i = 0; i < key.size(); i++) key[i] = static_cast<uint8_t>(seed * 29 + i * 11 + 5);
  return key;
}

std::shared_ptr<EspSaState> esp_sa(uint32_t spi, EspCipher cipher, uint8_t seed, bool esn = true) {
  return std::make_shared<EspSaState>(spi, cipher, esp_key(cipher, seed), esn);
}

PeerSpec esp_peer(uint32_t slot, const char* address, std::shared_ptr<EspSaState> out,
                  std::vector<std::shared_ptr<EspSaState>> in) {
  PeerSpec spec{};
  spec.slot = slot;
  spec.endpoint = *parse_socket_address(address, 4500);
  spec.sa_out = std::move(out);
  spec.sa_in = std::move(in);
  return spec;
}

constexpr uint32_t kSpiAtoB = 0x00001001;
constexpr uint32_t kSpiBtoA = 0x00002001;
constexpr uint32_t kSpiCtoB = 0x00003001;

// Two ends of an ESP tunnel: a (198.18.0.1) sends to b under kSpiAtoB with key 1, b to a under
// kSpiBtoA with key 2. b's table also holds a second peer c (slot 1) with its own inbound SA.
// Each end has its own SA states, as two hosts do.
struct EspEnds {
  explicit EspEnds(bool carries_ip = true, bool udp = true, EspCipher cipher = EspCipher::aes256_gcm,
                   bool esn = true) {
    TunnelConfig config = config_of(TunnelMode::esp, carries_ip);
    config.esp_udp = udp;
    config.cipher = cipher;
    table_a = std::make_unique<PeerTable>(std::vector<PeerSpec>{
        esp_peer(0, "198.18.0.2", esp_sa(kSpiAtoB, cipher, 1, esn), {esp_sa(kSpiBtoA, cipher, 2, esn)})});
    table_b = std::make_unique<PeerTable>(std::vector<PeerSpec>{
        esp_peer(0, "198.18.0.1", esp_sa(kSpiBtoA, cipher, 2, esn), {esp_sa(kSpiAtoB, cipher, 1, esn)}),
        esp_peer(1, "198.18.0.3", esp_sa(0x00003002, cipher, 4, esn), {esp_sa(kSpiCtoB, cipher, 3, esn)})});
    a = make_tunnel(config, kSlots, kMaxFrame);
    b = make_tunnel(config, kSlots, kMaxFrame);
    a->table_changed(*table_a);
    b->table_changed(*table_b);
  }
  const Peer* b_seen_from_a() const { return &table_a->peers()[0]; }
  // How b receives a's packets, and c's.
  static ReceivedFrom from_a() { return ReceivedFrom{0, 0, 0}; }
  static ReceivedFrom from_c() { return ReceivedFrom{1, 1, 0}; }

  std::unique_ptr<PeerTable> table_a, table_b;
  std::unique_ptr<Tunnel> a, b;
};

}  // namespace

// ---- the mode table and what a config derives from it ----

TEST(tunnel_modes_have_a_row_at_their_index) {
  const auto& modes = tunnel_modes();
  CHECK_EQ(modes.size(), size_t{6});
  for (size_t i = 0; i < modes.size(); i++) {
    CHECK(modes[i].mode == static_cast<TunnelMode>(i));
    CHECK(&tunnel_mode_info(static_cast<TunnelMode>(i)) == &modes[i]);
  }
  for (TunnelMode mode : kAllModes) CHECK(config_of(mode, true).info().mode == mode);
}

TEST(tunnel_mode_names_and_ports_match_the_config) {
  const char* names[] = {"vxlan", "geneve", "gre-udp", "gre", "ipip", "esp"};
  const uint16_t ports[] = {4789, 6081, 4754, 0, 0, 4500};
  std::set<std::string> seen;
  for (size_t i = 0; i < 6; i++) {
    const TunnelModeInfo& info = tunnel_mode_info(kAllModes[i]);
    CHECK(std::string(info.name) == names[i]);
    CHECK_EQ(info.default_port, ports[i]);
    seen.insert(info.name);
  }
  CHECK_EQ(seen.size(), size_t{6});
}

TEST(tunnel_mode_capabilities) {
  const auto& vxlan = tunnel_mode_info(TunnelMode::vxlan);
  const auto& geneve = tunnel_mode_info(TunnelMode::geneve);
  const auto& gre_udp = tunnel_mode_info(TunnelMode::gre_udp);
  const auto& gre = tunnel_mode_info(TunnelMode::gre);
  const auto& ipip = tunnel_mode_info(TunnelMode::ipip);
  const auto& esp = tunnel_mode_info(TunnelMode::esp);
  // What rides on what.
  CHECK(vxlan.udp && !vxlan.raw_ip);
  CHECK(geneve.udp && !geneve.raw_ip);
  CHECK(gre_udp.udp && !gre_udp.raw_ip);
  CHECK(!gre.udp && gre.raw_ip);
  CHECK(!ipip.udp && ipip.raw_ip);
  CHECK(esp.udp && esp.raw_ip);
  // What each carries: VXLAN only Ethernet (RFC 7348), IP-in-IP only IP.
  CHECK(vxlan.carries_ethernet && !vxlan.carries_ip);
  CHECK(geneve.carries_ethernet && geneve.carries_ip);
  CHECK(gre_udp.carries_ethernet && gre_udp.carries_ip);
  CHECK(gre.carries_ethernet && gre.carries_ip);
  CHECK(!ipip.carries_ethernet && ipip.carries_ip);
  CHECK(esp.carries_ethernet && esp.carries_ip);
  // Fixed headers: VXLAN 8, Geneve 8, GRE 4, none, ESP SPI + sequence + IV = 16.
  CHECK_EQ(vxlan.header_bytes, 8u);
  CHECK_EQ(geneve.header_bytes, 8u);
  CHECK_EQ(gre_udp.header_bytes, 4u);
  CHECK_EQ(gre.header_bytes, 4u);
  CHECK_EQ(ipip.header_bytes, 0u);
  CHECK_EQ(esp.header_bytes, 16u);
  // Trailers: only ESP, at most 3 padding + pad length + next header + 16 ICV = 21.
  CHECK_EQ(vxlan.trailer_bytes + geneve.trailer_bytes + gre_udp.trailer_bytes + gre.trailer_bytes +
               ipip.trailer_bytes,
           0u);
  CHECK_EQ(esp.trailer_bytes, 21u);
}

TEST(tunnel_overhead_vxlan_and_geneve) {
  // IPv4 20 (IPv6 40) + UDP 8 + header 8 + inner Ethernet 14.
  CHECK_EQ(config_of(TunnelMode::vxlan, false).overhead(AF_INET), 50);
  CHECK_EQ(config_of(TunnelMode::vxlan, false).overhead(AF_INET6), 70);
  CHECK_EQ(config_of(TunnelMode::geneve, false).overhead(AF_INET), 50);
  CHECK_EQ(config_of(TunnelMode::geneve, false).overhead(AF_INET6), 70);
  // Geneve on a TUN device: no inner Ethernet header.
  CHECK_EQ(config_of(TunnelMode::geneve, true).overhead(AF_INET), 36);
  CHECK_EQ(config_of(TunnelMode::geneve, true).overhead(AF_INET6), 56);
  // The VNI changes nothing.
  TunnelConfig big_vni = config_of(TunnelMode::vxlan, false);
  big_vni.vni = kVxlanMaxVni;
  CHECK_EQ(big_vni.overhead(AF_INET), 50);
}

TEST(tunnel_overhead_gre) {
  TunnelConfig gre = config_of(TunnelMode::gre, true);
  CHECK_EQ(gre.overhead(AF_INET), 24);  // IPv4 20 + GRE 4
  CHECK_EQ(gre.overhead(AF_INET6), 44);
  gre.gre.key = 7;
  CHECK_EQ(gre.overhead(AF_INET), 28);
  CHECK_EQ(gre.header_size(), 8u);
  gre.gre.checksum = true;
  CHECK_EQ(gre.overhead(AF_INET), 32);
  gre.gre.sequence = true;
  CHECK_EQ(gre.overhead(AF_INET), 36);
  CHECK_EQ(gre.overhead(AF_INET6), 56);
  CHECK_EQ(gre.header_size(), 16u);
  gre.carries_ip = false;  // Ethernet inside (0x6558): + 14
  CHECK_EQ(gre.overhead(AF_INET), 50);
  CHECK_EQ(gre.overhead(AF_INET6), 70);

  TunnelConfig gre_udp = config_of(TunnelMode::gre_udp, true);
  CHECK_EQ(gre_udp.overhead(AF_INET), 32);  // IPv4 20 + UDP 8 + GRE 4
  CHECK_EQ(gre_udp.overhead(AF_INET6), 52);
  gre_udp.gre.key = 0;  // a key of 0 is still a key word
  CHECK_EQ(gre_udp.overhead(AF_INET), 36);
  gre_udp.gre.sequence = true;
  CHECK_EQ(gre_udp.overhead(AF_INET), 40);
  gre_udp.carries_ip = false;
  CHECK_EQ(gre_udp.overhead(AF_INET), 54);
  gre_udp.gre.checksum = true;
  CHECK_EQ(gre_udp.overhead(AF_INET6), 78);  // 40 + 8 + 16 + 14

  // Every combination: 4 bytes per optional word, on either mode and device.
  for (int bits = 0; bits < 8; bits++) {
    for (bool carries_ip : {false, true}) {
      for (TunnelMode mode : {TunnelMode::gre, TunnelMode::gre_udp}) {
        TunnelConfig config = config_of(mode, carries_ip);
        config.gre.checksum = (bits & 1) != 0;
        if (bits & 2) config.gre.key = 0x01020304;
        config.gre.sequence = (bits & 4) != 0;
        const int words = (bits & 1) + (bits >> 1 & 1) + (bits >> 2 & 1);
        const int udp = mode == TunnelMode::gre_udp ? 8 : 0;
        const int ethernet = carries_ip ? 0 : 14;
        CHECK_EQ(config.overhead(AF_INET), 20 + udp + 4 + 4 * words + ethernet);
        CHECK_EQ(config.overhead(AF_INET6), 40 + udp + 4 + 4 * words + ethernet);
      }
    }
  }
}

TEST(tunnel_overhead_ipip) {
  CHECK_EQ(config_of(TunnelMode::ipip, true).overhead(AF_INET), 20);
  CHECK_EQ(config_of(TunnelMode::ipip, true).overhead(AF_INET6), 40);
  CHECK_EQ(config_of(TunnelMode::ipip, true).header_size(), 0u);
}

TEST(tunnel_overhead_esp) {
  for (EspCipher cipher : kCiphers) {  // all three have an 8-byte IV and a 16-byte ICV
    TunnelConfig esp = config_of(TunnelMode::esp, true);
    esp.cipher = cipher;
    CHECK_EQ(esp.overhead(AF_INET), 65);   // 20 + UDP 8 + SPI/seq/IV 16 + trailer 21
    CHECK_EQ(esp.overhead(AF_INET6), 85);
    esp.esp_udp = false;
    CHECK_EQ(esp.overhead(AF_INET), 57);   // 20 + 16 + 21
    CHECK_EQ(esp.overhead(AF_INET6), 77);
    esp.carries_ip = false;                // Ethernet inside (next header 143)
    CHECK_EQ(esp.overhead(AF_INET), 71);
    CHECK_EQ(esp.overhead(AF_INET6), 91);
    esp.esp_udp = true;
    CHECK_EQ(esp.overhead(AF_INET), 79);
    CHECK_EQ(esp.overhead(AF_INET6), 99);
    CHECK_EQ(esp.header_size(), 16u);
    CHECK_EQ(esp.trailer_size(), 21u);
  }
}

TEST(tunnel_over_udp_and_receive_protocols) {
  CHECK(config_of(TunnelMode::vxlan, false).over_udp());
  CHECK(config_of(TunnelMode::geneve, true).over_udp());
  CHECK(config_of(TunnelMode::gre_udp, true).over_udp());
  CHECK(!config_of(TunnelMode::gre, true).over_udp());
  CHECK(!config_of(TunnelMode::ipip, true).over_udp());
  TunnelConfig esp = config_of(TunnelMode::esp, true);
  CHECK(esp.over_udp());
  CHECK(esp.receive_protocols().empty());
  esp.esp_udp = false;
  CHECK(!esp.over_udp());
  CHECK(esp.receive_protocols() == std::vector<uint8_t>{50});
  // esp_udp means nothing to modes that are UDP-only or IP-only.
  for (TunnelMode mode : {TunnelMode::vxlan, TunnelMode::geneve, TunnelMode::gre_udp}) {
    TunnelConfig config = config_of(mode, false);
    config.esp_udp = false;
    CHECK(config.over_udp());
    CHECK(config.receive_protocols().empty());
  }
  CHECK(config_of(TunnelMode::gre, true).receive_protocols() == std::vector<uint8_t>{47});
  CHECK(config_of(TunnelMode::ipip, true).receive_protocols() == (std::vector<uint8_t>{4, 41}));
  for (TunnelMode mode : kAllModes) {
    CHECK(config_of(mode, true).uses_security_associations() == (mode == TunnelMode::esp));
  }
}

TEST(tunnel_headroom_tailroom_and_traits) {
  for (TunnelMode mode : kAllModes) {
    for (bool carries_ip : {false, true}) {
      TunnelConfig config = config_of(mode, carries_ip);
      config.gre.checksum = true;
      config.gre.key = 1;
      config.gre.sequence = true;
      auto tunnel = make_tunnel(config, kSlots, kMaxFrame);
      CHECK(tunnel != nullptr);
      if (!tunnel) continue;
      CHECK(tunnel->config().mode == mode);
      CHECK_EQ(tunnel->headroom(), config.header_size());
      CHECK_EQ(tunnel->tailroom(), config.trailer_size());
      // The packet buffer's headroom also holds an outer IPv6 + UDP header.
      CHECK(tunnel->headroom() + 40 + 8 <= kHeadroom);
      CHECK(tunnel->per_peer() == (mode == TunnelMode::esp));
      CHECK(tunnel->authenticates_payload() == (mode == TunnelMode::esp));
    }
  }
}

TEST(tunnel_copy_for_peer_refused_by_shared_modes) {
  for (TunnelMode mode : {TunnelMode::vxlan, TunnelMode::geneve, TunnelMode::gre_udp, TunnelMode::gre}) {
    auto tunnel = make_tunnel(config_of(mode, false), kSlots, kMaxFrame);
    Loaded frame(ethernet_frame());
    Verdict verdict = Verdict::pass();
    CHECK(tunnel->copy_for_peer(frame.buffer(), &verdict) == nullptr);
    CHECK(!verdict.ok());
  }
}

// ---- VXLAN ----

TEST(tunnel_vxlan_round_trip) {
  auto tunnel = make_tunnel(config_of(TunnelMode::vxlan, false), kSlots, kMaxFrame);
  const Bytes frame = ethernet_frame();
  const Bytes wire = encapsulate(*tunnel, frame, kEtherTypeIpv4);
  CHECK_EQ(wire.size(), frame.size() + 8);
  if (wire.size() != frame.size() + 8) return;
  // RFC 7348: flags 0x08 (I), 24 reserved bits, VNI, 8 reserved bits.
  const Bytes header = {0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0};
  CHECK(Bytes(wire.begin(), wire.begin() + 8) == header);
  CHECK(Bytes(wire.begin() + 8, wire.end()) == frame);
  check_round_trip(*tunnel, wire, frame, 8, kEtherTypeTransparentEthernet);
}

TEST(tunnel_vxlan_drops) {
  auto tunnel = make_tunnel(config_of(TunnelMode::vxlan, false), kSlots, kMaxFrame);
  const Bytes wire = encapsulate(*tunnel, ethernet_frame(), kEtherTypeIpv4);
  if (wire.size() < 8) return;
  // Another VNI, including the neighbours of ours.
  for (uint32_t vni : {kVni + 1, kVni - 1, 0u, kVxlanMaxVni}) {
    Bytes other = wire;
    other[4] = static_cast<uint8_t>(vni >> 16);
    other[5] = static_cast<uint8_t>(vni >> 8);
    other[6] = static_cast<uint8_t>(vni);
    CHECK_DROP(decapsulate(*tunnel, other), kDropWrongVni);
  }
  // Any reserved bit set, or the I flag missing: malformed, as in the Linux driver.
  for (size_t byte : {size_t{0}, size_t{1}, size_t{2}, size_t{3}, size_t{7}}) {
    for (int bit = 0; bit < 8; bit++) {
      Bytes bad = wire;
      bad[byte] ^= static_cast<uint8_t>(1u << bit);
      CHECK_DROP(decapsulate(*tunnel, bad), kDropMalformed);
    }
  }
  // Too short for a header and an inner Ethernet header.
  CHECK_DROP(decapsulate(*tunnel, Bytes(wire.begin(), wire.begin() + 8 + 13)), kDropMalformed);
  CHECK_DROP(decapsulate(*tunnel, Bytes(wire.begin(), wire.begin() + 7)), kDropMalformed);
  CHECK_DROP(decapsulate(*tunnel, Bytes()), kDropMalformed);
  CHECK_PASS(decapsulate(*tunnel, Bytes(wire.begin(), wire.begin() + 8 + 14)));
}

// ---- Geneve ----

TEST(tunnel_geneve_round_trip_ethernet) {
  auto tunnel = make_tunnel(config_of(TunnelMode::geneve, false), kSlots, kMaxFrame);
  const Bytes frame = ethernet_frame();
  const Bytes wire = encapsulate(*tunnel, frame, kEtherTypeTransparentEthernet);
  if (wire.size() != frame.size() + 8) {
    CHECK(!"geneve header is not 8 bytes");
    return;
  }
  // RFC 8926: version 0, no options, no O/C, protocol 0x6558, VNI, reserved.
  const Bytes header = {0, 0, 0x65, 0x58, 0x12, 0x34, 0x56, 0};
  CHECK(Bytes(wire.begin(), wire.begin() + 8) == header);
  CHECK(Bytes(wire.begin() + 8, wire.end()) == frame);
  check_round_trip(*tunnel, wire, frame, 8, kEtherTypeTransparentEthernet);
}

TEST(tunnel_geneve_round_trip_ip) {
  auto tunnel = make_tunnel(config_of(TunnelMode::geneve, true), kSlots, kMaxFrame);
  const Bytes v4 = ipv4_packet();
  const Bytes wire4 = encapsulate(*tunnel, v4, kEtherTypeIpv4);
  if (wire4.size() != v4.size() + 8) {
    CHECK(!"geneve header is not 8 bytes");
    return;
  }
  CHECK_EQ(load_be16(&wire4[2]), kEtherTypeIpv4);
  check_round_trip(*tunnel, wire4, v4, 8, kEtherTypeIpv4);
  const Bytes v6 = ipv6_packet();
  const Bytes wire6 = encapsulate(*tunnel, v6, kEtherTypeIpv6);
  if (wire6.size() != v6.size() + 8) {
    CHECK(!"geneve header is not 8 bytes");
    return;
  }
  CHECK_EQ(load_be16(&wire6[2]), kEtherTypeIpv6);
  check_round_trip(*tunnel, wire6, v6, 8, kEtherTypeIpv6);
}

TEST(tunnel_geneve_drops) {
  auto tap = make_tunnel(config_of(TunnelMode::geneve, false), kSlots, kMaxFrame);
  auto tun = make_tunnel(config_of(TunnelMode::geneve, true), kSlots, kMaxFrame);
  const Bytes frame = ethernet_frame();
  const Bytes wire = encapsulate(*tap, frame, kEtherTypeTransparentEthernet);
  if (wire.size() < 8) return;
  Bytes other_vni = wire;
  other_vni[6] ^= 1;
  CHECK_DROP(decapsulate(*tap, other_vni), kDropWrongVni);
  Bytes oam = wire;
  oam[1] |= kGeneveFlagOam;
  CHECK_DROP(decapsulate(*tap, oam), kDropOam);
  Bytes critical_flag = wire;
  critical_flag[1] |= kGeneveFlagCritical;
  CHECK_DROP(decapsulate(*tap, critical_flag), kDropUnknownOption);
  Bytes version = wire;
  version[0] = 0x40;  // version 1
  CHECK_DROP(decapsulate(*tap, version), kDropMalformed);
  // A TAP tunnel receives only Ethernet, a TUN tunnel only IP.
  CHECK_DROP(decapsulate(*tun, wire), kDropMalformed);
  const Bytes wire4 = encapsulate(*tun, ipv4_packet(), kEtherTypeIpv4);
  CHECK_DROP(decapsulate(*tap, wire4), kDropMalformed);

  // With one 8-byte option (class 0x0102, type 0x03, length 1 word): skipped when not critical,
  // dropped when critical.
  const auto with_option = [&](uint8_t type) {
    Bytes p(wire.begin(), wire.begin() + 8);
    p[0] = 2;  // options: 2 words
    const Bytes option = {0x01, 0x02, type, 0x01, 0xAA, 0xBB, 0xCC, 0xDD};
    p.insert(p.end(), option.begin(), option.end());
    p.insert(p.end(), frame.begin(), frame.end());
    return p;
  };
  check_round_trip(*tap, with_option(0x03), frame, 16, kEtherTypeTransparentEthernet);
  CHECK_DROP(decapsulate(*tap, with_option(0x83)), kDropUnknownOption);
  // Options that overrun their announced length.
  Bytes overrun = with_option(0x03);
  overrun[11] = 0x02;  // option says 2 words of data, header leaves room for 1
  CHECK_DROP(decapsulate(*tap, overrun), kDropMalformed);
  CHECK_DROP(decapsulate(*tap, Bytes(wire.begin(), wire.begin() + 8 + 13)), kDropMalformed);
}

// ---- GRE and GRE-in-UDP ----

TEST(tunnel_gre_round_trip_every_option_set) {
  for (TunnelMode mode : {TunnelMode::gre, TunnelMode::gre_udp}) {
    for (int bits = 0; bits < 8; bits++) {
      for (int payload = 0; payload < 3; payload++) {  // IPv4, IPv6 on TUN; Ethernet on TAP
        TunnelConfig config = config_of(mode, payload != 2);
        config.gre.checksum = (bits & 1) != 0;
        if (bits & 2) config.gre.key = 0xA1B2C3D4;
        config.gre.sequence = (bits & 4) != 0;
        const Bytes inner = payload == 0 ? ipv4_packet() : payload == 1 ? ipv6_packet(121) : ethernet_frame(77);
        const uint16_t protocol =
            payload == 0 ? kEtherTypeIpv4 : payload == 1 ? kEtherTypeIpv6 : kEtherTypeTransparentEthernet;
        auto sender = make_tunnel(config, kSlots, kMaxFrame);
        auto receiver = make_tunnel(config, kSlots, kMaxFrame);
        if (mode == TunnelMode::gre) CHECK_EQ(sender->outer_protocol(nullptr, 0), kIpProtocolGre);
        const uint32_t header = 4 + 4 * static_cast<uint32_t>((bits & 1) + (bits >> 1 & 1) + (bits >> 2 & 1));
        for (uint32_t n = 0; n < 3; n++) {
          const Bytes wire = encapsulate(*sender, inner, protocol);
          if (wire.size() != inner.size() + header) {
            CHECK(!"GRE header of the wrong size");
            break;
          }
          // The same packet built by hand: the first sequence number is 0 (RFC 2890 §2.2).
          const Bytes expected =
              gre_packet(protocol, inner, config.gre.checksum, config.gre.key,
                         config.gre.sequence ? std::optional<uint32_t>(n) : std::nullopt);
          CHECK(wire == expected);
          if (config.gre.checksum) CHECK_EQ(ovl_test::ref_fold(wire), 0xFFFF);
          check_round_trip(*receiver, wire, inner, header, protocol, ReceivedFrom{0, 0, kIpProtocolGre});
        }
      }
    }
  }
}

TEST(tunnel_gre_key_and_checksum_drops) {
  const Bytes v4 = ipv4_packet();
  TunnelConfig keyed = config_of(TunnelMode::gre, true);
  keyed.gre.key = 7;
  auto receiver = make_tunnel(keyed, kSlots, kMaxFrame);
  CHECK_PASS(decapsulate(*receiver, gre_packet(kEtherTypeIpv4, v4, false, 7u, std::nullopt)));
  CHECK_DROP(decapsulate(*receiver, gre_packet(kEtherTypeIpv4, v4, false, 8u, std::nullopt)), kDropWrongKey);
  CHECK_DROP(decapsulate(*receiver, gre_packet(kEtherTypeIpv4, v4, false, 0u, std::nullopt)), kDropWrongKey);
  CHECK_DROP(decapsulate(*receiver, gre_packet(kEtherTypeIpv4, v4, false, std::nullopt, std::nullopt)),
             kDropWrongKey);
  // A keyless tunnel refuses keyed packets, key 0 included.
  auto keyless = make_tunnel(config_of(TunnelMode::gre, true), kSlots, kMaxFrame);
  CHECK_DROP(decapsulate(*keyless, gre_packet(kEtherTypeIpv4, v4, false, 0u, std::nullopt)), kDropWrongKey);
  CHECK_PASS(decapsulate(*keyless, gre_packet(kEtherTypeIpv4, v4, false, std::nullopt, std::nullopt)));

  // A tunnel that sends checksums requires them.
  TunnelConfig summed = config_of(TunnelMode::gre_udp, true);
  summed.gre.checksum = true;
  auto checking = make_tunnel(summed, kSlots, kMaxFrame);
  CHECK_PASS(decapsulate(*checking, gre_packet(kEtherTypeIpv4, v4, true, std::nullopt, std::nullopt)));
  CHECK_DROP(decapsulate(*checking, gre_packet(kEtherTypeIpv4, v4, false, std::nullopt, std::nullopt)),
             kDropBadChecksum);
  // A wrong checksum, in the header or because a payload byte changed, on either tunnel: a
  // present checksum is always verified.
  Bytes corrupted = gre_packet(kEtherTypeIpv4, v4, true, std::nullopt, std::nullopt);
  corrupted[corrupted.size() - 1] ^= 0x01;
  CHECK_DROP(decapsulate(*checking, corrupted), kDropBadChecksum);
  CHECK_DROP(decapsulate(*keyless, corrupted), kDropBadChecksum);
  Bytes bad_field = gre_packet(kEtherTypeIpv4, v4, true, std::nullopt, std::nullopt);
  bad_field[4] ^= 0x80;
  CHECK_DROP(decapsulate(*checking, bad_field), kDropBadChecksum);
  // The checksum is checked before the key: a keyed packet with a bad checksum is badChecksum.
  Bytes keyed_corrupt = gre_packet(kEtherTypeIpv4, v4, true, 9u, std::nullopt);
  keyed_corrupt[20] ^= 0x10;
  CHECK_DROP(decapsulate(*receiver, keyed_corrupt), kDropBadChecksum);
}

TEST(tunnel_gre_malformed_drops) {
  auto tun = make_tunnel(config_of(TunnelMode::gre, true), kSlots, kMaxFrame);
  auto tap = make_tunnel(config_of(TunnelMode::gre, false), kSlots, kMaxFrame);
  const Bytes v4 = ipv4_packet();
  const Bytes frame = ethernet_frame();
  // What the device does not carry.
  CHECK_DROP(decapsulate(*tun, gre_packet(kEtherTypeTransparentEthernet, frame, false, std::nullopt, std::nullopt)),
             kDropMalformed);
  CHECK_DROP(decapsulate(*tap, gre_packet(kEtherTypeIpv4, v4, false, std::nullopt, std::nullopt)), kDropMalformed);
  CHECK_DROP(decapsulate(*tun, gre_packet(kEtherTypeArp, Bytes(28, 0), false, std::nullopt, std::nullopt)),
             kDropMalformed);
  // Version 1 (PPTP), and reserved bits 1, 4 and 5 (RFC 1701 routing).
  for (uint16_t flag : {uint16_t{0x0001}, uint16_t{0x4000}, uint16_t{0x0800}, uint16_t{0x0400}}) {
    CHECK_DROP(decapsulate(*tun, gre_packet(kEtherTypeIpv4, v4, false, std::nullopt, std::nullopt, flag)),
               kDropMalformed);
  }
  // Bits 6-12 are ignored.
  CHECK_PASS(decapsulate(*tun, gre_packet(kEtherTypeIpv4, v4, false, std::nullopt, std::nullopt, 0x0200)));
  // Truncated: header, or an inner header shorter than IPv4's 20 bytes / Ethernet's 14.
  CHECK_DROP(decapsulate(*tun, Bytes{0, 0, 0x08}), kDropMalformed);
  CHECK_DROP(decapsulate(*tun, gre_packet(kEtherTypeIpv4, Bytes(v4.begin(), v4.begin() + 19), false, std::nullopt,
                                          std::nullopt)),
             kDropMalformed);
  CHECK_DROP(decapsulate(*tap, gre_packet(kEtherTypeTransparentEthernet, Bytes(frame.begin(), frame.begin() + 13),
                                          false, std::nullopt, std::nullopt)),
             kDropMalformed);
}

TEST(tunnel_gre_sequence_numbers_per_slot) {
  TunnelConfig config = config_of(TunnelMode::gre, true);
  config.gre.sequence = true;
  auto tunnel = make_tunnel(config, kSlots, kMaxFrame);
  const Bytes v4 = ipv4_packet();
  const auto packet = [&](uint32_t sequence) { return gre_packet(kEtherTypeIpv4, v4, false, std::nullopt, sequence); };
  const ReceivedFrom slot0{0, 0, kIpProtocolGre}, slot1{1, 1, kIpProtocolGre};
  // The first number from a peer can be anything.
  CHECK_PASS(decapsulate(*tunnel, packet(5), slot0));
  CHECK_DROP(decapsulate(*tunnel, packet(5), slot0), kDropOutOfOrder);  // repeated
  CHECK_DROP(decapsulate(*tunnel, packet(4), slot0), kDropOutOfOrder);  // older
  CHECK_PASS(decapsulate(*tunnel, packet(6), slot0));
  CHECK_PASS(decapsulate(*tunnel, packet(1006), slot0));  // a gap is fine (packets were lost)
  CHECK_DROP(decapsulate(*tunnel, packet(1005), slot0), kDropOutOfOrder);
  CHECK_DROP(decapsulate(*tunnel, packet(7), slot0), kDropOutOfOrder);
  // Another slot keeps its own state: lower numbers than slot 0 saw are fine there.
  CHECK_PASS(decapsulate(*tunnel, packet(0), slot1));
  CHECK_PASS(decapsulate(*tunnel, packet(1), slot1));
  CHECK_DROP(decapsulate(*tunnel, packet(0), slot1), kDropOutOfOrder);
  // ... and did not move slot 0's.
  CHECK_DROP(decapsulate(*tunnel, packet(1006), slot0), kDropOutOfOrder);
  CHECK_PASS(decapsulate(*tunnel, packet(1007), slot0));
  // A tunnel that expects sequence numbers drops a packet without one (RFC 2890 §2.2).
  CHECK_DROP(decapsulate(*tunnel, gre_packet(kEtherTypeIpv4, v4, false, std::nullopt, std::nullopt), slot0),
             kDropMalformed);
  // A dropped packet moved nothing.
  CHECK_PASS(decapsulate(*tunnel, packet(1008), slot0));
}

TEST(tunnel_gre_sequence_numbers_wrap) {
  TunnelConfig config = config_of(TunnelMode::gre_udp, false);
  config.gre.sequence = true;
  config.gre.key = 3;
  auto tunnel = make_tunnel(config, kSlots, kMaxFrame);
  const Bytes frame = ethernet_frame();
  const auto packet = [&](uint32_t sequence) {
    return gre_packet(kEtherTypeTransparentEthernet, frame, false, 3u, sequence);
  };
  const ReceivedFrom from{2, 2, 0};
  CHECK_PASS(decapsulate(*tunnel, packet(0xFFFFFFFE), from));
  CHECK_PASS(decapsulate(*tunnel, packet(0xFFFFFFFF), from));
  CHECK_PASS(decapsulate(*tunnel, packet(0), from));  // serial arithmetic: 0 follows 2^32 - 1
  CHECK_PASS(decapsulate(*tunnel, packet(1), from));
  CHECK_DROP(decapsulate(*tunnel, packet(0xFFFFFFFF), from), kDropOutOfOrder);
  CHECK_DROP(decapsulate(*tunnel, packet(0), from), kDropOutOfOrder);
  // Less than 2^31 ahead is newer, even when the counter wraps on the way ...
  CHECK_PASS(decapsulate(*tunnel, packet(0x7FFFFFF0u), from));
  CHECK_PASS(decapsulate(*tunnel, packet(0xFFFFFFE0u), from));
  CHECK_PASS(decapsulate(*tunnel, packet(0x7FFFFFD0u), from));
  // ... and what is behind is older, across the wrap too.
  CHECK_DROP(decapsulate(*tunnel, packet(0xFFFFFFF0u), from), kDropOutOfOrder);
  CHECK_DROP(decapsulate(*tunnel, packet(0x7FFFFFC0u), from), kDropOutOfOrder);
  // The sender counts from 0 (RFC 2890 §2.2): the sequence word goes 0, 1, 2, ...
  auto sender = make_tunnel(config, kSlots, kMaxFrame);
  for (uint32_t n = 0; n < 3; n++) {
    const Bytes wire = encapsulate(*sender, frame, kEtherTypeTransparentEthernet);
    if (wire.size() < 12) return;
    CHECK_EQ(load_be32(&wire[8]), n);
  }
}

TEST(tunnel_gre_without_sequence_ignores_it) {
  auto tunnel = make_tunnel(config_of(TunnelMode::gre, true), kSlots, kMaxFrame);
  const Bytes wire = gre_packet(kEtherTypeIpv4, ipv4_packet(), false, std::nullopt, 9u);
  CHECK_PASS(decapsulate(*tunnel, wire));
  CHECK_PASS(decapsulate(*tunnel, wire));  // not tracked: a repeat is not out of order
  Inner inner;
  CHECK_PASS(decapsulate(*tunnel, wire, ReceivedFrom{0, 0, kIpProtocolGre}, &inner));
  CHECK_EQ(inner.offset, 8u);
}

// ---- IP-in-IP ----

TEST(tunnel_ipip_round_trip) {
  auto tunnel = make_tunnel(config_of(TunnelMode::ipip, true), kSlots, kMaxFrame);
  const Bytes v4 = ipv4_packet();
  const Bytes v6 = ipv6_packet();
  const Bytes wire4 = encapsulate(*tunnel, v4, kEtherTypeIpv4);
  const Bytes wire6 = encapsulate(*tunnel, v6, kEtherTypeIpv6);
  CHECK(wire4 == v4);  // no header of its own
  CHECK(wire6 == v6);
  // The outer protocol says which IP version is inside (RFC 2003: 4, RFC 4213: 41).
  CHECK_EQ(tunnel->outer_protocol(wire4.data(), static_cast<uint32_t>(wire4.size())), kIpProtocolIpip);
  CHECK_EQ(tunnel->outer_protocol(wire6.data(), static_cast<uint32_t>(wire6.size())), kIpProtocolIpv6);
  check_round_trip(*tunnel, wire4, v4, 0, kEtherTypeIpv4, ReceivedFrom{0, 0, kIpProtocolIpip});
  check_round_trip(*tunnel, wire6, v6, 0, kEtherTypeIpv6, ReceivedFrom{0, 0, kIpProtocolIpv6});
}

// ---- ESP ----

TEST(tunnel_esp_round_trip_between_two_ends) {
  for (EspCipher cipher : kCiphers) {
    for (bool udp : {true, false}) {
      for (bool esn : {true, false}) {
        EspEnds ends(true, udp, cipher, esn);
        CHECK_EQ(ends.a->outer_protocol(nullptr, 0), kIpProtocolEsp);
        for (uint64_t n = 1; n <= 3; n++) {
          const bool v6 = n == 2;
          const Bytes inner = v6 ? ipv6_packet(141) : ipv4_packet(100 + n);
          const Bytes wire = encapsulate(*ends.a, inner, v6 ? kEtherTypeIpv6 : kEtherTypeIpv4, ends.b_seen_from_a());
          if (wire.size() != esp_encoded_size(inner.size())) {
            CHECK(!"ESP packet of the wrong size");
            break;
          }
          // RFC 4303: SPI, sequence number (low 32 bits), then our IV = the 64-bit sequence number.
          CHECK_EQ(load_be32(&wire[0]), kSpiAtoB);
          CHECK_EQ(load_be32(&wire[4]), static_cast<uint32_t>(n));
          CHECK_EQ(load_be32(&wire[8]), 0u);
          CHECK_EQ(load_be32(&wire[12]), static_cast<uint32_t>(n));
          CHECK((wire.size() - 16 - 16) % 4 == 0);
          // Encrypted: the inner packet does not show.
          CHECK(std::memcmp(&wire[16], inner.data(), 20) != 0);
          check_round_trip(*ends.b, wire, inner, 16, v6 ? kEtherTypeIpv6 : kEtherTypeIpv4, EspEnds::from_a());
        }
        // The other direction, under the other SA.
        const Bytes inner = ipv4_packet(64);
        const Bytes back = encapsulate(*ends.b, inner, kEtherTypeIpv4, &ends.table_b->peers()[0]);
        if (back.size() < 8) continue;
        CHECK_EQ(load_be32(&back[0]), kSpiBtoA);
        CHECK_EQ(load_be32(&back[4]), 1u);
        check_round_trip(*ends.a, back, inner, 16, kEtherTypeIpv4, ReceivedFrom{0, 0, 0});
        // b's own outbound SPI is not one b receives on.
        CHECK_DROP(decapsulate(*ends.b, back, EspEnds::from_a()), kDropUnknownSpi);
      }
    }
  }
}

TEST(tunnel_esp_round_trip_ethernet) {
  EspEnds ends(false);
  const Bytes frame = ethernet_frame(90);
  const Bytes wire = encapsulate(*ends.a, frame, kEtherTypeTransparentEthernet, ends.b_seen_from_a());
  if (wire.size() != esp_encoded_size(frame.size())) {
    CHECK(!"ESP packet of the wrong size");
    return;
  }
  check_round_trip(*ends.b, wire, frame, 16, kEtherTypeTransparentEthernet, EspEnds::from_a());
  // An IP tunnel refuses next header 143, and an Ethernet tunnel next header 4.
  EspEnds ip_ends(true);
  const Bytes ip_wire = encapsulate(*ip_ends.a, ipv4_packet(), kEtherTypeIpv4, ip_ends.b_seen_from_a());
  EspEnds frame_ends(false);
  const Bytes frame_wire = encapsulate(*frame_ends.a, frame, kEtherTypeTransparentEthernet, frame_ends.b_seen_from_a());
  // Same SPIs and keys in both pairs, so only the device's payload type differs.
  CHECK_DROP(decapsulate(*ip_ends.b, frame_wire, EspEnds::from_a()), kDropMalformed);
  CHECK_DROP(decapsulate(*frame_ends.b, ip_wire, EspEnds::from_a()), kDropMalformed);
}

TEST(tunnel_esp_replay_and_forgery) {
  EspEnds ends;
  const Bytes inner = ipv4_packet();
  const Bytes first = encapsulate(*ends.a, inner, kEtherTypeIpv4, ends.b_seen_from_a());
  const Bytes second = encapsulate(*ends.a, inner, kEtherTypeIpv4, ends.b_seen_from_a());
  const Bytes third = encapsulate(*ends.a, inner, kEtherTypeIpv4, ends.b_seen_from_a());
  if (first.empty() || second.empty() || third.empty()) return;
  check_round_trip(*ends.b, first, inner, 16, kEtherTypeIpv4, EspEnds::from_a());
  CHECK_DROP(decapsulate(*ends.b, first, EspEnds::from_a()), kDropReplay);
  // A flipped ICV byte, ciphertext byte or header byte fails authentication ...
  Bytes bad_icv = second;
  bad_icv[bad_icv.size() - 1] ^= 0x01;
  CHECK_DROP(decapsulate(*ends.b, bad_icv, EspEnds::from_a()), kDropAuthFailed);
  Bytes bad_payload = second;
  bad_payload[30] ^= 0x40;
  CHECK_DROP(decapsulate(*ends.b, bad_payload, EspEnds::from_a()), kDropAuthFailed);
  Bytes bad_iv = second;
  bad_iv[15] ^= 0x01;
  CHECK_DROP(decapsulate(*ends.b, bad_iv, EspEnds::from_a()), kDropAuthFailed);
  // ... and moves no replay window: the genuine packet still goes through, once.
  check_round_trip(*ends.b, second, inner, 16, kEtherTypeIpv4, EspEnds::from_a());
  CHECK_DROP(decapsulate(*ends.b, second, EspEnds::from_a()), kDropReplay);
  // A forgery of a sequence number already received is a replay before it is anything else.
  CHECK_DROP(decapsulate(*ends.b, bad_icv, EspEnds::from_a()), kDropReplay);
  // Out of order inside the window is fine.
  const Bytes fourth = encapsulate(*ends.a, inner, kEtherTypeIpv4, ends.b_seen_from_a());
  CHECK_PASS(decapsulate(*ends.b, fourth, EspEnds::from_a()));
  CHECK_PASS(decapsulate(*ends.b, third, EspEnds::from_a()));
  CHECK_DROP(decapsulate(*ends.b, third, EspEnds::from_a()), kDropReplay);
  // Truncated below the smallest ESP packet.
  CHECK_DROP(decapsulate(*ends.b, Bytes(fourth.begin(), fourth.begin() + kEspMinPacketSize - 1), EspEnds::from_a()),
             kDropMalformed);
  CHECK_DROP(decapsulate(*ends.b, Bytes(fourth.begin(), fourth.begin() + 7), EspEnds::from_a()), kDropMalformed);
}

TEST(tunnel_esp_unknown_spi) {
  EspEnds ends;
  const Bytes inner = ipv4_packet();
  const Bytes wire = encapsulate(*ends.a, inner, kEtherTypeIpv4, ends.b_seen_from_a());
  if (wire.size() < 8) return;
  Bytes unknown = wire;
  store_be32(&unknown[0], 0x0BADF00D);
  CHECK_DROP(decapsulate(*ends.b, unknown, EspEnds::from_a()), kDropUnknownSpi);
  // SPI 0 is the non-ESP marker (RFC 3948), never an SA.
  Bytes zero = wire;
  store_be32(&zero[0], 0);
  CHECK_DROP(decapsulate(*ends.b, zero, EspEnds::from_a()), kDropUnknownSpi);
  // a's SPI arriving from c (b's second peer): an SA belongs to one peer.
  CHECK_DROP(decapsulate(*ends.b, wire, EspEnds::from_c()), kDropUnknownSpi);
  // Our own outbound SPI is not an inbound one.
  Bytes outbound = wire;
  store_be32(&outbound[0], kSpiBtoA);
  CHECK_DROP(decapsulate(*ends.b, outbound, EspEnds::from_a()), kDropUnknownSpi);
  // None of that touched the SA: the packet still goes through from a.
  check_round_trip(*ends.b, wire, inner, 16, kEtherTypeIpv4, EspEnds::from_a());

  // c's SPI arriving from a is as unknown; from c it goes through.
  TunnelConfig config = config_of(TunnelMode::esp, true);
  auto c = make_tunnel(config, kSlots, kMaxFrame);
  PeerTable table_c({esp_peer(0, "198.18.0.1", esp_sa(kSpiCtoB, EspCipher::aes256_gcm, 3), {})});
  c->table_changed(table_c);
  const Bytes from_c = encapsulate(*c, inner, kEtherTypeIpv4, &table_c.peers()[0]);
  CHECK_DROP(decapsulate(*ends.b, from_c, EspEnds::from_a()), kDropUnknownSpi);
  check_round_trip(*ends.b, from_c, inner, 16, kEtherTypeIpv4, EspEnds::from_c());

  // A tunnel that has no table yet knows no SPI.
  auto fresh = make_tunnel(config, kSlots, kMaxFrame);
  CHECK_DROP(decapsulate(*fresh, wire, EspEnds::from_a()), kDropUnknownSpi);
}

TEST(tunnel_esp_encapsulate_refusals) {
  EspEnds ends;
  const Bytes inner = ipv4_packet();
  // No outbound SA (IKE has not made one yet): noSa; no peer at all: nowhere to send it.
  const Peer no_sa{0, ends.table_a->peers()[0].endpoint, nullptr};
  Loaded a(inner);
  CHECK_DROP(ends.a->encapsulate(a.buffer(), kEtherTypeIpv4, &no_sa), kDropNoSa);
  Loaded b(inner);
  CHECK_DROP(ends.a->encapsulate(b.buffer(), kEtherTypeIpv4, nullptr), kDropNoRoute);
  // A peer table spec without an SA gives such a peer.
  PeerTable table({esp_peer(0, "198.18.0.9", nullptr, {})});
  Loaded c(inner);
  CHECK_DROP(ends.a->encapsulate(c.buffer(), kEtherTypeIpv4, &table.peers()[0]), kDropNoSa);
  // A refused packet is left as it was.
  CHECK(c.bytes() == inner);
  CHECK_EQ(c.buffer().offset, kHeadroom);

  // No room behind the packet for the trailer.
  Loaded small(Bytes(240, 0x45), 200);  // tailroom 256 < 240 + 21
  CHECK_DROP(ends.a->encapsulate(small.buffer(), kEtherTypeIpv4, ends.b_seen_from_a()), kDropTooBig);

  // An SA whose sequence numbers are used up sends nothing more (they never wrap).
  auto spent = esp_sa(0x5001, EspCipher::aes128_gcm, 5, false);
  uint64_t first = 0;
  CHECK_EQ(spent->sequence.reserve(0xFFFFFFFFu, &first), 0xFFFFFFFFu);
  const Peer exhausted{0, ends.table_a->peers()[0].endpoint, spent};
  Loaded d(inner);
  CHECK_DROP(ends.a->encapsulate(d.buffer(), kEtherTypeIpv4, &exhausted), kDropSaExpired);
}

TEST(tunnel_esp_table_change_rekeys) {
  EspEnds ends;
  const Bytes inner = ipv4_packet();
  const Bytes old_wire = encapsulate(*ends.a, inner, kEtherTypeIpv4, ends.b_seen_from_a());
  // New SAs on both ends (rekeyed: new SPI, new key).
  PeerTable new_a({esp_peer(0, "198.18.0.2", esp_sa(0x1002, EspCipher::aes256_gcm, 11), {})});
  PeerTable new_b({esp_peer(0, "198.18.0.1", nullptr, {esp_sa(0x1002, EspCipher::aes256_gcm, 11)})});
  ends.a->table_changed(new_a);
  ends.b->table_changed(new_b);
  const Bytes new_wire = encapsulate(*ends.a, inner, kEtherTypeIpv4, &new_a.peers()[0]);
  if (new_wire.size() < 8) return;
  CHECK_EQ(load_be32(&new_wire[0]), 0x1002u);
  CHECK_EQ(load_be32(&new_wire[4]), 1u);  // a new SA counts from 1
  check_round_trip(*ends.b, new_wire, inner, 16, kEtherTypeIpv4, EspEnds::from_a());
  CHECK_DROP(decapsulate(*ends.b, old_wire, EspEnds::from_a()), kDropUnknownSpi);
  // The same SPI with another key (a fresh state): the key of the new state is used.
  PeerTable other_key({esp_peer(0, "198.18.0.1", nullptr, {esp_sa(0x1002, EspCipher::aes256_gcm, 12)})});
  ends.b->table_changed(other_key);
  const Bytes next = encapsulate(*ends.a, inner, kEtherTypeIpv4, &new_a.peers()[0]);
  CHECK_DROP(decapsulate(*ends.b, next, EspEnds::from_a()), kDropAuthFailed);
}

TEST(tunnel_esp_copies_for_peers) {
  EspEnds ends(false);
  Tunnel& tunnel = *ends.a;
  const Bytes frame = ethernet_frame(200);
  Loaded original(frame);
  std::set<PacketBuffer*> handed_out;
  size_t count = 0;
  Verdict verdict = Verdict::pass();
  for (; count < 100000; count++) {
    PacketBuffer* copy = tunnel.copy_for_peer(original.buffer(), &verdict);
    if (copy == nullptr) break;
    CHECK(verdict.ok());
    CHECK(handed_out.insert(copy).second);  // never the same buffer twice before release_copies()
    CHECK(copy != &original.buffer());
    CHECK_EQ(copy->length, static_cast<uint32_t>(frame.size()));
    CHECK(copy->offset >= tunnel.headroom() + 48);  // room for ESP and an outer IPv6 + UDP header
    CHECK(std::memcmp(copy->data(), frame.data(), frame.size()) == 0);
  }
  // The pool ran out: null with an ok verdict (send what is queued, release, ask again).
  CHECK(count > 1);
  CHECK(count < 100000);
  CHECK_PASS(verdict);
  CHECK(tunnel.copy_for_peer(original.buffer(), &verdict) == nullptr);
  CHECK_PASS(verdict);
  tunnel.release_copies();
  size_t again = 0;
  for (; again < count + 1; again++) {
    PacketBuffer* copy = tunnel.copy_for_peer(original.buffer(), &verdict);
    if (copy == nullptr) break;
    CHECK(handed_out.count(copy) == 1);  // the same buffers come back
  }
  CHECK_EQ(again, count);
  CHECK_PASS(verdict);

  // A copy is sealed for its peer like any frame, and the original is left as it was.
  tunnel.release_copies();
  PacketBuffer* copy = tunnel.copy_for_peer(original.buffer(), &verdict);
  if (copy == nullptr) {
    CHECK(!"no copy after release_copies()");
    return;
  }
  CHECK_PASS(tunnel.encapsulate(*copy, kEtherTypeTransparentEthernet, ends.b_seen_from_a()));
  CHECK(original.bytes() == frame);
  const Bytes wire(copy->data(), copy->data() + copy->length);
  check_round_trip(*ends.b, wire, frame, 16, kEtherTypeTransparentEthernet, EspEnds::from_a());
  // A frame larger than the copies can hold.
  tunnel.release_copies();
  Loaded huge(Bytes(kMaxFrame + 100, 0x02), kMaxFrame + 200);
  CHECK(tunnel.copy_for_peer(huge.buffer(), &verdict) == nullptr);
  CHECK_DROP(verdict, kDropTooBig);
}

TEST(tunnel_esp_tun_has_no_copies) {
  // TUN devices never flood, so an IP tunnel keeps no copy pool.
  EspEnds ends(true);
  Loaded packet(ipv4_packet());
  Verdict verdict = Verdict::drop(kDropMalformed);
  CHECK(ends.a->copy_for_peer(packet.buffer(), &verdict) == nullptr);
}

// The largest frame a copy must hold (make_tunnel's max_frame, tunnel.h) can be copied. 1344
// makes the copy pool's stride (192 + 1344 = 1536) a multiple of 64, so alignment adds no slack.
TEST(tunnel_esp_copy_holds_max_frame) {
  constexpr uint32_t kFrame = 1344;
  auto tunnel = make_tunnel(config_of(TunnelMode::esp, false), kSlots, kFrame);
  Loaded original(ethernet_frame(kFrame - 14));
  Verdict verdict = Verdict::pass();
  const PacketBuffer* copy = tunnel->copy_for_peer(original.buffer(), &verdict);
  CHECK_PASS(verdict);
  CHECK(copy != nullptr);
}

// A copy that copy_for_peer hands out can be sealed: it checked there is room for the trailer.
TEST(tunnel_esp_copy_handed_out_is_sealed) {
  constexpr uint32_t kFrame = 1344;
  auto tunnel = make_tunnel(config_of(TunnelMode::esp, false), kSlots, kFrame);
  EspEnds ends(false);
  tunnel->table_changed(*ends.table_a);
  // The largest frame the copy accepts: 1323 + 21 = 1344 bytes of tailroom.
  const Bytes frame = ethernet_frame(kFrame - 21 - 14);
  Loaded original(frame);
  Verdict verdict = Verdict::pass();
  PacketBuffer* copy = tunnel->copy_for_peer(original.buffer(), &verdict);
  CHECK_PASS(verdict);
  if (copy == nullptr) {
    CHECK(!"no copy of a frame that fits");
    return;
  }
  CHECK_PASS(tunnel->encapsulate(*copy, kEtherTypeTransparentEthernet, ends.b_seen_from_a()));
  CHECK(copy->offset + copy->length <= copy->capacity);
}

// ESP appends at most 21 bytes: a buffer with exactly the room the trailer needs behind the
// inner packet is sealed (the 16-byte prefix goes into the headroom, in front).
TEST(tunnel_esp_seals_with_exact_tailroom) {
  EspEnds ends;
  // A pool of 1344-byte packets: tailroom after the headroom is exactly 1344 bytes.
  const Bytes inner = ipv4_packet(1323);  // 1323 + 3 padding + 2 + 16 ICV = 1344
  CHECK_EQ(inner.size() + esp_trailer_size(inner.size()), size_t{1344});
  Loaded loaded(inner, 1344);
  CHECK_EQ(loaded.buffer().tailroom(), 1344u);
  CHECK_PASS(ends.a->encapsulate(loaded.buffer(), kEtherTypeIpv4, ends.b_seen_from_a()));
  CHECK(loaded.buffer().offset + loaded.buffer().length <= loaded.buffer().capacity);
  // A packet whose trailer would not fit (1327 + 3 padding + 2 + 16 = 1348).
  Loaded too_big(ipv4_packet(1327), 1344);
  CHECK_DROP(ends.a->encapsulate(too_big.buffer(), kEtherTypeIpv4, ends.b_seen_from_a()), kDropTooBig);
}

// Only ESP in UDP shares its port with control traffic (RFC 3948); every other mode, and ESP on
// IP protocol 50, takes every datagram as a tunnel packet.
TEST(tunnel_classify_port_traffic) {
  const std::vector<uint8_t> keepalive = {0xff};
  std::vector<uint8_t> ike(4 + 28, 0x22), short_ike(4 + 27, 0x22), esp(64, 0x22);
  for (int i = 0; i < 4; i++) ike[i] = short_ike[i] = 0;
  TunnelConfig udp = config_of(TunnelMode::esp, true);
  udp.esp_udp = true;
  CHECK(udp.control_on_data_port());
  auto tunnel = make_tunnel(udp, kSlots, kMaxFrame);
  uint32_t offset = 0;
  CHECK(tunnel->classify(keepalive.data(), 1, &offset) == PortTraffic::keepalive);
  CHECK(tunnel->classify(ike.data(), static_cast<uint32_t>(ike.size()), &offset) == PortTraffic::control);
  CHECK_EQ(offset, 4u);
  CHECK(tunnel->classify(short_ike.data(), static_cast<uint32_t>(short_ike.size()), &offset) == PortTraffic::short_control);
  CHECK(tunnel->classify(esp.data(), static_cast<uint32_t>(esp.size()), &offset) == PortTraffic::tunnel);

  TunnelConfig raw = udp;
  raw.esp_udp = false;
  CHECK(!raw.control_on_data_port());
  CHECK(raw.uses_security_associations());
  auto raw_tunnel = make_tunnel(raw, kSlots, kMaxFrame);
  CHECK(raw_tunnel->classify(ike.data(), static_cast<uint32_t>(ike.size()), &offset) == PortTraffic::tunnel);
  CHECK(raw_tunnel->classify(keepalive.data(), 1, &offset) == PortTraffic::tunnel);
  for (TunnelMode mode : kAllModes) {
    if (mode == TunnelMode::esp) continue;
    const TunnelConfig config = config_of(mode, mode != TunnelMode::vxlan);
    CHECK(!config.control_on_data_port());
    auto other = make_tunnel(config, kSlots, kMaxFrame);
    CHECK(other->classify(ike.data(), static_cast<uint32_t>(ike.size()), &offset) == PortTraffic::tunnel);
    CHECK(other->classify(keepalive.data(), 1, &offset) == PortTraffic::tunnel);
  }
}
