// One device queue as the data path sees it, in the manner of wireguard-go's tun.Device: it
// reads a batch of frames into buffers and writes frames back, and keeps the mechanics behind
// that: the virtio_net_hdr of offload-capable devices, the packet socket's recvmmsg with its
// aux data (tun_tap_device.h, packet_device.h), and io_uring batched writes (uring_writer.h).
//
// A buffer read has its frame at data() with kHeadroom-size headroom for the encapsulation, and
// its offload header parsed into the matching VirtioNetHeader (all zero without vnet headers).
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "base/packet_buffer.h"
#include "base/stats_layout.h"
#include "device/packet_device.h"
#include "device/uring_writer.h"
#include "offload/offload_segment.h"

namespace ovl {

// What reading and writing report besides frames.
class DeviceReport {
 public:
  virtual ~DeviceReport() = default;
  virtual void read_dropped(Counter reason, uint64_t frames) = 0;
  // The device was deleted under us (or failed for good).
  virtual void device_gone() = 0;
};

// A frame on its way to the device, with what its delivery counts as.
struct DeviceWrite {
  const uint8_t* frame;
  uint32_t length;
  uint32_t slot;
  uint32_t segments;  // frames it stands for (a coalesced run stands for several)
  uint64_t bytes;     // the bytes of those frames as they arrived
  bool merged;
  // A frame in pieces (a vnet header, a coalesced run's head, then its later segments'
  // payloads where they arrived): parts[0, part_count) are written as one frame with writev,
  // and frame/length is only what a failed write records (the head, without the vnet header).
  // The parts must stay valid until flush().
  const iovec* parts = nullptr;
  uint32_t part_count = 0;
};

class WriteReport {
 public:
  virtual ~WriteReport() = default;
  virtual void written(const DeviceWrite& write) = 0;
  virtual void write_failed(const DeviceWrite& write, Counter reason) = 0;
  virtual void ring_failed() = 0;  // io_uring failed: writes go on with write()
};

class DeviceQueue {
 public:
  // `packet_socket`: the fd is an AF_PACKET socket (packet_device.h), read with recvmmsg;
  // `max_frame` then bounds frames without vnet headers (larger ones are super-frames we cannot
  // cut). `uring`: batch writes through io_uring where the kernel allows (made on this thread).
  DeviceQueue(int fd, bool vnet_header, bool packet_socket, uint32_t max_frame, size_t batch_size, bool uring);

  int fd() const { return fd_; }
  bool vnet_header() const { return vnet_header_; }

  // Reads up to `count` frames into buffers[0, n) and their offload headers into vnet[0, n).
  size_t read(PacketBuffer* buffers, VirtioNetHeader* vnet, size_t count, DeviceReport& report);

  // Hands a frame to the device: queued on the ring when there is one (written with the rest of
  // the batch at flush()), else written at once. Its fate is reported either way.
  void write(const DeviceWrite& write, WriteReport& report, DeviceReport& device);
  // Writes whatever the ring holds; the frames' buffers may be reused after this.
  void flush(WriteReport& report, DeviceReport& device);
  // Writes one frame now, outside any batch (generated ICMP errors); false if it failed.
  bool write_now(const uint8_t* frame, uint32_t length);

 private:
  size_t read_tun_tap(PacketBuffer* buffers, VirtioNetHeader* vnet, size_t count, DeviceReport& report);
  size_t read_packet_socket(PacketBuffer* buffers, VirtioNetHeader* vnet, size_t count, DeviceReport& report);
  bool write_one(const DeviceWrite& write, WriteReport& report, DeviceReport& device);
  void failed(const DeviceWrite& write, int error, WriteReport& report, DeviceReport& device);

  int fd_;
  bool vnet_header_;
  bool packet_socket_;
  std::unique_ptr<PacketReceiver> packet_receiver_;
  std::unique_ptr<UringWriter> uring_;  // null: one write() per frame
  std::vector<DeviceWrite> queued_;
  std::vector<bool> done_;
};

}  // namespace ovl
