#include "underlay/control_channel.h"

#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <vector>

#include "system/netns.h"
#include "system/privileges.h"
#include "system/sys_error.h"
#include "underlay/socket_errors.h"
#include "wire/ike.h"

namespace ovl {

namespace {

// Datagrams read per wakeup of the reader, so that a flood cannot keep it from seeing the stop.
constexpr int kReadsPerWakeup = 64;
// IKE is a few messages per exchange: a small buffer, which privileged callers get whole.
constexpr int kIkeReceiveBuffer = 1 << 20;

void set_int(int fd, int level, int option, int value, const char* name) {
  if (::setsockopt(fd, level, option, &value, sizeof value) < 0) throw_errno(std::string("setsockopt(") + name + ")");
}

// UDP on the underlay address and the IKE port. SO_REUSEADDR as IKE daemons set it; a socket
// that holds the port without it still makes bind fail.
UniqueFd open_ike_socket(const SocketAddress& address) {
  UniqueFd fd(::socket(address.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP));
  if (!fd.valid()) throw_errno("socket", "IKE " + address.to_string());
  if (address.family() == AF_INET6) set_int(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY");
  set_int(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &kIkeReceiveBuffer, sizeof kIkeReceiveBuffer) < 0) {
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &kIkeReceiveBuffer, sizeof kIkeReceiveBuffer);
  }
  if (::bind(fd.get(), address.get(), address.length) < 0) throw_errno("bind", "IKE " + address.to_string());
  return fd;
}

}  // namespace

void ControlChannel::open(std::shared_ptr<ControlSink> sink, ControlChannelOptions options) {
  std::lock_guard<std::mutex> state(state_mutex_);
  if (state_ == State::open) throw InvalidState("the control channel is already open");
  if (state_ == State::closed) throw InvalidState("the control channel was closed (it opens once)");
  if (!sink) throw InvalidArgument("the control channel needs a sink");
  UniqueFd ike, stop;
  if (options.ike_port != 0) {
    run_in_netns(options.netns, [&] { ike = open_ike_socket(options.local.with_port(options.ike_port)); });
    stop.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!stop.valid()) throw_errno("eventfd", "control channel");
  }
  // Nothing failed: from here on the channel is open.
  {
    std::lock_guard<std::mutex> lock(sink_mutex_);
    sink_ = std::move(sink);
  }
  family_ = options.local.family();
  data_port_ = options.data_socket.valid() ? options.local.port() : 0;
  data_socket_ = std::move(options.data_socket);
  ike_port_ = options.ike_port;
  ike_socket_ = std::move(ike);
  stop_fd_ = std::move(stop);
  state_ = State::open;
  open_.store(true, std::memory_order_relaxed);
  if (!ike_socket_.valid()) return;
  try {
    reader_ = std::thread([this] { read_ike(); });
  } catch (...) {
    close_locked();
    throw;
  }
}

ControlChannel::Handoff ControlChannel::deliver(uint16_t local_port, const sockaddr* source, const uint8_t* data,
                                                size_t length) {
  if (!is_open()) return Handoff::closed;
  return hand_over(local_port, source, data, length);
}

ControlChannel::Handoff ControlChannel::hand_over(uint16_t local_port, const sockaddr* source, const uint8_t* data,
                                                  size_t length) {
  std::lock_guard<std::mutex> lock(sink_mutex_);
  if (!sink_) return Handoff::closed;
  return sink_->deliver(local_port, source, data, length) ? Handoff::delivered : Handoff::queue_full;
}

void ControlChannel::send(uint16_t local_port, const SocketAddress& to, const uint8_t* data, size_t length) {
  std::lock_guard<std::mutex> state(state_mutex_);
  if (state_ != State::open) throw InvalidState("the control channel is not open");
  if (length > kMaxControlDatagram - kNonEspMarkerSize) {
    throw InvalidArgument("a control message is at most 65532 bytes");
  }
  if (to.family() != family_) {
    throw InvalidArgument("control message to " + to.to_string() + ": not the underlay's address family");
  }
  static const uint8_t marker[kNonEspMarkerSize] = {};
  iovec parts[2];
  msghdr message{};
  message.msg_name = const_cast<sockaddr*>(to.get());
  message.msg_namelen = to.length;
  message.msg_iov = parts;
  int fd;
  if (local_port != 0 && local_port == data_port_) {
    fd = data_socket_.get();
    parts[0] = iovec{const_cast<uint8_t*>(marker), kNonEspMarkerSize};
    parts[1] = iovec{const_cast<uint8_t*>(data), length};
    message.msg_iovlen = 2;
  } else if (local_port != 0 && local_port == ike_port_) {
    fd = ike_socket_.get();
    parts[0] = iovec{const_cast<uint8_t*>(data), length};
    message.msg_iovlen = 1;
  } else {
    throw InvalidArgument("the control channel has no socket on port " + std::to_string(local_port));
  }
  // The data socket hears ICMP errors (underlay/socket_errors.h): one that came back for an
  // earlier datagram is handed to whichever call comes next, and is no failure of this one. The
  // worker reads that socket's error queue and counts them; while it holds one, try again.
  ssize_t sent;
  int reported = 0;
  do {
    sent = ::sendmsg(fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (sent < 0 && (errno == EINTR || (is_reported_icmp_error(errno) && has_queued_errors(fd) &&
                                           ++reported <= kPendingErrorRetries)));
  // ENOBUFS: the egress queue refused it; to the caller that is a full queue, like EAGAIN.
  if (sent < 0 && errno == ENOBUFS) errno = EAGAIN;
  if (sent < 0) throw_errno("sendmsg", "control message to " + to.to_string());
  stats_.add(kControlTx);
}

void ControlChannel::close() {
  std::lock_guard<std::mutex> state(state_mutex_);
  close_locked();
}

void ControlChannel::close_locked() {
  if (state_ != State::open) return;
  state_ = State::closed;
  open_.store(false, std::memory_order_relaxed);
  {
    // Waits for a delivery under way: once this returns, nobody calls the sink again.
    std::lock_guard<std::mutex> lock(sink_mutex_);
    sink_.reset();
  }
  if (reader_.joinable()) {
    const uint64_t one = 1;
    (void)!::write(stop_fd_.get(), &one, sizeof one);
    reader_.join();
  }
  ike_socket_.reset();
  data_socket_.reset();
  stop_fd_.reset();
}

void ControlChannel::read_ike() {
  // Signals belong to Node's main thread.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  pthread_setname_np(pthread_self(), "ovl-control");
  // It reads datagrams from hosts that are no peer yet, and needs nothing for that: it holds
  // nothing, as a worker (restrict_other_threads cannot ask a thread that blocks its signal).
  drop_worker_privileges();
  std::vector<uint8_t> buffer(kMaxControlDatagram);
  pollfd fds[2] = {{ike_socket_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
  for (;;) {
    const int ready = ::poll(fds, 2, -1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0 || fds[1].revents != 0 || (fds[0].revents & POLLNVAL)) return;
    if (fds[0].revents != 0) receive_ike(buffer.data());
  }
}

// Whatever reaches the IKE port is passed up, from any sender (a responder hears initiators it
// has never met): only what cannot be an IKE message stays behind, counted.
void ControlChannel::receive_ike(uint8_t* buffer) {
  for (int i = 0; i < kReadsPerWakeup; i++) {
    sockaddr_storage source{};
    socklen_t source_length = sizeof source;
    // MSG_TRUNC: the datagram's real length, so that one too large is seen as such.
    const ssize_t length = ::recvfrom(ike_socket_.get(), buffer, kMaxControlDatagram, MSG_DONTWAIT | MSG_TRUNC,
                                      reinterpret_cast<sockaddr*>(&source), &source_length);
    if (length < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) stats_.add(kDropSocketError);
      return;
    }
    if (static_cast<size_t>(length) > kMaxControlDatagram) {
      stats_.add(kDropTooBig);
      continue;
    }
    if (static_cast<size_t>(length) < kIkeHeaderSize) {
      stats_.add(kDropMalformed);
      continue;
    }
    switch (hand_over(ike_port_, reinterpret_cast<const sockaddr*>(&source), buffer, static_cast<size_t>(length))) {
      case Handoff::delivered: stats_.add(kControlRx); break;
      case Handoff::queue_full: stats_.add(kDropControlQueueFull); break;
      case Handoff::closed: return;
    }
  }
}

}  // namespace ovl
