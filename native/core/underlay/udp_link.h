// The underlay of the UDP modes: a listener of the worker's SO_REUSEPORT group and the
// entropy-port senders (udp_socket.h). Consecutive same-size datagrams to one peer leave as one
// UDP_SEGMENT train; received UDP_GRO batches are described by their segment size; the outer
// TOS / traffic class goes out per message and is read back per datagram (RFC 6040).
#pragma once

#include "underlay/link.h"

namespace ovl {

// UDP_SEGMENT limits: the kernel's UDP_MAX_SEGMENTS (64 on older kernels) and one IP datagram.
constexpr size_t kMaxTrainSegments = 64;
constexpr size_t kMaxTrainBytes = 65000;

// How many datagrams of `datagram_bytes` one UDP_SEGMENT send carries at most.
constexpr uint32_t datagrams_per_train(uint32_t datagram_bytes) {
  const size_t fit = datagram_bytes == 0 ? kMaxTrainSegments : kMaxTrainBytes / datagram_bytes;
  return static_cast<uint32_t>(fit < kMaxTrainSegments ? fit : kMaxTrainSegments);
}

class UdpLink final : public UnderlayLink {
 public:
  UdpLink(UnderlaySockets sockets, const SocketAddress& local, int stop_fd, size_t max_datagrams, size_t batch_size,
          bool gso);

  int receive(size_t receiver, PacketBuffer* buffers, uint32_t count, ReceivedDatagram* out) override;

 private:
  size_t build_messages(const Datagram* datagrams, size_t count) override;
};

}  // namespace ovl
