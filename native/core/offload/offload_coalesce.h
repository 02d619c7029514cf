// Receive-side coalescing (GRO) before writing to a vnet_hdr TUN/TAP device: consecutive
// in-order TCP segments of one flow become one super-frame with a virtio_net_hdr that asks the
// kernel to treat it as a GSO packet, so its stack handles one 64 KB packet instead of ~45; with
// coalesce_udp(), so do same-size UDP datagrams of one flow (a USO super-frame, which the kernel
// cuts back into the datagrams on its way to the socket: one device write for a train of small
// packets instead of one each). The rules are those of Linux's tcp_gro_receive and udp GRO (and
// wireguard-go's tun offload), kept strict: a segment merges into a run only when the kernel
// could later cut the merged packet back into exactly the segments we were given (see
// offload_segment.h for the other direction).
//
// A segment S joins the open run R of its flow (same protocol, IP version, addresses, ports) when:
//   - both verified: IPv4 header checksum and TCP or UDP checksum (pseudo-header included; a UDP
//     datagram without one, checksum 0, never merges);
//   - IPv4 without options, not a fragment, DF set, same TOS, TTL and flags field, ID = R's
//     last ID + 1; or IPv6 with TCP/UDP as next header (no extension headers), same first 4
//     bytes (traffic class, flow label) and hop limit;
//   - the same link header bytes (MACs, VLAN tags) and no link padding after the IP packet;
//   - TCP: flags exactly ACK or ACK|PSH (PSH ends the run), same data offset and option bytes
//     (timestamps included), same ack number, window and urgent pointer, seq = R's next seq;
//   - payload 1..gso_size bytes, where gso_size is R's first payload; a shorter one ends the run;
//   - the merged IP packet stays <= 65535 bytes and the run holds fewer than kMaxRunSegments.
// Nothing is copied: a run is its head frame (headers patched in place at finish()) followed by
// the payloads of its later segments where they arrived, which the device write gathers.
// Otherwise R is closed (nothing more joins it) and S starts a new run if it could have been a
// first segment, or passes through. Other frames pass through. Output order is the
// order in which each output frame's first segment arrived: frames of one flow are never
// reordered; frames of different flows may be (a later segment joins an earlier run).
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "offload/offload_segment.h"
#include "base/packet_buffer.h"

namespace ovl {

// The most segments one run merges: its write is then at most kMaxRunSegments + 1 iovecs, far
// below the kernel's UIO_MAXIOV (1024) whatever the segment size, and as many as the kernel's
// own GRO puts in one packet (64).
constexpr uint32_t kMaxRunSegments = 64;

// One frame to write to the device: the 10-byte form of `vnet` (write_virtio_net_header), then
// buffer->data()[0, buffer->length), then payloads[0, payload_count) (the later segments of a
// merged run, where they arrived; none otherwise). `payloads` stays valid until the next finish().
//
// vnet is one of:
//   - merged run (>= 2 segments): flags NEEDS_CSUM, gso_type TCPV4/TCPV6 (UDP_L4 for UDP),
//     gso_size = the first segment's payload, hdr_len = link + IP + TCP (UDP) header bytes,
//     csum_start = L4 header offset, csum_offset = 16 (UDP: 6); the frame's checksum field
//     holds the folded, uncomplemented pseudo-header sum for the merged length (what the
//     kernel expects with NEEDS_CSUM); IPv4 total length and header checksum / IPv6 payload
//     length (and UDP's length) cover the merged packet; PSH is set if the last merged TCP
//     segment had it.
//   - TCP segment whose checksums verified (alone in its run, or not mergeable): gso NONE,
//     flags DATA_VALID, frame untouched.
//   - anything else (not TCP, bad checksum, unparseable): all zero (gso NONE, flags 0), frame
//     untouched: the kernel verifies, and drops and counts a bad checksum itself.
struct CoalescedFrame {
  PacketBuffer* buffer;
  VirtioNetHeader vnet;
  const iovec* payloads = nullptr;
  uint32_t payload_count = 0;

  // The frame's bytes after the vnet header: the head's and the payloads'.
  uint32_t length() const {
    uint32_t total = buffer->length;
    for (uint32_t i = 0; i < payload_count; i++) total += static_cast<uint32_t>(payloads[i].iov_len);
    return total;
  }
};

class GroCoalescer {
 public:
  // link_header_length: 14 for TAP (Ethernet frames, an 802.1Q tag allowed), 0 for TUN (IP).
  explicit GroCoalescer(uint32_t link_header_length);

  // Skip the TCP and UDP checksum verification of what arrives: for payloads an AEAD already
  // authenticated (ESP), where a corrupted segment cannot reach us and a wrong checksum could
  // only come from the authenticated sender itself. The IPv4 header checksum is still checked.
  void trust_checksums(bool trust) { trust_checksums_ = trust; }
  // Merge UDP datagrams too: only for a device that takes USO super-frames (TUN_F_USO4/6,
  // Linux 6.2), which is what a merged UDP run is written as.
  void coalesce_udp(bool enabled) { coalesce_udp_ = enabled; }

  // Takes one decapsulated frame (buffer->data(), buffer->length), which may be a view into a
  // larger receive buffer (a segment of a UDP_GRO batch). Every frame's bytes must stay as they
  // are until the outputs of the next finish() are written: a buffer whose segment joined
  // another run appears in no output, but that output's payloads point into it. A run's head
  // frame is modified in place (its headers patched at finish()); nothing else is written.
  void add(PacketBuffer* buffer);

  // Appends one CoalescedFrame per output frame, in order, to `out`; returns how many. Resets
  // the coalescer for the next batch (capacity of internal vectors is kept: no allocation per
  // batch once warmed up). Each buffer given to add() since the last finish() is either the
  // buffer of exactly one output or holds a payload of one.
  size_t finish(std::vector<CoalescedFrame>& out);

  // Frames added since the last finish() that will be outputs (runs + pass-throughs).
  size_t pending() const { return items_.size(); }

 private:
  struct Segment;  // a parsed incoming TCP segment (offload_coalesce.cc)

  struct Item {
    PacketBuffer* buffer;
    VirtioNetHeader vnet;  // pass-throughs and single-segment runs
    int32_t run;           // index in runs_, or -1 for a pass-through
  };

  struct Run {
    uint32_t item;         // index in items_
    uint8_t protocol;      // TCP or UDP
    uint32_t ports;        // source and destination port, the cheap first key compare
    int ip_version;
    uint32_t l3, l4, payload;  // layout of the head frame
    uint32_t ip_length;    // IP bytes of the merged packet so far
    uint32_t next_seq;     // sequence number the next segment must carry
    uint16_t gso_size;     // payload of the first segment
    uint16_t last_id;      // IPv4 ID of the last segment
    uint32_t segments;
    bool psh;              // the last segment carried PSH
  };

  // A later segment's payload, in the order segments joined runs.
  struct Slice {
    uint32_t run;
    const uint8_t* data;
    uint32_t length;
  };

  int32_t find_open_run(const Segment& segment) const;
  void close_run(int32_t run);
  bool can_append(const Run& run, const Segment& segment) const;
  void append(Run& run, const Segment& segment);
  void start_run(const Segment& segment);
  void pass_through(PacketBuffer* buffer, uint8_t flags);

  uint32_t link_header_length_;
  bool trust_checksums_ = false;
  bool coalesce_udp_ = false;
  std::vector<Item> items_;
  std::vector<Run> runs_;
  std::vector<int32_t> open_;  // runs that may still grow
  std::vector<Slice> slices_;
  std::vector<iovec> payloads_;  // the slices grouped by run, for the outputs of finish()
  std::vector<uint32_t> run_first_payload_;
};

}  // namespace ovl
