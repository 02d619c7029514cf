// The underlay of the IP-protocol modes (GRE 47, IP-in-IP 4/41, ESP 50) on raw sockets
// (raw_socket.h): we write each outer IP header (TTL, DSCP, ECN, DF and the IPv6 flow label
// follow the inner packet) and check and strip the IPv4 one a raw socket delivers. No
// segmentation offload exists here: one message per packet.
#pragma once

#include <array>

#include "underlay/link.h"

namespace ovl {

class RawLink final : public UnderlayLink {
 public:
  RawLink(UnderlaySockets sockets, const SocketAddress& local, int stop_fd, size_t max_datagrams, size_t batch_size);

  int receive(size_t receiver, PacketBuffer* buffers, uint32_t count, ReceivedDatagram* out) override;

 private:
  size_t build_messages(const Datagram* datagrams, size_t count) override;

  std::vector<std::array<uint8_t, kOuterIpv6HeaderSize>> outer_headers_;  // one per message
};

}  // namespace ovl
