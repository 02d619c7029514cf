// The outer IP header of the raw-IP modes: GRE (IP protocol 47, RFC 2784) and IP-in-IP
// (protocol 4 for IPv4 inside, RFC 2003; 41 for IPv6 inside, RFC 4213). raw_socket.h sends
// through an IPPROTO_RAW socket, so we write the whole outer header, and receives through
// per-protocol raw sockets, which deliver the IPv4 header with the payload (IPv6 raw sockets
// deliver only the payload, so there is nothing to decode for IPv6).
//
// Outer fields (RFC 2003 §3.1, which RFC 4213 §3.2-3.3 and GRE practice follow), as
// outer_fields_for() chooses them:
// - TTL: RFC 2003 asks for "a value appropriate for delivery of the encapsulated datagram to
//   the tunnel exit point". The configured value, by default kDefaultOuterTtl = 64 (Linux's
//   default ip_default_ttl). 0 means inherit the inner TTL / hop limit, as Linux's `ttl
//   inherit`; an inner 0 (never forwarded by a router) then falls back to 64, since a 0 TTL
//   may not be sent. The inner TTL is not decremented here: the kernel routed the packet
//   into our TUN device and decremented it then, as a router does.
// - DSCP: copied from the inner header (RFC 2003 copies the whole TOS byte; RFC 2983 calls
//   this the uniform model), so the underlay can honour the inner's per-hop behaviour. `copy_dscp = false` sends DSCP 0 (default forwarding)
//   instead, for an underlay that should not see the inner marking (the pipe model).
// - ECN: RFC 6040 normal mode, ecn_outer_for(): the inner ECN field, copied (see ecn.h).
// - DF: copied from the inner header, and always set for IPv6 inside (IPv6 packets are never
//   fragmented on the way, RFC 8200 §5). RFC 2003: if the inner has DF, the outer MUST have it;
//   without DF it MAY. We leave it clear then, so that an underlay router may fragment the
//   outer packet rather than drop it: the inner sender said fragmenting is fine, and as it
//   does no path MTU discovery, an ICMP error about the outer packet would help no one.
#pragma once

#include <cstddef>
#include <cstdint>

#include "wire/ip_packet.h"

namespace ovl {

constexpr uint8_t kDefaultOuterTtl = 64;
constexpr uint32_t kOuterIpv4HeaderSize = 20;  // we write no IPv4 options
constexpr uint32_t kOuterIpv6HeaderSize = 40;

// The defaults are what a payload that is not IP (Ethernet over GRE) gets: TOS 0, TTL 64, DF
// set (as a Linux gretap device with its default pmtudisc does).
struct OuterFields {
  uint8_t tos = 0;  // DSCP << 2 | ECN: the IPv4 TOS byte or the IPv6 Traffic Class
  uint8_t ttl = kDefaultOuterTtl;
  bool dont_fragment = true;  // IPv4 outer only: IPv6 has no DF (it never fragments on the way)
};

// The outer TOS/TTL/DF for `inner` (see the top of this file). `configured_ttl`: 1..255 sends
// that TTL; 0 inherits the inner TTL/hop limit.
OuterFields outer_fields_for(const InnerIp& inner, uint8_t configured_ttl, bool copy_dscp = true);

// Writes a complete 20-byte IPv4 header (no options) at `header`: version 4, IHL 5, `tos`,
// `total_length` (header + payload), `id`, DF as given (MF and offset 0), `ttl`, `protocol`,
// the addresses (4 bytes each), and the header checksum. On an IP_HDRINCL socket Linux
// (raw(7)) always recomputes the checksum and fills in an `id` of 0 itself; writing them all
// keeps the header right wherever it is sent, and keeps the tests meaningful.
void ipv4_outer_encode(uint8_t* header, const uint8_t source[4], const uint8_t destination[4], uint8_t protocol,
                       uint16_t total_length, uint8_t tos, uint8_t ttl, bool dont_fragment, uint16_t id);

// Writes a 40-byte IPv6 header at `header` (for an IPV6_HDRINCL socket): version 6,
// `traffic_class`, the low 20 bits of `flow_label` (RFC 6438: a tunnel ingress should put a
// hash of the inner flow here so that ECMP spreads tunnelled flows; 0 means unlabelled),
// `payload_length` (what follows this header), `next_header`, `hop_limit`, the addresses.
void ipv6_outer_encode(uint8_t* header, const uint8_t source[16], const uint8_t destination[16], uint8_t next_header,
                       uint16_t payload_length, uint8_t traffic_class, uint8_t hop_limit, uint32_t flow_label);

enum class OuterStatus {
  ok,
  truncated,          // fewer bytes than 20, than IHL * 4, or than the total length
  bad_version,        // not 4
  bad_header_length,  // IHL < 5
  bad_total_length,   // total length < IHL * 4
  fragment,           // MF set or a non-zero offset
  wrong_protocol,     // not the expected protocol
};

// What a good outer IPv4 header says.
struct OuterIpv4 {
  uint32_t payload_offset = 0;  // IHL * 4: the payload (GRE header, inner IP header) starts here
  uint32_t payload_length = 0;  // total length - IHL * 4 (bytes after the total length are ignored)
  uint8_t protocol = 0;
  const uint8_t* source = nullptr;  // 4 bytes inside the packet
  const uint8_t* destination = nullptr;
  uint8_t tos = 0;  // the whole TOS byte
  uint8_t ecn = 0;  // its low 2 bits, for ecn_decapsulate()
  uint8_t ttl = 0;
};

// Validates what an IPv4 raw socket delivered: the IPv4 header, then the payload. Checks, in
// this order: version 4, IHL >= 5, header and total length within `length`, total length >=
// header; then fragments; then the protocol: `expected_protocol`, or with 0 either IP-in-IP
// protocol (4 or 41). On ok fills *out; otherwise leaves it alone.
//
// A fragment is refused, not reassembled: Linux hands raw sockets packets after reassembly
// (raw_local_deliver runs in ip_local_deliver, after ip_defrag), so a fragment here means the
// packet did not come from the kernel's input path the way we expect.
// The header checksum is not verified: ip_rcv verified it before any raw socket saw the packet.
// Options (IHL > 5) are skipped, not interpreted.
OuterStatus ipv4_outer_decode(const uint8_t* packet, size_t length, uint8_t expected_protocol, OuterIpv4* out);

}  // namespace ovl
