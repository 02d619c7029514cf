// Packet buffers with headroom: an encapsulation prepends its headers in place, so the
// fast path never copies a payload. A pool owns one contiguous allocation per worker.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace ovl {

// Enough for any outer header stack we build (IPv6 + UDP + Geneve with options, ESP, ...).
constexpr uint32_t kHeadroom = 192;
// A 64 KB IP datagram with its link header (TSO super-frames, coalesced runs, UDP_GRO batches).
constexpr uint32_t kMaxPacket = 65536 + 256;

struct PacketBuffer {
  uint8_t* base = nullptr;  // start of the allocation (headroom included)
  uint32_t capacity = 0;    // bytes from base
  uint32_t offset = 0;      // start of the packet
  uint32_t length = 0;      // bytes of packet from offset
  // Bytes that follow data()[0, length) on the wire but stay where they are: the payload slice
  // of a device read that a segment's headers were cut from (segment_super_frame_headers). The
  // underlay sends both as one datagram (an iovec each), so the payload is never copied in
  // userspace. Null when the whole packet is in the buffer.
  const uint8_t* tail = nullptr;
  uint32_t tail_length = 0;

  // The datagram's size: what is in the buffer and its tail.
  uint32_t wire_length() const { return length + tail_length; }

  uint8_t* data() { return base + offset; }
  const uint8_t* data() const { return base + offset; }

  // Resets to an empty packet that starts after the headroom.
  void reset() {
    offset = kHeadroom;
    length = 0;
    tail = nullptr;
    tail_length = 0;
  }
  uint32_t tailroom() const { return capacity - offset; }

  // Grows the packet towards the front by `bytes`; returns the new start. Caller checks headroom.
  uint8_t* push_front(uint32_t bytes) {
    offset -= bytes;
    length += bytes;
    return data();
  }
  // Drops `bytes` from the front (decapsulation).
  void pull_front(uint32_t bytes) {
    offset += bytes;
    length -= bytes;
  }
};

class BufferPool {
 public:
  BufferPool(size_t count, uint32_t packet_capacity)
      : stride_(align(kHeadroom + packet_capacity)),
        memory_(new uint8_t[stride_ * count]),
        buffers_(count) {
    for (size_t i = 0; i < count; i++) {
      buffers_[i].base = memory_.get() + i * stride_;
      buffers_[i].capacity = static_cast<uint32_t>(stride_);
      buffers_[i].reset();
    }
  }

  size_t size() const { return buffers_.size(); }
  PacketBuffer& operator[](size_t i) { return buffers_[i]; }

 private:
  static size_t align(size_t n) { return (n + 63) & ~size_t{63}; }

  size_t stride_;
  std::unique_ptr<uint8_t[]> memory_;
  std::vector<PacketBuffer> buffers_;
};

}  // namespace ovl
