// The encapsulation a worker applies: one small value type over the codecs, so the loop does
// not care which overlay header it writes. The outer IP (and UDP) header is the socket's
// business for UDP modes and the worker's for raw-IP modes (see raw_socket.h).
#pragma once

#include <cstddef>
#include <cstdint>

#include "tunnel/esp/esp_aead.h"
#include "tunnel/esp/esp_codec.h"
#include "wire/ethernet.h"
#include "tunnel/geneve_codec.h"
#include "tunnel/gre_codec.h"
#include "base/stats_layout.h"
#include "tunnel/vxlan_codec.h"

namespace ovl {

enum class EncapKind { vxlan, geneve, gre_udp, gre, ipip, esp };

// IP protocol numbers of the raw-IP modes.
constexpr uint8_t kIpProtocolIpip = 4;   // IPv4 inside
constexpr uint8_t kIpProtocolIpv6 = 41;  // IPv6 inside
constexpr uint8_t kIpProtocolGre = 47;
constexpr uint8_t kIpProtocolEsp = 50;

struct Encapsulation {
  EncapKind kind = EncapKind::vxlan;
  uint32_t vni = 0;         // vxlan, geneve
  GreOptions gre;           // gre, gre_udp: key and checksum we send, and require on receipt
  bool carries_ip = false;  // the device is a TUN: payloads are IP packets, not Ethernet frames
  EspCipher cipher = EspCipher::aes256_gcm;  // esp
  bool esp_udp = true;                        // esp: in UDP 4500 (RFC 3948), else IP protocol 50

  // GRE, IP-in-IP and plain ESP ride directly on IP (raw sockets); the others on UDP.
  bool over_udp() const {
    return kind != EncapKind::gre && kind != EncapKind::ipip && !(kind == EncapKind::esp && !esp_udp);
  }
  // Bytes appended on transmit at most (ESP padding, pad length, next header, ICV).
  uint32_t trailer_size() const { return kind == EncapKind::esp ? kEspMaxTrailerSize : 0; }

  // Bytes prepended on transmit, outer IP/UDP not included (we send no Geneve options).
  uint32_t header_size() const {
    switch (kind) {
      case EncapKind::vxlan: return kVxlanHeaderSize;
      case EncapKind::geneve: return kGeneveHeaderSize;
      case EncapKind::gre_udp:
      case EncapKind::gre: return gre_header_size(gre);
      case EncapKind::ipip: return 0;
      case EncapKind::esp: return kEspPrefixSize;
    }
    return 0;
  }

  // Writes the header in front of the payload at header + header_size() (a GRE checksum covers
  // it). `ethertype`: what the payload is (0x6558 Ethernet, 0x0800 IPv4, 0x86DD IPv6).
  void encode(uint8_t* header, uint32_t payload_length, uint16_t ethertype, uint32_t sequence = 0) const {
    switch (kind) {
      case EncapKind::vxlan: vxlan_encode(header, vni); return;
      case EncapKind::geneve: geneve_encode(header, vni, ethertype); return;
      case EncapKind::gre_udp:
      case EncapKind::gre:
        gre_encode(header, gre, ethertype, sequence, header + header_size(), payload_length);
        return;
      case EncapKind::ipip:
      case EncapKind::esp: return;  // per peer SA: the worker seals each packet itself
    }
  }

  // Validates a received payload (what follows the outer IP or UDP header). Returns
  // kCounterCount when it is good, with *inner_offset and *ethertype set (IP-in-IP leaves
  // *ethertype alone: the outer protocol number tells), else the drop counter it belongs under.
  Counter decode(const uint8_t* packet, size_t length, uint32_t* inner_offset, uint16_t* ethertype,
                 GreDecoded* gre_out) const {
    switch (kind) {
      case EncapKind::gre_udp:
      case EncapKind::gre: return decode_gre(packet, length, inner_offset, ethertype, gre_out);
      case EncapKind::ipip: *inner_offset = 0; return kCounterCount;
      case EncapKind::esp: return kDropMalformed;  // decrypted by the worker, never decoded here
      case EncapKind::vxlan:
        switch (vxlan_decode(packet, length, vni)) {
          case VxlanStatus::ok:
            *inner_offset = kVxlanHeaderSize;
            *ethertype = kGreProtocolEthernet;
            return kCounterCount;
          case VxlanStatus::malformed: return kDropMalformed;
          case VxlanStatus::wrong_vni: return kDropWrongVni;
        }
        return kDropMalformed;
      case EncapKind::geneve: break;
    }
    uint16_t protocol = kGeneveProtocolEthernet;
    switch (geneve_decode(packet, length, vni, inner_offset, carries_ip, &protocol)) {
      case GeneveStatus::ok: *ethertype = protocol; return kCounterCount;
      case GeneveStatus::malformed: return kDropMalformed;
      case GeneveStatus::wrong_vni: return kDropWrongVni;
      case GeneveStatus::wrong_protocol: return kDropMalformed;
      case GeneveStatus::oam: return kDropOam;
      case GeneveStatus::unknown_option: return kDropUnknownOption;
    }
    return kDropMalformed;
  }

 private:
  Counter decode_gre(const uint8_t* packet, size_t length, uint32_t* inner_offset, uint16_t* ethertype,
                     GreDecoded* decoded) const {
    GreExpectation expect;
    expect.key = gre.key;
    expect.checksum_required = gre.checksum;
    expect.payload = carries_ip ? GrePayload::ip : GrePayload::ethernet;
    switch (gre_decode(packet, length, expect, decoded)) {
      case GreStatus::ok:
        // The codec guarantees a whole Ethernet header behind the GRE header for Ethernet.
        *inner_offset = decoded->header_length;
        *ethertype = decoded->protocol;
        return kCounterCount;
      case GreStatus::malformed: return kDropMalformed;
      case GreStatus::bad_checksum:
      case GreStatus::missing_checksum: return kDropBadChecksum;
      case GreStatus::wrong_key: return kDropWrongKey;
      case GreStatus::unsupported_protocol: return kDropMalformed;
    }
    return kDropMalformed;
  }
};

}  // namespace ovl
