// Announcing an interface's addresses on its own link: a gratuitous ARP for an IPv4 address, an
// unsolicited Neighbor Advertisement for an IPv6 one (wire/neighbor_frames.h), sent through an
// AF_PACKET socket bound to the interface. The kernel transmits the frame on the interface as
// if the stack had sent it: on a TAP device it comes out of the device's queues, where the
// forwarder's workers read it and flood it to every peer, like the broadcast it is.
#pragma once

#include <string>

#include "system/link_addresses.h"
#include "system/unique_fd.h"
#include "wire/ethernet.h"

namespace ovl {

class LinkAnnouncer {
 public:
  // Opens the socket in the calling thread's namespace (where interface `ifindex` is). The
  // socket stays usable from any thread and after the process dropped CAP_NET_RAW. Throws
  // SystemError.
  LinkAnnouncer(const std::string& name, int ifindex, MacKey mac);

  // Sends the announcement for `address` from `mac`; returns "" or what failed (the system
  // call and its error), never throws. For IPv6 it reads whether forwarding is on for the
  // interface now (the Router flag), in the calling thread's namespace.
  std::string announce(const LinkAddress& address);

 private:
  std::string name_;
  int ifindex_;
  uint8_t mac_[6];
  UniqueFd socket_;
};

}  // namespace ovl
