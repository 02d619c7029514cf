#include "base/flow_hash.h"

#include "wire/ethernet.h"

namespace ovl {

namespace {

// 32-bit mixing in the style of murmur3's finalizer: cheap, and good enough to spread
// flows over ports; no attacker gains from steering our own source-port choice.
inline uint32_t mix(uint32_t h, uint32_t word) {
  word *= 0xcc9e2d51u;
  word = (word << 15) | (word >> 17);
  word *= 0x1b873593u;
  h ^= word;
  h = (h << 13) | (h >> 19);
  return h * 5 + 0xe6546b64u;
}

inline uint32_t finish(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

uint32_t mix_bytes(uint32_t h, const uint8_t* p, size_t n) {
  for (; n >= 4; p += 4, n -= 4) h = mix(h, load_be32(p));
  uint32_t tail = 0;
  for (size_t i = 0; i < n; i++) tail = (tail << 8) | p[i];
  return n ? mix(h, tail) : h;
}

bool has_ports(uint8_t protocol) {
  return protocol == kIpProtocolTcp || protocol == kIpProtocolUdp || protocol == kIpProtocolSctp ||
         protocol == kIpProtocolUdpLite;
}

// Returns false when `packet` is not an IP packet we can read a tuple from.
bool hash_ip(const uint8_t* packet, size_t length, uint32_t* h) {
  if (length < 1) return false;
  const uint8_t version = packet[0] >> 4;
  if (version == 4) {
    if (length < 20) return false;
    const size_t header_length = static_cast<size_t>(packet[0] & 0x0f) * 4;
    if (header_length < 20 || length < header_length) return false;
    const uint8_t protocol = packet[9];
    *h = mix(*h, protocol);
    *h = mix_bytes(*h, packet + 12, 8);  // source and destination
    // Only the first fragment carries ports; keep all fragments of a datagram on one hash.
    const bool fragment = (load_be16(packet + 6) & 0x3fff) != 0;
    if (!fragment && has_ports(protocol) && length >= header_length + 4) {
      *h = mix_bytes(*h, packet + header_length, 4);
    }
    return true;
  }
  if (version == 6) {
    if (length < 40) return false;
    const uint8_t next_header = packet[6];
    *h = mix(*h, next_header);
    *h = mix(*h, load_be32(packet) & 0x000fffff);  // flow label
    *h = mix_bytes(*h, packet + 8, 32);
    if (has_ports(next_header) && length >= 44) *h = mix_bytes(*h, packet + 40, 4);
    return true;
  }
  return false;
}

}  // namespace

uint32_t ip_flow_hash(const uint8_t* packet, size_t length) {
  uint32_t h = 0x9e3779b9u;
  hash_ip(packet, length, &h);
  return finish(h);
}

uint32_t ethernet_flow_hash(const uint8_t* frame, size_t length) {
  uint32_t h = 0x9e3779b9u;
  if (length < kEthernetHeaderSize) return finish(mix_bytes(h, frame, length));
  size_t offset = 12;
  uint16_t ether_type = load_be16(frame + offset);
  // Step over up to two VLAN tags.
  for (int tags = 0; tags < 2 && (ether_type == kEtherTypeVlan || ether_type == kEtherTypeQinQ); tags++) {
    if (length < offset + 6) break;
    h = mix(h, load_be16(frame + offset + 2) & 0x0fff);
    offset += 4;
    ether_type = load_be16(frame + offset);
  }
  offset += 2;
  if ((ether_type == kEtherTypeIpv4 || ether_type == kEtherTypeIpv6) &&
      hash_ip(frame + offset, length - offset, &h)) {
    return finish(h);
  }
  h = mix(h, ether_type);
  return finish(mix_bytes(h, frame, 12));
}

}  // namespace ovl
