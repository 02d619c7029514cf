// An existing Ethernet interface (a NIC, a veth port) put on the L2 overlay through AF_PACKET
// sockets: one SOCK_RAW socket per queue, bound to the interface, promiscuous. The interface is
// somebody else's: nothing about it (MTU, addresses, MAC, up/down) is ever changed.
//
// What the sockets deliver, and why (measured on Linux 6.18 over veth; see the notes in
// packet_device.cc for the kernel code paths):
//
// - Only frames the interface RECEIVES are read. Frames transmitted on it (ours, or the local
//   stack's) are ignored three ways: the kernel never loops a frame back to the socket or fanout
//   group that sent it; PACKET_IGNORE_OUTGOING (one queue) or PACKET_FANOUT_FLAG_IGNORE_OUTGOING
//   (several: a fanout group has one hook, and the per-socket option does NOT apply to it) keeps
//   outgoing frames away from the sockets; and a socket filter drops PACKET_OUTGOING anyway, for
//   kernels without those options. Frames addressed to the interface's own MAC (PACKET_HOST) are
//   the gateway host's own traffic and are filtered out too: they are for no overlay host.
// - With `vnet_header` (PACKET_VNET_HDR), every read and write carries the 10-byte
//   virtio_net_hdr exactly as on the TAP path: the kernel hands over GSO super-frames (a local
//   stack behind a veth sends 64 KB TCP frames; a NIC's GRO merges) with partial checksums
//   (NEEDS_CSUM), and writes may be GSO super-frames. Without it, such frames would arrive as
//   oversized frames with unfinished checksums, which no encapsulation can carry.
// - The kernel strips the outer 802.1Q/802.1ad tag of received frames into PACKET_AUXDATA before
//   any packet socket sees them; read() loses it. With `vlan_tags`, tagged frames are delivered
//   and PacketReceiver (recvmmsg + auxdata) puts the tag back; without it, the socket filter
//   drops tagged frames, so that a tagged frame never enters the overlay untagged.
// - Frames arrive without the Ethernet FCS and may be shorter than 60 bytes (no padding).
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "wire/ethernet.h"
#include "base/packet_buffer.h"
#include "system/unique_fd.h"

namespace ovl {

class PacketDevice {
 public:
  // Opens `queues` sockets on `interface` (in the calling thread's network namespace), all
  // non-blocking. Fails (SystemError naming the interface) if there is no such interface, it is
  // not Ethernet, it is down, or it holds `underlay_address` (bridging the underlay into the
  // overlay would loop); an empty `underlay_address` skips that check. With several queues the
  // sockets form a PACKET_FANOUT_HASH group (id unique in the namespace) so each socket sees a
  // flow-consistent share. `vnet_header` asks for PACKET_VNET_HDR; see vnet_header() for what
  // was granted.
  static PacketDevice open(const std::string& interface, int queues, bool vnet_header, bool vlan_tags,
                           const std::string& underlay_address = "");

  const std::string& name() const { return name_; }
  int ifindex() const { return ifindex_; }
  MacKey mac() const { return mac_; }
  int mtu() const { return mtu_; }
  // Reads and writes carry a virtio_net_hdr (asked for and granted by the kernel).
  bool vnet_header() const { return vnet_header_; }
  // Tagged frames are delivered (to be read with PacketReceiver), not filtered out.
  bool vlan_tags() const { return vlan_tags_; }
  // The kernel keeps outgoing frames away from the sockets (else only the socket filter does).
  bool kernel_ignores_outgoing() const { return kernel_ignores_outgoing_; }
  int queue_fd(size_t queue) const { return queues_[queue].get(); }
  size_t queue_count() const { return queues_.size(); }

 private:
  std::string name_;
  int ifindex_ = 0;
  MacKey mac_ = 0;
  int mtu_ = 0;
  std::vector<UniqueFd> queues_;
  bool vnet_header_ = false;
  bool vlan_tags_ = false;
  bool kernel_ignores_outgoing_ = false;
};

// For a worker whose packet socket reported an error (EPOLLERR): clears it and tells whether the
// interface is gone for good. Measured: when the interface goes down the socket gets ENETDOWN and
// stays bound (the kernel re-attaches it when the interface comes back up, so keep going); when
// it is deleted the socket also gets ENETDOWN, is unbound (getsockname: ifindex -1) and every
// write fails with ENXIO. The unbinding can follow the error by a moment, so a worker should also
// treat ENXIO from a write as the interface gone.
bool packet_socket_interface_gone(int fd);

// What a PacketReceiver dropped or repaired, added to by each receive().
struct PacketReceiveCounts {
  uint64_t truncated = 0;      // larger than the buffer (MSG_TRUNC)
  uint64_t too_big = 0;        // without vnet headers: a super-frame beyond max_frame, which we cannot cut
  uint64_t malformed = 0;      // shorter than an Ethernet header (plus the vnet header), or an unfinishable checksum
  uint64_t vlan_tagged = 0;    // frames whose stripped tag was put back
  uint64_t checksums = 0;      // without vnet headers: partial checksums completed (TP_STATUS_CSUMNOTREADY)
};

// Batched reads from one packet socket: one recvmmsg per batch, each frame with its
// PACKET_AUXDATA. It leaves every buffer exactly as read() on a TAP queue would (the
// virtio_net_hdr first when `vnet_header`, then the frame), with at least kHeadroom bytes of
// headroom before the frame, and in addition:
// - puts back the 802.1Q/802.1ad tag the kernel stripped (the vnet header's csum_start and
//   hdr_len move with it);
// - without vnet headers, completes the checksums the kernel left partial
//   (TP_STATUS_CSUMNOTREADY: a local sender's checksum offload) and drops frames beyond
//   `max_frame` (super-frames: without the header they cannot be segmented);
// - drops frames that were truncated or are shorter than an Ethernet header.
// Dropped frames are counted, and the buffers compacted: buffers[0, n) hold the n frames kept,
// each at least vnet + 14 bytes long, so parsing the vnet header cannot fail. (Buffers are
// reordered by swapping PacketBuffer values; each still owns its distinct slab of the pool.)
class PacketReceiver {
 public:
  // `max_frame`: the largest frame (link header and tags included) accepted without vnet
  // headers; 0 for no limit.
  PacketReceiver(size_t batch_size, bool vnet_header, uint32_t max_frame);

  // Receives up to min(count, batch_size) frames. Returns the number kept (0 when nothing was
  // waiting), or -1 with errno set for a socket error (never EAGAIN/EWOULDBLOCK).
  int receive(int fd, PacketBuffer* buffers, size_t count, PacketReceiveCounts* counts);

 private:
  struct alignas(cmsghdr) Control {
    uint8_t bytes[64];  // CMSG_SPACE(sizeof(tpacket_auxdata)) is 40
  };
  bool vnet_header_;
  uint32_t max_frame_;
  std::vector<mmsghdr> messages_;
  std::vector<iovec> iovecs_;
  std::vector<Control> controls_;
};

// Puts a stripped VLAN tag back into a frame read from a packet socket. `buffer.data()` is the
// start of what was read (the virtio_net_hdr when vnet_length is 10, then the frame): those
// vnet_length + 12 bytes (header and MAC addresses) move 4 bytes to the front, and TPID and TCI
// fill the gap. A vnet header's csum_start (NEEDS_CSUM) and hdr_len (when set) grow by 4.
// Returns false, changing nothing, if the buffer has less than 4 bytes of headroom or is
// shorter than vnet_length + 12.
bool insert_vlan_tag(PacketBuffer& buffer, uint32_t vnet_length, uint16_t tpid, uint16_t tci);

// Completes the partial TCP or UDP checksum of an Ethernet frame (a checksum offload the sender
// left to the hardware) without a vnet header to say where it is: the headers are parsed (up to
// two VLAN tags, IPv4 or IPv6 without extension headers, no fragments). False if the frame
// holds no such segment or is inconsistent; nothing is written then.
bool complete_frame_checksum(uint8_t* frame, size_t length);

}  // namespace ovl
