#include "datapath/worker.h"

#include <pthread.h>
#include <sys/epoll.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <string>
#include <vector>

#include "system/clock.h"
#include "system/privileges.h"
#include "underlay/socket_errors.h"
#include "wire/protocols.h"

namespace ovl {

namespace {

// The stranger socket takes one batch a millisecond: a peer-to-be's IKE exchange fits many
// times over when nothing floods it (under a flood it shares the batch with the flood), and a
// flood from unknown sources costs the worker a bounded share of its core (one receive of a
// batch, GRO batches among them, and two epoll_ctl calls a millisecond); the kernel drops the
// rest before anything is queued for us.
constexpr uint64_t kStrangerIntervalUs = 1000;

// Event tags: the stop eventfd, the device, each receiving socket, then each sending socket.
constexpr uint32_t kStopTag = 0, kDeviceTag = 1, kFirstReceiverTag = 2;

}  // namespace

Worker::Worker(const WorkerConfig& config, TablePublisher<PeerTable>& tables, LearnedFdb& fdb, WorkerStats stats,
               DropRing* drops, int device_fd, UnderlaySockets sockets, int stop_fd, ControlChannel& control)
    : config_(config),
      tables_(tables),
      fdb_(fdb),
      context_(config_, stats, drops),
      device_fd_(device_fd),
      stop_fd_(stop_fd),
      tunnel_(make_tunnel(config.tunnel, config.peer_slots, config.max_segment_frame)),
      link_(make_underlay_link(config.tunnel.over_udp(), std::move(sockets), config.local, stop_fd, kMaxPendingSends,
                               config.batch_size, config.udp_gso)),
      policy_(context_, fdb),
      transmitter_(context_, *tunnel_, *link_, policy_),
      receiver_(context_, *tunnel_, *link_, policy_, control),
      device_buffers_(config.batch_size, kMaxPacket),
      device_vnet_(config.batch_size) {}

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
  device_ = std::make_unique<DeviceQueue>(device_fd_, config_.vnet_header, config_.packet_socket,
                                          config_.packet_max_frame, config_.batch_size, config_.uring_writes);
  drop_worker_privileges();  // its queue and sockets are open: it parses hostile packets holding nothing
  loop();
}

void Worker::fail() {
  if (lost_flag_) lost_flag_->store(true, std::memory_order_relaxed);
}

void Worker::loop() {
  UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll.valid()) return fail();
  epoll_fd_ = epoll.get();
  // Senders are watched for errors only (EPOLLERR needs no asking): ICMP errors about what they
  // sent wait on their error queues (underlay/socket_errors.h).
  const uint32_t first_sender_tag = kFirstReceiverTag + static_cast<uint32_t>(link_->receiver_count());
  std::vector<std::pair<int, uint32_t>> watched = {{stop_fd_, kStopTag}, {device_fd_, kDeviceTag}};
  for (size_t r = 0; r < link_->receiver_count(); r++) {
    watched.emplace_back(link_->receiver_fd(r), kFirstReceiverTag + static_cast<uint32_t>(r));
  }
  for (uint32_t s = 0; s < link_->sender_count(); s++) watched.emplace_back(link_->sender_fd(s), first_sender_tag + s);
  for (const auto& [fd, tag] : watched) {
    epoll_event event{};
    event.events = tag < first_sender_tag ? uint32_t{EPOLLIN} : 0u;
    event.data.u32 = tag;
    if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &event) < 0) return fail();
  }
  std::vector<bool> receiver_ready(link_->receiver_count());
  for (size_t r = 0; r < link_->receiver_count(); r++) {
    if (link_->is_stranger(r)) stranger_ = r;
  }

  uint32_t last_expiry = monotonic_seconds();
  uint32_t last_overflow_check = last_expiry;
  std::vector<epoll_event> events(watched.size());
  uint64_t poll_until = 0;  // busy-poll (timeout 0) until then, after the last work done
  for (;;) {
    const bool polling = config_.busy_poll_us > 0 && monotonic_microseconds() < poll_until;
    // An unwatched stranger socket is watched again once its interval has passed.
    if (!strangers_armed_ && monotonic_microseconds() >= strangers_next_us_) arm_strangers(true);
    const int timeout = polling ? 0 : strangers_armed_ ? 1000 : 1;
    const int ready = ::epoll_wait(epoll.get(), events.data(), static_cast<int>(events.size()), timeout);
    if (ready < 0 && errno != EINTR) return fail();
    // A packet that arrives while we poll costs no wakeup: in a request/response exchange the
    // answer usually comes back within tens of microseconds, so a short poll after each burst
    // of work saves a sleep and a wakeup per hop at the price of that much CPU.
    // Not for the stranger socket alone: a flood from strangers would keep the worker polling.
    const bool strangers_only = ready == 1 && stranger_ != UnderlaySockets::kNoStranger &&
                                events[0].data.u32 == kFirstReceiverTag + static_cast<uint32_t>(stranger_);
    if (ready > 0 && config_.busy_poll_us > 0 && !strangers_only) poll_until = monotonic_microseconds() + config_.busy_poll_us;
    if (ready == 0 && polling) continue;
    context_.now = monotonic_seconds();
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
      } else if (tag >= first_sender_tag) {
        link_->read_errors(link_->sender_fd(tag - first_sender_tag));
      } else {
        if (events[i].events & EPOLLERR) link_->read_errors(link_->receiver_fd(tag - kFirstReceiverTag));
        receiver_ready[tag - kFirstReceiverTag] = (events[i].events & EPOLLIN) != 0;
      }
    }
    for (size_t r = 0; r < receiver_ready.size(); r++) {
      if (!receiver_ready[r]) continue;
      if (r == stranger_) {
        read_strangers(r);
      } else {
        receiver_.receive(r, *device_, *this);
      }
    }
    if (device_ready && !device_lost_) handle_device();
    if (link_->has_errors()) count_underlay_errors();
    if (context_.now != last_overflow_check) {
      count_receive_overflows();
      last_overflow_check = context_.now;
    }
    // One worker ages the shared table; a few seconds of slack is what bridges allow too.
    if (config_.index == 0 && context_.now - last_expiry >= 5) {
      fdb_.expire(context_.now);
      last_expiry = context_.now;
    }
  }
}

// The stranger socket was readable: one batch if its interval has passed, else it is unwatched
// until it has (the loop watches it again), and what comes meanwhile waits in its small buffer
// or is dropped by the kernel.
void Worker::read_strangers(size_t receiver) {
  const uint64_t now = monotonic_microseconds();
  if (now < strangers_next_us_) return arm_strangers(false);
  receiver_.receive(receiver, *device_, *this, 1);
  strangers_next_us_ = now + kStrangerIntervalUs;
}

void Worker::arm_strangers(bool armed) {
  if (armed == strangers_armed_) return;
  epoll_event event{};
  event.events = armed ? uint32_t{EPOLLIN} : 0u;
  event.data.u32 = kFirstReceiverTag + static_cast<uint32_t>(stranger_);
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, link_->receiver_fd(stranger_), &event);
  strangers_armed_ = armed;
}

void Worker::refresh_table() {
  if (tables_.generation() == table_generation_) return;
  table_ = tables_.current(&table_generation_);
  context_.table = table_.get();
  tunnel_->table_changed(*table_);
}

void Worker::handle_device() {
  for (int round = 0; round < kRoundsPerWakeup; round++) {
    const size_t count = device_->read(&device_buffers_[0], device_vnet_.data(), config_.batch_size, *this);
    if (count > 0) transmitter_.send_batch(&device_buffers_[0], device_vnet_.data(), count, *device_);
    if (count < config_.batch_size) return;
  }
}

// ICMP errors about datagrams we sent (read here on EPOLLERR, or by a send that waited for
// room), each counted on the peer the quoted datagram was for.
void Worker::count_underlay_errors() {
  std::vector<UnderlayError>& errors = link_->pending_errors();
  const uint8_t protocol = config_.tunnel.over_udp() ? kIpProtocolUdp : 0;
  for (const UnderlayError& error : errors) {
    const auto* destination = reinterpret_cast<const sockaddr*>(&error.destination);
    const uint32_t peer = table_->by_source(destination);
    const uint32_t slot = peer == PeerTable::kNone ? WorkerStats::kNoPeer : table_->peers()[peer].slot;
    // The sample says whom it was for; the quoted datagram itself is not kept.
    context_.drop(slot, error.reason, DropSample::underlay(nullptr, 0, DropDirection::tx, destination, 0, protocol));
  }
  errors.clear();
  std::array<uint64_t, 2>& unattributed = link_->unattributed_errors();
  if (unattributed[0]) context_.drop(WorkerStats::kNoPeer, kDropUnreachable, DropSample::nothing(DropDirection::tx), unattributed[0]);
  if (unattributed[1]) context_.drop(WorkerStats::kNoPeer, kDropTooBig, DropSample::nothing(DropDirection::tx), unattributed[1]);
  unattributed = {};
}

// Once a second: what the kernel dropped for our receiving sockets (a full receive buffer) since
// the last look. Whose datagrams they were is not known.
void Worker::count_receive_overflows() {
  for (size_t r = 0; r < link_->receiver_count(); r++) {
    if (const uint64_t lost = link_->take_receive_overflows(r)) {
      // The steering program sends the stranger socket datagrams from no peer's address only
      // (a new peer's first ones too, for as long as its program is not in place).
      const Counter reason = r == stranger_ ? kDropUnknownPeer : kDropQueueFull;
      context_.drop(WorkerStats::kNoPeer, reason, DropSample::nothing(DropDirection::rx), lost);
    }
  }
}

// Frames the device queue lost before we saw their bytes.
void Worker::read_dropped(Counter reason, uint64_t frames) {
  context_.drop(WorkerStats::kNoPeer, reason, DropSample::nothing(DropDirection::tx), frames);
}

// The device was deleted under us (or failed for good): stop reading it and say so; the
// Forwarder reports it, and the owner decides what to do.
void Worker::device_gone() {
  if (device_lost_) return;
  device_lost_ = true;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, device_fd_, nullptr);
  fail();
}

}  // namespace ovl
