// Ethernet header helpers. MAC addresses travel as 48-bit integers in the tables.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "wire/protocols.h"

namespace ovl {

constexpr uint32_t kEthernetHeaderSize = 14;

using MacKey = uint64_t;

inline MacKey mac_key(const uint8_t* mac) {
  MacKey key = 0;
  for (int i = 0; i < 6; i++) key = (key << 8) | mac[i];
  return key;
}

inline const uint8_t* eth_destination(const uint8_t* frame) { return frame; }
inline const uint8_t* eth_source(const uint8_t* frame) { return frame + 6; }
inline uint16_t load_be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t load_be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}
inline void store_be16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void store_be32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

// Group bit: broadcast and multicast destinations are flooded.
inline bool mac_is_multicast(const uint8_t* mac) { return (mac[0] & 0x01) != 0; }
inline bool mac_is_zero(const uint8_t* mac) {
  static const uint8_t zero[6] = {};
  return std::memcmp(mac, zero, 6) == 0;
}
// What may be learned as a station address: unicast and not all-zero (the kernel's is_valid_ether_addr).
inline bool mac_is_valid_source(const uint8_t* mac) { return !mac_is_multicast(mac) && !mac_is_zero(mac); }

std::optional<MacKey> parse_mac(const std::string& text);
std::string format_mac(MacKey key);

}  // namespace ovl
