// The encapsulation a worker applies: one small value type over the codecs, so the loop does
// not care which UDP-based L2 overlay it carries.
#pragma once

#include <cstddef>
#include <cstdint>

#include "geneve_codec.h"
#include "stats_layout.h"
#include "vxlan_codec.h"

namespace ovl {

enum class EncapKind { vxlan, geneve };

struct Encapsulation {
  EncapKind kind = EncapKind::vxlan;
  uint32_t vni = 0;

  // Bytes prepended on transmit (we send no Geneve options).
  uint32_t header_size() const { return kind == EncapKind::vxlan ? kVxlanHeaderSize : kGeneveHeaderSize; }

  void encode(uint8_t* header) const {
    if (kind == EncapKind::vxlan) {
      vxlan_encode(header, vni);
    } else {
      geneve_encode(header, vni);
    }
  }

  // Validates a received payload. Returns kCounterCount when it is good (and sets
  // *inner_offset), else the drop counter it belongs under.
  Counter decode(const uint8_t* packet, size_t length, uint32_t* inner_offset) const {
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
};

}  // namespace ovl
