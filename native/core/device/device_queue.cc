#include "device/device_queue.h"

#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>

namespace ovl {

namespace {

constexpr unsigned kRingEntries = 256;

}  // namespace

DeviceQueue::DeviceQueue(int fd, bool vnet_header, bool packet_socket, uint32_t max_frame, size_t batch_size,
                         bool uring)
    : fd_(fd), vnet_header_(vnet_header), packet_socket_(packet_socket) {
  if (packet_socket) packet_receiver_ = std::make_unique<PacketReceiver>(batch_size, vnet_header, max_frame);
  // The ring belongs to the thread that made it (single issuer).
  if (uring) {
    uring_ = UringWriter::create(kRingEntries);
    if (uring_) queued_.reserve(uring_->capacity());
  }
}

size_t DeviceQueue::read(PacketBuffer* buffers, VirtioNetHeader* vnet, size_t count, DeviceReport& report) {
  return packet_receiver_ ? read_packet_socket(buffers, vnet, count, report) : read_tun_tap(buffers, vnet, count, report);
}

size_t DeviceQueue::read_tun_tap(PacketBuffer* buffers, VirtioNetHeader* vnet, size_t count, DeviceReport& report) {
  // With vnet headers the 10-byte header is read into the headroom, so the frame still starts
  // at kHeadroom with all the headroom an encapsulation needs once the header is parsed.
  const uint32_t vnet_length = vnet_header_ ? kVirtioNetHeaderSize : 0;
  size_t kept = 0;
  while (kept < count) {
    PacketBuffer& buffer = buffers[kept];
    buffer.reset();
    buffer.offset -= vnet_length;
    const ssize_t n = ::read(fd_, buffer.data(), buffer.tailroom());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) {
        report.read_dropped(kDropDeviceError, 1);
        if (errno == EBADFD || errno == ENODEV || errno == EIO) report.device_gone();
      }
      break;
    }
    buffer.length = static_cast<uint32_t>(n);
    vnet[kept] = VirtioNetHeader{};
    if (vnet_length) {
      if (!parse_virtio_net_header(buffer.data(), buffer.length, &vnet[kept])) {
        report.read_dropped(kDropMalformed, 1);
        continue;
      }
      buffer.pull_front(vnet_length);
    }
    kept++;
  }
  return kept;
}

size_t DeviceQueue::read_packet_socket(PacketBuffer* buffers, VirtioNetHeader* vnet, size_t count,
                                       DeviceReport& report) {
  PacketReceiveCounts counts;
  const int n = packet_receiver_->receive(fd_, buffers, count, &counts);
  if (counts.truncated + counts.too_big > 0) report.read_dropped(kDropTooBig, counts.truncated + counts.too_big);
  if (counts.malformed > 0) report.read_dropped(kDropMalformed, counts.malformed);
  if (n < 0) {
    // A downed interface is not a lost one: the kernel re-attaches the socket when it comes up.
    if (errno != ENETDOWN) report.read_dropped(kDropDeviceError, 1);
    return 0;
  }
  // Every frame kept is at least vnet + 14 bytes: the header always parses.
  for (int i = 0; i < n; i++) {
    PacketBuffer& buffer = buffers[i];
    vnet[i] = VirtioNetHeader{};
    if (!vnet_header_) continue;
    parse_virtio_net_header(buffer.data(), buffer.length, &vnet[i]);
    buffer.pull_front(kVirtioNetHeaderSize);
  }
  return static_cast<size_t>(n);
}

void DeviceQueue::write(const DeviceWrite& write, WriteReport& report, DeviceReport& device) {
  if (!uring_) {
    if (write_one(write, report, device)) report.written(write);
    return;
  }
  if (write.part_count > 0) {
    uring_->queue_writev(fd_, write.parts, write.part_count, queued_.size());
  } else {
    uring_->queue_write(fd_, write.frame, write.length, queued_.size());
  }
  queued_.push_back(write);
  if (uring_->queued() == uring_->capacity()) flush(report, device);
}

void DeviceQueue::flush(WriteReport& report, DeviceReport& device) {
  if (!uring_ || queued_.empty()) return;
  done_.assign(queued_.size(), false);
  const bool ok = uring_->submit_and_wait([&](uint64_t tag, int result) {
    if (tag >= queued_.size()) return;
    done_[tag] = true;
    if (result >= 0) {
      report.written(queued_[tag]);
    } else {
      failed(queued_[tag], -result, report, device);
    }
  });
  if (!ok) {
    // The ring itself failed: finish this batch with write() and stay with it.
    report.ring_failed();
    uring_.reset();
    for (size_t i = 0; i < queued_.size(); i++) {
      if (!done_[i] && write_one(queued_[i], report, device)) report.written(queued_[i]);
    }
  }
  queued_.clear();
}

bool DeviceQueue::write_one(const DeviceWrite& write, WriteReport& report, DeviceReport& device) {
  for (;;) {
    const ssize_t written = write.part_count > 0 ? ::writev(fd_, write.parts, static_cast<int>(write.part_count))
                                                 : ::write(fd_, write.frame, write.length);
    if (written >= 0) return true;
    if (errno == EINTR) continue;
    failed(write, errno, report, device);
    return false;
  }
}

void DeviceQueue::failed(const DeviceWrite& write, int error, WriteReport& report, DeviceReport& device) {
  const bool full = error == EAGAIN || error == ENOBUFS;
  report.write_failed(write, full ? kDropQueueFull : kDropDeviceError);
  // A deleted packet socket's interface fails writes with ENXIO (packet_device.h).
  if (error == EBADFD || error == ENODEV || (packet_socket_ && error == ENXIO)) device.device_gone();
}

bool DeviceQueue::write_now(const uint8_t* frame, uint32_t length) { return ::write(fd_, frame, length) >= 0; }

}  // namespace ovl
