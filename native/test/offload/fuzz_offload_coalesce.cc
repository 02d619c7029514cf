// Fuzz target: GroCoalescer on hostile batches must never read or write out of bounds, and
// what it outputs must be exactly what it was given: every input frame is either an output of
// its own, untouched, or one segment of a merged output, and segmenting a merged output with
// segment_super_frame gives back its input frames byte for byte, in order.
//
// Input: byte 0 picks the link header (TAP/TUN), IP version, raw or generated frames, buffer
// capacity and the number of flows; byte 1 the segment size and count. In generated mode each
// frame is a valid TCP segment of one of two flows, steered by one control byte (PSH, a short or
// odd-flagged segment, a sequence or IP ID gap) and optionally corrupted by the next bytes, so
// that merges happen and the rules that stop them are exercised; with UDP merging on, the frames
// may be UDP datagrams of those flows instead. In raw mode the rest of the input is cut into
// frames as they come.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "offload/offload_coalesce.h"
#include "offload/offload_segment.h"
#include "base/packet_buffer.h"

using namespace ovl;

namespace {

constexpr size_t kMaxFrames = 16;

void require(bool condition) {
  if (!condition) __builtin_trap();
}

// Buffers of exactly `capacity` bytes each: an append past capacity is an ASan report.
struct Pool {
  std::vector<std::unique_ptr<uint8_t[]>> memory;
  std::vector<PacketBuffer> buffers;
  explicit Pool(uint32_t capacity) : buffers(kMaxFrames) {
    for (auto& b : buffers) {
      memory.emplace_back(new uint8_t[capacity]);
      b.base = memory.back().get();
      b.capacity = capacity;
    }
  }
};

struct Reader {
  const uint8_t* data;
  size_t size;
  size_t at;
  uint8_t next() { return at < size ? data[at++] : 0; }
  bool done() const { return at >= size; }
};

struct FlowState {
  uint32_t seq;
  uint16_t id;
};

std::vector<uint8_t> tcp_segment(uint32_t link, int version, uint16_t sport, const FlowState& flow, uint8_t flags,
                                 size_t payload, uint8_t fill) {
  std::vector<uint8_t> f;
  if (link == 14) {
    f = {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1};
    f.push_back(version == 4 ? 0x08 : 0x86);
    f.push_back(version == 4 ? 0x00 : 0xDD);
  }
  const size_t l3 = f.size();
  if (version == 4) {
    f.insert(f.end(), {0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2});
    store_be16(&f[l3 + 2], static_cast<uint16_t>(20 + 32 + payload));
    store_be16(&f[l3 + 4], flow.id);
    store_be16(&f[l3 + 10], ipv4_header_checksum(&f[l3], 20));
  } else {
    f.insert(f.end(), {0x60, 0, 0, 1, 0, 0, 6, 64});
    store_be16(&f[l3 + 4], static_cast<uint16_t>(32 + payload));
    for (int i = 0; i < 32; i++) f.push_back(static_cast<uint8_t>(i < 16 ? (i == 15 ? 1 : 0xfd) : (i == 31 ? 2 : 0xfd)));
  }
  const size_t l4 = f.size();
  f.insert(f.end(), {0, 0, 0x01, 0xBB, 0, 0, 0, 0, 0, 0, 0x10, 0, 0x80, flags, 0x01, 0x00, 0, 0, 0, 0,
                     1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9});
  store_be16(&f[l4], sport);
  store_be32(&f[l4 + 4], flow.seq);
  for (size_t i = 0; i < payload; i++) f.push_back(static_cast<uint8_t>(fill + i));
  const uint32_t l4_length = static_cast<uint32_t>(f.size() - l4);
  const uint32_t pseudo = version == 4 ? pseudo_header_sum_ipv4(&f[l3 + 12], &f[l3 + 16], 6, l4_length)
                                       : pseudo_header_sum_ipv6(&f[l3 + 8], &f[l3 + 24], 6, l4_length);
  store_be16(&f[l4 + 16], checksum_finish(checksum_add(&f[l4], l4_length, pseudo)));
  return f;
}

// The same flow as UDP: tcp_segment's link and IP headers, a UDP header instead of TCP's.
std::vector<uint8_t> udp_datagram(uint32_t link, int version, uint16_t sport, const FlowState& flow, size_t payload,
                                  uint8_t fill) {
  std::vector<uint8_t> f = tcp_segment(link, version, sport, flow, 0x10, 0, fill);
  const size_t l3 = link;
  const size_t l4 = l3 + (version == 4 ? 20 : 40);
  f.resize(l4);
  f.insert(f.end(), {0, 0, 0x14, 0x51, 0, 0, 0, 0});
  store_be16(&f[l4], sport);
  for (size_t i = 0; i < payload; i++) f.push_back(static_cast<uint8_t>(fill + i));
  const uint32_t l4_length = static_cast<uint32_t>(f.size() - l4);
  store_be16(&f[l4 + 4], static_cast<uint16_t>(l4_length));
  if (version == 4) {
    f[l3 + 9] = 17;
    store_be16(&f[l3 + 2], static_cast<uint16_t>(20 + l4_length));
    store_be16(&f[l3 + 10], 0);
    store_be16(&f[l3 + 10], ipv4_header_checksum(&f[l3], 20));
  } else {
    f[l3 + 6] = 17;
    store_be16(&f[l3 + 4], static_cast<uint16_t>(l4_length));
  }
  const uint32_t pseudo = version == 4 ? pseudo_header_sum_ipv4(&f[l3 + 12], &f[l3 + 16], 17, l4_length)
                                       : pseudo_header_sum_ipv6(&f[l3 + 8], &f[l3 + 24], 17, l4_length);
  const uint16_t check = checksum_finish(checksum_add(&f[l4], l4_length, pseudo));
  store_be16(&f[l4 + 6], check == 0 ? 0xFFFF : check);
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static Pool large(kHeadroom + kMaxPacket);
  static Pool small(kHeadroom + 300);
  static std::vector<PacketBuffer> scratch(64);  // for re-segmenting merged outputs
  static std::vector<std::unique_ptr<uint8_t[]>> scratch_memory;
  if (scratch_memory.empty()) {
    for (auto& b : scratch) {
      scratch_memory.emplace_back(new uint8_t[kHeadroom + kMaxPacket]);
      b.base = scratch_memory.back().get();
      b.capacity = kHeadroom + kMaxPacket;
    }
  }

  const uint8_t mode = data[0], sizing = data[1];
  const uint32_t link = (mode & 1) ? 14 : 0;
  const int version = (mode & 2) ? 6 : 4;
  const bool generated = (mode & 4) != 0;
  Pool& pool = (mode & 8) ? small : large;
  const int flows = (mode & 16) ? 2 : 1;
  // UDP merging on (a USO device); generated frames are then UDP datagrams when bit 6 says so.
  const bool udp = (mode & 32) != 0;
  const bool udp_frames = udp && (mode & 64) != 0;
  Reader in{data, size, 2};

  std::vector<std::vector<uint8_t>> frames;
  if (generated) {
    const size_t mss = 1 + sizing % 40;
    const size_t count = 2 + (sizing >> 6) * 4 + in.next() % 4;
    FlowState state[2] = {{0xFFFFFFF0u, 0xFFFE}, {1000, 7}};
    while (frames.size() < count && frames.size() < kMaxFrames) {
      const uint8_t control = in.next();
      const int flow = flows == 2 ? control & 1 : 0;
      size_t payload = (control & 0x06) == 0x06 ? control % mss : mss;  // sometimes short (or empty)
      uint8_t flags = 0x10;                                            // ACK
      if ((control & 0x18) == 0x18) flags |= 0x08;                     // PSH
      if ((control & 0x18) == 0x10 && (control & 0x60) == 0x60) flags = in.next();
      if ((control & 0x60) == 0x20) state[flow].seq += 1;              // sequence gap
      if ((control & 0x60) == 0x40) state[flow].id += 3;               // IP ID gap
      std::vector<uint8_t> f =
          udp_frames ? udp_datagram(link, version, static_cast<uint16_t>(40000 + flow), state[flow], payload,
                                    static_cast<uint8_t>(frames.size() * 13))
                     : tcp_segment(link, version, static_cast<uint16_t>(40000 + flow), state[flow], flags, payload,
                                   static_cast<uint8_t>(frames.size() * 13));
      state[flow].seq += static_cast<uint32_t>(payload);
      state[flow].id = static_cast<uint16_t>(state[flow].id + 1);
      if (control & 0x80) {  // corrupt one byte (checksums no longer match, or a field differs)
        const size_t at = in.next() % f.size();
        f[at] ^= static_cast<uint8_t>(in.next() | 1);
      }
      frames.push_back(std::move(f));
    }
  } else {
    while (!in.done() && frames.size() < kMaxFrames) {
      const size_t n = in.next() % 100;
      std::vector<uint8_t> f;
      for (size_t i = 0; i < n && !in.done(); i++) f.push_back(in.next());
      frames.push_back(std::move(f));
    }
  }

  GroCoalescer coalescer(link);
  coalescer.coalesce_udp(udp);
  for (size_t i = 0; i < frames.size(); i++) {
    PacketBuffer& b = pool.buffers[i];
    b.reset();
    if (frames[i].size() > b.capacity - b.offset) frames[i].resize(b.capacity - b.offset);
    if (!frames[i].empty()) std::memcpy(b.data(), frames[i].data(), frames[i].size());
    b.length = static_cast<uint32_t>(frames[i].size());
    coalescer.add(&b);
  }
  std::vector<CoalescedFrame> out;
  require(coalescer.finish(out) == out.size());
  require(out.size() <= frames.size());

  // Every input accounted for exactly once.
  std::vector<bool> matched(frames.size(), false);
  auto index_of = [&](const PacketBuffer* b) {
    const size_t i = static_cast<size_t>(b - pool.buffers.data());
    require(i < frames.size());
    return i;
  };
  for (const auto& o : out) {
    require(o.buffer->offset == kHeadroom && o.buffer->length <= o.buffer->capacity - o.buffer->offset);
    const size_t i = index_of(o.buffer);
    require(!matched[i]);
    if (o.vnet.gso_type != kVirtioNetHdrGsoNone) continue;
    require(o.payload_count == 0);
    require(o.vnet.flags == 0 || o.vnet.flags == kVirtioNetHdrFDataValid);
    require(o.buffer->length == frames[i].size() &&
            (frames[i].empty() || std::memcmp(o.buffer->data(), frames[i].data(), frames[i].size()) == 0));
    matched[i] = true;
  }
  for (const auto& o : out) {
    if (o.vnet.gso_type == kVirtioNetHdrGsoNone) continue;
    require(o.vnet.flags == kVirtioNetHdrFNeedsCsum);
    // The frame as the device write gathers it; every payload lies inside a later input's
    // buffer, as it arrived (nothing was copied).
    std::vector<uint8_t> whole(o.buffer->data(), o.buffer->data() + o.buffer->length);
    for (uint32_t k = 0; k < o.payload_count; k++) {
      const auto* p = static_cast<const uint8_t*>(o.payloads[k].iov_base);
      bool inside = false;
      for (size_t i = index_of(o.buffer) + 1; i < frames.size() && !inside; i++) {
        const PacketBuffer& b = pool.buffers[i];
        inside = p >= b.data() && p + o.payloads[k].iov_len <= b.data() + b.length;
      }
      require(inside);
      whole.insert(whole.end(), p, p + o.payloads[k].iov_len);
    }
    require(whole.size() == o.length() && whole.size() <= 65535 + 22);
    const int n = segment_super_frame(o.vnet, whole.data(), whole.size(), link, scratch.data(), scratch.size());
    require(n >= 2);
    size_t at = index_of(o.buffer);
    for (int s = 0; s < n; s++) {
      const PacketBuffer& seg = scratch[static_cast<size_t>(s)];
      // The head must be its own buffer's input; later segments come later in the batch.
      while (at < frames.size() &&
             (matched[at] || frames[at].size() != seg.length || std::memcmp(frames[at].data(), seg.data(), seg.length) != 0)) {
        require(s > 0);
        at++;
      }
      require(at < frames.size());
      matched[at] = true;
    }
  }
  for (bool m : matched) require(m);
  return 0;
}
