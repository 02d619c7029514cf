// Kernel offloads through a TUN/TAP device opened with IFF_VNET_HDR: every read and write
// carries a virtio_net_hdr before the frame, and with TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4 |
// TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6) the kernel hands us frames whose transport checksum is
// left for us to complete (NEEDS_CSUM) and TCP/UDP "super-frames" of up to 64 KB that we must
// cut into wire-sized segments (GSO) before encapsulating them. This file is the transmit
// side: parse the header, segment. offload_coalesce.h is the receive side.
//
// The 10-byte header (struct virtio_net_hdr, <linux/virtio_net.h>):
//
//   offset 0  u8  flags        NEEDS_CSUM (1): complete the checksum at csum_start + csum_offset
//                              DATA_VALID (2): the checksum is known good
//   offset 1  u8  gso_type     NONE 0, TCPV4 1, UDP 3 (UFO, not supported), TCPV6 4,
//                              UDP_L4 5 (USO), | ECN 0x80 (TCP with CWR in the first segment)
//   offset 2  u16 hdr_len      link + IP + L4 header bytes (a hint: we recompute it)
//   offset 4  u16 gso_size     payload bytes per segment (excluding all headers)
//   offset 6  u16 csum_start   offset of the L4 header from the start of the frame
//   offset 8  u16 csum_offset  offset of the checksum field within it (TCP 16, UDP 6)
//
// The 16-bit fields are in the byte order tun uses by default (legacy virtio, no
// TUNSETVNETLE/BE): the host's, i.e. little-endian on x86-64 and arm64.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/packet_buffer.h"
#include "wire/protocols.h"

namespace ovl {

constexpr uint32_t kVirtioNetHeaderSize = 10;

// flags
constexpr uint8_t kVirtioNetHdrFNeedsCsum = 1;
constexpr uint8_t kVirtioNetHdrFDataValid = 2;
// gso_type (values of <linux/virtio_net.h>; UDP_L4 is newer than some installed headers)
constexpr uint8_t kVirtioNetHdrGsoNone = 0;
constexpr uint8_t kVirtioNetHdrGsoTcpv4 = 1;
constexpr uint8_t kVirtioNetHdrGsoUdp = 3;  // UFO (IPv4 fragmentation offload): not supported
constexpr uint8_t kVirtioNetHdrGsoTcpv6 = 4;
constexpr uint8_t kVirtioNetHdrGsoUdpL4 = 5;
constexpr uint8_t kVirtioNetHdrGsoEcn = 0x80;

// TUNSETOFFLOAD bits (<linux/if_tun.h>; the USO ones arrived in Linux 6.2).
constexpr unsigned kTunFCsum = 0x01;
constexpr unsigned kTunFTso4 = 0x02;
constexpr unsigned kTunFTso6 = 0x04;
constexpr unsigned kTunFTsoEcn = 0x08;
constexpr unsigned kTunFUso4 = 0x20;
constexpr unsigned kTunFUso6 = 0x40;

struct VirtioNetHeader {
  uint8_t flags = 0;
  uint8_t gso_type = 0;
  uint16_t hdr_len = 0;
  uint16_t gso_size = 0;
  uint16_t csum_start = 0;
  uint16_t csum_offset = 0;
};

// Reads the wire form. Returns false (and leaves *header alone) when length < 10.
bool parse_virtio_net_header(const uint8_t* bytes, size_t length, VirtioNetHeader* header);
// Writes the 10-byte wire form at `bytes`.
void write_virtio_net_header(const VirtioNetHeader& header, uint8_t* bytes);

// Completes a NEEDS_CSUM frame's checksum in place (what gso NONE needs, without the copy that
// segment_super_frame makes). False, and nothing written, if the field lies outside the frame.
bool complete_partial_checksum(const VirtioNetHeader& vnet, uint8_t* frame, size_t length);

// Errors of segment_super_frame (negative return values).
enum SegmentError : int {
  kSegmentMalformed = -1,         // a length, offset or header field is inconsistent or truncated
  kSegmentUnsupported = -2,       // gso type (UFO, unknown), IPv6 extension header we don't walk, ...
  kSegmentTooManySegments = -3,   // more segments than out_count
  kSegmentBufferTooSmall = -4,    // an output PacketBuffer lacks kHeadroom + segment bytes
};
const char* segment_error_name(int error);

// Turns one frame read from a vnet_hdr device into ready-to-send frames.
//
// `frame`/`length`: the bytes that followed the 10-byte header. `link_header_length`: 14 for
// TAP (Ethernet; one or two 802.1Q/802.1ad tags after the MACs are recognised, so the IP
// header may start at 18 or 22), 0 for TUN (raw IP).
//
// Every out[i] written is reset() first, so its data starts at kHeadroom (headroom stays free
// for the encapsulation) and out[i].length is the frame length; each needs
// capacity >= kHeadroom + its frame length (kHeadroom + length always suffices).
//
// - gso_type NONE: the frame is copied to out[0]. With NEEDS_CSUM the checksum at
//   csum_start + csum_offset (pre-seeded by the kernel with the pseudo-header sum) is completed
//   over csum_start..end of frame, as the kernel's skb_checksum_help does (0 is sent as 0xFFFF).
//   Nothing else is interpreted, so any protocol passes.
// - TCPV4 / TCPV6 (with or without ECN) and UDP_L4: the headers are re-parsed from the frame
//   (hdr_len is only checked to be within length), the payload after them is cut into gso_size
//   pieces, and each output frame is the headers plus one piece with: IPv4 total length, ID
//   (first + i, mod 2^16) and header checksum; IPv6 payload length; TCP sequence number
//   (first + i * gso_size), FIN and PSH only on the last segment, CWR only on the first; UDP
//   length; full TCP/UDP checksums (UDP's 0 sent as 0xFFFF). All outputs are fully checksummed:
//   no NEEDS_CSUM state is left for anyone. IPv4 options and IPv6 hop-by-hop/destination
//   options headers are copied into every segment.
//
// Returns the number of frames written (>= 1), or a SegmentError; on an error no output buffer
// has been touched. Nothing is read outside frame[0, length) and nothing written outside any
// out[i].base[0, capacity).
int segment_super_frame(const VirtioNetHeader& vnet, const uint8_t* frame, size_t length,
                        uint32_t link_header_length, PacketBuffer* out, size_t out_count);

// The same, in chunks, for callers with fewer buffers than a super-frame may need (a peer's
// small MSS makes gso_size small: a 64 KB frame at gso_size 536 is 123 segments). Writes
// segments [first, first + out_count) of the frame (fewer at its end) to out[0..], and sets
// *total (if given) to the frame's segment count. Returns the number written, 0 once first >=
// total, or a SegmentError (kSegmentTooManySegments only when out_count is 0). Segment i is
// the same whichever call writes it; the frame is re-parsed on each call. Loop:
//   for (size_t first = 0, total = 1; first < total; first += n) {
//     n = segment_super_frame_range(vnet, frame, length, link, first, out, count, &total);
//     if (n <= 0) { drop; break; }  ... send out[0, n) ...
//   }
int segment_super_frame_range(const VirtioNetHeader& vnet, const uint8_t* frame, size_t length,
                              uint32_t link_header_length, size_t first, PacketBuffer* out, size_t out_count,
                              size_t* total);

// The same as segment_super_frame_range, without copying payload: out[i] gets segment i's
// headers only (so capacity >= kHeadroom + the frame's header bytes suffices), and out[i].tail /
// tail_length point at its payload piece where it lies in `frame`, which must stay unchanged
// until the segments are sent. Headers, lengths and checksums are those of the copying call
// (the checksum is computed over the piece in place): out[i]'s bytes followed by its tail are,
// byte for byte, what segment_super_frame_range writes to out[i]. gso NONE is copied as there.
int segment_super_frame_headers(const VirtioNetHeader& vnet, const uint8_t* frame, size_t length,
                                uint32_t link_header_length, size_t first, PacketBuffer* out, size_t out_count,
                                size_t* total);

// ---- Shared with offload_coalesce.cc (and usable by the worker): where the layers are. ----

constexpr uint32_t kIpv4HeaderSize = 20;
constexpr uint32_t kIpv6HeaderSize = 40;
constexpr uint32_t kTcpHeaderSize = 20;
constexpr uint32_t kUdpHeaderSize = 8;
constexpr uint16_t kTcpChecksumOffset = 16;
constexpr uint16_t kUdpChecksumOffset = 6;
constexpr uint8_t kTcpFlagFin = 0x01;
constexpr uint8_t kTcpFlagSyn = 0x02;
constexpr uint8_t kTcpFlagRst = 0x04;
constexpr uint8_t kTcpFlagPsh = 0x08;
constexpr uint8_t kTcpFlagAck = 0x10;
constexpr uint8_t kTcpFlagUrg = 0x20;
constexpr uint8_t kTcpFlagEce = 0x40;
constexpr uint8_t kTcpFlagCwr = 0x80;

// Offsets (from the start of the frame) of one TCP or UDP packet's layers.
struct PacketLayout {
  size_t l3 = 0;       // IP header
  size_t l4 = 0;       // TCP/UDP header (after IPv4 options / IPv6 extension headers)
  size_t payload = 0;  // first payload byte (l4 + TCP data offset, or l4 + 8)
  size_t end = 0;      // end of the IP packet per its length field; bytes after it are link padding
  // Offset of the address the L4 pseudo-header uses as destination: the IP destination, or for
  // IPv4 with a loose/strict source route option (RFC 791) the route's last address, which is
  // the final destination: the pseudo-header carries that one, and Linux's ip_options_build
  // puts it there.
  size_t pseudo_destination = 0;
  int ip_version = 0;  // 4 or 6
};

// Locates the layers of an IP packet carrying `protocol` (TCP or UDP) after a link header of
// `link_header_length` bytes (14: Ethernet, stepping over up to two VLAN tags, and the
// EtherType must match the IP version; 0: raw IP; anything else: opaque bytes). Accepts IPv4
// options (which must be well-formed) and IPv6 hop-by-hop / destination-options headers.
// Rejects IPv4 fragments, IPv6 jumbograms (payload length 0), other IPv6 extension headers
// (kSegmentUnsupported), a protocol other than `protocol`, and any length that does not fit
// in `length`. Returns 0 or a SegmentError.
int parse_packet_layout(const uint8_t* frame, size_t length, uint32_t link_header_length, uint8_t protocol,
                        PacketLayout* layout);

}  // namespace ovl
