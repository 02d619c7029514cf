#include "underlay/udp_socket.h"

#include <netinet/udp.h>
#include <sys/socket.h>

#include <cerrno>
#include <random>

#include "base/flow_hash.h"
#include "system/sys_error.h"
#include "underlay/socket_errors.h"

#ifndef UDP_NO_CHECK6_RX
#define UDP_NO_CHECK6_RX 102
#endif

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

UniqueFd open_udp(const SocketAddress& local, const UdpOptions& options) {
  UniqueFd fd(::socket(local.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP));
  if (!fd.valid()) throw_errno("socket", "UDP underlay");
  if (local.family() == AF_INET6) {
    set_int(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY");
    // Accept zero-checksum datagrams over IPv6 as tunnels may send them (RFC 6935).
    const int accept_zero = 1;
    ::setsockopt(fd.get(), IPPROTO_UDP, UDP_NO_CHECK6_RX, &accept_zero, sizeof accept_zero);
  } else if (!options.send_checksum) {
    set_int(fd.get(), SOL_SOCKET, SO_NO_CHECK, 1, "SO_NO_CHECK");
  }
  // The outer TOS / traffic class of each datagram, for RFC 6040 decapsulation.
  if (local.family() == AF_INET6) {
    set_int(fd.get(), IPPROTO_IPV6, IPV6_RECVTCLASS, 1, "IPV6_RECVTCLASS");
  } else {
    set_int(fd.get(), IPPROTO_IP, IP_RECVTOS, 1, "IP_RECVTOS");
  }
  // ICMP errors about what we send (a peer's port unreachable, a router's next hop too small)
  // are read and counted per peer by the worker.
  enable_error_queue(fd.get(), local.family());
  size_buffer(fd.get(), SO_RCVBUFFORCE, SO_RCVBUF, options.receive_buffer);
  size_buffer(fd.get(), SO_SNDBUFFORCE, SO_SNDBUF, options.send_buffer);
  return fd;
}

}  // namespace

bool probe_udp_gso(int fd) {
  // A socket-wide segment size of 0 means "per message": a harmless setting that only a
  // kernel with UDP_SEGMENT accepts.
  const int none = 0;
  return ::setsockopt(fd, SOL_UDP, UDP_SEGMENT, &none, sizeof none) == 0;
}

bool set_udp_gro(int fd, bool on) {
  const int value = on ? 1 : 0;
  return ::setsockopt(fd, SOL_UDP, UDP_GRO, &value, sizeof value) == 0;
}

std::vector<UniqueFd> open_listening_sockets(const SocketAddress& local, size_t count, const UdpOptions& options,
                                             int stranger_buffer) {
  {
    // A socket of somebody else's that also set SO_REUSEPORT would silently share our
    // traffic; binding once without it proves the port is free.
    UniqueFd probe = open_udp(local, options);
    if (::bind(probe.get(), local.get(), local.length) < 0) throw_errno("bind", local.to_string());
  }
  // The group's order is the order of binding: a reuseport program's index names a socket by it.
  const size_t total = count + (stranger_buffer > 0 ? 1 : 0);
  std::vector<UniqueFd> sockets;
  for (size_t i = 0; i < total; i++) {
    UdpOptions own = options;
    if (i == count) own.receive_buffer = stranger_buffer;
    UniqueFd fd = open_udp(local, own);
    if (total > 1) set_int(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT");
    if (::bind(fd.get(), local.get(), local.length) < 0) throw_errno("bind", local.to_string());
    sockets.push_back(std::move(fd));
  }
  return sockets;
}

std::vector<UniqueFd> open_entropy_sockets(const SocketAddress& local, size_t count, const UdpOptions& options) {
  std::vector<UniqueFd> sockets;
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> port_in_range(kEntropyPortLow, kEntropyPortHigh);
  int attempts = 0;
  while (sockets.size() < count) {
    const auto port = static_cast<uint16_t>(port_in_range(random));
    const SocketAddress address = local.with_port(port);
    UniqueFd fd = open_udp(local, options);
    if (::bind(fd.get(), address.get(), address.length) == 0) {
      sockets.push_back(std::move(fd));
      continue;
    }
    if (errno != EADDRINUSE || ++attempts > 1000) throw_errno("bind", address.to_string());
  }
  return sockets;
}

}  // namespace ovl
