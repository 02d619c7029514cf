// "Your packet is too big for this tunnel": what a Linux tunnel device sends back to the sender
// of a packet that does not fit the tunnel's MTU and may not be fragmented (ip_tunnel's
// tnl_update_pmtu calls icmp_ndo_send / icmpv6_ndo_send), so that the sender's path MTU
// discovery (RFC 1191, RFC 8201) learns the smaller MTU instead of black-holing.
//
// IPv4: ICMP Destination Unreachable, code 4 "fragmentation needed and DF set" (RFC 792), with
// the next-hop MTU in the low 16 bits of the second word (RFC 1191 §4; the high 16 bits are
// zero). It quotes the original's IP header (with options) and as much of its data as keeps
// the whole IP packet within 576 bytes (RFC 1812 §4.3.2.3; Linux does the same), so at most
// 548 bytes of the original. Sent with TTL 64, TOS 0xC0 (precedence 6, internetwork control,
// which RFC 1812 §4.3.2.5 asks of ICMP errors; Linux does it too), DF clear (576 bytes cross
// any IPv4 path; should a link be narrower, fragmenting beats losing the message) and the
// `id` the caller passes (non-atomic datagrams want distinct IDs, RFC 6864: pass a counter).
//
// IPv6: ICMPv6 Packet Too Big (RFC 4443 §3.2), type 2 code 0, with a 32-bit MTU, quoting as
// much of the original as keeps the IPv6 packet within 1280 bytes (the IPv6 minimum MTU), so
// at most 1232 bytes. Hop limit 64, traffic class 0 and flow label 0 (Linux's defaults).
// An MTU below 1280 is reported as 1280: an IPv6 node MUST NOT lower its PMTU estimate below
// the minimum link MTU (RFC 8201 §4), so a smaller value would only be ignored.
//
// When not to answer (RFC 1122 §3.2.2, RFC 1812 §4.3.2.7, RFC 4443 §2.4(e)): the builders
// return 0, having written nothing, when
// - the original is not a well-formed packet of that IP version (parse_ip_packet), or its
//   IPv6 extension header chain runs past its end (or is longer than 16 headers);
// - the original is itself an ICMP error (IPv4 types 3, 4, 5, 11, 12, and any type not known
//   to be informational, as Linux does) or an ICMPv6 error (type < 128) or Redirect (137,
//   RFC 4443 §2.4(e.2)), or is ICMP/ICMPv6 with its type byte missing: errors about errors
//   could loop;
// - IPv4: the original is a fragment other than the first (offset != 0): only the first one
//   carries the transport header the sender needs to match the error to a socket;
// - the original's source does not name a single host: IPv4 0.0.0.0/8, 127.0.0.0/8, multicast
//   224.0.0.0/4 and 240.0.0.0/4 (class E, including the broadcast 255.255.255.255); IPv6 ::,
//   ::1 and multicast ff00::/8;
// - IPv4: the original was sent to a multicast address or to 255.255.255.255 (subnet-directed
//   broadcasts cannot be recognised here). IPv6 Packet Too Big is the exception RFC 4443
//   §2.4(e.3) makes: it IS sent for multicast destinations (so multicast PMTU discovery works);
// - `capacity` is smaller than the answer (kIcmpv4ErrorMaxSize / kIcmpv6ErrorMaxSize bytes,
//   plus 14 for a frame, always suffice). The quote is never shortened to fit a small buffer.
// Whether the original deserves an answer at all (it has DF, or is IPv6, and is larger than
// the MTU) is the caller's decision, as is the rate limit (TokenBucket below).
//
// `out` must not overlap the original.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ovl {

constexpr size_t kIcmpv4ErrorMaxSize = 576;   // the whole IPv4 packet
constexpr size_t kIcmpv6ErrorMaxSize = 1280;  // the whole IPv6 packet
constexpr size_t kIcmpv4MaxQuote = kIcmpv4ErrorMaxSize - 20 - 8;  // 548
constexpr size_t kIcmpv6MaxQuote = kIcmpv6ErrorMaxSize - 40 - 8;  // 1232
constexpr uint8_t kIcmpErrorTtl = 64;

// Builds at `out` an IPv4 packet from `source` to the original's source carrying ICMP type 3
// code 4 with `next_hop_mtu`, quoting the IPv4 packet `original` (`original_length` bytes
// available; bytes past its total length, e.g. Ethernet padding, are not quoted). Returns its
// length, or 0 (see above).
size_t build_ipv4_frag_needed(uint8_t* out, size_t capacity, const uint8_t* original, size_t original_length,
                              uint16_t next_hop_mtu, const uint8_t source[4], uint16_t id = 0);

// Builds at `out` an IPv6 packet from `source` to the original's source carrying ICMPv6 Packet
// Too Big with `mtu` (raised to 1280 if below), quoting the IPv6 packet `original`. Returns its
// length, or 0 (see above).
size_t build_ipv6_packet_too_big(uint8_t* out, size_t capacity, const uint8_t* original, size_t original_length,
                                 uint32_t mtu, const uint8_t source[16]);

// The same for a TAP device: `frame` is an Ethernet frame (14-byte header, EtherType 0x0800 or
// 0x86DD, the IP packet right after it); the answer is an Ethernet frame back to its sender,
// the MAC addresses swapped (so it appears to come from the station the sender addressed, the
// gateway whose link is too narrow). `mtu` is the largest IP packet the tunnel carries (the
// device MTU, link header not counted; for IPv4 capped at 65535). `source_ip` is 4 bytes for
// an IPv4 frame and 16 for an IPv6 one: look at the EtherType (frame[12..13]) to choose.
// Returns the frame length or 0: besides the rules above, also for a frame with an 802.1Q or
// 802.1ad tag (we would have to answer on the same VLAN; tagged traffic is rare on an overlay
// port and a silent drop is what happens without us), another EtherType, an IP version that
// does not match the EtherType, a group (multicast/broadcast) or zero source MAC, and a group
// destination MAC (it would become our source address, which must be unicast).
size_t build_too_big_frame(uint8_t* out, size_t capacity, const uint8_t* frame, size_t frame_length, uint32_t mtu,
                           const uint8_t* source_ip, uint16_t ipv4_id = 0);

// Token bucket rate limit for these answers. Linux limits ICMP errors per destination to one per
// second (icmp_ratelimit 1000 ms, with a burst of 6) and to 1000/s overall per host
// (icmp_msgs_per_sec, burst icmp_msgs_burst 50). We keep no per-destination state on the fast
// path; a per-worker bucket of kIcmpTooBigPerSecond with a burst of kIcmpTooBigBurst bounds
// what a flood of oversized packets can make us send, while the first packets of every new
// flow still get their answer: a sender needs one per path, and TCP retransmits until it has.
constexpr uint32_t kIcmpTooBigPerSecond = 100;
constexpr uint32_t kIcmpTooBigBurst = 50;

class TokenBucket {
 public:
  // `per_second` tokens are added per second, up to `burst`; the bucket starts full.
  TokenBucket(uint32_t per_second, uint32_t burst);

  // Takes a token at time `now_microseconds` (a monotonic clock) if one is there. A clock that
  // goes backwards adds nothing (and never removes tokens).
  bool take(uint64_t now_microseconds);

 private:
  static constexpr uint64_t kScale = 1000000;  // tokens are counted in millionths
  uint64_t per_second_;
  uint64_t capacity_;  // burst * kScale
  uint64_t tokens_;    // in millionths of a token
  uint64_t last_ = 0;  // microseconds of the last refill
  bool started_ = false;
};

}  // namespace ovl
