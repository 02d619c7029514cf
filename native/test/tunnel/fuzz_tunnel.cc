// Fuzz target: every mode's Tunnel (vxlan, geneve, gre-udp, gre, ipip, esp in UDP and on IP), as
// the data path drives it: classify (ESP in UDP: NAT keepalive, IKE behind the non-ESP marker),
// decapsulate, and encapsulate.
//
// Input: byte 0 picks the tunnel (bits 0-2 the mode, 6 and 7 again gre and esp; bit 3 TUN rather
// than TAP; bits 4-6 the GRE checksum, key and sequence options, or the ESP cipher and ESN; bit 7
// ESP in UDP), byte 1 the sender (bit 0: the second peer; bit 1: outer protocol 41 rather than 4
// for ipip) and, with the last byte, the bit a tamper test flips. The rest is used twice:
//
//  1. as a datagram received from that peer: classify must agree with RFC 3948's rules (a
//     reference below), and decapsulate must stay inside the bytes, leave them alone (all modes
//     but ESP, which decrypts in place), answer only with its mode's drop reasons, and on pass
//     describe an inner frame that lies inside the datagram, holds the header its type names,
//     and is of a type the device carries;
//  2. as an inner frame sent by the other end: encapsulated there with the same options and
//     decapsulated here, it must come back byte for byte exactly when it is a frame the mode
//     accepts (a spec of each mode's minimum, below), and be refused as malformed otherwise.
//     Then the same packet again must be refused where the mode promises it (ESP: replay; GRE
//     with sequence numbers: outOfOrder), with one bit flipped wherever the mode authenticates
//     (ESP; GRE with checksum), and from the other peer (ESP: the SPI is not its).
// Each input gets fresh tunnels, tables and SA states, so every run is independent.
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "base/packet_buffer.h"
#include "base/socket_address.h"
#include "base/stats_layout.h"
#include "base/verdict.h"
#include "tables/peer_table.h"
#include "tunnel/esp/esp_codec.h"
#include "tunnel/esp/esp_sa.h"
#include "tunnel/esp/esp_udp_encap.h"
#include "tunnel/gre_codec.h"
#include "tunnel/tunnel.h"
#include "wire/ethernet.h"

namespace {

using namespace ovl;
using Bytes = std::vector<uint8_t>;

constexpr uint32_t kVni = 0x00ABCD;
constexpr uint32_t kMaxInner = 4096;
constexpr uint32_t kSlots = 4;
// The frame size of ESP's flood copies (copy_for_peer), which this target never asks for: small,
// so that making two tunnels per input stays cheap.
constexpr uint32_t kCopyFrame = 64;

[[noreturn]] void fail(const char* what, const Verdict& verdict) {
  std::fprintf(stderr, "fuzz_tunnel: %s (verdict %s)\n", what, verdict.ok() ? "pass" : counter_name(verdict.reason()));
  std::abort();
}
void require(bool condition, const char* what, const Verdict& verdict = Verdict::pass()) {
  if (!condition) fail(what, verdict);
}

std::vector<uint8_t> key_for(EspCipher cipher, uint8_t seed) {
  std::vector<uint8_t> key(esp_key_material_size(cipher));
  for (size_t i = 0; i < key.size(); i++) key[i] = static_cast<uint8_t>(seed * 31 + i * 7 + 1);
  return key;
}

PeerSpec peer_spec(uint32_t slot, const char* address, uint16_t port) {
  PeerSpec spec{};
  spec.slot = slot;
  spec.endpoint = *parse_socket_address(address, port);
  return spec;
}

// Two ends: a sends to b. b knows a (peer 0, slot 0) and c (peer 1, slot 1); with ESP a's
// outbound SA is b's inbound SA from a, and c has an inbound SA of its own at b.
struct Ends {
  Ends(const TunnelConfig& config_, bool esn) : config(config_), esn(esn) {
    const uint16_t port = config.info().default_port;
    PeerSpec a_to_b = peer_spec(0, "198.18.0.2", port);
    PeerSpec b_from_a = peer_spec(0, "198.18.0.1", port);
    PeerSpec b_from_c = peer_spec(1, "fd00:198:18::3", port);
    if (config.mode == TunnelMode::esp) {
      a_to_b.sa_out = std::make_shared<EspSaState>(0x1001, config.cipher, key_for(config.cipher, 1), esn);
      b_from_a.sa_in = {std::make_shared<EspSaState>(0x1001, config.cipher, key_for(config.cipher, 1), esn)};
      b_from_c.sa_in = {std::make_shared<EspSaState>(0x3001, config.cipher, key_for(config.cipher, 3), esn)};
    }
    table_a = std::make_unique<PeerTable>(std::vector<PeerSpec>{a_to_b});
    table_b = std::make_unique<PeerTable>(std::vector<PeerSpec>{b_from_a, b_from_c});
    a = make_tunnel(config, kSlots, kCopyFrame);
    b = make_tunnel(config, kSlots, kCopyFrame);
    a->table_changed(*table_a);
    b->table_changed(*table_b);
  }
  TunnelConfig config;
  bool esn;
  std::unique_ptr<PeerTable> table_a, table_b;
  std::unique_ptr<Tunnel> a, b;
};

TunnelConfig decode_config(uint8_t selector) {
  static const TunnelMode kModes[8] = {TunnelMode::vxlan, TunnelMode::geneve, TunnelMode::gre_udp, TunnelMode::gre,
                                       TunnelMode::ipip,  TunnelMode::esp,    TunnelMode::gre,     TunnelMode::esp};
  TunnelConfig config;
  config.mode = kModes[selector & 7];
  config.vni = kVni;
  config.carries_ip = (selector & 0x08) != 0;
  if (config.mode == TunnelMode::vxlan) config.carries_ip = false;
  if (config.mode == TunnelMode::ipip) config.carries_ip = true;
  config.gre.checksum = (selector & 0x10) != 0;  // ESP: ESN instead (esn_of)
  config.gre.key = (selector & 0x20) ? std::optional<uint32_t>(0x01020304) : std::nullopt;
  config.gre.sequence = (selector & 0x40) != 0;
  static const EspCipher kCiphers[4] = {EspCipher::aes128_gcm, EspCipher::aes256_gcm, EspCipher::chacha20_poly1305,
                                        EspCipher::aes256_gcm};
  config.cipher = kCiphers[(selector >> 5) & 3];
  config.esp_udp = (selector & 0x80) != 0;
  if (config.mode != TunnelMode::gre && config.mode != TunnelMode::gre_udp) config.gre = GreOptions{};
  return config;
}

bool esn_of(uint8_t selector) { return (selector & 0x10) != 0; }

bool is_gre(TunnelMode mode) { return mode == TunnelMode::gre || mode == TunnelMode::gre_udp; }

// The smallest inner frame of `ethertype` a mode delivers, and anything else it asks of it.
bool mode_accepts(const TunnelConfig& config, uint16_t ethertype, const Bytes& inner) {
  const size_t n = inner.size();
  const int version = n > 0 ? inner[0] >> 4 : -1;
  switch (config.mode) {
    case TunnelMode::vxlan: return n >= kEthernetHeaderSize;
    case TunnelMode::geneve: return n >= (config.carries_ip ? 20u : kEthernetHeaderSize);
    case TunnelMode::gre_udp:
    case TunnelMode::gre:
      return n >= (ethertype == kEtherTypeIpv4 ? 20u : ethertype == kEtherTypeIpv6 ? 40u : kEthernetHeaderSize);
    case TunnelMode::ipip: return true;
    case TunnelMode::esp:
      if (ethertype == kEtherTypeIpv4) return n >= 20 && version == 4;
      if (ethertype == kEtherTypeIpv6) return n >= 40 && version == 6;
      return n >= kEthernetHeaderSize;
  }
  return false;
}

// The drop reasons a mode's decapsulate may give.
bool reason_allowed(TunnelMode mode, Counter reason) {
  switch (mode) {
    case TunnelMode::vxlan: return reason == kDropMalformed || reason == kDropWrongVni;
    case TunnelMode::geneve:
      return reason == kDropMalformed || reason == kDropWrongVni || reason == kDropOam || reason == kDropUnknownOption;
    case TunnelMode::gre_udp:
    case TunnelMode::gre:
      return reason == kDropMalformed || reason == kDropWrongKey || reason == kDropBadChecksum ||
             reason == kDropOutOfOrder;
    case TunnelMode::ipip: return false;
    case TunnelMode::esp:
      return reason == kDropMalformed || reason == kDropUnknownSpi || reason == kDropReplay || reason == kDropAuthFailed;
  }
  return false;
}

// RFC 3948 §2.2-2.3, spelled out independently of esp_udp_classify.
PortTraffic reference_classify(const TunnelConfig& config, const uint8_t* d, size_t n) {
  if (config.mode != TunnelMode::esp || !config.esp_udp) return PortTraffic::tunnel;
  if (n == 1 && d[0] == 0xFF) return PortTraffic::keepalive;
  if (n >= 4 && d[0] == 0 && d[1] == 0 && d[2] == 0 && d[3] == 0) {
    return n >= 4 + 28 ? PortTraffic::control : PortTraffic::short_control;
  }
  return PortTraffic::tunnel;
}

// Decapsulates a copy of `wire` in an allocation of its exact size; *after* gets the bytes after.
Verdict decapsulate(Tunnel& tunnel, const Bytes& wire, const ReceivedFrom& from, Inner* inner, Bytes* after) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[wire.empty() ? 1 : wire.size()]);
  if (!wire.empty()) std::memcpy(copy.get(), wire.data(), wire.size());
  const Verdict verdict = tunnel.decapsulate(copy.get(), static_cast<uint32_t>(wire.size()), from, inner);
  after->assign(copy.get(), copy.get() + wire.size());
  return verdict;
}

void check_received(Ends& ends, const Bytes& datagram, const ReceivedFrom& from) {
  const TunnelConfig& config = ends.config;
  uint32_t control_offset = 0xDEAD;
  const PortTraffic traffic = ends.b->classify(datagram.data(), static_cast<uint32_t>(datagram.size()), &control_offset);
  require(traffic == reference_classify(config, datagram.data(), datagram.size()), "classify disagrees with RFC 3948");
  if (traffic == PortTraffic::control) require(control_offset == kNonEspMarkerSize, "control offset");

  Inner inner;
  Bytes after;
  const Verdict verdict = decapsulate(*ends.b, datagram, from, &inner, &after);
  if (config.mode != TunnelMode::esp) require(after == datagram, "decapsulate changed the packet", verdict);
  if (!verdict.ok()) {
    require(reason_allowed(config.mode, verdict.reason()), "a drop reason the mode does not have", verdict);
    return;
  }
  require(inner.offset <= datagram.size() && inner.length <= datagram.size() - inner.offset, "inner frame outside");
  if (config.carries_ip) {
    require(inner.ethertype == kEtherTypeIpv4 || inner.ethertype == kEtherTypeIpv6, "a TUN got a non-IP frame");
    // IP-in-IP has no header of its own to check: the inner packet is the policy's to judge.
    if (config.mode != TunnelMode::ipip) require(inner.length >= 20, "an IP packet shorter than an IPv4 header");
  } else {
    require(inner.ethertype == kEtherTypeTransparentEthernet, "a TAP got a non-Ethernet frame");
    require(inner.length >= kEthernetHeaderSize, "an Ethernet frame shorter than its header");
  }
  switch (config.mode) {
    case TunnelMode::vxlan: require(inner.offset == 8 && inner.offset + inner.length == datagram.size(), "vxlan"); break;
    case TunnelMode::geneve:
      require(inner.offset >= 8 && inner.offset % 4 == 0 && inner.offset + inner.length == datagram.size(), "geneve");
      break;
    case TunnelMode::gre_udp:
    case TunnelMode::gre: {
      const uint16_t flags = load_be16(datagram.data());
      const uint32_t words = !!(flags & kGreFlagChecksum) + !!(flags & kGreFlagKey) + !!(flags & kGreFlagSequence);
      require(inner.offset == 4 + 4 * words && inner.offset + inner.length == datagram.size(), "gre header length");
      if (inner.ethertype == kEtherTypeIpv6) require(inner.length >= 40, "gre: short IPv6");
      break;
    }
    case TunnelMode::ipip:
      require(inner.offset == 0 && inner.length == datagram.size(), "ipip");
      require(inner.ethertype == (from.outer_protocol == kIpProtocolIpv6 ? kEtherTypeIpv6 : kEtherTypeIpv4), "ipip type");
      break;
    case TunnelMode::esp:
      require(inner.offset == kEspPrefixSize && inner.offset + inner.length + 2 + kEspIcvSize <= datagram.size(), "esp");
      // Only a peer's own SA: a's is 0x1001, c's 0x3001.
      require(load_be32(datagram.data()) == (from.peer == 0 ? 0x1001u : 0x3001u), "esp: another peer's SA passed");
      break;
  }
}

void check_round_trip(Ends& ends, const Bytes& frame, uint8_t flip_selector) {
  const TunnelConfig& config = ends.config;
  const uint16_t ethertype = !config.carries_ip                      ? kEtherTypeTransparentEthernet
                             : (!frame.empty() && frame[0] >> 4 == 6) ? kEtherTypeIpv6
                                                                      : kEtherTypeIpv4;
  BufferPool pool(1, kMaxInner + 64);
  PacketBuffer& buffer = pool[0];
  buffer.reset();
  if (!frame.empty()) std::memcpy(buffer.data(), frame.data(), frame.size());
  buffer.length = static_cast<uint32_t>(frame.size());
  const Verdict sent = ends.a->encapsulate(buffer, ethertype, &ends.table_a->peers()[0]);
  require(sent.ok(), "encapsulate refused", sent);
  require(buffer.offset == kHeadroom - ends.a->headroom(), "encapsulate: headroom");
  require(buffer.length >= frame.size() + ends.a->headroom() &&
              buffer.length <= frame.size() + ends.a->headroom() + ends.a->tailroom(),
          "encapsulate: length");
  const Bytes wire(buffer.data(), buffer.data() + buffer.length);
  const ReceivedFrom from_a{0, 0, ends.a->outer_protocol(wire.data(), static_cast<uint32_t>(wire.size()))};
  if (config.mode == TunnelMode::esp && config.esp_udp) {
    uint32_t offset;
    require(ends.b->classify(wire.data(), static_cast<uint32_t>(wire.size()), &offset) == PortTraffic::tunnel,
            "an ESP packet classified as control traffic");
  }

  Inner inner;
  Bytes after;
  const Verdict verdict = decapsulate(*ends.b, wire, from_a, &inner, &after);
  if (!mode_accepts(config, ethertype, frame)) {
    require(!verdict.ok() && verdict.reason() == kDropMalformed, "a frame the mode refuses was not malformed", verdict);
    return;
  }
  require(verdict.ok(), "a frame the mode carries did not come back", verdict);
  require(inner.length == frame.size() && inner.offset + inner.length <= after.size(), "round trip: length");
  require(frame.empty() || std::memcmp(after.data() + inner.offset, frame.data(), frame.size()) == 0, "round trip: bytes");
  const uint16_t expected_type = config.mode == TunnelMode::ipip
                                     ? (from_a.outer_protocol == kIpProtocolIpv6 ? kEtherTypeIpv6 : kEtherTypeIpv4)
                                     : ethertype;
  require(inner.ethertype == expected_type, "round trip: type");

  // The same packet once more.
  const Verdict again = decapsulate(*ends.b, wire, from_a, &inner, &after);
  if (config.mode == TunnelMode::esp) require(!again.ok() && again.reason() == kDropReplay, "esp: a replay passed", again);
  if (is_gre(config.mode) && config.gre.sequence) {
    require(!again.ok() && again.reason() == kDropOutOfOrder, "gre: a repeated sequence number passed", again);
  }
  if (config.mode == TunnelMode::esp) {
    const Verdict other = decapsulate(*ends.b, wire, ReceivedFrom{1, 1, from_a.outer_protocol}, &inner, &after);
    require(!other.ok() && other.reason() == kDropUnknownSpi, "esp: another peer's SPI passed", other);
  }
  // One bit flipped where the mode authenticates every bit.
  const bool authenticated = config.mode == TunnelMode::esp || (is_gre(config.mode) && config.gre.checksum);
  if (authenticated && !wire.empty()) {
    Bytes tampered(wire);
    const size_t bit = (size_t{flip_selector} * 2654435761u + frame.size()) % (wire.size() * 8);
    tampered[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    // A fresh receiver for GRE, so that the sequence number cannot be what refuses it.
    Ends fresh(config, ends.esn);
    Tunnel& receiver = config.mode == TunnelMode::esp ? *ends.b : *fresh.b;
    const Verdict forged = decapsulate(receiver, tampered, from_a, &inner, &after);
    require(!forged.ok(), "a tampered packet passed");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const TunnelConfig config = decode_config(data[0]);
  const uint8_t sender = data[1];
  const Bytes rest(data + 2, data + size);

  Ends ends(config, esn_of(data[0]));
  const uint8_t outer = config.mode == TunnelMode::ipip ? ((sender & 2) ? kIpProtocolIpv6 : kIpProtocolIpip) : 0;
  const ReceivedFrom from = (sender & 1) ? ReceivedFrom{1, 1, outer} : ReceivedFrom{0, 0, outer};
  check_received(ends, rest, from);

  if (rest.size() <= kMaxInner) {
    Ends fresh(config, esn_of(data[0]));
    check_round_trip(fresh, rest, static_cast<uint8_t>(sender ^ data[size - 1]));
  }
  return 0;
}
