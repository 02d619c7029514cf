// Inspection of an inner IP packet: what a TUN device hands us, or what a tunnel carries, from
// the first byte of the IPv4 or IPv6 header on (no link header). The worker needs the fields
// that decide the outer header (TTL, DSCP, ECN, DF: RFC 2003 §3.1, RFC 6040), the addresses
// for its lookups, and the lengths to trim link padding and to judge "too big".
//
// What is checked, and what is not:
// - The version nibble (4 or 6), the IPv4 IHL (>= 5), and that the header and the length the
//   header states both fit in the bytes given. Bytes after that length are allowed: Ethernet
//   pads short frames to 60 bytes, so an IP packet from a TAP frame may carry trailing
//   padding. The caller trims to total_length.
// - The IPv4 header checksum is NOT verified: packets from a TUN device come from the local
//   stack, and packets we deliver to it are verified by that stack (ip_rcv), which counts and
//   drops bad ones itself. ip_set_ecn keeps a bad checksum exactly as bad.
// - IPv4 options and IPv6 extension headers are not walked: `protocol` is the IPv4 protocol or
//   the IPv6 header's own next header (which may name an extension header).
// - An IPv6 payload length of 0 with a hop-by-hop header next is a jumbogram (RFC 2675), whose
//   real length is in a hop-by-hop option. We do not carry jumbograms (no 64 KB+ MTU), and
//   taking the 0 at face value would make a caller trim the packet to its header, so it is
//   refused as bad_total_length. Payload length 0 with any other next header is a plain
//   40-byte packet.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ovl {

struct InnerIp {
  uint8_t version = 0;         // 4 or 6
  uint32_t header_length = 0;  // IPv4: IHL * 4 (20..60); IPv6: 40 (extension headers not counted)
  uint32_t total_length = 0;   // IPv4: Total Length; IPv6: 40 + Payload Length
  uint8_t ttl = 0;             // IPv4 TTL or IPv6 Hop Limit
  uint8_t ecn = 0;             // the 2 ECN bits (RFC 3168): 0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE
  uint8_t dscp = 0;            // the 6 DSCP bits (RFC 2474), shifted down
  // IPv4: the DF bit. IPv6: always true, since routers never fragment IPv6 (RFC 8200 §5):
  // for path MTU purposes every IPv6 packet behaves like an IPv4 packet with DF set.
  bool dont_fragment = false;
  uint8_t protocol = 0;                  // IPv4 protocol / IPv6 next header (the first one)
  const uint8_t* source = nullptr;       // 4 or 16 bytes inside the packet
  const uint8_t* destination = nullptr;  // 4 or 16 bytes inside the packet
  // IPv4 fragmentation (IPv6 fragment headers are not walked here: always 0 / false).
  uint16_t fragment_offset = 0;  // in 8-byte units
  bool more_fragments = false;
};

enum class IpParse {
  ok,
  truncated,          // fewer bytes than the fixed header, the IPv4 IHL, or the stated total length
  bad_version,        // version nibble neither 4 nor 6
  bad_header_length,  // IPv4 IHL < 5
  bad_total_length,   // IPv4 total length < IHL * 4, or an IPv6 jumbogram (see above)
};

// Parses the header at `packet` (`length` bytes available). On ok fills *out (its pointers
// point into `packet`); otherwise leaves it alone.
IpParse parse_ip_packet(const uint8_t* packet, size_t length, InnerIp* out);

// The EtherType (and GRE protocol type) of an IP version: 0x0800, 0x86DD, or 0 for others.
uint16_t ethertype_for_ip_version(uint8_t version);

// Rewrites the ECN bits (the low 2 bits of the IPv4 TOS / IPv6 Traffic Class) to `ecn` (& 3),
// keeping DSCP. For IPv4 the header checksum is updated incrementally (RFC 1624), so a header
// that was correct stays correct and a wrong one stays wrong. Precondition: parse_ip_packet
// returned ok for this packet (at least the fixed header is present). Other versions: no-op.
// Neither TCP nor UDP checksums cover these bits, so nothing else needs fixing.
void ip_set_ecn(uint8_t* packet, uint8_t ecn);

}  // namespace ovl
