#include "system/link_announce.h"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "system/sys_error.h"
#include "wire/neighbor_frames.h"

namespace ovl {

namespace {

// /proc/sys/net is the calling thread's namespace's; missing (IPv6 off) reads as "host".
bool ipv6_forwarding(const std::string& name) {
  std::ifstream forwarding("/proc/sys/net/ipv6/conf/" + name + "/forwarding");
  int value = 0;
  return (forwarding >> value) && value != 0;
}

}  // namespace

LinkAnnouncer::LinkAnnouncer(const std::string& name, int ifindex, MacKey mac) : name_(name), ifindex_(ifindex) {
  for (int i = 0; i < 6; i++) mac_[i] = static_cast<uint8_t>(mac >> (40 - 8 * i));
  // Protocol 0: the socket sends and never receives, so the kernel queues nothing to it.
  socket_.reset(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
  if (!socket_.valid()) throw_errno("socket", "AF_PACKET for announcing the addresses of " + name);
}

std::string LinkAnnouncer::announce(const LinkAddress& address) {
  uint8_t frame[kUnsolicitedNaFrameSize > kGratuitousArpFrameSize ? kUnsolicitedNaFrameSize : kGratuitousArpFrameSize];
  const size_t length = address.family == AF_INET ? build_gratuitous_arp(frame, mac_, address.bytes)
                                                  : build_unsolicited_na(frame, mac_, address.bytes, ipv6_forwarding(name_));
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_ifindex = ifindex_;
  to.sll_protocol = htons(address.family == AF_INET ? kEtherTypeArp : kEtherTypeIpv6);
  to.sll_halen = 6;
  std::memcpy(to.sll_addr, frame, 6);
  for (;;) {
    const ssize_t sent = ::sendto(socket_.get(), frame, length, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    if (sent == static_cast<ssize_t>(length)) return "";
    if (sent < 0 && errno == EINTR) continue;
    if (sent >= 0) errno = EMSGSIZE;
    return SystemError("sendto", errno, "AF_PACKET").what();
  }
}

}  // namespace ovl
