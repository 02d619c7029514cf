// The tunnel interface: one implementation per mode (vxlan.cc, geneve.cc, gre.cc for gre and
// gre-udp, ipip.cc, esp.cc), as the kernel has one file per tunnel protocol and Open vSwitch one
// netdev_class row per tunnel type. A worker owns one Tunnel; the data path asks it for
// headroom and tailroom, has it encapsulate and decapsulate, and tells it when the table
// changes. Nothing outside tunnel/ knows which mode it runs.
//
// The outer IP (and UDP) header is not the tunnel's: UDP modes leave it to the socket, raw-IP
// modes to the underlay's raw link, which asks the tunnel for the outer protocol number.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/packet_buffer.h"
#include "base/verdict.h"
#include "tables/peer_table.h"
#include "tunnel/esp/esp_aead.h"
#include "tunnel/gre_codec.h"

namespace ovl {

enum class TunnelMode : uint8_t { vxlan, geneve, gre_udp, gre, ipip, esp };

// What a mode is, whatever its options: one row per mode (modes.cc). The TypeScript side reads
// this table from the addon instead of keeping a copy.
struct TunnelModeInfo {
  TunnelMode mode;
  const char* name;        // as the config spells it
  bool udp;                // rides on UDP (esp by default; `encap.udp: false` puts it on IP)
  bool raw_ip;             // can ride directly on IP (its own IP protocol numbers)
  uint16_t default_port;   // UDP port; 0 when the mode never uses UDP
  bool carries_ethernet;   // on a TAP or packet device
  bool carries_ip;         // on a TUN device
  uint32_t header_bytes;   // the fixed overlay header (GRE: without the optional words)
  uint32_t trailer_bytes;  // at most appended per packet (ESP: padding, pad length, next header, ICV)
};

const std::vector<TunnelModeInfo>& tunnel_modes();
const TunnelModeInfo& tunnel_mode_info(TunnelMode mode);
// The row of the mode the config spells `name`, or null.
const TunnelModeInfo* tunnel_mode_by_name(const std::string& name);

// A configured tunnel: the mode and its options.
struct TunnelConfig {
  TunnelMode mode = TunnelMode::vxlan;
  uint32_t vni = 0;         // vxlan, geneve
  GreOptions gre;           // gre, gre-udp: key, checksum and sequence numbers, sent and required
  bool carries_ip = false;  // the device is a TUN: payloads are IP packets, not Ethernet frames
  EspCipher cipher = EspCipher::aes256_gcm;  // esp
  bool esp_udp = true;                        // esp: in UDP 4500 (RFC 3948), else IP protocol 50

  const TunnelModeInfo& info() const { return tunnel_mode_info(mode); }
  bool over_udp() const;
  // Bytes prepended on transmit, outer IP/UDP not included (we send no Geneve options).
  uint32_t header_size() const;
  // Bytes appended on transmit at most.
  uint32_t trailer_size() const { return info().trailer_bytes; }
  // What a packet grows by on an underlay of `family`: outer IP, UDP where used, header,
  // trailer, and the inner Ethernet header when the payload is Ethernet.
  int overhead(int family) const;
  // The IP protocols a raw-IP mode receives (one raw socket each); empty over UDP.
  std::vector<uint8_t> receive_protocols() const;
  // Whether peers carry SAs (the forwarder turns their SA specs into states). IKE negotiates
  // them: only such a mode has a control channel (underlay/control_channel.h).
  bool uses_security_associations() const { return mode == TunnelMode::esp; }
  // Whether control traffic shares the data-path port: ESP in UDP carries IKE and NAT
  // keepalives on port 4500 (RFC 3948). The data path then asks Tunnel::classify first.
  bool control_on_data_port() const { return mode == TunnelMode::esp && esp_udp; }
};

// What a datagram on a mode's own UDP port is (Tunnel::classify). Only ESP in UDP has anything
// but tunnel packets there.
enum class PortTraffic : uint8_t {
  tunnel,         // a tunnel packet: decapsulate it
  keepalive,      // a NAT keepalive: accepted and counted, nothing else
  control,        // a control message (IKE) for the control channel
  short_control,  // marked as a control message, but too short to be one: malformed
};

// Where a received packet came from, as the data path knows it before decapsulating.
struct ReceivedFrom {
  uint32_t peer;            // index into the current table
  uint32_t slot;            // the peer's stats slot
  uint8_t outer_protocol;   // 0 for UDP, else the outer IP protocol (IP-in-IP: 4 or 41)
};

// What a good packet carries: the inner frame at packet + offset, and what it is (an EtherType:
// IPv4, IPv6, or transparent Ethernet).
struct Inner {
  uint32_t offset = 0;
  uint32_t length = 0;
  uint16_t ethertype = 0;
};

class Tunnel {
 public:
  explicit Tunnel(const TunnelConfig& config) : config_(config) {}
  virtual ~Tunnel() = default;
  Tunnel(const Tunnel&) = delete;
  Tunnel& operator=(const Tunnel&) = delete;

  const TunnelConfig& config() const { return config_; }
  uint32_t headroom() const { return config_.header_size(); }
  uint32_t tailroom() const { return config_.trailer_size(); }

  // The table the next batch runs with; state tied to the previous one is let go.
  virtual void table_changed(const PeerTable& table) {}

  // Puts the overlay header in front of the inner frame in `buffer` (of `ethertype`), and any
  // trailer behind it. `peer`: the one it goes to, or null when the same packet goes to every
  // peer (head-end replication), which only modes that are not per_peer() are asked to do.
  virtual Verdict encapsulate(PacketBuffer& buffer, uint16_t ethertype, const Peer* peer) = 0;

  // Whether each peer's copy of a flooded frame needs an encapsulation of its own (ESP seals
  // it under that peer's key); the others encapsulate once and send the same bytes to all.
  virtual bool per_peer() const { return false; }
  // For per_peer() modes: a copy of `frame` to encapsulate for one more peer. Null with an ok
  // verdict: every copy buffer is in flight; send what is queued, release_copies(), ask again.
  virtual PacketBuffer* copy_for_peer(const PacketBuffer& frame, Verdict* verdict) {
    *verdict = Verdict::drop(kDropMalformed);
    return nullptr;
  }
  virtual void release_copies() {}

  // Raw-IP modes: the outer header's protocol number for this encapsulated packet.
  virtual uint8_t outer_protocol(const uint8_t* packet, uint32_t length) const { return 0; }

  // Validates and removes the overlay header (and trailer) of `packet`, what followed the outer
  // IP or UDP header. On pass, *inner says where the inner frame is and what it is.
  virtual Verdict decapsulate(uint8_t* packet, uint32_t length, const ReceivedFrom& from, Inner* inner) = 0;

  // For modes whose port carries control traffic (TunnelConfig::control_on_data_port): what the
  // datagram is, before it is looked at as a tunnel packet or its sender as a peer (IKE comes
  // from hosts that are no peer yet). `control` puts the message at datagram + *control_offset.
  virtual PortTraffic classify(const uint8_t* datagram, uint32_t length, uint32_t* control_offset) const {
    return PortTraffic::tunnel;
  }

  // Whether a decapsulated payload is authenticated (ESP's ICV covers every byte), so that
  // verifying its inner TCP checksums again could only ever succeed.
  virtual bool authenticates_payload() const { return false; }

 protected:
  const TunnelConfig config_;
};

// The tunnel for `config`; `peer_slots` bounds per-peer receive state, `max_frame` is the largest
// inner frame a copy for head-end replication must hold.
std::unique_ptr<Tunnel> make_tunnel(const TunnelConfig& config, uint32_t peer_slots, uint32_t max_frame);

}  // namespace ovl
