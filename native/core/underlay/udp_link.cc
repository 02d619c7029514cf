#include "underlay/udp_link.h"

#include <netinet/in.h>
#include <netinet/udp.h>

#include <cstring>

namespace ovl {

UdpLink::UdpLink(UnderlaySockets sockets, const SocketAddress& local, int stop_fd, size_t max_datagrams,
                 size_t batch_size, bool gso)
    : UnderlayLink(std::move(sockets), local, stop_fd, max_datagrams, batch_size) {
  gso_ = gso;
}

// With GSO, consecutive datagrams to one peer form a train that the kernel splits at the first
// datagram's size: every datagram but the last must have exactly that size, and the last may be
// shorter. A train shares one outer TOS: a different one starts a new message.
// A datagram whose payload stays in the device read (a segment's tail) is two iovecs, its
// headers and its payload: a train of them is [headers 1, payload 1, headers 2, payload 2, ...],
// which the kernel copies once into the train's skb and splits at the segment size.
size_t UdpLink::build_messages(const Datagram* run, size_t count) {
  size_t messages = 0;
  size_t parts = 0;  // iovecs used
  for (size_t i = 0; i < count;) {
    const uint32_t segment = run[i].buffer->wire_length();
    size_t end = i + 1;
    size_t bytes = segment;
    if (gso_) {
      while (end < count && run[end].to == run[i].to && end - i < kMaxTrainSegments &&
             run[end].outer.tos == run[i].outer.tos && run[end - 1].buffer->wire_length() == segment &&
             run[end].buffer->wire_length() <= segment && bytes + run[end].buffer->wire_length() <= kMaxTrainBytes) {
        bytes += run[end].buffer->wire_length();
        end++;
      }
    }
    iovec* first_part = &iovecs_[parts];
    for (size_t k = i; k < end; k++) parts += datagram_iovecs(*run[k].buffer, &iovecs_[parts]);
    msghdr& header = messages_[messages].msg_hdr;
    header = msghdr{};
    header.msg_name = const_cast<sockaddr*>(run[i].to->get());
    header.msg_namelen = run[i].to->length;
    header.msg_iov = first_part;
    header.msg_iovlen = static_cast<size_t>(&iovecs_[parts] - first_part);
    const bool train = end - i > 1;
    const int tos = run[i].outer.tos;
    if (train || tos != 0) {
      header.msg_control = send_controls_[messages].bytes;
      header.msg_controllen = (train ? CMSG_SPACE(sizeof(uint16_t)) : 0) + (tos != 0 ? CMSG_SPACE(sizeof(int)) : 0);
      cmsghdr* control = CMSG_FIRSTHDR(&header);
      if (train) {
        control->cmsg_level = SOL_UDP;
        control->cmsg_type = UDP_SEGMENT;
        control->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        const auto size = static_cast<uint16_t>(segment);
        std::memcpy(CMSG_DATA(control), &size, sizeof size);
        control = CMSG_NXTHDR(&header, control);
      }
      if (tos != 0) {
        control->cmsg_level = ipv6_ ? IPPROTO_IPV6 : IPPROTO_IP;
        control->cmsg_type = ipv6_ ? IPV6_TCLASS : IP_TOS;
        control->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(control), &tos, sizeof tos);
      }
    }
    first_[messages] = static_cast<uint32_t>(i);
    count_[messages] = static_cast<uint32_t>(end - i);
    messages++;
    i = end;
  }
  return messages;
}

int UdpLink::receive(size_t receiver, PacketBuffer* buffers, uint32_t count, ReceivedDatagram* out) {
  const int received = receive_batch(receiver, buffers, count, true);
  for (int i = 0; i < received; i++) {
    const msghdr& message = receive_messages_[static_cast<size_t>(i)].msg_hdr;
    ReceivedDatagram& datagram = out[i];
    datagram = ReceivedDatagram{};
    datagram.source = static_cast<const sockaddr*>(message.msg_name);
    datagram.truncated = (message.msg_flags & MSG_TRUNC) != 0;
    const uint32_t length = buffers[i].length;
    uint32_t segment = length;
    // The outer ECN of a GRO batch is every datagram's: GRO merges only equal TOS.
    for (cmsghdr* control = CMSG_FIRSTHDR(&message); control;
         control = CMSG_NXTHDR(const_cast<msghdr*>(&message), control)) {
      if (control->cmsg_level == SOL_UDP && control->cmsg_type == UDP_GRO) {
        int size;
        std::memcpy(&size, CMSG_DATA(control), sizeof size);
        if (size > 0) segment = static_cast<uint32_t>(size);
      } else if (control->cmsg_level == IPPROTO_IP && control->cmsg_type == IP_TOS) {
        datagram.outer.ecn = *CMSG_DATA(control) & 3;  // one byte
        datagram.outer.ecn_known = true;
      } else if (control->cmsg_level == IPPROTO_IPV6 && control->cmsg_type == IPV6_TCLASS) {
        int traffic_class;
        std::memcpy(&traffic_class, CMSG_DATA(control), sizeof traffic_class);
        datagram.outer.ecn = static_cast<uint8_t>(traffic_class & 3);
        datagram.outer.ecn_known = true;
      }
    }
    datagram.segment = segment;
    datagram.datagrams = segment == 0 ? 1 : (length + segment - 1) / segment;
  }
  return received;
}

}  // namespace ovl
