// Underlay → device. The stages, in order, for each datagram of a batch the underlay link
// received (a UDP_GRO datagram holds several of one peer's datagrams back to back):
//
//   0. control      ESP in UDP only (Tunnel::classify), per datagram and before the sender has to
//                   be a peer, since IKE comes from hosts that are none yet: a NAT keepalive is
//                   counted (natKeepalives) and goes no further; with the control channel open,
//                   an IKE message (non-ESP marker) goes to it (controlRx, or controlQueueFull)
//                   and a marked datagram too short for IKE is malformed. With no channel open
//                   marked datagrams go on as before there was one (unknownPeer, unknownSpi).
//   1. sender       find the peer by the outer source address (unknownPeer), refuse what was
//                   truncated (tooBig) or whose raw outer header failed its check
//   2. decapsulate  the tunnel validates and strips its header: VNI, GRE key/checksum/sequence,
//                   ESP SA, replay window, ICV, padding (each with its drop reason)
//   3. inspect      parse the inner IP header once
//   4. policy       source MAC or allowedIps of the sending peer (anti-spoofing), TTL, RFC 6040
//                   ECN, MSS clamp; learn the source MAC (TAP)
//   5. coalesce     with vnet headers, merge in-order TCP segments of one peer into runs; a
//                   run is its head frame and its later segments' payloads where the socket
//                   put them (nothing is copied)
//   6. deliver      write to the device (io_uring batches where possible), a run as one writev
//                   of [vnet header, head, payload, payload, ...]; count per peer
//
// Every datagram of a peer's that reaches stage 2 counts its outer size (rxWireBytes); every drop
// records the datagram as it arrived (or, refused by the policy after ESP decrypted it, the
// inner packet) in the worker's drop ring.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "base/packet_buffer.h"
#include "datapath/inner_policy.h"
#include "datapath/worker_config.h"
#include "device/device_queue.h"
#include "offload/offload_coalesce.h"
#include "tunnel/tunnel.h"
#include "underlay/control_channel.h"
#include "underlay/link.h"

namespace ovl {

class Receiver final : private WriteReport {
 public:
  Receiver(WorkerContext& context, Tunnel& tunnel, UnderlayLink& link, InnerPolicy& policy, ControlChannel& control);

  // Drains receiver socket `receiver` of the link for up to `rounds` batches and delivers what
  // it got.
  void receive(size_t receiver, DeviceQueue& device, DeviceReport& device_report, int rounds = kRoundsPerWakeup);

 private:
  void receive_datagram(PacketBuffer& buffer, const ReceivedDatagram& datagram);
  // Stage 0 for one datagram (one segment of a GRO batch): true when it was control traffic and
  // is done with, false when it is for the tunnel.
  bool take_control(const uint8_t* packet, uint32_t length, const sockaddr* source);
  void deliver(const DeviceWrite& write);
  // Hands the coalescer a frame that lies at frame[0, length) of a receive buffer.
  void coalesce(uint8_t* frame, uint32_t length);
  void flush_coalesced();

  // WriteReport: what became of each device write.
  void written(const DeviceWrite& write) override;
  void write_failed(const DeviceWrite& write, Counter reason) override;
  void ring_failed() override;

  WorkerContext& context_;
  Tunnel& tunnel_;
  UnderlayLink& link_;
  InnerPolicy& policy_;
  ControlChannel& control_;
  const bool screens_control_;   // the tunnel's port carries control traffic
  const bool over_udp_;
  const bool decrypts_;          // the tunnel decrypts in place (ESP): what a drop can still show
  const uint16_t port_;          // the data-path port, as control datagrams report it
  const uint32_t link_header_;
  const uint32_t outer_header_;  // outer IP (+ UDP) header bytes the socket stripped
  DeviceQueue* device_ = nullptr;           // of the receive() under way
  DeviceReport* device_report_ = nullptr;

  BufferPool buffers_;
  std::vector<ReceivedDatagram> received_;
  GroCoalescer coalescer_;
  uint32_t coalescing_slot_ = UINT32_MAX;  // the peer whose frames the coalescer holds
  // What the coalescer is given: views of the frames in buffers_ (a UDP_GRO datagram holds
  // many), valid until the round's flush. Full, they are flushed early.
  std::vector<PacketBuffer> views_;
  size_t views_used_ = 0;
  std::vector<CoalescedFrame> coalesced_;
  // Per output of a flush: its vnet header, and the iovecs of its write.
  std::vector<std::array<uint8_t, kVirtioNetHeaderSize>> vnet_headers_;
  std::vector<iovec> parts_;
};

}  // namespace ovl
