#include "worker.h"

#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <ctime>
#include <string>

#include "ethernet.h"
#include "flow_hash.h"
#include "vxlan_codec.h"

namespace ovl {

namespace {

// Batches handled per direction before going back to epoll, so that a flood in one
// direction cannot starve the other.
constexpr int kRoundsPerWakeup = 4;
// Sends queued before a flush, bounding the fan-out of head-end replication.
constexpr size_t kMaxPending = 1024;
// How long a full socket buffer may hold the worker before the batch is dropped.
constexpr int kWritableTimeoutMs = 100;

uint32_t monotonic_seconds() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return static_cast<uint32_t>(now.tv_sec);
}

}  // namespace

Worker::Worker(const WorkerConfig& config, TablePublisher<PeerTable>& tables, LearnedFdb& fdb, WorkerStats stats,
               int device_fd, UniqueFd listen_socket, std::vector<UniqueFd> send_sockets, int stop_fd)
    : config_(config),
      tables_(tables),
      fdb_(fdb),
      stats_(stats),
      device_fd_(device_fd),
      listen_socket_(std::move(listen_socket)),
      send_sockets_(std::move(send_sockets)),
      stop_fd_(stop_fd),
      device_buffers_(config.batch_size, kMaxPacket),
      pending_(send_sockets_.size()),
      send_messages_(kMaxPending),
      send_iovecs_(kMaxPending),
      underlay_buffers_(config.batch_size, kMaxPacket),
      receive_messages_(config.batch_size),
      receive_iovecs_(config.batch_size),
      receive_sources_(config.batch_size) {
  for (auto& run : pending_) run.reserve(kMaxPending);
}

void Worker::run() {
  // Signals belong to Node's main thread.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  const std::string name = "ovl-worker-" + std::to_string(config_.index);
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());

  UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll.valid()) return;
  const int watched[] = {device_fd_, listen_socket_.get(), stop_fd_};
  for (int fd : watched) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = fd;
    if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &event) < 0) return;
  }

  uint32_t last_expiry = monotonic_seconds();
  epoll_event events[3];
  for (;;) {
    const int ready = ::epoll_wait(epoll.get(), events, 3, 1000);
    if (ready < 0 && errno != EINTR) return;
    now_ = monotonic_seconds();
    refresh_table();
    bool device_ready = false, underlay_ready = false;
    for (int i = 0; i < ready; i++) {
      if (events[i].data.fd == stop_fd_) return;
      if (events[i].data.fd == device_fd_) device_ready = true;
      if (events[i].data.fd == listen_socket_.get()) underlay_ready = true;
    }
    if (underlay_ready) handle_underlay();
    if (device_ready) handle_device();
    // One worker ages the shared table; a few seconds of slack is what bridges allow too.
    if (config_.index == 0 && now_ - last_expiry >= 5) {
      fdb_.expire(now_);
      last_expiry = now_;
    }
  }
}

void Worker::refresh_table() {
  if (tables_.generation() != table_generation_) table_ = tables_.current(&table_generation_);
}

// ---- device → underlay -------------------------------------------------------------------

void Worker::handle_device() {
  for (int round = 0; round < kRoundsPerWakeup; round++) {
    const size_t count = read_device_batch();
    if (count > 0) encapsulate_batch(count);
    if (count < config_.batch_size) return;
  }
}

size_t Worker::read_device_batch() {
  size_t count = 0;
  while (count < config_.batch_size) {
    PacketBuffer& buffer = device_buffers_[count];
    buffer.reset();
    const ssize_t n = ::read(device_fd_, buffer.data(), buffer.tailroom());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) stats_.add(WorkerStats::kNoPeer, kDropDeviceError);
      break;
    }
    buffer.length = static_cast<uint32_t>(n);
    count++;
  }
  return count;
}

void Worker::encapsulate_batch(size_t count) {
  const PeerTable& table = *table_;
  const auto& peers = table.peers();
  for (size_t i = 0; i < count; i++) {
    PacketBuffer& buffer = device_buffers_[i];
    const uint8_t* frame = buffer.data();
    const uint32_t frame_length = buffer.length;
    if (frame_length < kEthernetHeaderSize) {
      stats_.add(WorkerStats::kNoPeer, kDropMalformed);
      continue;
    }

    uint32_t peer = PeerTable::kNone;
    const uint8_t* destination = eth_destination(frame);
    if (!mac_is_multicast(destination)) {
      const MacKey key = mac_key(destination);
      peer = table.by_static_mac(key);
      if (peer == PeerTable::kNone && config_.learning) {
        const uint32_t slot = fdb_.lookup(key, now_);
        if (slot != LearnedFdb::kNone) peer = table.by_slot(slot);
      }
    }

    // The same flow always leaves through the same source port.
    const uint32_t hash = ethernet_flow_hash(frame, frame_length);
    const auto socket = static_cast<uint32_t>((uint64_t{hash} * send_sockets_.size()) >> 32);
    vxlan_encode(buffer.push_front(kVxlanHeaderSize), config_.vni);

    if (peer != PeerTable::kNone) {
      queue_send(socket, buffer, peer, frame_length);
    } else if (peers.empty()) {
      stats_.add(WorkerStats::kNoPeer, kDropNoRoute);
    } else {
      // Head-end replication: broadcast, multicast and unknown unicast go to every peer;
      // all copies share the one encapsulated buffer.
      stats_.add(WorkerStats::kNoPeer, kFloodPackets);
      for (uint32_t p = 0; p < peers.size(); p++) queue_send(socket, buffer, p, frame_length);
    }
  }
  flush_sends();
}

void Worker::queue_send(uint32_t socket, PacketBuffer& buffer, uint32_t peer, uint32_t inner_length) {
  pending_[socket].push_back(Pending{&buffer, peer, inner_length});
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

void Worker::send_run(uint32_t socket, std::vector<Pending>& run) {
  const auto& peers = table_->peers();
  const int fd = send_sockets_[socket].get();
  for (size_t i = 0; i < run.size(); i++) {
    const Peer& peer = peers[run[i].peer];
    send_iovecs_[i] = iovec{run[i].buffer->data(), run[i].buffer->length};
    msghdr& header = send_messages_[i].msg_hdr;
    header = msghdr{};
    header.msg_name = const_cast<sockaddr*>(peer.endpoint.get());
    header.msg_namelen = peer.endpoint.length;
    header.msg_iov = &send_iovecs_[i];
    header.msg_iovlen = 1;
  }

  size_t done = 0;
  while (done < run.size()) {
    const int sent = ::sendmmsg(fd, &send_messages_[done], static_cast<unsigned>(run.size() - done), 0);
    if (sent > 0) {
      for (size_t i = done; i < done + static_cast<size_t>(sent); i++) {
        const uint32_t slot = peers[run[i].peer].slot;
        stats_.add(slot, kTxPackets);
        stats_.add(slot, kTxBytes, run[i].inner_length);
      }
      done += static_cast<size_t>(sent);
      continue;
    }
    if (errno == EINTR) continue;
    if ((errno == EAGAIN || errno == ENOBUFS) && wait_writable(fd)) continue;
    // sendmmsg reports the error of the first message it could not send: count it and go on.
    const Counter reason = errno == EMSGSIZE                                       ? kDropTooBig
                           : (errno == EAGAIN || errno == ENOBUFS)                ? kDropQueueFull
                                                                                   : kDropSocketError;
    if (reason == kDropQueueFull) {
      for (size_t i = done; i < run.size(); i++) stats_.add(peers[run[i].peer].slot, reason);
      return;
    }
    stats_.add(peers[run[done].peer].slot, reason);
    done++;
  }
}

bool Worker::wait_writable(int fd) {
  pollfd fds[2] = {{fd, POLLOUT, 0}, {stop_fd_, POLLIN, 0}};
  const int ready = ::poll(fds, 2, kWritableTimeoutMs);
  return ready > 0 && (fds[0].revents & POLLOUT) && !(fds[1].revents & POLLIN);
}

// ---- underlay → device -------------------------------------------------------------------

void Worker::handle_underlay() {
  const int fd = listen_socket_.get();
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
    }
    const int received = ::recvmmsg(fd, receive_messages_.data(), config_.batch_size, MSG_DONTWAIT, nullptr);
    if (received < 0) {
      if (errno != EAGAIN && errno != EINTR) stats_.add(WorkerStats::kNoPeer, kDropSocketError);
      return;
    }
    for (int i = 0; i < received; i++) decapsulate_one(underlay_buffers_[i], receive_messages_[i]);
    if (static_cast<uint32_t>(received) < config_.batch_size) return;
  }
}

void Worker::decapsulate_one(PacketBuffer& buffer, const mmsghdr& message) {
  const PeerTable& table = *table_;
  buffer.length = message.msg_len;
  const uint32_t peer = table.by_source(static_cast<const sockaddr*>(message.msg_hdr.msg_name));
  if (peer == PeerTable::kNone) {
    stats_.add(WorkerStats::kNoPeer, kDropUnknownPeer);
    return;
  }
  const uint32_t slot = table.peers()[peer].slot;
  if (message.msg_hdr.msg_flags & MSG_TRUNC) {
    stats_.add(slot, kDropTooBig);
    return;
  }
  switch (vxlan_decode(buffer.data(), buffer.length, config_.vni)) {
    case VxlanStatus::ok: break;
    case VxlanStatus::malformed: stats_.add(slot, kDropMalformed); return;
    case VxlanStatus::wrong_vni: stats_.add(slot, kDropWrongVni); return;
  }
  buffer.pull_front(kVxlanHeaderSize);

  const uint8_t* source = eth_source(buffer.data());
  if (!mac_is_valid_source(source)) {
    stats_.add(slot, kDropMalformed);
    return;
  }
  const MacKey source_key = mac_key(source);
  // Our own frames coming back mean a forwarding loop somewhere in the underlay.
  if (source_key == config_.device_mac) {
    stats_.add(slot, kDropLoop);
    return;
  }
  if (config_.learning && table.by_static_mac(source_key) == PeerTable::kNone) {
    fdb_.learn(source_key, slot, now_);
  }

  for (;;) {
    const ssize_t written = ::write(device_fd_, buffer.data(), buffer.length);
    if (written >= 0) {
      stats_.add(slot, kRxPackets);
      stats_.add(slot, kRxBytes, buffer.length);
      return;
    }
    if (errno == EINTR) continue;
    stats_.add(slot, (errno == EAGAIN || errno == ENOBUFS) ? kDropQueueFull : kDropDeviceError);
    return;
  }
}

}  // namespace ovl
