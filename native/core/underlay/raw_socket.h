// Underlay raw IP sockets for the IP-protocol modes: GRE (protocol 47) and IP-in-IP (4, 41).
//
// Receiving: a raw socket of protocol P gets a copy of every incoming IP packet of protocol P
// for this namespace, whatever other raw sockets exist. There is no SO_REUSEPORT spreading as
// with UDP, so one worker (worker 0) owns the receiving sockets; the others only send. An IPv4
// raw socket delivers the IP header with the payload; an IPv6 one delivers the payload only,
// with the traffic class in an IPV6_TCLASS control message (for RFC 6040 decapsulation).
//
// Sending: an IPPROTO_RAW socket, which implies IP_HDRINCL / IPV6_HDRINCL: we write the outer
// header ourselves, so TTL, DSCP, ECN and DF follow the inner packet per packet (RFC 2003,
// RFC 6040) and one socket sends every protocol. The kernel routes each packet, fills in the
// IPv4 identification and header checksum, and never fragments it: a packet beyond the path
// MTU fails with EMSGSIZE, which the worker counts as tooBig.
#pragma once

#include <cstdint>
#include <vector>

#include "base/socket_address.h"
#include "system/unique_fd.h"

namespace ovl {

// A receiving socket for one IP protocol on the family of `local`, bound to its address.
UniqueFd open_raw_receiver(const SocketAddress& local, uint8_t protocol, int receive_buffer);

// A header-including sending socket for the family of `local`. It receives nothing.
UniqueFd open_raw_sender(const SocketAddress& local, int send_buffer);

}  // namespace ovl
