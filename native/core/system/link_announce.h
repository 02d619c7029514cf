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
  // Opens the socket in the calling thread's namespace (where interface `ifindex` is) and reads
  // whether IPv6 forwarding is on for `name` (the Router flag of the advertisements). Throws
  // SystemError.
  LinkAnnouncer(const std::string& name, int ifindex, MacKey mac);

  // Sends the announcement for `address` from `mac`; returns "" or what failed (the system
  // call and its error), never throws.
  std::string announce(const LinkAddress& address);

 private:
  int ifindex_;
  uint8_t mac_[6];
  bool router_ = false;
  UniqueFd socket_;
};

}  // namespace ovl
