#include "system/link_config.h"

// glibc's net/if.h must come before the kernel's headers, which then step aside.
#include <net/if.h>
#include <net/if_arp.h>
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/socket_address.h"
#include "system/sys_error.h"
#include "system/unique_fd.h"

namespace ovl {

namespace {

UniqueFd control_socket() {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) throw_errno("socket", "AF_INET control socket");
  return fd;
}

ifreq request_for(const std::string& name) {
  ifreq request{};
  std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
  return request;
}

void append_attribute(nlmsghdr* message, size_t capacity, uint16_t type, const void* data, size_t length) {
  const size_t total = NLMSG_ALIGN(message->nlmsg_len) + RTA_SPACE(length);
  if (total > capacity) throw InvalidArgument("netlink message too long");
  auto* attribute = reinterpret_cast<rtattr*>(reinterpret_cast<uint8_t*>(message) + NLMSG_ALIGN(message->nlmsg_len));
  attribute->rta_type = type;
  attribute->rta_len = static_cast<uint16_t>(RTA_LENGTH(length));
  std::memcpy(RTA_DATA(attribute), data, length);
  message->nlmsg_len = static_cast<uint32_t>(total);
}

// Sends one request and waits for its acknowledgement; throws with the kernel's errno.
void netlink_transact(nlmsghdr* message, const std::string& what) {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd.valid()) throw_errno("socket", "AF_NETLINK");
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  message->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  message->nlmsg_seq = 1;
  if (::sendto(fd.get(), message, message->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    throw_errno("sendto", "netlink " + what);
  }
  alignas(nlmsghdr) uint8_t reply[4096];
  for (;;) {
    ssize_t n = ::recv(fd.get(), reply, sizeof reply, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("recv", "netlink " + what);
    }
    for (auto* header = reinterpret_cast<nlmsghdr*>(reply); NLMSG_OK(header, static_cast<size_t>(n));
         header = NLMSG_NEXT(header, n)) {
      if (header->nlmsg_type == NLMSG_ERROR) {
        const auto* error = static_cast<const nlmsgerr*>(NLMSG_DATA(header));
        if (error->error == 0) return;
        errno = -error->error;
        throw_errno("netlink(" + what + ")");
      }
    }
  }
}

}  // namespace

LinkInfo link_info(const std::string& name) {
  UniqueFd fd = control_socket();
  LinkInfo info{};
  ifreq request = request_for(name);
  if (::ioctl(fd.get(), SIOCGIFINDEX, &request) < 0) throw_errno("ioctl(SIOCGIFINDEX)", name);
  info.ifindex = request.ifr_ifindex;
  request = request_for(name);
  if (::ioctl(fd.get(), SIOCGIFHWADDR, &request) < 0) throw_errno("ioctl(SIOCGIFHWADDR)", name);
  info.mac = mac_key(reinterpret_cast<const uint8_t*>(request.ifr_hwaddr.sa_data));
  request = request_for(name);
  if (::ioctl(fd.get(), SIOCGIFMTU, &request) < 0) throw_errno("ioctl(SIOCGIFMTU)", name);
  info.mtu = request.ifr_mtu;
  return info;
}

void link_set_mtu(const std::string& name, int mtu) {
  UniqueFd fd = control_socket();
  ifreq request = request_for(name);
  request.ifr_mtu = mtu;
  if (::ioctl(fd.get(), SIOCSIFMTU, &request) < 0) throw_errno("ioctl(SIOCSIFMTU)", name + " mtu " + std::to_string(mtu));
}

void link_set_mac(const std::string& name, MacKey mac) {
  UniqueFd fd = control_socket();
  ifreq request = request_for(name);
  request.ifr_hwaddr.sa_family = ARPHRD_ETHER;
  for (int i = 0; i < 6; i++) request.ifr_hwaddr.sa_data[i] = static_cast<char>(mac >> (40 - 8 * i));
  if (::ioctl(fd.get(), SIOCSIFHWADDR, &request) < 0) throw_errno("ioctl(SIOCSIFHWADDR)", name);
}

void link_set_up(const std::string& name) {
  UniqueFd fd = control_socket();
  ifreq request = request_for(name);
  if (::ioctl(fd.get(), SIOCGIFFLAGS, &request) < 0) throw_errno("ioctl(SIOCGIFFLAGS)", name);
  request.ifr_flags |= IFF_UP;
  if (::ioctl(fd.get(), SIOCSIFFLAGS, &request) < 0) throw_errno("ioctl(SIOCSIFFLAGS)", name);
}

void link_set_gso_max_segs(int ifindex, uint32_t segments) {
  alignas(nlmsghdr) uint8_t buffer[128] = {};
  auto* message = reinterpret_cast<nlmsghdr*>(buffer);
  message->nlmsg_len = NLMSG_LENGTH(sizeof(ifinfomsg));
  message->nlmsg_type = RTM_NEWLINK;
  auto* info = static_cast<ifinfomsg*>(NLMSG_DATA(message));
  info->ifi_family = AF_UNSPEC;
  info->ifi_index = ifindex;
  append_attribute(message, sizeof buffer, IFLA_GSO_MAX_SEGS, &segments, sizeof segments);
  netlink_transact(message, "RTM_NEWLINK gso_max_segs " + std::to_string(segments));
}

void link_add_address(int ifindex, const std::string& address, int prefix_length) {
  const auto parsed = parse_socket_address(address, 0);
  if (!parsed) throw InvalidArgument("not an IP address: " + address);
  const bool v4 = parsed->family() == AF_INET;
  if (prefix_length < 0 || prefix_length > (v4 ? 32 : 128)) throw InvalidArgument("bad prefix length for " + address);

  alignas(nlmsghdr) uint8_t buffer[256] = {};
  auto* message = reinterpret_cast<nlmsghdr*>(buffer);
  message->nlmsg_len = NLMSG_LENGTH(sizeof(ifaddrmsg));
  message->nlmsg_type = RTM_NEWADDR;
  message->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
  auto* ifa = static_cast<ifaddrmsg*>(NLMSG_DATA(message));
  ifa->ifa_family = static_cast<uint8_t>(parsed->family());
  ifa->ifa_prefixlen = static_cast<uint8_t>(prefix_length);
  ifa->ifa_index = static_cast<uint32_t>(ifindex);
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  if (v4) {
    const auto& in = reinterpret_cast<const sockaddr_in*>(parsed->get())->sin_addr;
    append_attribute(message, sizeof buffer, IFA_LOCAL, &in, 4);
    append_attribute(message, sizeof buffer, IFA_ADDRESS, &in, 4);
    if (prefix_length < 31) {
      const uint32_t host_bits = prefix_length == 0 ? 0xffffffffu : (1u << (32 - prefix_length)) - 1;
      const in_addr broadcast{in.s_addr | htonl(host_bits)};
      append_attribute(message, sizeof buffer, IFA_BROADCAST, &broadcast, 4);
    }
  } else {
    ifa->ifa_flags = IFA_F_NODAD;
    const auto& in6 = reinterpret_cast<const sockaddr_in6*>(parsed->get())->sin6_addr;
    append_attribute(message, sizeof buffer, IFA_ADDRESS, &in6, 16);
    const uint32_t flags = IFA_F_NODAD;
    append_attribute(message, sizeof buffer, IFA_FLAGS, &flags, 4);
  }
  netlink_transact(message, "RTM_NEWADDR " + address + "/" + std::to_string(prefix_length));
}

AddressOwner interface_with_address(const std::string& address) {
  const auto wanted = parse_socket_address(address, 0);
  if (!wanted) throw InvalidArgument("not an IP address: " + address);
  const AddressKey key = address_key(wanted->get());
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) < 0) throw_errno("getifaddrs");
  std::string name;
  for (ifaddrs* it = list; it; it = it->ifa_next) {
    if (it->ifa_addr && (it->ifa_addr->sa_family == AF_INET || it->ifa_addr->sa_family == AF_INET6) &&
        address_key(it->ifa_addr) == key) {
      name = it->ifa_name;
      break;
    }
  }
  ::freeifaddrs(list);
  if (name.empty()) {
    errno = EADDRNOTAVAIL;
    throw_errno("getifaddrs", "underlay address " + address + " is not assigned to any interface");
  }
  return AddressOwner{name, link_info(name).mtu};
}

int mtu_of_interface_with_address(const std::string& address) { return interface_with_address(address).mtu; }

}  // namespace ovl
