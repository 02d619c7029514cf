#include "datapath/receive.h"

#include <algorithm>
#include <cstring>

namespace ovl {

namespace {

// Frames the coalescer may hold at once: a round's worth of full UDP_GRO datagrams (64 each).
size_t view_count(const WorkerConfig& config) { return config.vnet_header ? size_t{config.batch_size} * 64 : 0; }

// The outer headers the socket strips before we see a datagram: IPv4 (without options) or IPv6,
// and UDP in the UDP modes. Added back for the wire bytes.
uint32_t outer_header_size(const WorkerConfig& config) {
  return (config.local.family() == AF_INET6 ? 40u : 20u) + (config.tunnel.over_udp() ? 8u : 0u);
}

}  // namespace

Receiver::Receiver(WorkerContext& context, Tunnel& tunnel, UnderlayLink& link, InnerPolicy& policy,
                   ControlChannel& control)
    : context_(context),
      tunnel_(tunnel),
      link_(link),
      policy_(policy),
      control_(control),
      screens_control_(tunnel.config().control_on_data_port()),
      over_udp_(tunnel.config().over_udp()),
      decrypts_(tunnel.authenticates_payload()),
      port_(context.config.local.port()),
      link_header_(context.config.link_header()),
      outer_header_(outer_header_size(context.config)),
      buffers_(context.config.batch_size, kMaxPacket),
      received_(context.config.batch_size),
      coalescer_(context.config.link_header()),
      views_(view_count(context.config)),
      vnet_headers_(views_.size()) {
  // A payload the tunnel authenticated (ESP's ICV covers every byte) has inner checksums
  // that can only verify: checking them again is a pass over the payload for nothing.
  coalescer_.trust_checksums(tunnel.authenticates_payload());
  coalescer_.coalesce_udp(context.config.uso_writes);
  coalesced_.reserve(views_.size());
  // Each output is a vnet header and its head, and each frame at most one payload of another's.
  parts_.reserve(3 * views_.size());
}

void Receiver::receive(size_t receiver, DeviceQueue& device, DeviceReport& device_report, int rounds) {
  device_ = &device;
  device_report_ = &device_report;
  const uint32_t batch = context_.config.batch_size;
  for (int round = 0; round < rounds; round++) {
    const int count = link_.receive(receiver, &buffers_[0], batch, received_.data());
    if (count < 0) {
      context_.drop(WorkerStats::kNoPeer, kDropSocketError, DropSample::nothing(DropDirection::rx));
      return;
    }
    for (int i = 0; i < count; i++) receive_datagram(buffers_[static_cast<size_t>(i)], received_[static_cast<size_t>(i)]);
    // The next round reuses these buffers: write everything out first.
    if (context_.config.vnet_header) flush_coalesced();
    device.flush(*this, device_report);
    if (static_cast<uint32_t>(count) < batch) return;
  }
}

void Receiver::receive_datagram(PacketBuffer& buffer, const ReceivedDatagram& datagram) {
  const PeerTable& table = *context_.table;
  const uint32_t peer = table.by_source(datagram.source);
  const uint32_t segment = datagram.segment == 0 ? buffer.length : datagram.segment;
  // What a drop records: the datagram (one segment of a GRO batch) as the socket gave it.
  const auto arrived = [&](const uint8_t* packet, uint32_t length, DropLayer layer = DropLayer::underlay) {
    return DropSample::underlay(packet, length, DropDirection::rx, datagram.source, over_udp_ ? port_ : 0,
                                over_udp_ ? kIpProtocolUdp : datagram.outer.protocol, layer);
  };
  if (peer == PeerTable::kNone) {
    if (screens_control_ && !datagram.truncated && buffer.length > 0) {
      for (uint32_t offset = 0; offset < buffer.length; offset += segment) {
        const uint32_t length = std::min(segment, buffer.length - offset);
        if (take_control(buffer.data() + offset, length, datagram.source)) continue;
        context_.drop(WorkerStats::kNoPeer, kDropUnknownPeer, arrived(buffer.data() + offset, length));
      }
      return;
    }
    context_.drop(WorkerStats::kNoPeer, kDropUnknownPeer, arrived(buffer.data(), std::min(segment, buffer.length)),
                  datagram.datagrams);
    return;
  }
  const uint32_t slot = table.peers()[peer].slot;
  if (datagram.truncated) {
    context_.count(slot, kRxWireBytes, buffer.length + uint64_t{datagram.datagrams} * outer_header_);
    context_.drop(slot, kDropTooBig, arrived(buffer.data(), buffer.length), datagram.datagrams);
    return;
  }
  if (!datagram.outer_check.ok()) {
    // A raw IPv4 packet whose outer header did not check out: it is still in the buffer.
    context_.count(slot, kRxWireBytes, buffer.length);
    context_.drop(slot, datagram.outer_check, arrived(buffer.data(), buffer.length, DropLayer::outer_ip));
    return;
  }
  if (buffer.length == 0) {
    // An empty datagram has no overlay header at all (and no segments to loop over).
    context_.count(slot, kRxWireBytes, outer_header_);
    context_.drop(slot, kDropMalformed, arrived(buffer.data(), 0));
    return;
  }
  if (datagram.datagrams > 1) {
    context_.count(kRxGroReceives);
    context_.count(kRxGroSegments, datagram.datagrams);
  }
  const bool vnet = context_.config.vnet_header;
  if (vnet && slot != coalescing_slot_) {
    // Runs never mix peers: a flow's segments must all come from the one peer it belongs to.
    flush_coalesced();
    coalescing_slot_ = slot;
  }
  const ReceivedFrom from{peer, slot, datagram.outer.protocol};
  for (uint32_t offset = 0; offset < buffer.length; offset += segment) {
    const uint32_t length = std::min(segment, buffer.length - offset);
    uint8_t* packet = buffer.data() + offset;
    if (screens_control_ && take_control(packet, length, datagram.source)) continue;
    context_.count(slot, kRxWireBytes, length + outer_header_);
    Inner decapsulated;
    // ESP decrypts in place: past its header, a failed packet holds what decryption left.
    Verdict verdict = tunnel_.decapsulate(packet, length, from, &decapsulated);
    if (!verdict.ok()) {
      context_.drop(slot, verdict, arrived(packet, length));
      continue;
    }
    uint8_t* frame = packet + decapsulated.offset;
    const InnerFrame inner = inspect_inner(frame, decapsulated.length, link_header_);
    verdict = link_header_ == 0 ? policy_.accept_ip(inner, decapsulated.ethertype, peer, datagram.outer)
                                : policy_.accept_ethernet(inner, slot, datagram.outer);
    if (!verdict.ok()) {
      // The inner packet is what the policy refused. A mode that decrypted it records it as it
      // came out (its ciphertext is gone); the others the datagram as it arrived, headers and all.
      context_.drop(slot, verdict,
                    decrypts_ ? DropSample::device(frame, decapsulated.length, DropDirection::rx) : arrived(packet, length));
      continue;
    }
    if (!vnet) {
      deliver(DeviceWrite{frame, decapsulated.length, slot, 1, decapsulated.length, false});
    } else {
      coalesce(frame, decapsulated.length);  // without a trailer
    }
  }
}

bool Receiver::take_control(const uint8_t* packet, uint32_t length, const sockaddr* source) {
  const auto refused = [&] { return DropSample::underlay(packet, length, DropDirection::rx, source, port_, kIpProtocolUdp); };
  uint32_t offset = 0;
  switch (tunnel_.classify(packet, length, &offset)) {
    case PortTraffic::tunnel:
      return false;
    case PortTraffic::keepalive:
      context_.count(kNatKeepalives);
      return true;
    case PortTraffic::short_control:
      if (!control_.is_open()) return false;
      context_.drop(WorkerStats::kNoPeer, kDropMalformed, refused());
      return true;
    case PortTraffic::control:
      break;
  }
  switch (control_.deliver(port_, source, packet + offset, length - offset)) {
    case ControlChannel::Handoff::delivered:
      context_.count(kControlRx);
      return true;
    case ControlChannel::Handoff::queue_full:
      context_.drop(WorkerStats::kNoPeer, kDropControlQueueFull, refused());
      return true;
    case ControlChannel::Handoff::closed:
      break;
  }
  return false;
}

void Receiver::coalesce(uint8_t* frame, uint32_t length) {
  if (views_used_ == views_.size()) flush_coalesced();
  // A view of the frame where it lies: the coalescer reads it, patches a run head's headers in
  // place, and the device write gathers from it.
  PacketBuffer& view = views_[views_used_++];
  view.base = frame;
  view.capacity = length;
  view.offset = 0;
  view.length = length;
  coalescer_.add(&view);
}

void Receiver::flush_coalesced() {
  if (coalescer_.pending() > 0) {
    coalesced_.clear();
    coalescer_.finish(coalesced_);
    parts_.clear();
    // Every output's iovecs first, then the writes: parts_ must not move under queued writes.
    for (size_t i = 0; i < coalesced_.size(); i++) {
      const CoalescedFrame& out = coalesced_[i];
      write_virtio_net_header(out.vnet, vnet_headers_[i].data());
      parts_.push_back(iovec{vnet_headers_[i].data(), kVirtioNetHeaderSize});
      parts_.push_back(iovec{out.buffer->data(), out.buffer->length});
      parts_.insert(parts_.end(), out.payloads, out.payloads + out.payload_count);
    }
    const iovec* parts = parts_.data();
    for (const CoalescedFrame& out : coalesced_) {
      const PacketBuffer& head = *out.buffer;
      const uint32_t length = out.length();
      // Counted as the frames that arrived: a run of n segments is n frames, each with the
      // run's headers.
      uint32_t segments = 1;
      uint64_t bytes = length;
      const bool merged = out.vnet.gso_type != kVirtioNetHdrGsoNone && out.vnet.gso_size > 0 &&
                          length > out.vnet.hdr_len;
      if (merged) {
        segments = (length - out.vnet.hdr_len + out.vnet.gso_size - 1) / out.vnet.gso_size;
        bytes += uint64_t{segments - 1} * out.vnet.hdr_len;
      }
      DeviceWrite write{head.data(), head.length, coalescing_slot_, segments, bytes, merged};
      write.parts = parts;
      write.part_count = 2 + out.payload_count;
      parts += write.part_count;
      deliver(write);
    }
  }
  // The receive buffers the views point into are free again only once their frames are written.
  if (device_) device_->flush(*this, *device_report_);
  views_used_ = 0;
}

void Receiver::deliver(const DeviceWrite& write) { device_->write(write, *this, *device_report_); }

void Receiver::written(const DeviceWrite& write) {
  context_.count(write.slot, kRxPackets, write.segments);
  context_.count(write.slot, kRxBytes, write.bytes);
  if (write.merged) {
    context_.count(kRxCoalescedWrites);
    context_.count(kRxCoalescedSegments, write.segments);
  }
}

void Receiver::write_failed(const DeviceWrite& write, Counter reason) {
  // `frame` never holds the vnet header: with vnet headers every write is in parts, and the
  // frame is its head. The capture is of the head; the length is the whole frame's.
  uint32_t length = write.length;
  for (uint32_t i = 2; i < write.part_count; i++) length += static_cast<uint32_t>(write.parts[i].iov_len);
  DropSample sample = DropSample::device(write.frame, length, DropDirection::rx);
  sample.readable = write.length;
  context_.drop(write.slot, reason, sample, write.segments);
}

void Receiver::ring_failed() { context_.count(kOffloadFallbacks); }

}  // namespace ovl
