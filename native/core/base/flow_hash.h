// Inner-flow hashing: the UDP source port of an encapsulated packet carries the inner flow's
// entropy (RFC 7348 §5), so that ECMP and RSS in the underlay spread flows without reordering
// any one of them. The hash covers the L3/L4 tuple where there is one, else the MACs.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ovl {

// Hash of the flow an Ethernet frame belongs to. Frames of one flow always hash alike.
uint32_t ethernet_flow_hash(const uint8_t* frame, size_t length);

// Hash of the flow an IP packet (no link header) belongs to.
uint32_t ip_flow_hash(const uint8_t* packet, size_t length);

// Maps a hash onto [low, high] without the bias of a modulo (multiply-shift, as Linux does).
inline uint16_t port_from_hash(uint32_t hash, uint16_t low, uint16_t high) {
  const uint64_t span = uint64_t{high} - low + 1;
  return static_cast<uint16_t>(low + ((uint64_t{hash} * span) >> 32));
}

constexpr uint16_t kEntropyPortLow = 49152;
constexpr uint16_t kEntropyPortHigh = 65535;

}  // namespace ovl
