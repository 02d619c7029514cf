// TCP MSS clamping: lowering the Maximum Segment Size option of SYN and SYN-ACK segments that
// cross the tunnel, so that both ends pick segments that fit the tunnel's MTU from the start
// instead of relying on path MTU discovery (which ICMP filters break). It is what iptables'
// TCPMSS target (--clamp-mss-to-pmtu / --set-mss) does on routers in front of tunnels. The
// caller (when the option is on) passes max_mss = tunnel MTU - IP header - TCP header, i.e.
// MTU - 40 for IPv4 and MTU - 60 for IPv6.
//
// Only what is certain is touched:
// - IPv4 packets that are not a non-first fragment (a first fragment carries the whole TCP
//   header when it fits, and the checksum update is exact either way), IPv6 packets whose
//   first next header is TCP (6). Packets with IPv6 extension headers are left alone: they are
//   rare, and walking them for a best-effort option is not worth it.
// - The IP header and the TCP header must be complete within the packet (its stated length),
//   the TCP data offset >= 5, and SYN set (MSS is only valid in SYN segments, RFC 9293 §3.7.1).
// - The options are walked strictly: EOL (0) ends the list, NOP (1) is one byte, every other
//   option is kind, length >= 2, and must fit within the header; an MSS option (kind 2) must
//   have length 4. Any violation anywhere leaves the packet untouched: a list we cannot parse
//   with certainty is one we could only damage.
// - Every MSS option whose value exceeds max_mss is lowered to it (normally there is one). A
//   SYN without MSS option is left alone: RFC 9293 then means 536 (IPv4) / 1220 (IPv6), which
//   fit any tunnel worth the name. MSS values at or below max_mss are never raised.
//
// The TCP checksum is updated incrementally (RFC 1624), whatever the option's alignment, unless
// `checksum_partial`: a packet with a vnet_hdr NEEDS_CSUM flag holds in its checksum field only
// the pseudo-header sum (which the MSS does not enter); the rest is added when the checksum is
// completed, after our change. Updating it then would break it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ovl {

// `ip_packet`: an IPv4 or IPv6 packet (no link header), `length` bytes available. Returns true
// when it lowered an MSS option (and fixed the checksum), false when it left the packet as is.
bool clamp_tcp_mss(uint8_t* ip_packet, size_t length, uint16_t max_mss, bool checksum_partial);

}  // namespace ovl
