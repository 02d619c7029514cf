// Geneve header codec (RFC 8926), carrying Ethernet (protocol type 0x6558, "transparent
// Ethernet bridging") for TAP devices, or IP (0x0800, 0x86DD) for TUN devices.
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |        Virtual Network Identifier (VNI)       |    Reserved   |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                    Variable-Length Options                    |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Option: | Option Class (16) | Type (8, high bit = critical) | R R R | Length (5, in 4-byte words) |
//
// We send no options. On receipt, reserved fields are ignored (RFC 8926 §3.4); we understand no
// option, so a critical one (or the C bit, which promises one) drops the packet, as the RFC
// requires; non-critical options are skipped. OAM (O bit) packets are control messages that
// MUST NOT be forwarded.
#pragma once

#include <cstddef>
#include <cstdint>

#include "wire/protocols.h"

namespace ovl {

constexpr uint32_t kGeneveHeaderSize = 8;
constexpr uint16_t kGeneveProtocolEthernet = kEtherTypeTransparentEthernet;
constexpr uint8_t kGeneveFlagOam = 0x80;
constexpr uint8_t kGeneveFlagCritical = 0x40;
constexpr uint8_t kGeneveOptionCritical = 0x80;

enum class GeneveStatus {
  ok,
  malformed,       // truncated, version not 0, options overrun, runt inner frame
  wrong_vni,
  wrong_protocol,  // not what the device carries (Ethernet, or IPv4/IPv6)
  oam,             // control packet: never forwarded
  unknown_option,  // a critical option (or the C bit) we cannot honour
};

// Writes the 8-byte header (no options) at `header`; `protocol` is an EtherType.
void geneve_encode(uint8_t* header, uint32_t vni, uint16_t protocol = kGeneveProtocolEthernet);

// Validates a Geneve payload of `length` bytes for `expected_vni`; on ok, *inner_offset is
// where the inner frame starts (after the options). With `carries_ip` the payload must be an
// IPv4 or IPv6 packet (its EtherType is stored in *protocol when given), else Ethernet.
GeneveStatus geneve_decode(const uint8_t* packet, size_t length, uint32_t expected_vni, uint32_t* inner_offset,
                           bool carries_ip = false, uint16_t* protocol = nullptr);

}  // namespace ovl
