#include "underlay/raw_link.h"

#include <netinet/in.h>

#include <cstring>

namespace ovl {

RawLink::RawLink(UnderlaySockets sockets, const SocketAddress& local, int stop_fd, size_t max_datagrams,
                 size_t batch_size)
    : UnderlayLink(std::move(sockets), local, stop_fd, max_datagrams, batch_size), outer_headers_(max_datagrams) {}

// Each message is the outer IP header we write (the socket includes headers) followed by the
// encapsulated buffer, which head-end replication shares between peers, and its tail (a
// segment's payload, where it lies in the device read).
size_t RawLink::build_messages(const Datagram* run, size_t count) {
  for (size_t i = 0; i < count; i++) {
    const Datagram& datagram = run[i];
    const uint32_t length = datagram.buffer->wire_length();
    uint8_t* header = outer_headers_[i].data();
    uint32_t header_length;
    if (ipv6_) {
      header_length = kOuterIpv6HeaderSize;
      ipv6_outer_encode(header, reinterpret_cast<const sockaddr_in6*>(local_.get())->sin6_addr.s6_addr,
                        reinterpret_cast<const sockaddr_in6*>(datagram.to->get())->sin6_addr.s6_addr,
                        datagram.protocol, static_cast<uint16_t>(length), datagram.outer.tos, datagram.outer.ttl,
                        datagram.flow_label);
    } else {
      header_length = kOuterIpv4HeaderSize;
      // Identification 0: the kernel picks one for a header-including socket.
      ipv4_outer_encode(header, reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(local_.get())->sin_addr),
                        reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(datagram.to->get())->sin_addr),
                        datagram.protocol, static_cast<uint16_t>(kOuterIpv4HeaderSize + length), datagram.outer.tos,
                        datagram.outer.ttl, datagram.outer.dont_fragment, 0);
    }
    iovec* parts = &iovecs_[kMaxIovecsPerDatagram * i];
    parts[0] = iovec{header, header_length};
    size_t used = 1 + datagram_iovecs(*datagram.buffer, parts + 1);
    msghdr& message = messages_[i].msg_hdr;
    message = msghdr{};
    message.msg_name = const_cast<sockaddr*>(datagram.to->get());
    message.msg_namelen = datagram.to->length;
    message.msg_iov = parts;
    message.msg_iovlen = used;
    first_[i] = static_cast<uint32_t>(i);
    count_[i] = 1;
  }
  return count;
}

// What an IPv4 raw socket delivers starts with the outer IP header: checked and stripped here.
// (The kernel validated its checksum and reassembled fragments; a raw socket sees whole
// packets.) IPv6 raw sockets deliver the payload alone, with the traffic class as a control
// message.
int RawLink::receive(size_t receiver, PacketBuffer* buffers, uint32_t count, ReceivedDatagram* out) {
  const uint8_t protocol = receiver_protocols_[receiver];
  const int received = receive_batch(receiver, buffers, count, ipv6_);
  for (int i = 0; i < received; i++) {
    const msghdr& message = receive_messages_[static_cast<size_t>(i)].msg_hdr;
    PacketBuffer& buffer = buffers[i];
    ReceivedDatagram& datagram = out[i];
    datagram = ReceivedDatagram{};
    datagram.source = static_cast<const sockaddr*>(message.msg_name);
    datagram.truncated = (message.msg_flags & MSG_TRUNC) != 0;
    datagram.outer.protocol = protocol;
    if (ipv6_) {
      for (cmsghdr* control = CMSG_FIRSTHDR(&message); control;
           control = CMSG_NXTHDR(const_cast<msghdr*>(&message), control)) {
        if (control->cmsg_level == IPPROTO_IPV6 && control->cmsg_type == IPV6_TCLASS) {
          int traffic_class;
          std::memcpy(&traffic_class, CMSG_DATA(control), sizeof traffic_class);
          datagram.outer.ecn = static_cast<uint8_t>(traffic_class & 3);
          datagram.outer.ecn_known = true;
        }
      }
    } else if (!datagram.truncated) {
      OuterIpv4 decoded;
      if (ipv4_outer_decode(buffer.data(), buffer.length, protocol, &decoded) != OuterStatus::ok) {
        datagram.outer_check = Verdict::drop(kDropMalformed);
      } else {
        datagram.outer.ecn = decoded.ecn;
        datagram.outer.ecn_known = true;
        buffer.pull_front(decoded.payload_offset);
        buffer.length = decoded.payload_length;
      }
    }
    datagram.segment = buffer.length;
    datagram.datagrams = 1;
  }
  return received;
}

}  // namespace ovl
