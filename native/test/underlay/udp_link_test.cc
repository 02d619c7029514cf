// The UDP link against the kernel on loopback: what the kernel drops for a full receive buffer
// (a worker that did not read in time) is the socket's own count (SO_MEMINFO), handed out once:
// with what was read, it adds up to what was sent.
#include "underlay/udp_link.h"

#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <vector>

#include "base/packet_buffer.h"
#include "underlay/udp_socket.h"
#include "loopback_udp.h"
#include "test.h"

using namespace ovl;
using namespace ovl::test;

TEST(udp_link_counts_what_the_kernel_dropped_for_a_full_receive_buffer) {
  UdpOptions options;
  options.receive_buffer = 4096;  // the kernel's minimum is about 2 KiB: a few datagrams fit
  std::vector<UniqueFd> listeners = open_listening_sockets(loopback(0), 1, options);
  const SocketAddress bound = loopback(port_of(listeners[0].get()));
  UniqueFd sender(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  UniqueFd stop(::eventfd(0, EFD_CLOEXEC));
  UnderlaySockets sockets;
  sockets.receivers.push_back(std::move(listeners[0]));
  sockets.receiver_protocols.push_back(0);
  UdpLink link(std::move(sockets), bound, stop.get(), 64, 64, /*gso=*/false);

  // 200 datagrams nobody reads: the buffer takes a few, the kernel drops the rest.
  const std::vector<uint8_t> payload(200, 0x5a);
  for (int i = 0; i < 200; i++) {
    ::sendto(sender.get(), payload.data(), payload.size(), 0, bound.get(), bound.length);
  }
  BufferPool buffers(64, 2048);
  std::vector<ReceivedDatagram> received(64);
  int total = 0;
  for (int n; (n = link.receive(0, &buffers[0], 64, received.data())) > 0;) total += n;
  CHECK(total > 0);
  CHECK(total < 200);
  const uint64_t dropped = link.take_receive_overflows(0);
  CHECK_EQ(dropped + static_cast<uint64_t>(total), uint64_t{200});
  // Taken once.
  CHECK_EQ(link.take_receive_overflows(0), uint64_t{0});
}
