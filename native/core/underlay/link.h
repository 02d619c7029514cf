// The underlay as the data path sees it, in the manner of wireguard-go's conn.Bind: it sends a
// vector of datagrams to peers and receives a batch of them, and keeps the mechanics behind
// that: sendmmsg/recvmmsg, UDP_SEGMENT trains and UDP_GRO batches and their fallbacks, outer
// TOS control messages, the outer IP header the raw-IP modes write and strip. Two links:
// udp_link.h (UDP modes) and raw_link.h (IP-protocol modes).
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/packet_buffer.h"
#include "base/socket_address.h"
#include "base/verdict.h"
#include "system/unique_fd.h"
#include "underlay/socket_errors.h"
#include "wire/outer_ip.h"

namespace ovl {

// The sockets of one worker.
struct UnderlaySockets {
  // UDP modes: the worker's listener (one of an SO_REUSEPORT group). Raw-IP modes: one socket
  // per IP protocol received, on worker 0 only (see raw_socket.h).
  std::vector<UniqueFd> receivers;
  std::vector<uint8_t> receiver_protocols;  // per receiver: 0 for UDP, else the IP protocol
  // UDP modes, worker 0: the receiver that is the data port's stranger socket
  // (source_steering.h), read at a bounded rate; kNoStranger elsewhere.
  static constexpr size_t kNoStranger = SIZE_MAX;
  size_t stranger = kNoStranger;
  // UDP modes: the entropy-port senders. Raw-IP modes: one header-including socket.
  std::vector<UniqueFd> senders;
};

// At most: the outer IP header (raw-IP modes), the buffer, its tail.
constexpr size_t kMaxIovecsPerDatagram = 3;

// Describes a buffer and its tail (PacketBuffer::tail) as iovecs at `out`; returns 1 or 2.
inline size_t datagram_iovecs(const PacketBuffer& buffer, iovec* out) {
  out[0] = iovec{const_cast<uint8_t*>(buffer.data()), buffer.length};
  if (buffer.tail_length == 0) return 1;
  out[1] = iovec{const_cast<uint8_t*>(buffer.tail), buffer.tail_length};
  return 2;
}

// One encapsulated packet on its way to a peer.
struct Datagram {
  PacketBuffer* buffer;       // what follows the outer IP (or UDP) header, and its tail
  const SocketAddress* to;
  uint32_t slot;              // the peer's stats slot
  uint32_t inner_length;      // bytes of the inner frame, for the counters
  OuterFields outer;          // UDP modes use the TOS; raw-IP modes the TTL and DF too
  uint32_t flow_label;        // raw-IP modes over IPv6 (RFC 6438)
  uint8_t protocol;           // raw-IP modes: the outer protocol number
};

// What a send came to, datagram by datagram.
class SendReport {
 public:
  virtual ~SendReport() = default;
  virtual void sent(const Datagram& datagram) = 0;
  virtual void dropped(const Datagram& datagram, Counter reason) = 0;
  virtual void train_sent(uint32_t datagrams) = 0;  // one message carried a UDP_SEGMENT train
  virtual void offload_refused() = 0;               // an offload failed at run time and was turned off
};

// What the outer header of a received packet said, for decapsulation (RFC 6040).
struct OuterInfo {
  uint8_t protocol = 0;  // 0: UDP; else the outer IP protocol
  uint8_t ecn = 0;
  bool ecn_known = false;
};

// One received datagram; with UDP_GRO it may hold several of the peer's datagrams back to
// back, each `segment` bytes long but the last.
struct ReceivedDatagram {
  const sockaddr* source = nullptr;
  uint32_t segment = 0;
  uint32_t datagrams = 1;   // how many it holds, as received
  bool truncated = false;   // larger than the buffer
  OuterInfo outer;
  // Raw IPv4: the outer header's check (it is stripped from the buffer when it passes). The
  // data path applies it once it knows the sender, so that the drop is counted on its peer.
  Verdict outer_check = Verdict::pass();
};

class UnderlayLink {
 public:
  UnderlayLink(UnderlaySockets sockets, const SocketAddress& local, int stop_fd, size_t max_datagrams,
               size_t batch_size);
  virtual ~UnderlayLink() = default;
  UnderlayLink(const UnderlayLink&) = delete;
  UnderlayLink& operator=(const UnderlayLink&) = delete;

  // Sockets to wait on for receipt.
  size_t receiver_count() const { return receivers_.size(); }
  // Whether `receiver` is the stranger socket: datagrams from no peer's address, steered there
  // by the kernel.
  bool is_stranger(size_t receiver) const { return receiver == stranger_; }
  int receiver_fd(size_t receiver) const { return receivers_[receiver].get(); }
  // Sockets to send on: a flow always leaves through the same one (its UDP source port).
  uint32_t sender_count() const { return static_cast<uint32_t>(senders_.size()); }
  int sender_fd(uint32_t socket) const { return senders_[socket].get(); }
  // The local port a sender is bound to (UDP; 0 for raw sockets), as a dropped datagram records it.
  uint16_t sender_port(uint32_t socket) const { return socket < sender_ports_.size() ? sender_ports_[socket] : 0; }

  // Receives up to `count` (at most the batch size) datagrams from `receiver` into buffers[i]
  // and out[i]. Returns how many, 0 when nothing was waiting, -1 on a socket error.
  virtual int receive(size_t receiver, PacketBuffer* buffers, uint32_t count, ReceivedDatagram* out) = 0;

  // What the kernel dropped for `receiver` since the last call: its receive buffer full (the
  // worker did not read in time), mostly; also what failed its checksum or a socket filter. The
  // socket's own count (SO_MEMINFO), one system call: for a timer, not for every batch. Packets
  // as the kernel queued them: a dropped UDP_SEGMENT train counts once.
  uint64_t take_receive_overflows(size_t receiver);

  // ICMP errors about what this link sent (socket_errors.h): read from `fd`'s error queue into
  // the pending list, which the worker counts and clears. A send that waits for room reads them
  // too (a socket with errors queued reports POLLERR, not the POLLOUT it waits for).
  void read_errors(int fd);
  std::vector<UnderlayError>& pending_errors() { return pending_errors_; }
  // Those read past the pending list's bound: unreachable [0] and tooBig [1], on no peer.
  std::array<uint64_t, 2>& unattributed_errors() { return unattributed_errors_; }
  bool has_errors() const { return !pending_errors_.empty() || unattributed_errors_ != std::array<uint64_t, 2>{}; }

  // Sends datagrams[0, count) on sender `socket` and reports each one's fate. Blocks up to
  // 100 ms on a full socket buffer before what is left counts as queueFull; a message the
  // egress queue refuses (ENOBUFS) counts as queueFull at once.
  void send(uint32_t socket, const Datagram* datagrams, size_t count, SendReport& report);

 protected:
  // Lays datagrams out as messages_[0, n) and returns n; message m carries datagrams
  // [first_[m], first_[m] + count_[m]).
  virtual size_t build_messages(const Datagram* datagrams, size_t count) = 0;
  bool wait_writable(int fd);
  // A call on `fd` failed with `error`: true when that was an ICMP error queued earlier and not
  // the call's own (an errno of that kind, with the error queue not empty). The queue is read
  // for the worker to count, so that a retry does not meet the same error again.
  bool took_queued_error(int fd, int error);

  // Room for two control messages: UDP_SEGMENT or UDP_GRO, and the outer TOS / traffic class.
  struct alignas(cmsghdr) ControlBuffer {
    uint8_t bytes[2 * CMSG_SPACE(sizeof(int))];
  };

  std::vector<UniqueFd> receivers_;
  std::vector<uint8_t> receiver_protocols_;
  size_t stranger_;
  std::vector<UniqueFd> senders_;
  std::vector<uint16_t> sender_ports_;
  SocketAddress local_;
  bool ipv6_;
  int stop_fd_;
  bool gso_ = false;  // UDP modes: send trains with UDP_SEGMENT

  // Send side.
  std::vector<mmsghdr> messages_;
  std::vector<iovec> iovecs_;
  std::vector<uint32_t> first_;
  std::vector<uint32_t> count_;
  std::vector<ControlBuffer> send_controls_;
  // Receive side.
  std::vector<mmsghdr> receive_messages_;
  std::vector<iovec> receive_iovecs_;
  std::vector<sockaddr_storage> receive_sources_;
  std::vector<ControlBuffer> receive_controls_;

  // Receives into buffers[i] from receiver `receiver` (receive_messages_[0, count), with room
  // for control messages when `control`). Returns the recvmmsg result.
  int receive_batch(size_t receiver, PacketBuffer* buffers, uint32_t count, bool control);
  std::vector<uint32_t> drop_counts_;  // per receiver: the socket's drop count when last taken
  std::vector<UnderlayError> pending_errors_;
  std::array<uint64_t, 2> unattributed_errors_{};
};

// The link for a worker's sockets: UDP when the mode rides on UDP, else raw IP.
std::unique_ptr<UnderlayLink> make_underlay_link(bool over_udp, UnderlaySockets sockets, const SocketAddress& local,
                                                 int stop_fd, size_t max_datagrams, size_t batch_size, bool udp_gso);

}  // namespace ovl
