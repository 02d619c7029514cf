// One data-path thread: owns one device queue and its underlay sockets, and moves batches
// between them. Nothing here takes a lock per packet except the shared learned-FDB stripes.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "learned_fdb.h"
#include "packet_buffer.h"
#include "peer_table.h"
#include "stats_layout.h"
#include "table_publisher.h"
#include "unique_fd.h"

namespace ovl {

struct WorkerConfig {
  uint32_t index = 0;
  uint32_t vni = 0;
  uint32_t batch_size = 64;
  bool learning = true;
  MacKey device_mac = 0;
};

class Worker {
 public:
  Worker(const WorkerConfig& config, TablePublisher<PeerTable>& tables, LearnedFdb& fdb, WorkerStats stats,
         int device_fd, UniqueFd listen_socket, std::vector<UniqueFd> send_sockets, int stop_fd);

  // Thread body: returns once stop_fd becomes readable.
  void run();

 private:
  struct Pending {
    PacketBuffer* buffer;
    uint32_t peer;          // index into the current table
    uint32_t inner_length;  // bytes of the inner frame, for the counters
  };

  void refresh_table();
  void handle_device();
  size_t read_device_batch();
  void encapsulate_batch(size_t count);
  void queue_send(uint32_t socket, PacketBuffer& buffer, uint32_t peer, uint32_t inner_length);
  void flush_sends();
  void send_run(uint32_t socket, std::vector<Pending>& run);
  bool wait_writable(int fd);

  void handle_underlay();
  void decapsulate_one(PacketBuffer& buffer, const mmsghdr& message);

  WorkerConfig config_;
  TablePublisher<PeerTable>& tables_;
  LearnedFdb& fdb_;
  WorkerStats stats_;
  int device_fd_;
  UniqueFd listen_socket_;
  std::vector<UniqueFd> send_sockets_;
  int stop_fd_;

  std::shared_ptr<const PeerTable> table_;
  uint64_t table_generation_ = UINT64_MAX;
  uint32_t now_ = 0;  // monotonic seconds, read once per wakeup

  // Device → underlay.
  BufferPool device_buffers_;
  std::vector<std::vector<Pending>> pending_;  // per send socket
  size_t pending_count_ = 0;
  std::vector<mmsghdr> send_messages_;
  std::vector<iovec> send_iovecs_;

  // Underlay → device.
  BufferPool underlay_buffers_;
  std::vector<mmsghdr> receive_messages_;
  std::vector<iovec> receive_iovecs_;
  std::vector<sockaddr_storage> receive_sources_;
};

}  // namespace ovl
