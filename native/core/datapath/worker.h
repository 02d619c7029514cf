// One data-path thread: owns one device queue and its underlay sockets, and moves batches
// between them: transmit.h (device → underlay) and receive.h (underlay → device). This file is
// the event loop: wait, pick up the newest table, run whichever direction is ready. Nothing
// here takes a lock per packet except the shared learned-FDB stripes (and ESP's replay windows).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "base/packet_buffer.h"
#include "base/stats_layout.h"
#include "datapath/inner_policy.h"
#include "datapath/receive.h"
#include "datapath/transmit.h"
#include "datapath/worker_config.h"
#include "device/device_queue.h"
#include "tables/learned_fdb.h"
#include "tables/peer_table.h"
#include "tables/table_publisher.h"
#include "tunnel/tunnel.h"
#include "underlay/control_channel.h"
#include "underlay/link.h"

namespace ovl {

class Worker final : private DeviceReport {
 public:
  // `control` takes the control datagrams the worker receives (underlay/control_channel.h);
  // `drops` (may be null) the worker's record of its recent drops (base/drop_ring.h).
  Worker(const WorkerConfig& config, TablePublisher<PeerTable>& tables, LearnedFdb& fdb, WorkerStats stats,
         DropRing* drops, int device_fd, UnderlaySockets sockets, int stop_fd, ControlChannel& control);

  // Thread body: returns once stop_fd becomes readable.
  void run();

  // Set (relaxed) when this worker can no longer use its device or its event loop failed.
  void report_failure_to(std::atomic<bool>* flag) { lost_flag_ = flag; }

 private:
  void loop();
  void refresh_table();
  void handle_device();
  void count_underlay_errors();
  void count_receive_overflows();
  void read_strangers(size_t receiver);
  void arm_strangers(bool armed);
  void fail();

  // DeviceReport
  void read_dropped(Counter reason, uint64_t frames) override;
  void device_gone() override;

  WorkerConfig config_;
  TablePublisher<PeerTable>& tables_;
  LearnedFdb& fdb_;
  WorkerContext context_;
  int device_fd_;
  int stop_fd_;
  int epoll_fd_ = -1;
  bool device_lost_ = false;
  // The stranger socket (underlay/source_steering.h): read one batch at most every
  // kStrangerIntervalUs, unwatched in between.
  size_t stranger_ = UnderlaySockets::kNoStranger;
  bool strangers_armed_ = true;
  uint64_t strangers_next_us_ = 0;
  std::atomic<bool>* lost_flag_ = nullptr;
  std::shared_ptr<const PeerTable> table_;
  uint64_t table_generation_ = UINT64_MAX;

  std::unique_ptr<Tunnel> tunnel_;
  std::unique_ptr<UnderlayLink> link_;
  InnerPolicy policy_;
  Transmitter transmitter_;
  Receiver receiver_;
  std::unique_ptr<DeviceQueue> device_;  // made on the worker's own thread (its io_uring is)
  BufferPool device_buffers_;
  std::vector<VirtioNetHeader> device_vnet_;  // per device buffer
};

}  // namespace ovl
