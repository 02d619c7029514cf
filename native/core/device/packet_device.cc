#include "device/packet_device.h"

// glibc's net/if.h must come before the kernel's headers, which then step aside.
#include <net/if.h>
#include <net/if_arp.h>
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "system/link_config.h"
#include "offload/offload_segment.h"
#include "base/socket_address.h"
#include "system/sys_error.h"

// Notes on the kernel side (net/packet/af_packet.c, net/core/dev.c), which decided the design:
//
// - Outgoing frames reach packet sockets through dev_queue_xmit_nit(), which skips a hook with
//   ignore_outgoing set and the hook of the socket (or fanout group, by id_match) that sent the
//   frame. A fanout group registers ONE hook for all its sockets, so PACKET_IGNORE_OUTGOING on
//   the member sockets has no effect there: the group needs PACKET_FANOUT_FLAG_IGNORE_OUTGOING.
//   Measured here: a 2-socket group with the per-socket option still read the local stack's
//   outgoing frames; with the fanout flag it read none. With PACKET_QDISC_BYPASS our own frames
//   go out through dev_direct_xmit() and never pass dev_queue_xmit_nit() at all (so tcpdump on
//   the interface does not show them either; capture on the far side of the segment instead).
// - PACKET_FANOUT_FLAG_DEFRAG is NOT used: it reassembles IP fragments before the fanout
//   (ip_check_defrag), so the socket receives one oversized datagram instead of the fragments
//   (measured: a 4000-byte ping over a 1500-byte link read as one 4042-byte frame), which a
//   gateway can neither encapsulate within the underlay MTU nor write back to a segment. Without
//   it all fragments of a datagram still land on one socket: the flow hash of a fragment is
//   taken from the addresses only (the flow dissector stops before the ports of fragments).
// - With PACKET_VNET_HDR, packet_rcv() fills the header with virtio_net_hdr_from_skb(): GSO
//   TCPv4/TCPv6 (ECN) and UDP_L4 super-frames, NEEDS_CSUM with csum_start from the MAC header,
//   DATA_VALID for verified checksums. GSO kinds the header cannot express (tunnel GSO, e.g. a
//   VXLAN device on a host of the segment sending through it with offloads on) make the kernel
//   drop the frame (counted in PACKET_STATISTICS tp_drops, not by us). Measured over veth (GRO
//   off, the veth default): a local TCP sender behind the veth hands 64 KB TCPV4 super-frames with
//   NEEDS_CSUM; without the header the same frames read as 65226-byte frames with
//   TP_STATUS_CSUMNOTREADY.
// - packet_snd() with a vnet header accepts GSO frames beyond the MTU (the device or the stack
//   segments them); frames without GSO must fit the MTU (+ a VLAN header).
// - The receive path (__netif_receive_skb_core) untags a VLAN frame (skb_vlan_untag) before any
//   packet socket sees it; the tag is only in PACKET_AUXDATA (tp_vlan_tci, tp_vlan_tpid).
// - Binding to an interface that is down leaves ENETDOWN pending on the socket, and so does the
//   interface going down later (the hook is re-registered when it comes up again).

#ifndef PACKET_FANOUT_FLAG_IGNORE_OUTGOING
#define PACKET_FANOUT_FLAG_IGNORE_OUTGOING 0x4000
#endif

namespace ovl {

namespace {

constexpr int kReceiveBuffer = 16 << 20;  // a 64 KB super-frame costs about 128 KB of it
constexpr int kSendBuffer = 4 << 20;
constexpr uint32_t kVlanTagSize = 4;

void set_int_option(int fd, int level, int name, int value, const char* option, const std::string& interface) {
  if (::setsockopt(fd, level, name, &value, sizeof value) < 0) {
    throw_errno(std::string("setsockopt(") + option + ")", "packet socket on " + interface);
  }
}

bool try_int_option(int fd, int level, int name, int value) {
  return ::setsockopt(fd, level, name, &value, sizeof value) == 0;
}

// The FORCE variants pass rmem_max/wmem_max with CAP_NET_ADMIN; without it the plain ones get
// what the limits allow.
void set_buffer_sizes(int fd) {
  if (!try_int_option(fd, SOL_SOCKET, SO_RCVBUFFORCE, kReceiveBuffer)) try_int_option(fd, SOL_SOCKET, SO_RCVBUF, kReceiveBuffer);
  if (!try_int_option(fd, SOL_SOCKET, SO_SNDBUFFORCE, kSendBuffer)) try_int_option(fd, SOL_SOCKET, SO_SNDBUF, kSendBuffer);
}

// Drops outgoing frames (whatever the kernel's ignore-outgoing options did), frames for the
// interface's own MAC (the gateway host's own traffic), and tagged frames unless we can put
// their tags back. Accepts everything else whole.
void attach_filter(int fd, bool vlan_tags, const std::string& interface) {
  std::vector<sock_filter> code;
  std::vector<size_t> to_drop;  // conditional jumps whose true branch is the drop
  code.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_PKTTYPE)));
  to_drop.push_back(code.size());
  code.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PACKET_OUTGOING, 0, 0));
  to_drop.push_back(code.size());
  code.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PACKET_HOST, 0, 0));
  if (!vlan_tags) {
    code.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT)));
    to_drop.push_back(code.size());
    code.push_back(BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, 0, 0, 0));
  }
  code.push_back(BPF_STMT(BPF_RET | BPF_K, 0xFFFFFFFFu));  // accept, whole
  const size_t drop = code.size();
  code.push_back(BPF_STMT(BPF_RET | BPF_K, 0));
  for (size_t at : to_drop) code[at].jt = static_cast<uint8_t>(drop - at - 1);
  sock_fprog program{static_cast<unsigned short>(code.size()), code.data()};
  if (::setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program) < 0) {
    throw_errno("setsockopt(SO_ATTACH_FILTER)", "packet socket on " + interface);
  }
}

// True if `interface` holds `address` (the underlay): bridging it would feed the overlay's own
// encapsulated packets back into the overlay.
bool interface_holds(const std::string& interface, const std::string& address) {
  const auto wanted = parse_socket_address(address, 0);
  if (!wanted) return false;
  const AddressKey key = address_key(wanted->get());
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) < 0) throw_errno("getifaddrs");
  bool holds = false;
  for (ifaddrs* it = list; it && !holds; it = it->ifa_next) {
    holds = it->ifa_addr && (it->ifa_addr->sa_family == AF_INET || it->ifa_addr->sa_family == AF_INET6) &&
            interface == it->ifa_name && address_key(it->ifa_addr) == key;
  }
  ::freeifaddrs(list);
  return holds;
}

}  // namespace

PacketDevice PacketDevice::open(const std::string& interface, int queues, bool vnet_header, bool vlan_tags,
                                const std::string& underlay_address) {
  if (interface.empty() || interface.size() >= IFNAMSIZ) throw InvalidArgument("device.interface must be 1-15 characters");
  if (queues < 1 || queues > 64) throw InvalidArgument("a packet device needs 1-64 queues");
  const unsigned index = ::if_nametoindex(interface.c_str());
  if (index == 0) {
    const std::string detail = "no interface named " + interface + " (device.interface) in this network namespace";
    if (errno == ENODEV || errno == ENXIO) throw_errno("if_nametoindex", detail);
    throw_errno("if_nametoindex", interface);
  }
  {
    UniqueFd control(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!control.valid()) throw_errno("socket", "AF_INET control socket");
    ifreq request{};
    std::strncpy(request.ifr_name, interface.c_str(), IFNAMSIZ - 1);
    if (::ioctl(control.get(), SIOCGIFHWADDR, &request) < 0) throw_errno("ioctl(SIOCGIFHWADDR)", interface);
    if (request.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
      errno = EPROTOTYPE;
      throw_errno("ioctl(SIOCGIFHWADDR)", interface + " is not an Ethernet interface (device.type packet carries Ethernet frames)");
    }
    std::memset(&request, 0, sizeof request);
    std::strncpy(request.ifr_name, interface.c_str(), IFNAMSIZ - 1);
    if (::ioctl(control.get(), SIOCGIFFLAGS, &request) < 0) throw_errno("ioctl(SIOCGIFFLAGS)", interface);
    if (!(request.ifr_flags & IFF_UP)) {
      errno = ENETDOWN;
      throw_errno("ioctl(SIOCGIFFLAGS)", interface + " is down (overlayfwd attaches to it as it is: bring it up first)");
    }
  }
  if (!underlay_address.empty() && interface_holds(interface, underlay_address)) {
    errno = ELOOP;
    throw_errno("getifaddrs", interface + " holds the underlay address " + underlay_address +
                                  ": attaching it would send the overlay's own packets back into the overlay");
  }

  PacketDevice device;
  device.name_ = interface;
  const LinkInfo info = link_info(interface);
  device.ifindex_ = info.ifindex;
  device.mac_ = info.mac;
  device.mtu_ = info.mtu;
  device.vlan_tags_ = vlan_tags;
  device.vnet_header_ = vnet_header;
  device.kernel_ignores_outgoing_ = true;
  uint16_t fanout_id = 0;
  int fanout_flags = PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
  for (int q = 0; q < queues; q++) {
    // Protocol 0: the socket gets nothing until bind() names the interface.
    UniqueFd fd(::socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd.valid()) throw_errno("socket", "AF_PACKET for " + interface);
    if (device.vnet_header_) {
      // Probed on the first socket; a kernel without it gives plain frames (offloads.tso off).
      const bool granted = try_int_option(fd.get(), SOL_PACKET, PACKET_VNET_HDR, 1);
      if (!granted && q == 0) {
        device.vnet_header_ = false;
      } else if (!granted) {
        throw_errno("setsockopt(PACKET_VNET_HDR)", "packet socket on " + interface);
      }
    }
    set_int_option(fd.get(), SOL_PACKET, PACKET_AUXDATA, 1, "PACKET_AUXDATA", interface);
    attach_filter(fd.get(), vlan_tags, interface);
    // Sends skip the qdisc layer (Linux 3.14); without it they take the ordinary path.
    try_int_option(fd.get(), SOL_PACKET, PACKET_QDISC_BYPASS, 1);
    set_buffer_sizes(fd.get());
    if (queues == 1) {
      device.kernel_ignores_outgoing_ = try_int_option(fd.get(), SOL_PACKET, PACKET_IGNORE_OUTGOING, 1);
    }
    sockaddr_ll address{};
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(ETH_P_ALL);
    address.sll_ifindex = device.ifindex_;
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) < 0) {
      throw_errno("bind", "packet socket on " + interface);
    }
    int pending = 0;
    socklen_t pending_length = sizeof pending;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &pending, &pending_length) == 0 && pending != 0) {
      errno = pending;
      throw_errno("bind", "packet socket on " + interface);
    }
    if (queues > 1) {
      if (q == 0) {
        // The kernel picks an id no other group in this namespace uses.
        int argument = (PACKET_FANOUT_HASH | fanout_flags | PACKET_FANOUT_FLAG_UNIQUEID) << 16;
        if (::setsockopt(fd.get(), SOL_PACKET, PACKET_FANOUT, &argument, sizeof argument) < 0) {
          if (errno != EINVAL) throw_errno("setsockopt(PACKET_FANOUT)", "packet sockets on " + interface);
          // A kernel without the group flag: only the socket filter keeps outgoing frames out.
          fanout_flags = 0;
          device.kernel_ignores_outgoing_ = false;
          argument = (PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_UNIQUEID) << 16;
          if (::setsockopt(fd.get(), SOL_PACKET, PACKET_FANOUT, &argument, sizeof argument) < 0) {
            throw_errno("setsockopt(PACKET_FANOUT)", "packet sockets on " + interface);
          }
        }
        int joined = 0;
        socklen_t length = sizeof joined;
        if (::getsockopt(fd.get(), SOL_PACKET, PACKET_FANOUT, &joined, &length) < 0) {
          throw_errno("getsockopt(PACKET_FANOUT)", "packet sockets on " + interface);
        }
        fanout_id = static_cast<uint16_t>(joined & 0xffff);
      } else {
        int argument = fanout_id | ((PACKET_FANOUT_HASH | fanout_flags) << 16);
        if (::setsockopt(fd.get(), SOL_PACKET, PACKET_FANOUT, &argument, sizeof argument) < 0) {
          throw_errno("setsockopt(PACKET_FANOUT)", "packet sockets on " + interface);
        }
      }
    }
    if (q == 0) {
      // Promiscuous for as long as this socket lives: the kernel drops the membership (and the
      // interface's promiscuity count) when it closes, however the process ends.
      packet_mreq membership{};
      membership.mr_ifindex = device.ifindex_;
      membership.mr_type = PACKET_MR_PROMISC;
      if (::setsockopt(fd.get(), SOL_PACKET, PACKET_ADD_MEMBERSHIP, &membership, sizeof membership) < 0) {
        throw_errno("setsockopt(PACKET_ADD_MEMBERSHIP)", "promiscuous mode on " + interface);
      }
    }
    device.queues_.push_back(std::move(fd));
  }
  return device;
}

bool packet_socket_interface_gone(int fd) {
  int pending = 0;
  socklen_t length = sizeof pending;
  (void)::getsockopt(fd, SOL_SOCKET, SO_ERROR, &pending, &length);  // reading it clears it
  sockaddr_ll bound{};
  socklen_t bound_length = sizeof bound;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_length) < 0) return true;
  return bound.sll_ifindex <= 0;
}

// ---- batched reads ---------------------------------------------------------------------------

PacketReceiver::PacketReceiver(size_t batch_size, bool vnet_header, uint32_t max_frame)
    : vnet_header_(vnet_header),
      max_frame_(max_frame),
      messages_(batch_size),
      iovecs_(batch_size),
      controls_(batch_size) {
  static_assert(sizeof(Control::bytes) >= CMSG_SPACE(sizeof(tpacket_auxdata)), "room for PACKET_AUXDATA");
}

int PacketReceiver::receive(int fd, PacketBuffer* buffers, size_t count, PacketReceiveCounts* counts) {
  const size_t wanted = std::min(count, messages_.size());
  if (wanted == 0) return 0;
  const uint32_t vnet = vnet_header_ ? kVirtioNetHeaderSize : 0;
  for (size_t i = 0; i < wanted; i++) {
    PacketBuffer& buffer = buffers[i];
    buffer.reset();
    // Room in front for a tag to be put back without eating into the encapsulation's headroom:
    // an untagged frame starts 4 bytes after kHeadroom, a re-tagged one at kHeadroom.
    buffer.offset = kHeadroom + kVlanTagSize - vnet;
    iovecs_[i] = iovec{buffer.data(), buffer.tailroom()};
    msghdr& header = messages_[i].msg_hdr;
    header = msghdr{};
    header.msg_iov = &iovecs_[i];
    header.msg_iovlen = 1;
    header.msg_control = controls_[i].bytes;
    header.msg_controllen = sizeof controls_[i].bytes;
  }
  int received;
  do {
    received = ::recvmmsg(fd, messages_.data(), static_cast<unsigned>(wanted), MSG_DONTWAIT, nullptr);
  } while (received < 0 && errno == EINTR);
  if (received < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;

  size_t kept = 0;
  for (size_t i = 0; i < static_cast<size_t>(received); i++) {
    PacketBuffer& buffer = buffers[i];
    msghdr& header = messages_[i].msg_hdr;
    buffer.length = messages_[i].msg_len;
    if (header.msg_flags & MSG_TRUNC) {
      counts->truncated++;
      continue;
    }
    if (buffer.length < vnet + kEthernetHeaderSize) {
      counts->malformed++;
      continue;
    }
    tpacket_auxdata aux{};
    bool have_aux = false;
    for (cmsghdr* control = CMSG_FIRSTHDR(&header); control; control = CMSG_NXTHDR(&header, control)) {
      if (control->cmsg_level == SOL_PACKET && control->cmsg_type == PACKET_AUXDATA &&
          control->cmsg_len >= CMSG_LEN(sizeof aux)) {
        std::memcpy(&aux, CMSG_DATA(control), sizeof aux);
        have_aux = true;
      }
    }
    if (have_aux && (aux.tp_status & TP_STATUS_VLAN_VALID)) {
      const uint16_t tpid =
          (aux.tp_status & TP_STATUS_VLAN_TPID_VALID) && aux.tp_vlan_tpid != 0 ? aux.tp_vlan_tpid : kEtherTypeVlan;
      if (!insert_vlan_tag(buffer, vnet, tpid, aux.tp_vlan_tci)) {
        counts->malformed++;
        continue;
      }
      counts->vlan_tagged++;
    }
    if (!vnet_header_) {
      if (max_frame_ != 0 && buffer.length > max_frame_) {
        counts->too_big++;
        continue;
      }
      if (have_aux && (aux.tp_status & TP_STATUS_CSUMNOTREADY)) {
        if (!complete_frame_checksum(buffer.data(), buffer.length)) {
          counts->malformed++;
          continue;
        }
        counts->checksums++;
      }
    }
    if (kept != i) std::swap(buffers[kept], buffers[i]);
    kept++;
  }
  return static_cast<int>(kept);
}

bool insert_vlan_tag(PacketBuffer& buffer, uint32_t vnet_length, uint16_t tpid, uint16_t tci) {
  if (buffer.offset < kVlanTagSize || buffer.length < vnet_length + 12) return false;
  const uint8_t* old_start = buffer.data();
  uint8_t* start = buffer.push_front(kVlanTagSize);
  std::memmove(start, old_start, vnet_length + 12);
  store_be16(start + vnet_length + 12, tpid);
  store_be16(start + vnet_length + 14, tci);
  if (vnet_length >= kVirtioNetHeaderSize) {
    VirtioNetHeader vnet;
    parse_virtio_net_header(start, kVirtioNetHeaderSize, &vnet);
    if (vnet.flags & kVirtioNetHdrFNeedsCsum) vnet.csum_start = static_cast<uint16_t>(vnet.csum_start + kVlanTagSize);
    if (vnet.hdr_len != 0) vnet.hdr_len = static_cast<uint16_t>(vnet.hdr_len + kVlanTagSize);
    write_virtio_net_header(vnet, start);
  }
  return true;
}

bool complete_frame_checksum(uint8_t* frame, size_t length) {
  if (length < kEthernetHeaderSize) return false;
  size_t l3 = 12;
  uint16_t type = load_be16(frame + l3);
  for (int tags = 0; tags < 2 && (type == kEtherTypeVlan || type == kEtherTypeQinQ); tags++) {
    if (length < l3 + 6) return false;
    l3 += 4;
    type = load_be16(frame + l3);
  }
  l3 += 2;
  uint8_t protocol;
  size_t l4, end;
  if (type == kEtherTypeIpv4) {
    if (length < l3 + kIpv4HeaderSize || (frame[l3] >> 4) != 4) return false;
    const size_t header = (frame[l3] & 0x0fu) * 4u;
    end = l3 + load_be16(frame + l3 + 2);
    // A fragment's checksum covers the whole datagram: the stack never leaves those partial.
    if (header < kIpv4HeaderSize || end < l3 + header || end > length || (load_be16(frame + l3 + 6) & 0x3fff) != 0) {
      return false;
    }
    protocol = frame[l3 + 9];
    l4 = l3 + header;
  } else if (type == kEtherTypeIpv6) {
    if (length < l3 + kIpv6HeaderSize || (frame[l3] >> 4) != 6) return false;
    end = l3 + kIpv6HeaderSize + load_be16(frame + l3 + 4);
    if (end > length) return false;
    protocol = frame[l3 + 6];
    l4 = l3 + kIpv6HeaderSize;
  } else {
    return false;
  }
  VirtioNetHeader vnet;
  vnet.flags = kVirtioNetHdrFNeedsCsum;
  vnet.csum_start = static_cast<uint16_t>(l4);
  if (protocol == kIpProtocolTcp && end >= l4 + kTcpHeaderSize) {
    vnet.csum_offset = kTcpChecksumOffset;
  } else if (protocol == kIpProtocolUdp && end >= l4 + kUdpHeaderSize) {
    vnet.csum_offset = kUdpChecksumOffset;
  } else {
    return false;
  }
  // Sum to the end of the IP packet, not of the frame: a short frame may carry padding.
  return complete_partial_checksum(vnet, frame, end);
}

}  // namespace ovl
