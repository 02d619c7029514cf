#include "system/link_addresses.h"

#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "system/netns.h"
#include "system/sys_error.h"

namespace ovl {

namespace {

constexpr size_t kReceiveBuffer = 64 * 1024;

UniqueFd netlink_socket(unsigned groups) {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE));
  if (!fd.valid()) throw_errno("socket", "AF_NETLINK");
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  local.nl_groups = groups;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) < 0) throw_errno("bind", "AF_NETLINK");
  return fd;
}

// An RTM_NEWADDR or RTM_DELADDR message about `ifindex`, read into `out`.
bool parse_address(const nlmsghdr* header, int ifindex, LinkAddress& out) {
  if (header->nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg))) return false;
  const auto* ifa = static_cast<const ifaddrmsg*>(NLMSG_DATA(header));
  if (static_cast<int>(ifa->ifa_index) != ifindex || (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6)) return false;
  const size_t size = ifa->ifa_family == AF_INET ? 4 : 16;
  out = LinkAddress{};
  out.family = ifa->ifa_family;
  out.flags = ifa->ifa_flags;
  bool have_local = false, have_address = false;
  int length = static_cast<int>(IFA_PAYLOAD(header));
  for (const rtattr* attribute = IFA_RTA(ifa); RTA_OK(attribute, length); attribute = RTA_NEXT(attribute, length)) {
    const size_t payload = RTA_PAYLOAD(attribute);
    if (attribute->rta_type == IFA_FLAGS && payload >= 4) {
      std::memcpy(&out.flags, RTA_DATA(attribute), 4);
    } else if (payload == size && (attribute->rta_type == IFA_LOCAL || (attribute->rta_type == IFA_ADDRESS && !have_local))) {
      // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's on a point-to-point
      // link and the same as IFA_LOCAL (or alone, for IPv6) elsewhere.
      std::memcpy(out.bytes, RTA_DATA(attribute), size);
      have_local = have_local || attribute->rta_type == IFA_LOCAL;
      have_address = true;
    }
  }
  return have_address;
}

std::vector<LinkAddress> dump_addresses(int ifindex) {
  UniqueFd fd = netlink_socket(0);
  struct {
    nlmsghdr header;
    ifaddrmsg ifa;
  } request{};
  request.header.nlmsg_len = sizeof request;
  request.header.nlmsg_type = RTM_GETADDR;
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  request.header.nlmsg_seq = 1;
  request.ifa.ifa_family = AF_UNSPEC;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd.get(), &request, sizeof request, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    throw_errno("sendto", "netlink RTM_GETADDR");
  }
  std::vector<LinkAddress> out;
  alignas(nlmsghdr) static thread_local uint8_t buffer[kReceiveBuffer];
  for (;;) {
    pollfd wait{fd.get(), POLLIN, 0};
    ssize_t n = ::recv(fd.get(), buffer, sizeof buffer, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        if (::poll(&wait, 1, 5000) <= 0) throw_errno("poll", "netlink RTM_GETADDR");
        continue;
      }
      throw_errno("recv", "netlink RTM_GETADDR");
    }
    for (auto* header = reinterpret_cast<nlmsghdr*>(buffer); NLMSG_OK(header, static_cast<size_t>(n));
         header = NLMSG_NEXT(header, n)) {
      if (header->nlmsg_type == NLMSG_DONE) return out;
      if (header->nlmsg_type == NLMSG_ERROR) {
        const auto* error = static_cast<const nlmsgerr*>(NLMSG_DATA(header));
        errno = -error->error;
        throw_errno("netlink(RTM_GETADDR)");
      }
      LinkAddress address;
      if (header->nlmsg_type == RTM_NEWADDR && parse_address(header, ifindex, address)) out.push_back(address);
    }
  }
}

}  // namespace

bool LinkAddress::usable() const {
  return family == AF_INET || (flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED | IFA_F_OPTIMISTIC)) == 0;
}

std::string LinkAddress::literal() const {
  char text[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(family, bytes, text, sizeof text);
  return text;
}

bool LinkAddress::same_address(const LinkAddress& other) const {
  return family == other.family && std::memcmp(bytes, other.bytes, family == AF_INET ? 4 : 16) == 0;
}

std::vector<LinkAddress> link_addresses(int ifindex) { return dump_addresses(ifindex); }

AddressWatch AddressWatch::open(const std::string& netns, int ifindex) {
  UniqueFd socket;
  std::vector<LinkAddress> known;
  run_in_netns(netns, [&] {
    // Subscribed before the dump: an address added in between is in one or the other (or both,
    // and is then reported once).
    socket = netlink_socket(RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR);
    for (const LinkAddress& address : dump_addresses(ifindex)) {
      if (address.usable()) known.push_back(address);
    }
  });
  return AddressWatch(netns, ifindex, std::move(socket), std::move(known));
}

bool AddressWatch::knows(const LinkAddress& address) const {
  for (const LinkAddress& k : known_) {
    if (k.same_address(address)) return true;
  }
  return false;
}

void AddressWatch::forget(const LinkAddress& address) {
  for (auto it = known_.begin(); it != known_.end(); ++it) {
    if (it->same_address(address)) {
      known_.erase(it);
      return;
    }
  }
}

std::vector<LinkAddress> AddressWatch::take_added() {
  std::vector<LinkAddress> added;
  bool overflowed = false;
  alignas(nlmsghdr) static thread_local uint8_t buffer[kReceiveBuffer];
  for (;;) {
    ssize_t n = ::recv(socket_.get(), buffer, sizeof buffer, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        overflowed = true;
        continue;
      }
      if (errno == EAGAIN) break;
      throw_errno("recv", "netlink address notifications");
    }
    if (n == 0) break;
    for (auto* header = reinterpret_cast<nlmsghdr*>(buffer); NLMSG_OK(header, static_cast<size_t>(n));
         header = NLMSG_NEXT(header, n)) {
      LinkAddress address;
      if ((header->nlmsg_type != RTM_NEWADDR && header->nlmsg_type != RTM_DELADDR) ||
          !parse_address(header, ifindex_, address)) {
        continue;
      }
      // A tentative address is reported again once its duplicate address detection is done.
      if (header->nlmsg_type == RTM_DELADDR || !address.usable()) {
        forget(address);
      } else if (!knows(address)) {
        known_.push_back(address);
        added.push_back(address);
      }
    }
  }
  if (overflowed) {
    std::vector<LinkAddress> now;
    run_in_netns(netns_, [&] { now = dump_addresses(ifindex_); });
    std::vector<LinkAddress> known;
    for (const LinkAddress& address : now) {
      if (!address.usable()) continue;
      known.push_back(address);
      if (!knows(address)) added.push_back(address);
    }
    known_ = std::move(known);
  }
  return added;
}

}  // namespace ovl
