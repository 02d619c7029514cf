#include "underlay/raw_socket.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <string>

#include "system/sys_error.h"
#include "underlay/socket_errors.h"

namespace ovl {

namespace {

void set_int(int fd, int level, int option, int value, const char* name) {
  if (::setsockopt(fd, level, option, &value, sizeof value) < 0) throw_errno(std::string("setsockopt(") + name + ")");
}

// Privileged callers may exceed net.core.{r,w}mem_max; others get what the limit allows.
void size_buffer(int fd, int force_option, int option, int bytes) {
  if (::setsockopt(fd, SOL_SOCKET, force_option, &bytes, sizeof bytes) == 0) return;
  ::setsockopt(fd, SOL_SOCKET, option, &bytes, sizeof bytes);
}

// Bound to the underlay address, so that only packets addressed to it arrive (and a socket
// on an address this host does not have fails here, at setup, not silently later).
void bind_address(int fd, const SocketAddress& local) {
  SocketAddress address = local;
  if (address.family() == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&address.storage)->sin_port = 0;
  } else {
    reinterpret_cast<sockaddr_in6*>(&address.storage)->sin6_port = 0;
  }
  if (::bind(fd, address.get(), address.length) < 0) throw_errno("bind", "raw underlay " + local.to_string());
}

}  // namespace

UniqueFd open_raw_receiver(const SocketAddress& local, uint8_t protocol, int receive_buffer) {
  UniqueFd fd(::socket(local.family(), SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol));
  if (!fd.valid()) throw_errno("socket", "raw IP protocol " + std::to_string(protocol));
  if (local.family() == AF_INET6) set_int(fd.get(), IPPROTO_IPV6, IPV6_RECVTCLASS, 1, "IPV6_RECVTCLASS");
  bind_address(fd.get(), local);
  // The kernel hands ICMP errors about this protocol to its raw sockets (not to the sender):
  // queued, the worker counts them per peer; unqueued, each would fail the next receive.
  enable_error_queue(fd.get(), local.family());
  size_buffer(fd.get(), SO_RCVBUFFORCE, SO_RCVBUF, receive_buffer);
  return fd;
}

UniqueFd open_raw_sender(const SocketAddress& local, int send_buffer) {
  UniqueFd fd(::socket(local.family(), SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW));
  if (!fd.valid()) throw_errno("socket", "raw IP sender");
  size_buffer(fd.get(), SO_SNDBUFFORCE, SO_SNDBUF, send_buffer);
  // No ICMP error ever reaches an IPPROTO_RAW socket, but with IP_RECVERR a datagram the egress
  // queue refuses fails the send (ENOBUFS, counted queueFull) instead of passing for sent.
  enable_error_queue(fd.get(), local.family());
  // An IPPROTO_RAW socket never receives; the smallest buffer keeps that cheap.
  const int smallest = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &smallest, sizeof smallest);
  return fd;
}

}  // namespace ovl
