// Interface configuration at start: MTU, MAC, addresses, up. ioctl for the link, rtnetlink
// for addresses (IPv4 and IPv6 alike). All calls act in the calling thread's network namespace.
#pragma once

#include <cstdint>
#include <string>

#include "wire/ethernet.h"

namespace ovl {

struct LinkInfo {
  int ifindex;
  MacKey mac;
  int mtu;
};

LinkInfo link_info(const std::string& name);
void link_set_mtu(const std::string& name, int mtu);
void link_set_mac(const std::string& name, MacKey mac);
void link_set_up(const std::string& name);
// The most segments the kernel puts in one GSO super-frame it hands the interface
// (RTM_NEWLINK IFLA_GSO_MAX_SEGS, `ip link set NAME gso_max_segs N`).
void link_set_gso_max_segs(int ifindex, uint32_t segments);
// Adds `address`/`prefix_length` to the interface (RTM_NEWADDR); IPv6 without DAD, so the
// address is usable at once.
void link_add_address(int ifindex, const std::string& address, int prefix_length);
struct AddressOwner {
  std::string name;  // the interface
  int mtu;
};
// The interface that holds `address` (the underlay) and its MTU, or throws EADDRNOTAVAIL.
AddressOwner interface_with_address(const std::string& address);
// MTU of the interface that holds `address` (the underlay), or throws EADDRNOTAVAIL.
int mtu_of_interface_with_address(const std::string& address);

}  // namespace ovl
