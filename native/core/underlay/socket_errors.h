// What the network said back about datagrams we sent: the ICMP errors the kernel queues on an
// underlay socket once IP_RECVERR / IPV6_RECVERR is set (ip(7), "IP_RECVERR").
//
// Without it an unconnected socket never hears of them: a peer whose port, protocol, host or
// network is unreachable, or a router on the way whose next hop is too small for a DF datagram,
// would lose our traffic with nothing counted. With it each error waits on the socket's error
// queue, the socket reports EPOLLERR until the queue is read, and its pending error (sk_err) is
// returned once by the next send or receive on it: a datagram that has nothing to do with the
// error would fail with ECONNREFUSED. So the link reads the queue whenever the socket reports an
// error, clears the pending error, and a send or receive that still meets one simply tries again
// (is_reported_icmp_error).
//
// An error queue entry:
//   msg_name         the destination of the datagram the ICMP error quotes (the peer's endpoint)
//   cmsg IP_RECVERR  struct sock_extended_err { ee_errno, ee_origin (ICMP, ICMP6, LOCAL, ...),
//                    ee_type, ee_code, ee_info (the next-hop MTU for "too big"), ... }
#pragma once

#include <sys/socket.h>
#include <time.h>  // linux/errqueue.h uses struct timespec without including it

#include <linux/errqueue.h>

#include <cstddef>
#include <cstdint>

#include "base/stats_layout.h"

namespace ovl {

// One ICMP error: whom the quoted datagram was for, and the drop reason it is counted under.
struct UnderlayError {
  sockaddr_storage destination{};
  Counter reason = kDropUnreachable;
};

// Asks the kernel to queue ICMP errors on `fd` (an underlay socket of `family`). Best effort: a
// socket without it still works, it only hears nothing back.
void enable_error_queue(int fd, int family);

// The drop reason of an error queue entry, or false for one that is no ICMP error about a
// datagram that left us (a local error: the send call already returned and counted it).
bool classify_underlay_error(const sock_extended_err& error, Counter* reason);

// Reads up to `max` entries of `fd`'s error queue into out[0, n), clears its pending error and
// returns n. Entries beyond `max` stay for the next call (the socket still reports EPOLLERR).
size_t read_error_queue(int fd, UnderlayError* out, size_t max);

// Errno values by which a send or receive may hand back an ICMP error queued earlier (sk_err),
// and not a failure of the call itself. Most of them can be a call's own failure too (EMSGSIZE
// for a datagram over the device MTU, EHOSTUNREACH from a route), so an errno of this kind is
// taken for a queued error only while the error queue holds one (has_queued_errors): then the
// call is worth making again. Reading one entry sets the pending error to the next one's, so a
// few such in a row are no surprise; past kPendingErrorRetries the errno is the call's own.
bool is_reported_icmp_error(int error);
constexpr int kPendingErrorRetries = 4;

// Whether `fd`'s error queue holds an entry (it reports POLLERR), without waiting.
bool has_queued_errors(int fd);

}  // namespace ovl
