// Underlay UDP sockets. One listening socket per worker (an SO_REUSEPORT group when there are
// several workers) receives on the mode's port; a small set of sending sockets per worker,
// bound to ports in 49152-65535, carries the inner flow's entropy in the source port
// (a UDP socket cannot choose its source port per datagram).
#pragma once

#include <cstdint>
#include <vector>

#include "base/socket_address.h"
#include "system/unique_fd.h"

namespace ovl {

struct UdpOptions {
  bool send_checksum = false;  // IPv4 only: false sends checksum 0 (SO_NO_CHECK), as Linux VXLAN does
  int receive_buffer = 8 << 20;
  int send_buffer = 4 << 20;
};

// Kernel support, probed on real sockets: UDP_SEGMENT (GSO, Linux 4.18) and UDP_GRO (5.0).
bool probe_udp_gso(int fd);
// Turns UDP_GRO on or off; false where the kernel refuses.
bool set_udp_gro(int fd, bool on);

// `count` sockets of one SO_REUSEPORT group on `local` (one without SO_REUSEPORT when count is 1
// and `stranger_buffer` is 0); with `stranger_buffer` > 0, one more bound last, with that receive
// buffer: the stranger socket of source_steering.h, index `count` in the group. Fails with
// EADDRINUSE when anything but our own group holds the port.
std::vector<UniqueFd> open_listening_sockets(const SocketAddress& local, size_t count, const UdpOptions& options,
                                             int stranger_buffer = 0);

// `count` sockets on distinct ports from [49152, 65535], picked at random, skipping busy ones.
std::vector<UniqueFd> open_entropy_sockets(const SocketAddress& local, size_t count, const UdpOptions& options);

}  // namespace ovl
