// Device → underlay. The stages, in order, for each frame of a batch read from the device:
//
//   1. route        find the peer: TUN by the destination's longest allowedIps prefix, TAP by
//                   static or learned MAC, else every peer (head-end replication); refuse a
//                   routing loop; pick the send socket of the flow (its UDP source port)
//   2. inspect      parse the inner IP header once: the outer TOS/TTL/DF follow it (RFC 2003,
//                   RFC 6040)
//   3. policy       too big for the underlay with DF: ICMP back, dropped; MSS clamp; complete
//                   a partial checksum
//   4. segment      cut a TSO/USO super-frame into wire-sized segments, in chunks: each
//                   segment's headers in a buffer, its payload left where the device read put
//                   it (the buffer's tail), checksummed in place
//   5. encapsulate  the tunnel's header in the headroom (per peer for modes that seal per peer:
//                   ESP encrypts the tail into the buffer behind the headers, the one pass)
//   6. send         queue per send socket and hand whole runs to the underlay link, which
//                   makes UDP_SEGMENT trains of [headers, payload] iovecs or writes raw outer
//                   headers; no payload byte is copied in userspace on the way
//
// A flooded frame counts once in the totals' floodPackets and once in each peer's; a datagram
// the socket took counts its outer size (txWireBytes). Every drop records the frame as read (or,
// refused by the socket, the datagram as encapsulated) in the worker's drop ring.
#pragma once

#include <cstdint>
#include <vector>

#include "base/packet_buffer.h"
#include "datapath/inner_policy.h"
#include "datapath/worker_config.h"
#include "device/device_queue.h"
#include "tunnel/tunnel.h"
#include "underlay/link.h"

namespace ovl {

class Transmitter final : private SendReport {
 public:
  Transmitter(WorkerContext& context, Tunnel& tunnel, UnderlayLink& link, InnerPolicy& policy);

  // Sends frames[0, count) as read from the device, with their offload headers.
  void send_batch(PacketBuffer* frames, const VirtioNetHeader* vnet, size_t count, DeviceQueue& device);

 private:
  // Where an inner frame goes: its peer (kNone: every peer), the send socket of its flow, what
  // it is, and what its outer header copies from it.
  struct Route {
    uint32_t peer = PeerTable::kNone;
    uint32_t socket = 0;
    uint16_t ethertype = 0;
    OuterFields outer;
    uint32_t flow_label = 0;
  };

  Verdict route(const InnerFrame& inner, Route* route);
  Verdict route_ethernet(const InnerFrame& inner, Route* route);
  Verdict route_ip(const InnerFrame& inner, Route* route);
  // Drops an inner packet too big for the tunnel (counted on its peer) and answers with ICMP.
  void refuse_too_big(const InnerFrame& inner, uint32_t peer, DeviceQueue& device);
  void send_super_frame(PacketBuffer& frame, const VirtioNetHeader& vnet, const Route& route);
  void send_frames(PacketBuffer** frames, size_t count, const Route& route);
  void send_frames_per_peer(PacketBuffer** frames, size_t count, const Route& route);
  void queue(PacketBuffer& buffer, uint32_t peer, uint32_t inner_length, const Route& route);
  void flush();

  // SendReport: what the link did with each datagram.
  void sent(const Datagram& datagram) override;
  void dropped(const Datagram& datagram, Counter reason) override;
  void train_sent(uint32_t datagrams) override;
  void offload_refused() override;

  WorkerContext& context_;
  Tunnel& tunnel_;
  UnderlayLink& link_;
  InnerPolicy& policy_;
  const bool over_udp_;
  const uint32_t link_header_;
  const uint32_t outer_header_;  // the outer IP (+ UDP) header the socket puts in front: for txWireBytes
  uint32_t sending_socket_ = 0;  // of the link_.send() under way, for the drops it reports

  std::vector<std::vector<Datagram>> pending_;  // per send socket
  size_t pending_count_ = 0;
  // Segments of TSO super-frames waiting to be sent: segment i is its headers in headers_[i],
  // or in segments_[i] (room for a whole segment) for modes that seal the payload into the
  // buffer and for headers longer than a headers_ buffer holds. Either way its payload is the
  // tail, in the device batch, which stays untouched until send_batch has flushed.
  BufferPool headers_;
  BufferPool segments_;
  size_t segments_used_ = 0;
  std::vector<PacketBuffer*> frame_list_;  // wire frames of the frame being encapsulated
};

// Sends queued before a flush, bounding the fan-out of head-end replication.
constexpr size_t kMaxPendingSends = 1024;

}  // namespace ovl
