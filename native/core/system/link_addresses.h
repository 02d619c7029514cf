// The IP addresses of an interface, as rtnetlink reports them: what it has now (an RTM_GETADDR
// dump) and what it gains later (AddressWatch, subscribed to the kernel's address
// notifications). Calls that open a netlink socket act in the calling thread's network
// namespace unless they take one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "system/unique_fd.h"

namespace ovl {

struct LinkAddress {
  int family = 0;          // AF_INET or AF_INET6
  uint8_t bytes[16] = {};  // IPv4 in the first 4
  uint32_t flags = 0;      // IFA_F_*

  // Ready to be announced: not an IPv6 address still in (or failed) duplicate address
  // detection, or optimistic (RFC 4429 §3.3: no unsolicited NA with Override from those).
  bool usable() const;
  std::string literal() const;
  bool same_address(const LinkAddress& other) const;
};

// The addresses of interface `ifindex` (IPv4 and IPv6), in the kernel's order.
std::vector<LinkAddress> link_addresses(int ifindex);

// Follows the addresses of one interface in a namespace. Opened on the thread that sets up the
// namespace's devices; read from any thread (one at a time) when fd() is readable.
class AddressWatch {
 public:
  // Subscribes to the address notifications of `netns` ("" for the calling thread's) and takes
  // the addresses `ifindex` has now as known. Throws SystemError.
  static AddressWatch open(const std::string& netns, int ifindex);

  // Non-blocking, close-on-exec; readable when notifications wait.
  int fd() const { return socket_.get(); }

  // Reads every waiting notification and returns the usable addresses the interface gained
  // since open() or the last call, each once: an address counts again only after it was
  // removed, so the refreshes the kernel also reports (lifetimes, flags) announce nothing.
  // When the kernel dropped notifications (ENOBUFS: the socket buffer overflowed), the
  // interface's addresses are read again and those not known yet count.
  std::vector<LinkAddress> take_added();

 private:
  AddressWatch(std::string netns, int ifindex, UniqueFd socket, std::vector<LinkAddress> known)
      : netns_(std::move(netns)), ifindex_(ifindex), socket_(std::move(socket)), known_(std::move(known)) {}
  bool knows(const LinkAddress& address) const;
  void forget(const LinkAddress& address);

  std::string netns_;
  int ifindex_;
  UniqueFd socket_;
  std::vector<LinkAddress> known_;  // usable addresses already reported (or there at open)
};

}  // namespace ovl
