// UDP sockets on 127.0.0.1 for the tests that talk to the kernel on loopback (underlay/).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>

#include "base/socket_address.h"
#include "system/sys_error.h"
#include "system/unique_fd.h"

namespace ovl::test {

inline SocketAddress loopback(uint16_t port) { return *parse_socket_address("127.0.0.1", port); }

// A non-blocking UDP socket bound to 127.0.0.1:`port` (0: any free port); throws when it cannot bind.
inline UniqueFd bound_udp(uint16_t port = 0) {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  const SocketAddress address = loopback(port);
  if (::bind(fd.get(), address.get(), address.length) < 0) throw_errno("bind", "test socket");
  return fd;
}

inline uint16_t port_of(int fd) {
  sockaddr_in address{};
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  return ntohs(address.sin_port);
}

// A loopback port nobody listens on: bound once to learn a free one, then closed.
inline uint16_t free_port() { return port_of(bound_udp().get()); }

}  // namespace ovl::test
