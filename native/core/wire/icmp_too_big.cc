#include "wire/icmp_too_big.h"

#include <cstring>

#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "wire/ip_packet.h"

namespace ovl {

namespace {

constexpr uint8_t kProtocolIcmp = 1;
constexpr uint8_t kProtocolIcmpv6 = 58;
constexpr uint8_t kIcmpDestinationUnreachable = 3;
constexpr uint8_t kIcmpFragmentationNeeded = 4;
constexpr uint8_t kIcmpv6PacketTooBig = 2;
constexpr uint8_t kIcmpv6FirstInformational = 128;  // RFC 4443 §2.1: types 0-127 are errors
constexpr uint8_t kIcmpv6Redirect = 137;            // informational, but never answered (§2.4(e.2))
constexpr uint8_t kIcmpErrorTos = 0xC0;             // precedence 6 (RFC 1812 §4.3.2.5)
constexpr size_t kIcmpHeaderSize = 8;
constexpr size_t kIpv4Size = 20;
constexpr size_t kIpv6Size = 40;
constexpr uint32_t kIpv6MinimumMtu = 1280;
constexpr int kMaxExtensionHeaders = 16;

// ICMP types known to be informational (queries and replies), which may be answered with an
// error: echo reply 0, echo 8, router advertisement 9 and solicitation 10, timestamp 13/14,
// information 15/16, address mask 17/18, extended echo 42/43 (RFC 8335). Everything else is an
// error (3, 4, 5, 11, 12, ...) or unknown; for both, silence is the safe answer.
bool icmp_type_informational(uint8_t type) {
  switch (type) {
    case 0: case 8: case 9: case 10: case 13: case 14: case 15: case 16: case 17: case 18: case 42: case 43:
      return true;
    default:
      return false;
  }
}

// A source that names a single host (RFC 1122 §3.2.1.3): not 0/8 ("this network"), not
// loopback 127/8, not multicast 224/4, not class E 240/4 (which holds 255.255.255.255).
bool ipv4_source_answerable(const uint8_t* address) {
  return address[0] != 0 && address[0] != 127 && address[0] < 224;
}

bool ipv4_destination_answerable(const uint8_t* address) {
  static const uint8_t broadcast[4] = {255, 255, 255, 255};
  const bool multicast = (address[0] & 0xF0) == 224;
  return !multicast && std::memcmp(address, broadcast, 4) != 0;
}

bool ipv6_source_answerable(const uint8_t* address) {
  static const uint8_t unspecified[16] = {};
  static const uint8_t loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return address[0] != 0xFF && std::memcmp(address, unspecified, 16) != 0 && std::memcmp(address, loopback, 16) != 0;
}

// Whether an IPv4 original may be answered (see the rules in the header).
bool ipv4_answerable(const uint8_t* original, const InnerIp& ip) {
  if (ip.fragment_offset != 0) return false;
  if (!ipv4_source_answerable(ip.source) || !ipv4_destination_answerable(ip.destination)) return false;
  if (ip.protocol != kProtocolIcmp) return true;
  if (ip.total_length - ip.header_length < 1) return false;  // an ICMP packet without its type
  return icmp_type_informational(original[ip.header_length]);
}

// Walks the IPv6 extension headers of an original (within its total length) to the upper-layer
// header and decides whether it may be answered: not when it is an ICMPv6 error or Redirect (or
// an ICMPv6 message whose type is missing), not when the chain is malformed or too long. A non-first
// fragment ends the walk with a yes: what follows its fragment header is the middle of the
// payload, not an upper-layer header, and RFC 4443 does not forbid answering it.
bool ipv6_chain_answerable(const uint8_t* original, const InnerIp& ip) {
  uint8_t next_header = ip.protocol;
  size_t at = kIpv6Size;
  const size_t end = ip.total_length;
  for (int headers = 0; headers <= kMaxExtensionHeaders; headers++) {
    switch (next_header) {
      case 0:    // hop-by-hop options
      case 43:   // routing
      case 60:   // destination options: next header, length in 8-byte units beyond the first 8
        if (end - at < 8) return false;
        next_header = original[at];
        at += (size_t{original[at + 1]} + 1) * 8;
        if (at > end) return false;
        break;
      case 44:  // fragment: fixed 8 bytes; offset in the high 13 bits of bytes 2-3
        if (end - at < 8) return false;
        if ((load_be16(original + at + 2) >> 3) != 0) return true;
        next_header = original[at];
        at += 8;
        break;
      case 51:  // authentication header: length in 4-byte units, minus 2
        if (end - at < 8) return false;
        next_header = original[at];
        at += (size_t{original[at + 1]} + 2) * 4;
        if (at > end) return false;
        break;
      case kProtocolIcmpv6:
        if (end - at < 1) return false;
        return original[at] >= kIcmpv6FirstInformational && original[at] != kIcmpv6Redirect;
      default:  // an upper layer (or ESP, or No Next Header): not an ICMPv6 error
        return true;
    }
  }
  return false;
}

bool ipv6_answerable(const uint8_t* original, const InnerIp& ip) {
  return ipv6_source_answerable(ip.source) && ipv6_chain_answerable(original, ip);
}

void write_ipv4_header(uint8_t* header, uint16_t total_length, uint16_t id, const uint8_t* source,
                       const uint8_t* destination) {
  header[0] = 0x45;
  header[1] = kIcmpErrorTos;
  store_be16(header + 2, total_length);
  store_be16(header + 4, id);
  store_be16(header + 6, 0);  // DF clear, not a fragment
  header[8] = kIcmpErrorTtl;
  header[9] = kProtocolIcmp;
  std::memcpy(header + 12, source, 4);
  std::memcpy(header + 16, destination, 4);
  store_be16(header + 10, ipv4_header_checksum(header, kIpv4Size));
}

void write_ipv6_header(uint8_t* header, uint16_t payload_length, const uint8_t* source, const uint8_t* destination) {
  store_be32(header, uint32_t{6} << 28);  // traffic class 0, flow label 0
  store_be16(header + 4, payload_length);
  header[6] = kProtocolIcmpv6;
  header[7] = kIcmpErrorTtl;
  std::memcpy(header + 8, source, 16);
  std::memcpy(header + 24, destination, 16);
}

}  // namespace

size_t build_ipv4_frag_needed(uint8_t* out, size_t capacity, const uint8_t* original, size_t original_length,
                              uint16_t next_hop_mtu, const uint8_t source[4], uint16_t id) {
  InnerIp ip;
  if (parse_ip_packet(original, original_length, &ip) != IpParse::ok || ip.version != 4) return 0;
  if (!ipv4_answerable(original, ip)) return 0;
  const size_t quote = ip.total_length < kIcmpv4MaxQuote ? ip.total_length : kIcmpv4MaxQuote;
  const size_t size = kIpv4Size + kIcmpHeaderSize + quote;
  if (capacity < size) return 0;

  uint8_t* icmp = out + kIpv4Size;
  icmp[0] = kIcmpDestinationUnreachable;
  icmp[1] = kIcmpFragmentationNeeded;
  store_be16(icmp + 2, 0);  // checksum, computed below
  store_be16(icmp + 4, 0);  // unused (RFC 1191 §4)
  store_be16(icmp + 6, next_hop_mtu);
  std::memcpy(icmp + kIcmpHeaderSize, original, quote);
  // The ICMP checksum covers the ICMP message only (RFC 792): no pseudo-header.
  store_be16(icmp + 2, checksum_finish(checksum_add(icmp, kIcmpHeaderSize + quote, 0)));
  write_ipv4_header(out, static_cast<uint16_t>(size), id, source, ip.source);
  return size;
}

size_t build_ipv6_packet_too_big(uint8_t* out, size_t capacity, const uint8_t* original, size_t original_length,
                                 uint32_t mtu, const uint8_t source[16]) {
  InnerIp ip;
  if (parse_ip_packet(original, original_length, &ip) != IpParse::ok || ip.version != 6) return 0;
  if (!ipv6_answerable(original, ip)) return 0;
  const size_t quote = ip.total_length < kIcmpv6MaxQuote ? ip.total_length : kIcmpv6MaxQuote;
  const size_t size = kIpv6Size + kIcmpHeaderSize + quote;
  if (capacity < size) return 0;

  const uint32_t message_length = static_cast<uint32_t>(kIcmpHeaderSize + quote);
  write_ipv6_header(out, static_cast<uint16_t>(message_length), source, ip.source);
  uint8_t* icmp = out + kIpv6Size;
  icmp[0] = kIcmpv6PacketTooBig;
  icmp[1] = 0;
  store_be16(icmp + 2, 0);
  store_be32(icmp + 4, mtu < kIpv6MinimumMtu ? kIpv6MinimumMtu : mtu);
  std::memcpy(icmp + kIcmpHeaderSize, original, quote);
  // ICMPv6 checksums include the IPv6 pseudo-header (RFC 4443 §2.3). The addresses are read
  // from the header just written: `ip.source` points into the original, which is fine too.
  uint32_t sum = pseudo_header_sum_ipv6(out + 8, out + 24, kProtocolIcmpv6, message_length);
  sum = checksum_add(icmp, message_length, sum);
  store_be16(icmp + 2, checksum_finish(sum));
  return size;
}

size_t build_too_big_frame(uint8_t* out, size_t capacity, const uint8_t* frame, size_t frame_length, uint32_t mtu,
                           const uint8_t* source_ip, uint16_t ipv4_id) {
  if (frame_length <= kEthernetHeaderSize || capacity < kEthernetHeaderSize) return 0;
  const uint8_t* destination_mac = eth_destination(frame);
  const uint8_t* source_mac = eth_source(frame);
  if (!mac_is_valid_source(source_mac) || !mac_is_valid_source(destination_mac)) return 0;
  const uint16_t ether_type = load_be16(frame + 12);
  const uint8_t* original = frame + kEthernetHeaderSize;
  const size_t original_length = frame_length - kEthernetHeaderSize;
  uint8_t* packet = out + kEthernetHeaderSize;
  const size_t room = capacity - kEthernetHeaderSize;
  size_t size = 0;
  if (ether_type == kEtherTypeIpv4 && original[0] >> 4 == 4) {
    const uint16_t next_hop_mtu = mtu > 0xFFFF ? 0xFFFF : static_cast<uint16_t>(mtu);
    size = build_ipv4_frag_needed(packet, room, original, original_length, next_hop_mtu, source_ip, ipv4_id);
  } else if (ether_type == kEtherTypeIpv6 && original[0] >> 4 == 6) {
    size = build_ipv6_packet_too_big(packet, room, original, original_length, mtu, source_ip);
  }
  // Tagged frames (0x8100, 0x88A8) and other EtherTypes end here with size 0.
  if (size == 0) return 0;
  std::memcpy(out, source_mac, 6);
  std::memcpy(out + 6, destination_mac, 6);
  store_be16(out + 12, ether_type);
  return kEthernetHeaderSize + size;
}

TokenBucket::TokenBucket(uint32_t per_second, uint32_t burst)
    : per_second_(per_second), capacity_(uint64_t{burst} * kScale), tokens_(uint64_t{burst} * kScale) {}

bool TokenBucket::take(uint64_t now_microseconds) {
  if (!started_) {
    started_ = true;
    last_ = now_microseconds;
  } else if (now_microseconds > last_) {
    // Each microsecond adds per_second millionths of a token. Bound the elapsed time first so
    // the product cannot overflow: beyond the time to fill the bucket, it is simply full.
    const uint64_t elapsed = now_microseconds - last_;
    last_ = now_microseconds;
    if (per_second_ != 0) {
      const uint64_t fill_time = capacity_ / per_second_ + 1;
      const uint64_t added = elapsed >= fill_time ? capacity_ : elapsed * per_second_;
      tokens_ = capacity_ - tokens_ <= added ? capacity_ : tokens_ + added;
    }
  }
  if (tokens_ < kScale) return false;
  tokens_ -= kScale;
  return true;
}

}  // namespace ovl
