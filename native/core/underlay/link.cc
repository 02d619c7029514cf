#include "underlay/link.h"

#include <linux/sock_diag.h>
#include <poll.h>

#include <cerrno>

#include "system/clock.h"
#include "underlay/raw_link.h"
#include "underlay/udp_link.h"

namespace ovl {

namespace {

// How long a full socket buffer may hold the worker before the rest of a batch is dropped.
constexpr int kWritableTimeoutMs = 100;

}  // namespace

UnderlayLink::UnderlayLink(UnderlaySockets sockets, const SocketAddress& local, int stop_fd, size_t max_datagrams,
                           size_t batch_size)
    : receivers_(std::move(sockets.receivers)),
      receiver_protocols_(std::move(sockets.receiver_protocols)),
      stranger_(sockets.stranger),
      senders_(std::move(sockets.senders)),
      local_(local),
      ipv6_(local.family() == AF_INET6),
      stop_fd_(stop_fd),
      messages_(max_datagrams),
      iovecs_(kMaxIovecsPerDatagram * max_datagrams),
      first_(max_datagrams),
      count_(max_datagrams),
      send_controls_(max_datagrams),
      receive_messages_(batch_size),
      receive_iovecs_(batch_size),
      receive_sources_(batch_size),
      receive_controls_(batch_size),
      drop_counts_(receivers_.size()) {
  // Drops before we started are not ours to count (a socket is new, but say so anyway).
  for (size_t r = 0; r < receivers_.size(); r++) take_receive_overflows(r);
  for (const UniqueFd& sender : senders_) {
    // UDP only: a raw socket reports its protocol number where a port would be.
    int type = 0;
    socklen_t type_length = sizeof type;
    SocketAddress bound;
    bound.length = sizeof bound.storage;
    const bool udp = ::getsockopt(sender.get(), SOL_SOCKET, SO_TYPE, &type, &type_length) == 0 && type == SOCK_DGRAM &&
                     ::getsockname(sender.get(), bound.get(), &bound.length) == 0;
    sender_ports_.push_back(udp ? bound.port() : 0);
  }
}

void UnderlayLink::send(uint32_t socket, const Datagram* run, size_t count, SendReport& report) {
  const int fd = senders_[socket].get();
  const size_t messages = build_messages(run, count);
  size_t done = 0;
  size_t retried = SIZE_MAX;  // the message calls were repeated for (socket_errors.h), and how often
  int retries = 0;
  while (done < messages) {
    const int sent = ::sendmmsg(fd, &messages_[done], static_cast<unsigned>(messages - done), 0);
    if (sent > 0) {
      for (size_t m = done; m < done + static_cast<size_t>(sent); m++) {
        if (count_[m] > 1) report.train_sent(count_[m]);
        for (uint32_t k = first_[m]; k < first_[m] + count_[m]; k++) report.sent(run[k]);
      }
      done += static_cast<size_t>(sent);
      continue;
    }
    if (errno == EINTR) continue;
    // An ICMP error that came back for an earlier datagram is handed to whichever call comes
    // next: this message has not failed yet. The worker counts the error from the error queue.
    if (took_queued_error(fd, errno)) {
      if (retried != done) retried = done, retries = 0;
      if (++retries <= kPendingErrorRetries) continue;
    }
    // EAGAIN: the socket buffer is full; it drains as the device sends, so wait a little.
    // ENOBUFS: the egress queue (a qdisc at its limit) refused this message; the socket is
    // writable all along, so waiting would spin: it is lost, the next may fit.
    if (errno == EAGAIN && wait_writable(fd)) continue;
    const uint32_t first = first_[done], datagrams = count_[done];
    if (datagrams > 1 && (errno == EIO || errno == EINVAL || errno == EMSGSIZE)) {
      // EIO: the egress device cannot checksum for GSO; this will not change, so stop asking.
      // EINVAL, EMSGSIZE: this train did not suit (a segment beyond the path MTU, which a single
      // datagram may still cross as IP fragments): send the rest singly.
      if (errno == EIO) {
        gso_ = false;
        report.offload_refused();
      }
      const bool keep = gso_;
      gso_ = false;
      send(socket, run + first, count - first, report);
      gso_ = keep;
      return;
    }
    const Counter reason = errno == EMSGSIZE                        ? kDropTooBig
                           : (errno == EAGAIN || errno == ENOBUFS) ? kDropQueueFull
                                                                    : kDropSocketError;
    if (errno == EAGAIN) {
      for (size_t k = first; k < count; k++) report.dropped(run[k], reason);
      return;
    }
    // sendmmsg reports the error of the first message it could not send: count it and go on.
    for (uint32_t k = first; k < first + datagrams; k++) report.dropped(run[k], reason);
    done++;
  }
}

bool UnderlayLink::wait_writable(int fd) {
  const uint64_t deadline = monotonic_microseconds() + kWritableTimeoutMs * 1000;
  for (;;) {
    const uint64_t now = monotonic_microseconds();
    if (now >= deadline) return false;
    pollfd fds[2] = {{fd, POLLOUT, 0}, {stop_fd_, POLLIN, 0}};
    const int ready = ::poll(fds, 2, static_cast<int>((deadline - now + 999) / 1000));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0 || (fds[1].revents & POLLIN)) return false;
    if (fds[0].revents & POLLOUT) return true;
    // POLLERR without room: ICMP errors are queued (and would keep poll from waiting). Read
    // them for the worker to count, and wait on.
    if (fds[0].revents & POLLERR) {
      read_errors(fd);
      continue;
    }
    return false;
  }
}

void UnderlayLink::read_errors(int fd) {
  // Bounded: the worker takes them after each wakeup (the kernel rate-limits ICMP errors to
  // about a thousand a second); past this they are counted without their destination.
  constexpr size_t kMaxPending = 1024;
  UnderlayError errors[16];
  for (;;) {
    const size_t n = read_error_queue(fd, errors, 16);
    for (size_t i = 0; i < n; i++) {
      if (pending_errors_.size() < kMaxPending) {
        pending_errors_.push_back(errors[i]);
      } else {
        unattributed_errors_[errors[i].reason == kDropTooBig ? 1 : 0]++;
      }
    }
    if (n < 16) return;
  }
}

bool UnderlayLink::took_queued_error(int fd, int error) {
  if (!is_reported_icmp_error(error) || !has_queued_errors(fd)) return false;
  read_errors(fd);
  return true;
}

uint64_t UnderlayLink::take_receive_overflows(size_t receiver) {
  uint32_t meminfo[SK_MEMINFO_VARS] = {};
  socklen_t length = sizeof meminfo;
  if (::getsockopt(receivers_[receiver].get(), SOL_SOCKET, SO_MEMINFO, meminfo, &length) != 0 ||
      length <= SK_MEMINFO_DROPS * sizeof(uint32_t)) {
    return 0;
  }
  const uint32_t dropped = meminfo[SK_MEMINFO_DROPS];
  const uint32_t taken = drop_counts_[receiver];
  drop_counts_[receiver] = dropped;
  return dropped - taken;  // modulo 2^32
}

int UnderlayLink::receive_batch(size_t receiver, PacketBuffer* buffers, uint32_t count, bool control) {
  const int fd = receivers_[receiver].get();
  for (uint32_t i = 0; i < count; i++) {
    PacketBuffer& buffer = buffers[i];
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
  int received = ::recvmmsg(fd, receive_messages_.data(), count, MSG_DONTWAIT, nullptr);
  // A pending ICMP error is returned in place of the datagrams waiting behind it.
  for (int retries = 0; received < 0 && retries < kPendingErrorRetries && took_queued_error(fd, errno); retries++) {
    received = ::recvmmsg(fd, receive_messages_.data(), count, MSG_DONTWAIT, nullptr);
  }
  if (received < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
  for (int i = 0; i < received; i++) buffers[i].length = receive_messages_[static_cast<size_t>(i)].msg_len;
  return received;
}

std::unique_ptr<UnderlayLink> make_underlay_link(bool over_udp, UnderlaySockets sockets, const SocketAddress& local,
                                                 int stop_fd, size_t max_datagrams, size_t batch_size, bool udp_gso) {
  if (over_udp) {
    return std::make_unique<UdpLink>(std::move(sockets), local, stop_fd, max_datagrams, batch_size, udp_gso);
  }
  return std::make_unique<RawLink>(std::move(sockets), local, stop_fd, max_datagrams, batch_size);
}

}  // namespace ovl
