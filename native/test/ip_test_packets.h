// Hand-built IPv4/IPv6 packets for the tests of ip_packet, outer_ip, icmp_too_big and
// mss_clamp. Built byte by byte and checksummed with reference_checksum.h, independently of
// the core code under test.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "reference_checksum.h"

namespace ovl_test {

using Bytes = std::vector<uint8_t>;

inline void put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}
inline uint16_t get16(const Bytes& b, size_t at) { return static_cast<uint16_t>(b[at] << 8 | b[at + 1]); }
inline uint32_t get32(const Bytes& b, size_t at) {
  return uint32_t{b[at]} << 24 | uint32_t{b[at + 1]} << 16 | uint32_t{b[at + 2]} << 8 | b[at + 3];
}

// Sets the IPv4 header checksum of the header at b[0] (IHL from b[0]).
inline void fix_ipv4_checksum(Bytes& b) {
  const size_t header_length = size_t{b[0] & 0x0Fu} * 4;
  put16(b, 10, 0);
  put16(b, 10, static_cast<uint16_t>(~ref_fold(Bytes(b.begin(), b.begin() + header_length))));
}

// Whether the IPv4 header at b[0] has a correct checksum.
inline bool ipv4_checksum_ok(const Bytes& b) {
  const size_t header_length = size_t{b[0] & 0x0Fu} * 4;
  return ref_fold(Bytes(b.begin(), b.begin() + header_length)) == 0xFFFF;
}

struct Ipv4Spec {
  uint8_t source[4] = {198, 19, 0, 2};
  uint8_t destination[4] = {198, 19, 0, 1};
  uint8_t protocol = 6;
  uint8_t tos = 0;
  uint8_t ttl = 63;
  uint16_t id = 0x1234;
  uint16_t flags_fragment = 0x4000;  // DF
  size_t options = 0;                // bytes of options (multiple of 4), filled with NOPs
};

// An IPv4 packet of `total` bytes (header included) whose payload bytes are a pattern.
inline Bytes make_ipv4(const Ipv4Spec& spec, size_t total) {
  const size_t header_length = 20 + spec.options;
  Bytes b(total < header_length ? header_length : total, 0);
  b[0] = static_cast<uint8_t>(0x40 | header_length / 4);
  b[1] = spec.tos;
  put16(b, 2, static_cast<uint16_t>(b.size()));
  put16(b, 4, spec.id);
  put16(b, 6, spec.flags_fragment);
  b[8] = spec.ttl;
  b[9] = spec.protocol;
  for (int i = 0; i < 4; i++) {
    b[12 + i] = spec.source[i];
    b[16 + i] = spec.destination[i];
  }
  for (size_t i = 20; i < header_length; i++) b[i] = 1;  // NOP options
  for (size_t i = header_length; i < b.size(); i++) b[i] = static_cast<uint8_t>(i * 7 + 3);
  fix_ipv4_checksum(b);
  return b;
}

struct Ipv6Spec {
  uint8_t source[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  uint8_t destination[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  uint8_t next_header = 6;
  uint8_t traffic_class = 0;
  uint32_t flow_label = 0x12345;
  uint8_t hop_limit = 63;
};

// An IPv6 packet of `total` bytes (>= 40) whose payload bytes are a pattern.
inline Bytes make_ipv6(const Ipv6Spec& spec, size_t total) {
  Bytes b(total < 40 ? 40 : total, 0);
  b[0] = static_cast<uint8_t>(0x60 | spec.traffic_class >> 4);
  b[1] = static_cast<uint8_t>((spec.traffic_class & 0x0F) << 4 | (spec.flow_label >> 16 & 0x0F));
  put16(b, 2, static_cast<uint16_t>(spec.flow_label));
  put16(b, 4, static_cast<uint16_t>(b.size() - 40));
  b[6] = spec.next_header;
  b[7] = spec.hop_limit;
  for (int i = 0; i < 16; i++) {
    b[8 + i] = spec.source[i];
    b[24 + i] = spec.destination[i];
  }
  for (size_t i = 40; i < b.size(); i++) b[i] = static_cast<uint8_t>(i * 5 + 1);
  return b;
}

}  // namespace ovl_test
