// Which socket of the data port's SO_REUSEPORT group a datagram goes to, decided in the kernel
// by a classic BPF program (SO_ATTACH_REUSEPORT_CBPF) before anything is queued:
//
//   source address is a peer's endpoint  ->  worker (hash of the address and ports) % workers
//   any other source                     ->  the stranger socket, index `workers`
//
// A flood from addresses that are no peer's then fills only the stranger socket, a small one
// that worker 0 reads at a bounded rate (it still answers IKE and counts what it reads); what
// does not fit, the kernel drops in its receive path before any socket queues it, and the worker
// counts those drops as unknownPeer from the socket's own drop count. The workers' sockets carry peers' traffic only,
// and no worker spends its core reading a flood it would refuse anyway.
//
// The program is rebuilt whenever the peer table changes. Peers are found by a binary search
// over their addresses (IPv4: the address; IPv6: the XOR of its four words, then the whole
// address compared), so a lookup costs about 30 instructions for hundreds of peers. A table too
// large for one program (BPF_MAXINSNS), or for the kernel (net.core.optmem_max bounds the
// translated program: 20 KiB before Linux 6.9, about 490 IPv4 or 50 IPv6 peers), gets the
// spreading half only: every datagram to a worker, strangers refused there as before.
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <vector>

#include "base/socket_address.h"

namespace ovl {

// The program for a group of `workers` worker sockets (indices 0..workers-1, in bind order)
// and a stranger socket after them, on a socket of `family`. `peers` are the peers' endpoints
// (ports are ignored, as by PeerTable::by_source). Empty when they do not fit in one program
// (BPF_MAXINSNS: 817 IPv4 or 271 IPv6 peers).
std::vector<sock_filter> source_steering_program(int family, const std::vector<SocketAddress>& peers, uint32_t workers);

// The spreading half alone: every datagram to a worker, strangers too (the workers refuse them).
std::vector<sock_filter> spreading_program(int family, uint32_t workers);

// Attaches `program` to the reuseport group of `fd`; false (errno set) when the kernel refuses.
bool attach_reuseport_program(int fd, const std::vector<sock_filter>& program);

}  // namespace ovl
