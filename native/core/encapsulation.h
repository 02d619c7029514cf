// The encapsulation a worker applies: one small value type over the codecs, so the loop does
// not care which UDP-based L2 overlay it carries.
#pragma once

#include <cstddef>
#include <cstdint>

#include "geneve_codec.h"
#include "gre_codec.h"
#include "stats_layout.h"
#include "vxlan_codec.h"

namespace ovl {

enum class EncapKind { vxlan, geneve, gre_udp };

struct Encapsulation {
  EncapKind kind = EncapKind::vxlan;
  uint32_t vni = 0;  // vxlan, geneve
  GreOptions gre;    // gre_udp: key and checksum we send, and require on receipt

  // Bytes prepended on transmit (we send no Geneve options).
  uint32_t header_size() const {
    switch (kind) {
      case EncapKind::vxlan: return kVxlanHeaderSize;
      case EncapKind::geneve: return kGeneveHeaderSize;
      case EncapKind::gre_udp: return gre_header_size(gre);
    }
    return 0;
  }

  // Writes the header in front of the frame at header + header_size() (a GRE checksum covers it).
  void encode(uint8_t* header, uint32_t frame_length) const {
    switch (kind) {
      case EncapKind::vxlan: vxlan_encode(header, vni); return;
      case EncapKind::geneve: geneve_encode(header, vni); return;
      case EncapKind::gre_udp:
        gre_encode(header, gre, kGreProtocolEthernet, 0, header + header_size(), frame_length);
        return;
    }
  }

  // Validates a received payload. Returns kCounterCount when it is good (and sets
  // *inner_offset), else the drop counter it belongs under.
  Counter decode(const uint8_t* packet, size_t length, uint32_t* inner_offset) const {
    if (kind == EncapKind::gre_udp) return decode_gre(packet, length, inner_offset);
    if (kind == EncapKind::vxlan) {
      switch (vxlan_decode(packet, length, vni)) {
        case VxlanStatus::ok: *inner_offset = kVxlanHeaderSize; return kCounterCount;
        case VxlanStatus::malformed: return kDropMalformed;
        case VxlanStatus::wrong_vni: return kDropWrongVni;
      }
      return kDropMalformed;
    }
    switch (geneve_decode(packet, length, vni, inner_offset)) {
      case GeneveStatus::ok: return kCounterCount;
      case GeneveStatus::malformed: return kDropMalformed;
      case GeneveStatus::wrong_vni: return kDropWrongVni;
      case GeneveStatus::wrong_protocol: return kDropMalformed;
      case GeneveStatus::oam: return kDropOam;
      case GeneveStatus::unknown_option: return kDropUnknownOption;
    }
    return kDropMalformed;
  }

 private:
  Counter decode_gre(const uint8_t* packet, size_t length, uint32_t* inner_offset) const {
    GreExpectation expect;
    expect.key = gre.key;
    expect.checksum_required = gre.checksum;
    expect.payload = GrePayload::ethernet;
    GreDecoded decoded;
    switch (gre_decode(packet, length, expect, &decoded)) {
      case GreStatus::ok:
        // The codec guarantees a whole Ethernet header behind the GRE header.
        *inner_offset = decoded.header_length;
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
