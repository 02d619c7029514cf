// One data-path thread: owns one device queue and its underlay sockets, and moves batches
// between them. Nothing here takes a lock per packet except the shared learned-FDB stripes.
#pragma once

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "tunnel/encapsulation.h"
#include "tables/learned_fdb.h"
#include "offload/offload_coalesce.h"
#include "wire/icmp_too_big.h"
#include "offload/offload_segment.h"
#include "wire/outer_ip.h"
#include "base/packet_buffer.h"
#include "tables/peer_table.h"
#include "base/socket_address.h"
#include "base/stats_layout.h"
#include "device/tap_device.h"
#include "tables/table_publisher.h"
#include "system/unique_fd.h"
#include "device/uring_writer.h"
#include "device/packet_device.h"

namespace ovl {

struct WorkerConfig {
  uint32_t index = 0;
  Encapsulation encap;
  DeviceLayer layer = DeviceLayer::ethernet;  // what the device reads and writes
  SocketAddress local;       // underlay address: the outer source of raw-IP modes
  uint8_t outer_ttl = 64;    // raw-IP modes (RFC 2003 §3.1: a sensible default, not the inner's)
  // The largest inner IP packet the underlay carries in one piece (underlay MTU minus overhead);
  // a bigger one with DF gets ICMP Fragmentation Needed / Packet Too Big back. 0: no check.
  uint32_t max_inner_packet = 0;
  uint32_t peer_slots = 0;    // GRE sequence numbers: per-slot receive state
  uint16_t mss_clamp_v4 = 0;  // clamp TCP SYN MSS options to this (0: off)
  uint16_t mss_clamp_v6 = 0;
  uint32_t batch_size = 64;
  bool learning = true;
  MacKey device_mac = 0;
  bool udp_gso = false;  // send trains of same-size datagrams with UDP_SEGMENT
  bool udp_gro = false;  // the listening socket has UDP_GRO on
  bool vnet_header = false;  // device reads and writes carry a virtio_net_hdr (TSO/GRO)
  bool uring_writes = false;  // batch device writes through io_uring where the kernel allows
  bool packet_socket = false;  // the device fd is an AF_PACKET socket: read it with PacketReceiver
  uint32_t packet_max_frame = 0;  // packet socket without vnet headers: larger frames are super-frames, dropped
  uint32_t max_segment_frame = 2048;  // largest wire frame a TSO segment may be (device MTU based)
  int cpu = -1;              // pin the thread to this CPU; -1: let the scheduler place it
  uint32_t busy_poll_us = 0; // keep polling this long after the last packet before sleeping
};

// A frame on its way to the device, with what its delivery counts as.
struct DeviceWrite {
  const uint8_t* frame;
  uint32_t length;
  uint32_t slot;
  uint32_t segments;  // frames it stands for (a coalesced run stands for several)
  uint64_t bytes;     // the bytes of those frames as they arrived
  bool merged;
};

// Room for two control messages: UDP_SEGMENT or UDP_GRO, and the outer TOS / traffic class.
struct alignas(cmsghdr) ControlBuffer {
  uint8_t bytes[2 * CMSG_SPACE(sizeof(int))];
};

// The underlay sockets a worker owns.
struct UnderlaySockets {
  // UDP modes: the worker's listener (one of an SO_REUSEPORT group). Raw-IP modes: one socket
  // per IP protocol received, on worker 0 only (see raw_socket.h).
  std::vector<UniqueFd> receivers;
  std::vector<uint8_t> receiver_protocols;  // per receiver: 0 for UDP, else the IP protocol
  // UDP modes: the entropy-port senders. Raw-IP modes: one header-including socket.
  std::vector<UniqueFd> senders;
};

class Worker {
 public:
  Worker(const WorkerConfig& config, TablePublisher<PeerTable>& tables, LearnedFdb& fdb, WorkerStats stats,
         int device_fd, UnderlaySockets sockets, int stop_fd);

  // Thread body: returns once stop_fd becomes readable.
  void run();

  // Set (relaxed) when this worker can no longer use its device or its event loop failed.
  void report_failure_to(std::atomic<bool>* flag) { lost_flag_ = flag; }

 private:
  struct Pending {
    PacketBuffer* buffer;
    uint32_t peer;          // index into the current table
    uint32_t inner_length;  // bytes of the inner frame, for the counters
    OuterFields outer;      // raw-IP modes
    uint32_t flow_label;    // raw-IP modes over IPv6: the inner flow's hash (RFC 6438)
  };

  // Where an inner frame goes: its peer (kNone: every peer), the send socket of its flow, what
  // it is, and what its outer header copies from it. Returns false if it was dropped (counted).
  struct Route {
    uint32_t peer = PeerTable::kNone;
    uint32_t socket = 0;
    uint16_t ethertype = 0;
    OuterFields outer;
    uint32_t flow_label = 0;
  };
  bool route_frame(const uint8_t* frame, uint32_t length, Route* route);
  bool route_ethernet(const uint8_t* frame, uint32_t length, Route* route);
  bool route_ip(const uint8_t* packet, uint32_t length, Route* route);
  // An inner packet too big for the underlay: answered (DF) or counted; true if it was.
  bool refuse_too_big(const uint8_t* frame, uint32_t length, uint32_t peer);
  void clamp_mss(uint8_t* frame, uint32_t length, bool checksum_partial);

  void refresh_table();
  void handle_device();
  size_t read_device_batch();
  size_t read_packet_batch();
  void encapsulate_batch(size_t count);
  void send_frames(PacketBuffer** frames, size_t count, const Route& route);
  void queue_send(uint32_t socket, PacketBuffer& buffer, uint32_t peer, uint32_t inner_length, const Route& route);
  void flush_sends();
  void send_run(uint32_t socket, std::vector<Pending>& run);
  size_t build_messages(const std::vector<Pending>& run, bool use_gso);
  size_t build_raw_messages(const std::vector<Pending>& run);
  bool wait_writable(int fd);

  void handle_underlay(size_t receiver);
  void receive_datagram(PacketBuffer& buffer, const mmsghdr& message, uint8_t protocol);
  // What the outer header of a raw-IP packet said, for decapsulation.
  struct OuterInfo {
    uint8_t protocol = 0;  // 0: UDP
    uint8_t ecn = 0;
    bool ecn_known = false;
  };
  // RFC 6040 decapsulation of the outer ECN onto an inner IP packet; false: drop it.
  bool apply_outer_ecn(uint8_t* packet, uint32_t length, const OuterInfo& outer);
  // Strips the outer IPv4 header a raw socket delivers; returns false if dropped (counted).
  bool strip_outer_header(PacketBuffer& buffer, const mmsghdr& message, uint32_t slot, OuterInfo* outer);
  bool decapsulate_one(uint8_t* packet, uint32_t length, uint32_t peer, uint32_t slot, const OuterInfo& outer,
                       uint32_t* inner_offset, uint32_t* inner_length);
  // ESP: SA by SPI, replay check, ICV and decryption, trailer; then the inner checks.
  bool decapsulate_esp(uint8_t* packet, uint32_t length, uint32_t peer, uint32_t slot, const OuterInfo& outer,
                       uint32_t* inner_offset, uint32_t* inner_length);
  EspAead& aead_for(const EspSaState& sa);
  void send_esp_frames(PacketBuffer** frames, size_t count, const Route& route);
  void seal_and_queue(PacketBuffer& buffer, uint32_t peer, uint8_t next_header, const Route& route);
  bool accept_ethernet(uint8_t* frame, uint32_t length, uint32_t slot, const OuterInfo& outer);
  bool accept_ip(uint8_t* packet, uint32_t length, uint16_t ethertype, uint32_t peer, uint32_t slot,
                 const OuterInfo& outer);
  void coalesce(PacketBuffer* frame, uint32_t slot);
  void flush_coalesced();
  void write_frame(const uint8_t* frame, uint32_t length, uint32_t slot);
  bool write_device(const uint8_t* frame, uint32_t length, uint32_t slot, uint32_t segments);
  void deliver(const uint8_t* frame, uint32_t length, uint32_t slot, uint32_t segments, uint64_t bytes, bool merged);
  void count_delivered(const DeviceWrite& write);
  void count_write_failure(int error, uint32_t slot, uint32_t segments);
  void submit_device_writes();
  void device_gone();

  // Segments of TSO super-frames waiting to be sent: up to 512, within about 4 MB.
  static size_t segment_buffer_count(uint32_t frame) {
    return std::max<size_t>(64, std::min<size_t>(512, (size_t{4} << 20) / (frame + kHeadroom)));
  }
  // Buffers for datagrams of a UDP_GRO batch, each able to head a 64 KB coalesced run.
  static constexpr size_t kGroBuffers = 128;

  WorkerConfig config_;
  TablePublisher<PeerTable>& tables_;
  LearnedFdb& fdb_;
  WorkerStats stats_;
  int device_fd_;
  std::vector<UniqueFd> receivers_;
  std::vector<uint8_t> receiver_protocols_;
  std::vector<UniqueFd> send_sockets_;
  uint32_t link_header_;  // 14 on TAP, 0 on TUN
  AddressKey local_key_;
  int stop_fd_;
  int epoll_fd_ = -1;
  bool device_lost_ = false;
  std::atomic<bool>* lost_flag_ = nullptr;

  std::shared_ptr<const PeerTable> table_;
  uint64_t table_generation_ = UINT64_MAX;
  uint32_t now_ = 0;  // monotonic seconds, read once per wakeup

  // Device → underlay.
  BufferPool device_buffers_;
  std::vector<std::vector<Pending>> pending_;  // per send socket
  size_t pending_count_ = 0;
  std::vector<mmsghdr> send_messages_;
  std::vector<iovec> send_iovecs_;
  std::vector<uint32_t> message_first_;  // first Pending entry of each message
  std::vector<uint32_t> message_count_;  // Pending entries (datagrams) in each message
  std::vector<ControlBuffer> send_controls_;
  std::vector<std::array<uint8_t, 40>> outer_headers_;  // raw-IP modes: one per message
  TokenBucket icmp_budget_{kIcmpTooBigPerSecond, kIcmpTooBigBurst};
  // GRE sequence numbers (RFC 2890): the next one we send, and per peer slot the next one we
  // accept (with whether that peer has sent any yet).
  uint32_t gre_sequence_ = 0;
  std::vector<uint32_t> gre_expected_;
  std::vector<bool> gre_seen_;
  bool accept_sequence(const GreDecoded& gre, uint32_t slot);
  uint16_t icmp_id_ = 0;
  std::vector<uint8_t> icmp_buffer_;
  bool udp_gso_;
  BufferPool segment_buffers_;
  size_t segments_used_ = 0;
  std::vector<VirtioNetHeader> device_vnet_;  // per device buffer
  std::vector<PacketBuffer*> frame_list_;     // wire frames of the frame being encapsulated

  // Underlay → device.
  BufferPool underlay_buffers_;
  std::vector<mmsghdr> receive_messages_;
  std::vector<iovec> receive_iovecs_;
  std::vector<sockaddr_storage> receive_sources_;
  std::vector<ControlBuffer> receive_controls_;
  TcpCoalescer coalescer_;
  uint32_t coalescing_slot_ = UINT32_MAX;  // the peer whose frames the coalescer holds
  BufferPool gro_buffers_;
  std::vector<PacketBuffer*> gro_free_;
  std::vector<PacketBuffer*> gro_used_;
  std::vector<CoalescedFrame> coalesced_;
  std::unique_ptr<UringWriter> uring_;  // null: one write() per frame
  std::unique_ptr<PacketReceiver> packet_receiver_;  // packet sockets: recvmmsg with PACKET_AUXDATA
  std::vector<DeviceWrite> device_writes_;
  std::vector<bool> write_done_;
  // ESP: one keyed cipher context per SA this worker used since the last table swap (keying
  // once per SA, not per packet, saves ~20%); and copies of flooded frames, one per peer, since
  // each peer's copy is sealed with its own key.
  std::unordered_map<const EspSaState*, EspAead> aeads_;
  BufferPool esp_flood_buffers_;
  size_t esp_flood_used_ = 0;
};

}  // namespace ovl
