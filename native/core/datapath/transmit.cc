#include "datapath/transmit.h"

#include <algorithm>
#include <cstring>

#include "base/flow_hash.h"

namespace ovl {

namespace {

// Segments of TSO super-frames waiting to be sent: up to 512, within about 4 MB.
size_t segment_buffer_count(uint32_t frame) {
  return std::max<size_t>(64, std::min<size_t>(512, (size_t{4} << 20) / (frame + kHeadroom)));
}

// A segment's headers: link (with tags), IP with options or extension headers, TCP with
// options: 22 + 60 + 60 for IPv4, more only with unusual IPv6 extension headers, whose segments
// take their headers into full-size buffers instead (segments_).
constexpr uint32_t kSegmentHeaderCapacity = 256;

// What a drop before encapsulation records: the frame as the device gave it.
DropSample as_read(const uint8_t* frame, uint32_t length) { return DropSample::device(frame, length, DropDirection::tx); }
DropSample as_read(const PacketBuffer& frame) { return as_read(frame.data(), frame.length); }

}  // namespace

Transmitter::Transmitter(WorkerContext& context, Tunnel& tunnel, UnderlayLink& link, InnerPolicy& policy)
    : context_(context),
      tunnel_(tunnel),
      link_(link),
      policy_(policy),
      over_udp_(tunnel.config().over_udp()),
      link_header_(context.config.link_header()),
      outer_header_((context.config.local.family() == AF_INET6 ? 40u : 20u) + (over_udp_ ? 8u : 0u)),
      pending_(link.sender_count()),
      // ESP encrypts the payload into the buffer it seals: its segments need room for it.
      headers_(context.config.vnet_header && !tunnel.per_peer() ? segment_buffer_count(context.config.max_segment_frame) : 0,
               kSegmentHeaderCapacity),
      segments_(context.config.vnet_header ? segment_buffer_count(context.config.max_segment_frame) : 0,
                context.config.max_segment_frame),
      frame_list_(segment_buffer_count(context.config.max_segment_frame)) {
  for (auto& run : pending_) run.reserve(kMaxPendingSends);
}

void Transmitter::send_batch(PacketBuffer* frames, const VirtioNetHeader* vnet, size_t count, DeviceQueue& device) {
  for (size_t i = 0; i < count; i++) {
    PacketBuffer& buffer = frames[i];
    const VirtioNetHeader& header = vnet[i];
    // Every segment of a super-frame shares its headers: one parse, one lookup, one hash, one peer.
    const InnerFrame inner = inspect_inner(buffer.data(), buffer.length, link_header_);
    Route route;
    const Verdict routed = this->route(inner, &route);
    if (!routed.ok()) {
      context_.drop(route.peer == PeerTable::kNone ? WorkerStats::kNoPeer : context_.table->peers()[route.peer].slot,
                    routed, as_read(buffer));
      continue;
    }

    if (header.gso_type == kVirtioNetHdrGsoNone) {
      if (route.peer != PeerTable::kNone && policy_.too_big(inner, inner.length - link_header_)) {
        refuse_too_big(inner, route.peer, device);
        continue;
      }
      const bool partial = (header.flags & kVirtioNetHdrFNeedsCsum) != 0;
      policy_.clamp_mss(inner, partial);
      if (partial && !complete_partial_checksum(header, buffer.data(), buffer.length)) {
        context_.drop(WorkerStats::kNoPeer, kDropMalformed, as_read(buffer));
        continue;
      }
      PacketBuffer* single = &buffer;
      send_frames(&single, 1, route);
      continue;
    }

    // A super-frame whose segments will not fit the tunnel: its sender learns the path MTU as
    // for a single packet (the ICMP quotes the super-frame's headers, all its segments share).
    const uint32_t segment_packet = header.hdr_len - std::min<uint32_t>(header.hdr_len, link_header_) + header.gso_size;
    if (route.peer != PeerTable::kNone && policy_.too_big(inner, segment_packet) &&
        policy_.too_big(inner, inner.length - link_header_)) {
      refuse_too_big(inner, route.peer, device);
      continue;
    }
    send_super_frame(buffer, header, route);
  }
  flush();
  segments_used_ = 0;
  tunnel_.release_copies();
}

// A TSO/USO super-frame: cut into wire-sized segments, as many as the pool holds at a time; a
// full pool is sent before the next chunk reuses it.
void Transmitter::send_super_frame(PacketBuffer& frame, const VirtioNetHeader& vnet, const Route& route) {
  context_.count(kTxSuperFrames);
  // Small header buffers where the payload stays a tail; full-size ones where the tunnel seals
  // the payload into the buffer, or the headers are longer than a small buffer holds.
  bool small = headers_.size() > 0;
  for (size_t first = 0, total = 1; first < total;) {
    if (segments_used_ == segments_.size()) {
      flush();
      segments_used_ = 0;
    }
    BufferPool& pool = small ? headers_ : segments_;
    const int n = segment_super_frame_headers(vnet, frame.data(), frame.length, link_header_, first,
                                              &pool[segments_used_], segments_.size() - segments_used_, &total);
    if (n == kSegmentBufferTooSmall && small) {
      small = false;
      continue;
    }
    if (n <= 0) {
      context_.drop(WorkerStats::kNoPeer, n == kSegmentBufferTooSmall ? kDropTooBig : kDropMalformed, as_read(frame));
      return;
    }
    for (int k = 0; k < n; k++) frame_list_[k] = &pool[segments_used_ + k];
    segments_used_ += static_cast<size_t>(n);
    send_frames(frame_list_.data(), static_cast<size_t>(n), route);
    first += static_cast<size_t>(n);
  }
}

void Transmitter::refuse_too_big(const InnerFrame& inner, uint32_t peer, DeviceQueue& device) {
  context_.drop(context_.table->peers()[peer].slot, kDropTooBig, as_read(inner.frame, inner.length));
  const uint8_t* icmp = nullptr;
  const uint32_t length = policy_.build_too_big(inner, device.vnet_header(), &icmp);
  if (length != 0 && device.write_now(icmp, length)) context_.count(kIcmpTooBigSent);
}

Verdict Transmitter::route(const InnerFrame& inner, Route* route) {
  const Verdict routed = link_header_ == 0 ? route_ip(inner, route) : route_ethernet(inner, route);
  if (!routed.ok()) return routed;
  // The same flow always leaves through the same source port (UDP) or socket.
  if (over_udp_) {
    const uint32_t hash = link_header_ == 0 ? ip_flow_hash(inner.frame, inner.length)
                                            : ethernet_flow_hash(inner.frame, inner.length);
    route->socket = static_cast<uint32_t>((uint64_t{hash} * link_.sender_count()) >> 32);
  }
  return Verdict::pass();
}

// Outer TOS, TTL and DF from an inner IP packet (outer_ip.h: RFC 2003 §3.1, RFC 6040 normal
// mode). What does not parse leaves with the defaults: TOS 0, DF set.
static OuterFields outer_fields_of(const InnerFrame& inner, uint8_t ttl) {
  if (inner.ip_valid) return outer_fields_for(inner.parsed, ttl);
  OuterFields defaults;
  defaults.ttl = ttl;
  return defaults;
}

Verdict Transmitter::route_ethernet(const InnerFrame& inner, Route* route) {
  const PeerTable& table = *context_.table;
  if (inner.length < kEthernetHeaderSize) return Verdict::drop(kDropMalformed);
  const uint8_t* destination = eth_destination(inner.frame);
  if (!mac_is_multicast(destination)) {
    const MacKey key = mac_key(destination);
    route->peer = table.by_static_mac(key);
    if (route->peer == PeerTable::kNone && context_.config.learning) {
      const uint32_t slot = policy_.learned_slot(key);
      if (slot != LearnedFdb::kNone) route->peer = table.by_slot(slot);
    }
  }
  if (route->peer == PeerTable::kNone && table.peers().empty()) return Verdict::drop(kDropNoRoute);
  route->ethertype = kEtherTypeTransparentEthernet;
  // A frame that is not IP (ARP, tagged) leaves with the default outer fields.
  if (inner.ip != nullptr) route->outer = outer_fields_of(inner, context_.config.outer_ttl);
  return Verdict::pass();
}

Verdict Transmitter::route_ip(const InnerFrame& inner, Route* route) {
  const PeerTable& table = *context_.table;
  const uint8_t* packet = inner.frame;
  const uint32_t length = inner.length;
  const uint8_t version = length > 0 ? packet[0] >> 4 : 0;
  AddressKey destination{};
  if (version == 4 && length >= 20) {
    route->peer = table.by_route_v4(packet + 16);
    route->ethertype = kEtherTypeIpv4;
    destination[10] = destination[11] = 0xff;
    std::memcpy(destination.data() + 12, packet + 16, 4);
  } else if (version == 6 && length >= 40) {
    route->peer = table.by_route_v6(packet + 24);
    route->ethertype = kEtherTypeIpv6;
    std::memcpy(destination.data(), packet + 24, 16);
  } else {
    return Verdict::drop(kDropMalformed);
  }
  if (route->peer == PeerTable::kNone) return Verdict::drop(kDropNoRoute);
  if (policy_.is_loop(destination)) return Verdict::drop(kDropLoop);
  // The outer DSCP and ECN follow the inner packet in every mode (RFC 2003, RFC 6040): raw-IP
  // modes write them into the header, UDP modes pass them per message.
  route->outer = outer_fields_of(inner, context_.config.outer_ttl);
  if (!over_udp_) route->flow_label = ip_flow_hash(packet, length) & 0xFFFFF;
  return Verdict::pass();
}

// Encapsulates wire frames of one flow and queues them to route.peer, or to every peer
// (head-end replication of broadcast, multicast and unknown unicast) when that is kNone.
void Transmitter::send_frames(PacketBuffer** frames, size_t count, const Route& route) {
  if (tunnel_.per_peer()) {
    send_frames_per_peer(frames, count, route);
    return;
  }
  const uint32_t header = tunnel_.headroom();
  for (size_t k = 0; k < count; k++) tunnel_.encapsulate(*frames[k], route.ethertype, nullptr);
  if (route.peer != PeerTable::kNone) {
    for (size_t k = 0; k < count; k++) queue(*frames[k], route.peer, frames[k]->wire_length() - header, route);
    return;
  }
  // All copies share the encapsulated buffers. Peer by peer, so that each peer's segments stay
  // together and leave as one GSO train.
  context_.count(kFloodPackets, count);
  const auto& peers = context_.table->peers();
  for (uint32_t p = 0; p < static_cast<uint32_t>(peers.size()); p++) {
    context_.stats.add_to_peer(peers[p].slot, kFloodPackets, count);
    for (size_t k = 0; k < count; k++) queue(*frames[k], p, frames[k]->wire_length() - header, route);
  }
}

// Modes that encapsulate per peer (ESP: each peer's own key): a flooded frame is copied once
// per peer, and each copy encapsulated for its peer.
void Transmitter::send_frames_per_peer(PacketBuffer** frames, size_t count, const Route& route) {
  const auto& peers = context_.table->peers();
  const auto seal = [&](PacketBuffer& buffer, uint32_t peer) {
    const uint32_t inner_length = buffer.wire_length();
    const Verdict sealed = tunnel_.encapsulate(buffer, route.ethertype, &peers[peer]);
    if (!sealed.ok()) {
      // A mode that refuses to seal leaves the frame as it was.
      context_.drop(peers[peer].slot, sealed, as_read(buffer));
      return;
    }
    queue(buffer, peer, inner_length, route);
  };
  if (route.peer != PeerTable::kNone) {
    for (size_t k = 0; k < count; k++) seal(*frames[k], route.peer);
    return;
  }
  context_.count(kFloodPackets, count);
  for (uint32_t p = 0; p < static_cast<uint32_t>(peers.size()); p++) {
    context_.stats.add_to_peer(peers[p].slot, kFloodPackets, count);
    for (size_t k = 0; k < count; k++) {
      Verdict copied = Verdict::pass();
      PacketBuffer* copy = tunnel_.copy_for_peer(*frames[k], &copied);
      if (copy == nullptr && copied.ok()) {
        flush();
        tunnel_.release_copies();
        copy = tunnel_.copy_for_peer(*frames[k], &copied);
      }
      if (copy == nullptr) {
        context_.drop(peers[p].slot, copied.ok() ? Verdict::drop(kDropQueueFull) : copied, as_read(*frames[k]));
        continue;
      }
      seal(*copy, p);
    }
  }
}

void Transmitter::queue(PacketBuffer& buffer, uint32_t peer, uint32_t inner_length, const Route& route) {
  const Peer& target = context_.table->peers()[peer];
  const uint8_t protocol = over_udp_ ? 0 : tunnel_.outer_protocol(buffer.data(), buffer.length);
  pending_[route.socket].push_back(
      Datagram{&buffer, &target.endpoint, target.slot, inner_length, route.outer, route.flow_label, protocol});
  if (++pending_count_ == kMaxPendingSends) flush();
}

void Transmitter::flush() {
  if (pending_count_ == 0) return;
  for (uint32_t socket = 0; socket < pending_.size(); socket++) {
    sending_socket_ = socket;
    if (!pending_[socket].empty()) link_.send(socket, pending_[socket].data(), pending_[socket].size(), *this);
    pending_[socket].clear();
  }
  pending_count_ = 0;
}

void Transmitter::sent(const Datagram& datagram) {
  context_.count(datagram.slot, kTxPackets);
  context_.count(datagram.slot, kTxBytes, datagram.inner_length);
  context_.count(datagram.slot, kTxWireBytes, datagram.buffer->wire_length() + outer_header_);
}

// The datagram the socket refused, encapsulated, as it was to leave (after its outer IP/UDP header).
void Transmitter::dropped(const Datagram& datagram, Counter reason) {
  DropSample sample = DropSample::underlay(datagram.buffer->data(), datagram.buffer->wire_length(), DropDirection::tx,
                                           datagram.to->get(), link_.sender_port(sending_socket_),
                                           over_udp_ ? kIpProtocolUdp : datagram.protocol);
  sample.readable = datagram.buffer->length;  // a segment's payload (its tail) is not captured
  context_.drop(datagram.slot, reason, sample);
}

void Transmitter::train_sent(uint32_t datagrams) {
  context_.count(kTxGsoSends);
  context_.count(kTxGsoSegments, datagrams);
}

void Transmitter::offload_refused() { context_.count(kOffloadFallbacks); }

}  // namespace ovl
