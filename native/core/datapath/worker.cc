#include "datapath/worker.h"

#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <csignal>
#include <ctime>
#include <string>

#include "wire/checksum.h"
#include "wire/ecn.h"
#include "wire/ip_packet.h"
#include "wire/mss_clamp.h"
#include "wire/ethernet.h"
#include "base/flow_hash.h"

namespace ovl {

namespace {

// Batches handled per direction before going back to epoll, so that a flood in one
// direction cannot starve the other.
constexpr int kRoundsPerWakeup = 4;
// Sends queued before a flush, bounding the fan-out of head-end replication.
constexpr size_t kMaxPending = 1024;
// How long a full socket buffer may hold the worker before the batch is dropped.
constexpr int kWritableTimeoutMs = 100;
// UDP_SEGMENT limits: the kernel's UDP_MAX_SEGMENTS (64 on older kernels) and one IP datagram.
constexpr size_t kMaxGsoSegments = 64;
constexpr size_t kMaxGsoBytes = 65000;

uint32_t monotonic_seconds() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return static_cast<uint32_t>(now.tv_sec);
}

uint64_t monotonic_microseconds() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000000u + static_cast<uint64_t>(now.tv_nsec) / 1000u;
}

}  // namespace

Worker::Worker(const WorkerConfig& config, TablePublisher<PeerTable>& tables, LearnedFdb& fdb, WorkerStats stats,
               int device_fd, UnderlaySockets sockets, int stop_fd)
    : config_(config),
      tables_(tables),
      fdb_(fdb),
      stats_(stats),
      device_fd_(device_fd),
      receivers_(std::move(sockets.receivers)),
      receiver_protocols_(std::move(sockets.receiver_protocols)),
      send_sockets_(std::move(sockets.senders)),
      link_header_(config.layer == DeviceLayer::ip ? 0 : kEthernetHeaderSize),
      local_key_(address_key(config.local.get())),
      stop_fd_(stop_fd),
      device_buffers_(config.batch_size, kMaxPacket),
      pending_(send_sockets_.size()),
      send_messages_(kMaxPending),
      send_iovecs_(2 * kMaxPending),
      message_first_(kMaxPending),
      message_count_(kMaxPending),
      send_controls_(kMaxPending),
      outer_headers_(config.encap.over_udp() ? 0 : kMaxPending),
      udp_gso_(config.udp_gso && config.encap.over_udp()),
      segment_buffers_(config.vnet_header ? segment_buffer_count(config.max_segment_frame) : 0, config.max_segment_frame),
      device_vnet_(config.batch_size),
      frame_list_(segment_buffer_count(config.max_segment_frame)),
      underlay_buffers_(config.batch_size, kMaxPacket),
      receive_messages_(config.batch_size),
      receive_iovecs_(config.batch_size),
      receive_sources_(config.batch_size),
      receive_controls_(config.batch_size),
      coalescer_(config.layer == DeviceLayer::ip ? 0 : kEthernetHeaderSize),
      gro_buffers_(config.vnet_header ? kGroBuffers : 0, kMaxPacket),
      esp_flood_buffers_(config.encap.kind == EncapKind::esp && config.layer == DeviceLayer::ethernet ? 64 : 0,
                         config.max_segment_frame) {
  if (config.packet_socket) {
    packet_receiver_ = std::make_unique<PacketReceiver>(config.batch_size, config.vnet_header, config.packet_max_frame);
  }
  // ESP's ICV covers every byte of the inner packet: verifying its TCP checksum again is a pass
  // over the payload that can only ever succeed (or fail on the authenticated sender's own bug).
  coalescer_.trust_tcp_checksums(config.encap.kind == EncapKind::esp);
  for (size_t i = 0; i < gro_buffers_.size(); i++) gro_free_.push_back(&gro_buffers_[i]);
  coalesced_.reserve(kGroBuffers + config.batch_size);
  for (auto& run : pending_) run.reserve(kMaxPending);
}

void Worker::run() {
  // Signals belong to Node's main thread.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  const std::string name = "ovl-worker-" + std::to_string(config_.index);
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
  if (config_.cpu >= 0) {
    // Best effort: a CPU outside this process's cpuset leaves the thread unpinned.
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    CPU_SET(config_.cpu, &cpus);
    pthread_setaffinity_np(pthread_self(), sizeof cpus, &cpus);
  }

  // The ring belongs to this thread (single issuer); a batch is at most one recvmmsg's worth.
  if (config_.uring_writes) {
    uring_ = UringWriter::create(256);
    if (uring_) device_writes_.reserve(uring_->capacity());
  }
  UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll.valid()) {
    if (lost_flag_) lost_flag_->store(true, std::memory_order_relaxed);
    return;
  }
  epoll_fd_ = epoll.get();
  // Event tags: the stop eventfd, the device, then each receiving socket.
  constexpr uint32_t kStopTag = 0, kDeviceTag = 1, kFirstReceiverTag = 2;
  std::vector<std::pair<int, uint32_t>> watched = {{stop_fd_, kStopTag}, {device_fd_, kDeviceTag}};
  for (size_t r = 0; r < receivers_.size(); r++) {
    watched.emplace_back(receivers_[r].get(), kFirstReceiverTag + static_cast<uint32_t>(r));
  }
  for (const auto& [fd, tag] : watched) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u32 = tag;
    if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &event) < 0) {
      if (lost_flag_) lost_flag_->store(true, std::memory_order_relaxed);
      return;
    }
  }
  std::vector<bool> receiver_ready(receivers_.size());

  uint32_t last_expiry = monotonic_seconds();
  std::vector<epoll_event> events(watched.size());
  uint64_t poll_until = 0;  // busy-poll (timeout 0) until then, after the last work done
  for (;;) {
    const bool polling = config_.busy_poll_us > 0 && monotonic_microseconds() < poll_until;
    const int ready = ::epoll_wait(epoll.get(), events.data(), static_cast<int>(events.size()), polling ? 0 : 1000);
    if (ready < 0 && errno != EINTR) {
      if (lost_flag_) lost_flag_->store(true, std::memory_order_relaxed);
      return;
    }
    // A packet that arrives while we poll costs no wakeup: in a request/response exchange the
    // answer usually comes back within tens of microseconds, so a short poll after each burst
    // of work saves a sleep and a wakeup per hop at the price of that much CPU.
    if (ready > 0 && config_.busy_poll_us > 0) poll_until = monotonic_microseconds() + config_.busy_poll_us;
    if (ready == 0 && polling) continue;
    now_ = monotonic_seconds();
    refresh_table();
    bool device_ready = false;
    std::fill(receiver_ready.begin(), receiver_ready.end(), false);
    for (int i = 0; i < ready; i++) {
      const uint32_t tag = events[i].data.u32;
      if (tag == kStopTag) return;
      if (tag == kDeviceTag) {
        // A deleted device reports an error on every wait: stop watching it, or we would spin.
        if (events[i].events & (EPOLLERR | EPOLLHUP)) {
          // A packet socket reports its interface going down too; only a deleted one is lost.
          if (!config_.packet_socket || packet_socket_interface_gone(device_fd_)) device_gone();
        } else {
          device_ready = true;
        }
      } else {
        receiver_ready[tag - kFirstReceiverTag] = true;
      }
    }
    for (size_t r = 0; r < receivers_.size(); r++) {
      if (receiver_ready[r]) handle_underlay(r);
    }
    if (device_ready && !device_lost_) handle_device();
    // One worker ages the shared table; a few seconds of slack is what bridges allow too.
    if (config_.index == 0 && now_ - last_expiry >= 5) {
      fdb_.expire(now_);
      last_expiry = now_;
    }
  }
}

// The device was deleted under us (or failed for good): stop reading it and say so; the
// Forwarder reports it, and the owner decides what to do.
void Worker::device_gone() {
  if (device_lost_) return;
  device_lost_ = true;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, device_fd_, nullptr);
  if (lost_flag_) lost_flag_->store(true, std::memory_order_relaxed);
}

void Worker::refresh_table() {
  if (tables_.generation() == table_generation_) return;
  table_ = tables_.current(&table_generation_);
  // SA states of the old table may be gone (and their addresses reused): key afresh.
  aeads_.clear();
}

// ---- device → underlay -------------------------------------------------------------------

void Worker::handle_device() {
  for (int round = 0; round < kRoundsPerWakeup; round++) {
    const size_t count = read_device_batch();
    if (count > 0) encapsulate_batch(count);
    if (count < config_.batch_size) return;
  }
}

size_t Worker::read_packet_batch() {
  PacketReceiveCounts counts;
  const int n = packet_receiver_->receive(device_fd_, &device_buffers_[0], config_.batch_size, &counts);
  if (counts.truncated + counts.too_big > 0) stats_.add(WorkerStats::kNoPeer, kDropTooBig, counts.truncated + counts.too_big);
  if (counts.malformed > 0) stats_.add(WorkerStats::kNoPeer, kDropMalformed, counts.malformed);
  if (n < 0) {
    if (errno != ENETDOWN) stats_.add(WorkerStats::kNoPeer, kDropDeviceError);
    return 0;
  }
  // Every frame kept is at least vnet + 14 bytes: the header always parses.
  for (int i = 0; config_.vnet_header && i < n; i++) {
    PacketBuffer& buffer = device_buffers_[static_cast<size_t>(i)];
    parse_virtio_net_header(buffer.data(), buffer.length, &device_vnet_[static_cast<size_t>(i)]);
    buffer.pull_front(kVirtioNetHeaderSize);
  }
  return static_cast<size_t>(n);
}

size_t Worker::read_device_batch() {
  if (packet_receiver_) return read_packet_batch();
  // With vnet headers the 10-byte header is read into the headroom, so the frame still
  // starts at kHeadroom with all the headroom an encapsulation needs once the header is parsed.
  const uint32_t vnet = config_.vnet_header ? kVirtioNetHeaderSize : 0;
  size_t count = 0;
  while (count < config_.batch_size) {
    PacketBuffer& buffer = device_buffers_[count];
    buffer.reset();
    buffer.offset -= vnet;
    const ssize_t n = ::read(device_fd_, buffer.data(), buffer.tailroom());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) {
        stats_.add(WorkerStats::kNoPeer, kDropDeviceError);
        if (errno == EBADFD || errno == ENODEV || errno == EIO) device_gone();
      }
      break;
    }
    buffer.length = static_cast<uint32_t>(n);
    if (vnet) {
      if (!parse_virtio_net_header(buffer.data(), buffer.length, &device_vnet_[count])) {
        stats_.add(WorkerStats::kNoPeer, kDropMalformed);
        continue;
      }
      buffer.pull_front(vnet);
    }
    count++;
  }
  return count;
}

// Whether an Ethernet frame carries IPv4 or IPv6 right after its header.
static bool is_ip_frame(const uint8_t* frame) {
  const uint16_t type = load_be16(frame + 12);
  return type == kEtherTypeIpv4 || type == kEtherTypeIpv6;
}

void Worker::encapsulate_batch(size_t count) {
  for (size_t i = 0; i < count; i++) {
    PacketBuffer& buffer = device_buffers_[i];
    // Every segment of a super-frame shares its headers: one lookup, one hash, one peer.
    Route route;
    if (!route_frame(buffer.data(), buffer.length, &route)) continue;

    const VirtioNetHeader* vnet = config_.vnet_header ? &device_vnet_[i] : nullptr;
    if (!vnet || vnet->gso_type == kVirtioNetHdrGsoNone) {
      if (route.peer != PeerTable::kNone && refuse_too_big(buffer.data(), buffer.length, route.peer)) continue;
      const bool partial = vnet && (vnet->flags & kVirtioNetHdrFNeedsCsum);
      if (config_.mss_clamp_v4 != 0 && (link_header_ == 0 || is_ip_frame(buffer.data()))) {
        clamp_mss(buffer.data() + link_header_, buffer.length - link_header_, partial);
      }
      if (partial && !complete_partial_checksum(*vnet, buffer.data(), buffer.length)) {
        stats_.add(WorkerStats::kNoPeer, kDropMalformed);
        continue;
      }
      PacketBuffer* single = &buffer;
      send_frames(&single, 1, route);
      continue;
    }

    // A super-frame whose segments will not fit the tunnel: its sender learns the path MTU as
    // for a single packet (the ICMP quotes the super-frame's headers, all its segments share).
    const uint32_t segment_packet = vnet->hdr_len - std::min<uint32_t>(vnet->hdr_len, link_header_) + vnet->gso_size;
    if (route.peer != PeerTable::kNone && config_.max_inner_packet != 0 && segment_packet > config_.max_inner_packet &&
        refuse_too_big(buffer.data(), buffer.length, route.peer)) {
      continue;
    }
    // A TSO/USO super-frame: cut it into wire-sized segments, as many as the pool holds at a
    // time; a full pool is sent before the next chunk reuses it.
    stats_.add(WorkerStats::kNoPeer, kTxSuperFrames);
    for (size_t first = 0, total = 1; first < total;) {
      if (segments_used_ == segment_buffers_.size()) {
        flush_sends();
        segments_used_ = 0;
      }
      const int n = segment_super_frame_range(*vnet, buffer.data(), buffer.length, link_header_, first,
                                              &segment_buffers_[segments_used_],
                                              segment_buffers_.size() - segments_used_, &total);
      if (n <= 0) {
        stats_.add(WorkerStats::kNoPeer, n == kSegmentBufferTooSmall ? kDropTooBig : kDropMalformed);
        break;
      }
      for (int k = 0; k < n; k++) frame_list_[k] = &segment_buffers_[segments_used_ + k];
      segments_used_ += static_cast<size_t>(n);
      send_frames(frame_list_.data(), static_cast<size_t>(n), route);
      first += static_cast<size_t>(n);
    }
  }
  flush_sends();
  segments_used_ = 0;
}

bool Worker::route_frame(const uint8_t* frame, uint32_t length, Route* route) {
  const bool routed = config_.layer == DeviceLayer::ip ? route_ip(frame, length, route)
                                                        : route_ethernet(frame, length, route);
  if (!routed) return false;
  // The same flow always leaves through the same source port (UDP) or socket.
  if (config_.encap.over_udp()) {
    const uint32_t hash = config_.layer == DeviceLayer::ip ? ip_flow_hash(frame, length)
                                                           : ethernet_flow_hash(frame, length);
    route->socket = static_cast<uint32_t>((uint64_t{hash} * send_sockets_.size()) >> 32);
  }
  return true;
}

// Outer TOS, TTL and DF from an inner IP packet (outer_ip.h: RFC 2003 §3.1, RFC 6040 normal
// mode). What is not an IP packet leaves with the defaults: TOS 0, DF set.
static OuterFields outer_fields_of(const uint8_t* packet, uint32_t length, uint8_t ttl) {
  InnerIp inner;
  if (parse_ip_packet(packet, length, &inner) != IpParse::ok) {
    OuterFields defaults;
    defaults.ttl = ttl;
    return defaults;
  }
  return outer_fields_for(inner, ttl);
}

bool Worker::route_ethernet(const uint8_t* frame, uint32_t length, Route* route) {
  const PeerTable& table = *table_;
  if (length < kEthernetHeaderSize) {
    stats_.add(WorkerStats::kNoPeer, kDropMalformed);
    return false;
  }
  const uint8_t* destination = eth_destination(frame);
  if (!mac_is_multicast(destination)) {
    const MacKey key = mac_key(destination);
    route->peer = table.by_static_mac(key);
    if (route->peer == PeerTable::kNone && config_.learning) {
      const uint32_t slot = fdb_.lookup(key, now_);
      if (slot != LearnedFdb::kNone) route->peer = table.by_slot(slot);
    }
  }
  if (route->peer == PeerTable::kNone && table.peers().empty()) {
    stats_.add(WorkerStats::kNoPeer, kDropNoRoute);
    return false;
  }
  route->ethertype = kGreProtocolEthernet;
  const uint16_t type = load_be16(frame + 12);
  if (type == kEtherTypeIpv4 || type == kEtherTypeIpv6) {
    route->outer = outer_fields_of(frame + kEthernetHeaderSize, length - kEthernetHeaderSize, config_.outer_ttl);
  }
  return true;
}

bool Worker::route_ip(const uint8_t* packet, uint32_t length, Route* route) {
  const PeerTable& table = *table_;
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
    stats_.add(WorkerStats::kNoPeer, kDropMalformed);
    return false;
  }
  if (route->peer == PeerTable::kNone) {
    stats_.add(WorkerStats::kNoPeer, kDropNoRoute);
    return false;
  }
  // A packet to a tunnel endpoint routed into the tunnel would be encapsulated toward the very
  // endpoint its own outer packets go to: a routing loop (Linux tunnels refuse it too).
  if (table.is_endpoint(destination) || destination == local_key_) {
    stats_.add(table.peers()[route->peer].slot, kDropLoop);
    return false;
  }
  // The outer DSCP and ECN follow the inner packet in every mode (RFC 2003, RFC 6040): raw-IP
  // modes write them into the header, UDP modes pass them per message.
  route->outer = outer_fields_of(packet, length, config_.outer_ttl);
  if (!config_.encap.over_udp()) route->flow_label = ip_flow_hash(packet, length) & 0xFFFFF;
  return true;
}

// Encapsulates wire frames of one flow and queues them to route.peer, or to every peer
// (head-end replication of broadcast, multicast and unknown unicast) when that is kNone.
void Worker::send_frames(PacketBuffer** frames, size_t count, const Route& route) {
  if (config_.encap.kind == EncapKind::esp) {
    send_esp_frames(frames, count, route);
    return;
  }
  const uint32_t header = config_.encap.header_size();
  for (size_t k = 0; k < count; k++) {
    const uint32_t frame_length = frames[k]->length;
    config_.encap.encode(frames[k]->push_front(header), frame_length, route.ethertype, gre_sequence_++);
  }
  if (route.peer != PeerTable::kNone) {
    for (size_t k = 0; k < count; k++) {
      queue_send(route.socket, *frames[k], route.peer, frames[k]->length - header, route);
    }
    return;
  }
  // All copies share the encapsulated buffers. Peer by peer, so that each peer's segments stay
  // together and leave as one GSO train.
  stats_.add(WorkerStats::kNoPeer, kFloodPackets, count);
  const auto peers = static_cast<uint32_t>(table_->peers().size());
  for (uint32_t p = 0; p < peers; p++) {
    for (size_t k = 0; k < count; k++) queue_send(route.socket, *frames[k], p, frames[k]->length - header, route);
  }
}

EspAead& Worker::aead_for(const EspSaState& sa) {
  auto it = aeads_.find(&sa);
  if (it != aeads_.end()) return it->second;
  EspAead& aead = aeads_[&sa];
  aead.set_key(sa.cipher, sa.key.data(), sa.key.size());
  return aead;
}

// ESP (RFC 4303 tunnel mode): each frame is sealed for its peer's outbound SA. A flooded frame
// (TAP: broadcast, multicast, unknown unicast) is copied once per peer, each copy under that
// peer's key.
void Worker::send_esp_frames(PacketBuffer** frames, size_t count, const Route& route) {
  const uint8_t next_header = config_.layer == DeviceLayer::ethernet ? kEspNextHeaderEthernet
                              : route.ethertype == kEtherTypeIpv6     ? kEspNextHeaderIpv6
                                                                      : kEspNextHeaderIpv4;
  if (route.peer != PeerTable::kNone) {
    for (size_t k = 0; k < count; k++) seal_and_queue(*frames[k], route.peer, next_header, route);
    return;
  }
  stats_.add(WorkerStats::kNoPeer, kFloodPackets, count);
  const auto peers = static_cast<uint32_t>(table_->peers().size());
  for (uint32_t p = 0; p < peers; p++) {
    for (size_t k = 0; k < count; k++) {
      if (esp_flood_used_ == esp_flood_buffers_.size()) {
        flush_sends();
        esp_flood_used_ = 0;
      }
      PacketBuffer& copy = esp_flood_buffers_[esp_flood_used_++];
      copy.reset();
      if (frames[k]->length + kEspMaxTrailerSize > copy.tailroom()) {
        stats_.add(table_->peers()[p].slot, kDropTooBig);
        continue;
      }
      std::memcpy(copy.data(), frames[k]->data(), frames[k]->length);
      copy.length = frames[k]->length;
      seal_and_queue(copy, p, next_header, route);
    }
  }
}

void Worker::seal_and_queue(PacketBuffer& buffer, uint32_t peer, uint8_t next_header, const Route& route) {
  const Peer& target = table_->peers()[peer];
  const EspSaState* sa = target.sa_out.get();
  if (sa == nullptr) {
    stats_.add(target.slot, kDropNoRoute);
    return;
  }
  uint64_t sequence;
  // A counter that reached its limit never wraps: nothing more is sent under this key.
  if (!const_cast<EspSaState*>(sa)->sequence.next(&sequence)) {
    stats_.add(target.slot, kDropSaExpired);
    return;
  }
  const uint32_t inner_length = buffer.length;
  if (buffer.tailroom() < kEspPrefixSize + inner_length + kEspMaxTrailerSize) {
    stats_.add(target.slot, kDropTooBig);
    return;
  }
  uint8_t* packet = buffer.push_front(kEspPrefixSize);
  const size_t sealed = esp_encode(aead_for(*sa), sa->spi, sequence, sa->esn, next_header, packet, inner_length);
  if (sealed == 0) {
    buffer.pull_front(kEspPrefixSize);
    stats_.add(target.slot, kDropMalformed);
    return;
  }
  buffer.length = static_cast<uint32_t>(sealed);
  queue_send(route.socket, buffer, peer, inner_length, route);
}

void Worker::queue_send(uint32_t socket, PacketBuffer& buffer, uint32_t peer, uint32_t inner_length,
                        const Route& route) {
  pending_[socket].push_back(Pending{&buffer, peer, inner_length, route.outer, route.flow_label});
  if (++pending_count_ == kMaxPending) flush_sends();
}

void Worker::flush_sends() {
  if (pending_count_ == 0) return;
  for (uint32_t socket = 0; socket < pending_.size(); socket++) {
    if (!pending_[socket].empty()) send_run(socket, pending_[socket]);
    pending_[socket].clear();
  }
  pending_count_ = 0;
}

// Lays `run` out as messages for sendmmsg. With GSO, consecutive datagrams to one peer form a
// train that the kernel splits at the first datagram's size: every datagram but the last must
// have exactly that size, and the last may be shorter. Returns the number of messages.
size_t Worker::build_messages(const std::vector<Pending>& run, bool use_gso) {
  const auto& peers = table_->peers();
  size_t messages = 0;
  for (size_t i = 0; i < run.size();) {
    const uint32_t segment = run[i].buffer->length;
    size_t end = i + 1;
    size_t bytes = segment;
    if (use_gso) {
      // A train shares one outer TOS: a different one starts a new message.
      while (end < run.size() && run[end].peer == run[i].peer && end - i < kMaxGsoSegments &&
             run[end].outer.tos == run[i].outer.tos &&
             run[end - 1].buffer->length == segment && run[end].buffer->length <= segment &&
             bytes + run[end].buffer->length <= kMaxGsoBytes) {
        bytes += run[end].buffer->length;
        end++;
      }
    }
    for (size_t k = i; k < end; k++) send_iovecs_[k] = iovec{run[k].buffer->data(), run[k].buffer->length};
    const Peer& peer = peers[run[i].peer];
    msghdr& header = send_messages_[messages].msg_hdr;
    header = msghdr{};
    header.msg_name = const_cast<sockaddr*>(peer.endpoint.get());
    header.msg_namelen = peer.endpoint.length;
    header.msg_iov = &send_iovecs_[i];
    header.msg_iovlen = end - i;
    const bool train = end - i > 1;
    const int tos = run[i].outer.tos;
    if (train || tos != 0) {
      header.msg_control = send_controls_[messages].bytes;
      header.msg_controllen = (train ? CMSG_SPACE(sizeof(uint16_t)) : 0) + (tos != 0 ? CMSG_SPACE(sizeof(int)) : 0);
      cmsghdr* control = CMSG_FIRSTHDR(&header);
      if (train) {
        control->cmsg_level = SOL_UDP;
        control->cmsg_type = UDP_SEGMENT;
        control->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        const auto size = static_cast<uint16_t>(segment);
        std::memcpy(CMSG_DATA(control), &size, sizeof size);
        control = CMSG_NXTHDR(&header, control);
      }
      if (tos != 0) {
        const bool ipv6 = config_.local.family() == AF_INET6;
        control->cmsg_level = ipv6 ? IPPROTO_IPV6 : IPPROTO_IP;
        control->cmsg_type = ipv6 ? IPV6_TCLASS : IP_TOS;
        control->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(control), &tos, sizeof tos);
      }
    }
    message_first_[messages] = static_cast<uint32_t>(i);
    message_count_[messages] = static_cast<uint32_t>(end - i);
    messages++;
    i = end;
  }
  return messages;
}

// Raw-IP modes: each message is the outer IP header we write (the socket includes headers)
// followed by the encapsulated buffer, which head-end replication shares between peers.
size_t Worker::build_raw_messages(const std::vector<Pending>& run) {
  const auto& peers = table_->peers();
  const bool ipv6 = config_.local.family() == AF_INET6;
  for (size_t i = 0; i < run.size(); i++) {
    const Pending& pending = run[i];
    const Peer& peer = peers[pending.peer];
    const uint8_t* payload = pending.buffer->data();
    const uint32_t length = pending.buffer->length;
    uint8_t protocol = config_.encap.kind == EncapKind::esp ? kIpProtocolEsp : kIpProtocolGre;
    if (config_.encap.kind == EncapKind::ipip) {
      protocol = length > 0 && (payload[0] >> 4) == 6 ? kIpProtocolIpv6 : kIpProtocolIpip;
    }
    uint8_t* header = outer_headers_[i].data();
    uint32_t header_length;
    if (ipv6) {
      header_length = kOuterIpv6HeaderSize;
      ipv6_outer_encode(header, reinterpret_cast<const sockaddr_in6*>(config_.local.get())->sin6_addr.s6_addr,
                        reinterpret_cast<const sockaddr_in6*>(peer.endpoint.get())->sin6_addr.s6_addr, protocol,
                        static_cast<uint16_t>(length), pending.outer.tos, pending.outer.ttl, pending.flow_label);
    } else {
      header_length = kOuterIpv4HeaderSize;
      // Identification 0: the kernel picks one for a header-including socket.
      ipv4_outer_encode(header, reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(config_.local.get())->sin_addr),
                        reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(peer.endpoint.get())->sin_addr),
                        protocol, static_cast<uint16_t>(kOuterIpv4HeaderSize + length), pending.outer.tos,
                        pending.outer.ttl, pending.outer.dont_fragment, 0);
    }
    send_iovecs_[2 * i] = iovec{header, header_length};
    send_iovecs_[2 * i + 1] = iovec{pending.buffer->data(), length};
    msghdr& message = send_messages_[i].msg_hdr;
    message = msghdr{};
    message.msg_name = const_cast<sockaddr*>(peer.endpoint.get());
    message.msg_namelen = peer.endpoint.length;
    message.msg_iov = &send_iovecs_[2 * i];
    message.msg_iovlen = 2;
    message_first_[i] = static_cast<uint32_t>(i);
    message_count_[i] = 1;
  }
  return run.size();
}

void Worker::send_run(uint32_t socket, std::vector<Pending>& run) {
  const auto& peers = table_->peers();
  const int fd = send_sockets_[socket].get();
  size_t messages = config_.encap.over_udp() ? build_messages(run, udp_gso_) : build_raw_messages(run);

  size_t done = 0;
  while (done < messages) {
    const int sent = ::sendmmsg(fd, &send_messages_[done], static_cast<unsigned>(messages - done), 0);
    if (sent > 0) {
      for (size_t m = done; m < done + static_cast<size_t>(sent); m++) {
        const uint32_t first = message_first_[m], count = message_count_[m];
        if (count > 1) {
          stats_.add(WorkerStats::kNoPeer, kTxGsoSends);
          stats_.add(WorkerStats::kNoPeer, kTxGsoSegments, count);
        }
        for (uint32_t k = first; k < first + count; k++) {
          const uint32_t slot = peers[run[k].peer].slot;
          stats_.add(slot, kTxPackets);
          stats_.add(slot, kTxBytes, run[k].inner_length);
        }
      }
      done += static_cast<size_t>(sent);
      continue;
    }
    if (errno == EINTR) continue;
    if ((errno == EAGAIN || errno == ENOBUFS) && wait_writable(fd)) continue;
    const uint32_t first = message_first_[done], count = message_count_[done];
    if (count > 1 && (errno == EIO || errno == EINVAL || errno == EMSGSIZE)) {
      // EIO: the egress device cannot checksum for GSO; this will not change, so stop asking.
      // EINVAL, EMSGSIZE: this train did not suit (a segment beyond the path MTU, which a single
      // datagram may still cross as IP fragments): send it singly.
      if (errno == EIO) {
        udp_gso_ = false;
        stats_.add(WorkerStats::kNoPeer, kOffloadFallbacks);
      }
      std::vector<Pending> rest(run.begin() + first, run.end());
      const bool keep = udp_gso_;
      udp_gso_ = false;
      send_run(socket, rest);
      udp_gso_ = keep;
      return;
    }
    const Counter reason = errno == EMSGSIZE                          ? kDropTooBig
                           : (errno == EAGAIN || errno == ENOBUFS)   ? kDropQueueFull
                                                                      : kDropSocketError;
    if (reason == kDropQueueFull) {
      for (size_t k = first; k < run.size(); k++) stats_.add(peers[run[k].peer].slot, reason);
      return;
    }
    // sendmmsg reports the error of the first message it could not send: count it and go on.
    for (uint32_t k = first; k < first + count; k++) stats_.add(peers[run[k].peer].slot, reason);
    done++;
  }
}

bool Worker::wait_writable(int fd) {
  pollfd fds[2] = {{fd, POLLOUT, 0}, {stop_fd_, POLLIN, 0}};
  const int ready = ::poll(fds, 2, kWritableTimeoutMs);
  return ready > 0 && (fds[0].revents & POLLOUT) && !(fds[1].revents & POLLIN);
}

// ---- underlay → device -------------------------------------------------------------------

void Worker::handle_underlay(size_t receiver) {
  const int fd = receivers_[receiver].get();
  const uint8_t protocol = receiver_protocols_[receiver];
  // UDP listeners: UDP_GRO and the outer TOS / traffic class; IPv6 raw sockets: the traffic class.
  const bool control = protocol == 0 || config_.local.family() == AF_INET6;
  for (int round = 0; round < kRoundsPerWakeup; round++) {
    for (uint32_t i = 0; i < config_.batch_size; i++) {
      PacketBuffer& buffer = underlay_buffers_[i];
      buffer.reset();
      receive_iovecs_[i] = iovec{buffer.data(), buffer.tailroom()};
      msghdr& header = receive_messages_[i].msg_hdr;
      header = msghdr{};
      header.msg_name = &receive_sources_[i];
      header.msg_namelen = sizeof(sockaddr_storage);
      header.msg_iov = &receive_iovecs_[i];
      header.msg_iovlen = 1;
      if (control) {
        header.msg_control = receive_controls_[i].bytes;
        header.msg_controllen = sizeof receive_controls_[i].bytes;
      }
    }
    const int received = ::recvmmsg(fd, receive_messages_.data(), config_.batch_size, MSG_DONTWAIT, nullptr);
    if (received < 0) {
      if (errno != EAGAIN && errno != EINTR) stats_.add(WorkerStats::kNoPeer, kDropSocketError);
      return;
    }
    for (int i = 0; i < received; i++) receive_datagram(underlay_buffers_[i], receive_messages_[i], protocol);
    // The next round reuses these buffers: write everything out first.
    if (config_.vnet_header) flush_coalesced();
    submit_device_writes();
    if (static_cast<uint32_t>(received) < config_.batch_size) return;
  }
}

// What an IPv4 raw socket delivers starts with the outer IP header: checked and stripped here.
// (The kernel validated its checksum and reassembled fragments; a raw socket sees whole
// packets.) IPv6 raw sockets deliver the payload alone, with the traffic class as a control
// message.
bool Worker::strip_outer_header(PacketBuffer& buffer, const mmsghdr& message, uint32_t slot, OuterInfo* outer) {
  if (config_.local.family() == AF_INET6) {
    for (cmsghdr* control = CMSG_FIRSTHDR(&message.msg_hdr); control;
         control = CMSG_NXTHDR(const_cast<msghdr*>(&message.msg_hdr), control)) {
      if (control->cmsg_level == IPPROTO_IPV6 && control->cmsg_type == IPV6_TCLASS) {
        int traffic_class;
        std::memcpy(&traffic_class, CMSG_DATA(control), sizeof traffic_class);
        outer->ecn = static_cast<uint8_t>(traffic_class & 3);
        outer->ecn_known = true;
      }
    }
    return true;
  }
  OuterIpv4 decoded;
  if (ipv4_outer_decode(buffer.data(), buffer.length, outer->protocol, &decoded) != OuterStatus::ok) {
    stats_.add(slot, kDropMalformed);
    return false;
  }
  outer->ecn = decoded.ecn;
  outer->ecn_known = true;
  buffer.pull_front(decoded.payload_offset);
  buffer.length = decoded.payload_length;
  return true;
}

// One received datagram; with UDP_GRO it may hold several of the peer's datagrams back to
// back, each `segment` bytes long but the last.
void Worker::receive_datagram(PacketBuffer& buffer, const mmsghdr& message, uint8_t protocol) {
  const PeerTable& table = *table_;
  buffer.length = message.msg_len;
  const uint32_t peer = table.by_source(static_cast<const sockaddr*>(message.msg_hdr.msg_name));
  uint32_t segment = buffer.length;
  OuterInfo outer;
  outer.protocol = protocol;
  if (protocol == 0) {
    // The outer ECN of a GRO batch is every datagram's: GRO merges only equal TOS.
    for (cmsghdr* control = CMSG_FIRSTHDR(&message.msg_hdr); control;
         control = CMSG_NXTHDR(const_cast<msghdr*>(&message.msg_hdr), control)) {
      if (control->cmsg_level == SOL_UDP && control->cmsg_type == UDP_GRO) {
        int size;
        std::memcpy(&size, CMSG_DATA(control), sizeof size);
        if (size > 0) segment = static_cast<uint32_t>(size);
      } else if (control->cmsg_level == IPPROTO_IP && control->cmsg_type == IP_TOS) {
        outer.ecn = *CMSG_DATA(control) & 3;  // one byte
        outer.ecn_known = true;
      } else if (control->cmsg_level == IPPROTO_IPV6 && control->cmsg_type == IPV6_TCLASS) {
        int traffic_class;
        std::memcpy(&traffic_class, CMSG_DATA(control), sizeof traffic_class);
        outer.ecn = static_cast<uint8_t>(traffic_class & 3);
        outer.ecn_known = true;
      }
    }
  }
  const uint32_t datagrams = segment == 0 ? 1 : (buffer.length + segment - 1) / segment;
  if (peer == PeerTable::kNone) {
    stats_.add(WorkerStats::kNoPeer, kDropUnknownPeer, datagrams);
    return;
  }
  const uint32_t slot = table.peers()[peer].slot;
  if (message.msg_hdr.msg_flags & MSG_TRUNC) {
    stats_.add(slot, kDropTooBig, datagrams);
    return;
  }
  if (protocol != 0) {
    if (!strip_outer_header(buffer, message, slot, &outer)) return;
    segment = buffer.length;
  }
  if (buffer.length == 0) {
    // An empty datagram has no overlay header at all (and no segments to loop over).
    stats_.add(slot, kDropMalformed);
    return;
  }
  if (datagrams > 1) {
    stats_.add(WorkerStats::kNoPeer, kRxGroReceives);
    stats_.add(WorkerStats::kNoPeer, kRxGroSegments, datagrams);
  }
  if (config_.vnet_header && slot != coalescing_slot_) {
    // Runs never mix peers: a flow's segments must all come from the one peer it belongs to.
    flush_coalesced();
    coalescing_slot_ = slot;
  }
  for (uint32_t offset = 0; offset < buffer.length; offset += segment) {
    const uint32_t length = std::min(segment, buffer.length - offset);
    uint8_t* packet = buffer.data() + offset;
    uint32_t inner = 0, frame_length = 0;
    if (!decapsulate_one(packet, length, peer, slot, outer, &inner, &frame_length)) continue;
    uint8_t* frame = packet + inner;
    if (!config_.vnet_header) {
      write_frame(frame, frame_length, slot);
    } else if (datagrams == 1) {
      // The datagram's buffer has a whole 64 KB of tailroom for a run to grow into.
      buffer.pull_front(inner);
      buffer.length = frame_length;  // without an ESP trailer
      coalesce(&buffer, slot);
    } else {
      // Datagrams of a GRO batch sit back to back: a run growing in place would overwrite the
      // next one, so each gets a buffer of its own.
      if (gro_free_.empty()) flush_coalesced();
      PacketBuffer* copy = gro_free_.back();
      gro_free_.pop_back();
      copy->reset();
      std::memcpy(copy->data(), frame, frame_length);
      copy->length = frame_length;
      gro_used_.push_back(copy);
      coalesce(copy, slot);
    }
  }
}

void Worker::coalesce(PacketBuffer* frame, uint32_t slot) {
  const size_t before = coalescer_.pending();
  coalescer_.add(frame);
  // Absorbed into an earlier run: its bytes are copied, its buffer free again at once.
  if (coalescer_.pending() == before && !gro_used_.empty() && gro_used_.back() == frame) {
    gro_used_.pop_back();
    gro_free_.push_back(frame);
  }
}

void Worker::flush_coalesced() {
  if (coalescer_.pending() > 0) {
    coalesced_.clear();
    coalescer_.finish(coalesced_);
    for (CoalescedFrame& out : coalesced_) {
      PacketBuffer& buffer = *out.buffer;
      // Counted as the frames that arrived: a run of n segments is n frames, each with the
      // run's headers.
      uint32_t segments = 1;
      uint64_t bytes = buffer.length;
      const bool merged = out.vnet.gso_type != kVirtioNetHdrGsoNone && out.vnet.gso_size > 0 &&
                          buffer.length > out.vnet.hdr_len;
      if (merged) {
        segments = (buffer.length - out.vnet.hdr_len + out.vnet.gso_size - 1) / out.vnet.gso_size;
        bytes += uint64_t{segments - 1} * out.vnet.hdr_len;
      }
      write_virtio_net_header(out.vnet, buffer.push_front(kVirtioNetHeaderSize));
      deliver(buffer.data(), buffer.length, coalescing_slot_, segments, bytes, merged);
    }
  }
  // The GRO buffers are free again only once their frames are written.
  submit_device_writes();
  for (PacketBuffer* used : gro_used_) gro_free_.push_back(used);
  gro_used_.clear();
}

// Hands one frame (or coalesced run) to the device: queued on the ring when there is one (and
// written with the rest of the batch), else written at once. Counted once its fate is known.
void Worker::deliver(const uint8_t* frame, uint32_t length, uint32_t slot, uint32_t segments, uint64_t bytes,
                     bool merged) {
  const DeviceWrite write{frame, length, slot, segments, bytes, merged};
  if (!uring_) {
    if (write_device(frame, length, slot, segments)) count_delivered(write);
    return;
  }
  uring_->queue_write(device_fd_, frame, length, device_writes_.size());
  device_writes_.push_back(write);
  if (uring_->queued() == uring_->capacity()) submit_device_writes();
}

void Worker::submit_device_writes() {
  if (!uring_ || device_writes_.empty()) return;
  std::vector<bool>& done = write_done_;
  done.assign(device_writes_.size(), false);
  const bool ok = uring_->submit_and_wait([&](uint64_t tag, int result) {
    if (tag >= device_writes_.size()) return;
    done[tag] = true;
    const DeviceWrite& write = device_writes_[tag];
    if (result >= 0) {
      count_delivered(write);
    } else {
      count_write_failure(-result, write.slot, write.segments);
    }
  });
  if (!ok) {
    // The ring itself failed: finish this batch with write() and stay with it.
    stats_.add(WorkerStats::kNoPeer, kOffloadFallbacks);
    uring_.reset();
    for (size_t i = 0; i < device_writes_.size(); i++) {
      const DeviceWrite& write = device_writes_[i];
      if (!done[i] && write_device(write.frame, write.length, write.slot, write.segments)) count_delivered(write);
    }
  }
  device_writes_.clear();
}

void Worker::count_delivered(const DeviceWrite& write) {
  stats_.add(write.slot, kRxPackets, write.segments);
  stats_.add(write.slot, kRxBytes, write.bytes);
  if (write.merged) {
    stats_.add(WorkerStats::kNoPeer, kRxCoalescedWrites);
    stats_.add(WorkerStats::kNoPeer, kRxCoalescedSegments, write.segments);
  }
}

void Worker::count_write_failure(int error, uint32_t slot, uint32_t segments) {
  const bool full = error == EAGAIN || error == ENOBUFS;
  stats_.add(slot, full ? kDropQueueFull : kDropDeviceError, segments);
  if (error == EBADFD || error == ENODEV || (config_.packet_socket && error == ENXIO)) device_gone();
}

// Writes one frame (or coalesced run of `segments`) to the device now; a failure is counted
// under its drop reason and returns false.
bool Worker::write_device(const uint8_t* frame, uint32_t length, uint32_t slot, uint32_t segments) {
  for (;;) {
    if (::write(device_fd_, frame, length) >= 0) return true;
    if (errno == EINTR) continue;
    count_write_failure(errno, slot, segments);
    return false;
  }
}

void Worker::write_frame(const uint8_t* frame, uint32_t length, uint32_t slot) {
  deliver(frame, length, slot, 1, length, false);
}

// Validates one datagram from peer `peer` (stats slot `slot`) and checks its inner frame. On
// success *inner is where the inner frame starts (0 for IP-in-IP); a drop is counted.
bool Worker::decapsulate_one(uint8_t* packet, uint32_t length, uint32_t peer, uint32_t slot, const OuterInfo& outer,
                             uint32_t* inner_offset, uint32_t* inner_length) {
  if (config_.encap.kind == EncapKind::esp) {
    return decapsulate_esp(packet, length, peer, slot, outer, inner_offset, inner_length);
  }
  uint32_t inner = 0;
  uint16_t ethertype = 0;
  GreDecoded gre;
  const Counter verdict = config_.encap.decode(packet, length, &inner, &ethertype, &gre);
  if (verdict != kCounterCount) {
    stats_.add(slot, verdict);
    return false;
  }
  if (config_.encap.kind == EncapKind::ipip) {
    ethertype = outer.protocol == kIpProtocolIpv6 ? kEtherTypeIpv6 : kEtherTypeIpv4;
  }
  const bool gre_mode = config_.encap.kind == EncapKind::gre || config_.encap.kind == EncapKind::gre_udp;
  if (gre_mode && config_.encap.gre.sequence && !accept_sequence(gre, slot)) {
    return false;
  }
  const bool accepted = config_.layer == DeviceLayer::ip
                            ? accept_ip(packet + inner, length - inner, ethertype, peer, slot, outer)
                            : accept_ethernet(packet + inner, length - inner, slot, outer);
  *inner_offset = inner;
  *inner_length = length - inner;
  return accepted;
}

// RFC 4303 §3.4 in the order that keeps forgeries cheap and harmless: the SA by SPI (SPI 0 is
// the RFC 3948 non-ESP marker, never an SA), the replay window checked before anything is
// decrypted, the ICV, and only then the window moved; the trailer and next header last.
bool Worker::decapsulate_esp(uint8_t* packet, uint32_t length, uint32_t peer, uint32_t slot, const OuterInfo& outer,
                             uint32_t* inner_offset, uint32_t* inner_length) {
  uint32_t spi = 0, wire_sequence = 0;
  const EspStatus header = esp_parse_header(packet, length, &spi, &wire_sequence);
  if (header == EspStatus::spi_zero) {
    stats_.add(slot, kDropUnknownSpi);
    return false;
  }
  if (header != EspStatus::ok) {
    stats_.add(slot, kDropMalformed);
    return false;
  }
  const InboundSa* inbound = table_->by_spi(spi);
  // An SA belongs to one peer: another peer's SPI from this address is as unknown as any.
  if (inbound == nullptr || inbound->peer != peer) {
    stats_.add(slot, kDropUnknownSpi);
    return false;
  }
  EspSaState& sa = *inbound->state;
  uint64_t sequence = 0;
  ReplayCheck fresh;
  {
    std::lock_guard<std::mutex> lock(sa.replay_lock);
    fresh = sa.window.check(wire_sequence, &sequence);
  }
  if (fresh != ReplayCheck::fresh) {
    stats_.add(slot, kDropReplay);
    return false;
  }
  const EspStatus opened = esp_open(aead_for(sa), sa.esn, static_cast<uint32_t>(sequence >> 32), packet, length);
  if (opened != EspStatus::ok) {
    stats_.add(slot, opened == EspStatus::auth_failed ? kDropAuthFailed : kDropMalformed);
    return false;
  }
  bool updated;
  {
    std::lock_guard<std::mutex> lock(sa.replay_lock);
    updated = sa.window.update(sequence);
  }
  if (!updated) {  // another worker accepted the same number meanwhile
    stats_.add(slot, kDropReplay);
    return false;
  }
  EspDecoded decoded;
  if (esp_parse_trailer(packet, length, &decoded) != EspStatus::ok) {
    stats_.add(slot, kDropMalformed);
    return false;
  }
  const EspPayload payload = config_.layer == DeviceLayer::ethernet ? EspPayload::ethernet : EspPayload::ip;
  // Next header 59 (a dummy packet) and anything this device does not carry are dropped.
  if (!esp_next_header_accepted(payload, decoded.next_header)) {
    stats_.add(slot, kDropMalformed);
    return false;
  }
  uint8_t* inner = packet + decoded.payload_offset;
  const bool accepted =
      payload == EspPayload::ip
          ? accept_ip(inner, decoded.payload_length,
                      decoded.next_header == kEspNextHeaderIpv6 ? kEtherTypeIpv6 : kEtherTypeIpv4, peer, slot, outer)
          : accept_ethernet(inner, decoded.payload_length, slot, outer);
  *inner_offset = decoded.payload_offset;
  *inner_length = decoded.payload_length;
  return accepted;
}

// RFC 2890 §2.2: a receiver that expects sequence numbers drops a packet without one, and one
// that is not newer than the last accepted (serial number arithmetic, so the counter may wrap).
bool Worker::accept_sequence(const GreDecoded& gre, uint32_t slot) {
  if (!gre.sequence) {
    stats_.add(slot, kDropMalformed);
    return false;
  }
  if (gre_expected_.empty()) {
    gre_expected_.assign(config_.peer_slots, 0);
    gre_seen_.assign(config_.peer_slots, false);
  }
  if (slot >= gre_expected_.size()) return true;
  const uint32_t sequence = *gre.sequence;
  if (gre_seen_[slot] && static_cast<int32_t>(sequence - gre_expected_[slot]) < 0) {
    stats_.add(slot, kDropOutOfOrder);
    return false;
  }
  gre_seen_[slot] = true;
  gre_expected_[slot] = sequence + 1;
  return true;
}

// An Ethernet frame from peer `slot`: its source must be a unicast MAC that is not ours; learn it.
bool Worker::accept_ethernet(uint8_t* frame, uint32_t length, uint32_t slot, const OuterInfo& outer) {
  if (length < kEthernetHeaderSize) {
    stats_.add(slot, kDropMalformed);
    return false;
  }
  const uint8_t* source = eth_source(frame);
  if (!mac_is_valid_source(source)) {
    stats_.add(slot, kDropMalformed);
    return false;
  }
  const MacKey source_key = mac_key(source);
  // Our own frames coming back mean a forwarding loop somewhere in the underlay.
  if (source_key == config_.device_mac) {
    stats_.add(slot, kDropLoop);
    return false;
  }
  if (outer.ecn_known) {
    if (is_ip_frame(frame) &&
        !apply_outer_ecn(frame + kEthernetHeaderSize, length - kEthernetHeaderSize, outer)) {
      stats_.add(slot, kDropEcn);
      return false;
    }
  }
  if (is_ip_frame(frame)) clamp_mss(frame + kEthernetHeaderSize, length - kEthernetHeaderSize, false);
  if (config_.learning && table_->by_static_mac(source_key) == PeerTable::kNone) {
    fdb_.learn(source_key, slot, now_);
  }
  return true;
}

// An IP packet from peer index `peer` for the TUN device: its version must match what the
// encapsulation said it is, its header must hold together, its TTL must not be spent, and its
// source must be one the peer may use (allowedIps, longest match: anti-spoofing).
bool Worker::accept_ip(uint8_t* packet, uint32_t length, uint16_t ethertype, uint32_t peer, uint32_t slot,
                       const OuterInfo& outer) {
  const PeerTable& table = *table_;
  const uint8_t version = length > 0 ? packet[0] >> 4 : 0;
  uint32_t source_peer;
  uint8_t ttl;
  if (ethertype == kEtherTypeIpv4 && version == 4 && length >= 20 && (packet[0] & 0x0f) >= 5 &&
      (packet[0] & 0x0fu) * 4 <= length && load_be16(packet + 2) <= length &&
      load_be16(packet + 2) >= (packet[0] & 0x0fu) * 4) {
    ttl = packet[8];
    source_peer = table.by_route_v4(packet + 12);
  } else if (ethertype == kEtherTypeIpv6 && version == 6 && length >= 40 &&
             uint32_t{load_be16(packet + 4)} + 40 <= length) {
    ttl = packet[7];
    source_peer = table.by_route_v6(packet + 8);
  } else {
    stats_.add(slot, kDropMalformed);
    return false;
  }
  if (ttl == 0) {
    stats_.add(slot, kDropTtlExpired);
    return false;
  }
  if (source_peer != peer) {
    stats_.add(slot, kDropSpoofed);
    return false;
  }
  if (!apply_outer_ecn(packet, length, outer)) {
    stats_.add(slot, kDropEcn);
    return false;
  }
  clamp_mss(packet, length, false);
  return true;
}

bool Worker::apply_outer_ecn(uint8_t* packet, uint32_t length, const OuterInfo& outer) {
  if (!outer.ecn_known) return true;
  InnerIp inner;
  if (parse_ip_packet(packet, length, &inner) != IpParse::ok) return true;
  const EcnDecap result = ecn_decapsulate(inner.ecn, outer.ecn);
  if (result.drop) return false;
  if (result.inner_result != inner.ecn) ip_set_ecn(packet, result.inner_result);
  return true;
}

// The TCP MSS clamp (off unless configured): only SYNs are touched; the cost for everything
// else is the protocol and flag test inside clamp_tcp_mss.
void Worker::clamp_mss(uint8_t* packet, uint32_t length, bool checksum_partial) {
  if (config_.mss_clamp_v4 == 0 || length < 1) return;
  const uint16_t limit = (packet[0] >> 4) == 6 ? config_.mss_clamp_v6 : config_.mss_clamp_v4;
  if (clamp_tcp_mss(packet, length, limit, checksum_partial)) stats_.add(WorkerStats::kNoPeer, kMssClamped);
}

// An inner packet larger than the underlay can carry whole. With DF (or IPv6, which routers never
// fragment) its sender must learn the path MTU: an ICMP Fragmentation Needed / Packet Too Big goes
// back through the device, rate-limited, as Linux tunnels do (icmp_ndo_send). Without DF it is
// sent anyway and the underlay fragments the outer packet (UDP modes; a raw-IP send of it fails
// with EMSGSIZE and is counted as tooBig there).
bool Worker::refuse_too_big(const uint8_t* frame, uint32_t length, uint32_t peer) {
  const uint8_t* packet = frame + link_header_;
  const uint32_t packet_length = length - link_header_;
  if (config_.max_inner_packet == 0 || packet_length <= config_.max_inner_packet) return false;
  if (link_header_ != 0) {
    const uint16_t type = load_be16(frame + 12);
    if (type != kEtherTypeIpv4 && type != kEtherTypeIpv6) return false;
  }
  InnerIp inner;
  if (parse_ip_packet(packet, packet_length, &inner) != IpParse::ok || !inner.dont_fragment) return false;
  stats_.add(table_->peers()[peer].slot, kDropTooBig);
  if (!icmp_budget_.take(monotonic_microseconds())) return true;
  // The error comes from the packet's destination: it enters the host through the device, and
  // the host drops a packet arriving with one of its own addresses as source (a martian), so
  // the device's address cannot be used; the PMTU logic does not care who reports.
  const uint8_t* source = inner.destination;
  const uint32_t vnet = config_.vnet_header ? kVirtioNetHeaderSize : 0;
  if (icmp_buffer_.empty()) icmp_buffer_.resize(kVirtioNetHeaderSize + kEthernetHeaderSize + kIcmpv6ErrorMaxSize);
  uint8_t* out = icmp_buffer_.data() + vnet;
  const size_t capacity = icmp_buffer_.size() - vnet;
  size_t built;
  if (link_header_ != 0) {
    built = build_too_big_frame(out, capacity, frame, length, config_.max_inner_packet, source, ++icmp_id_);
  } else if (inner.version == 4) {
    built = build_ipv4_frag_needed(out, capacity, packet, packet_length,
                                   static_cast<uint16_t>(std::min<uint32_t>(config_.max_inner_packet, 65535)), source,
                                   ++icmp_id_);
  } else {
    built = build_ipv6_packet_too_big(out, capacity, packet, packet_length, config_.max_inner_packet, source);
  }
  if (built == 0) return true;
  // A virtio header of zeros: a plain packet, checksums complete.
  std::memset(icmp_buffer_.data(), 0, vnet);
  if (::write(device_fd_, icmp_buffer_.data(), vnet + built) >= 0) stats_.add(WorkerStats::kNoPeer, kIcmpTooBigSent);
  return true;
}

}  // namespace ovl
