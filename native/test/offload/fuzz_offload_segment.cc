// Fuzz target: segment_super_frame on hostile input must never read past the frame or write
// past an output buffer, and whatever it returns as segments must be well-formed.
//
// Input: byte 0 picks the gso type and flags, byte 1 the shape (link header, VLAN, IP version,
// options, buffer size, whether to repair the frame into a plausible super-frame), byte 2
// gso_size, byte 3 the output count, byte 4 hdr_len (and where a chunked call starts); the rest
// is the frame. In repair mode the target patches EtherType, IP version/IHL/length/protocol and
// the TCP data offset so that random bytes reach the segmentation code, not only the first
// length check (the random-input stand-in driver has no coverage feedback to find them).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "offload/offload_segment.h"
#include "base/packet_buffer.h"

using namespace ovl;

namespace {

constexpr size_t kMaxOut = 48;

// Output buffers, each an exact-capacity allocation (ASan redzones right after capacity).
struct Outputs {
  std::vector<std::unique_ptr<uint8_t[]>> memory;
  std::vector<PacketBuffer> buffers;
  explicit Outputs(uint32_t capacity) : buffers(kMaxOut) {
    for (auto& b : buffers) {
      memory.emplace_back(new uint8_t[capacity]);
      b.base = memory.back().get();
      b.capacity = capacity;
      b.reset();
    }
  }
};

void require(bool condition) {
  if (!condition) __builtin_trap();
}

void repair(std::vector<uint8_t>& f, uint8_t gso, uint8_t shape, uint32_t link, uint8_t hdr_len_byte,
            VirtioNetHeader* vnet) {
  const bool udp = gso == kVirtioNetHdrGsoUdpL4;
  const int version = gso == kVirtioNetHdrGsoTcpv6 ? 6 : gso == kVirtioNetHdrGsoTcpv4 ? 4 : (shape & 0x04) ? 6 : 4;
  auto put = [&](size_t at, uint8_t value) {
    if (at < f.size()) f[at] = value;
  };
  auto put16 = [&](size_t at, size_t value) {
    put(at, static_cast<uint8_t>(value >> 8));
    put(at + 1, static_cast<uint8_t>(value));
  };
  size_t l3 = link;
  if (link == 14) {
    if (shape & 0x08) {  // one VLAN tag
      put16(12, kEtherTypeVlan);
      l3 = 18;
    }
    put16(l3 - 2, version == 4 ? kEtherTypeIpv4 : kEtherTypeIpv6);
  }
  const size_t ip_length = f.size() > l3 ? f.size() - l3 - ((shape & 0x10) ? 2 : 0) : 0;  // maybe 2 bytes of padding
  size_t l4;
  if (version == 4) {
    const size_t ihl = (shape & 0x20) ? 24 : 20;  // with a 4-byte option area (left random)
    put(l3, static_cast<uint8_t>(0x40 | ihl / 4));
    put16(l3 + 2, ip_length);
    put16(l3 + 6, 0x4000);
    put(l3 + 9, udp ? kIpProtocolUdp : kIpProtocolTcp);
    if (ihl == 24) {  // three NOPs; the last option byte stays random (EOL, NOP or a bad option)
      put(l3 + 20, 0x01);
      put(l3 + 21, 0x01);
      put(l3 + 22, 0x01);
    }
    l4 = l3 + ihl;
  } else {
    put(l3, 0x60);
    put16(l3 + 4, ip_length >= 40 ? ip_length - 40 : 0);
    if (shape & 0x20) {  // hop-by-hop header of 8 bytes
      put(l3 + 6, 0);
      put(l3 + 40, udp ? kIpProtocolUdp : kIpProtocolTcp);
      put(l3 + 41, 0);
      l4 = l3 + 48;
    } else {
      put(l3 + 6, udp ? kIpProtocolUdp : kIpProtocolTcp);
      l4 = l3 + 40;
    }
  }
  if (!udp) put(l4 + 12, static_cast<uint8_t>((5 + (f.size() % 4)) << 4));
  vnet->csum_start = static_cast<uint16_t>(l4);
  vnet->csum_offset = udp ? kUdpChecksumOffset : kTcpChecksumOffset;
  vnet->hdr_len = static_cast<uint16_t>(hdr_len_byte & 0x80 ? l4 + 20 : hdr_len_byte);
}

// Checks an output the way a receiver would: lengths consistent, checksums valid.
void check_segment(const PacketBuffer& b, uint8_t gso, uint32_t link) {
  require(b.offset == kHeadroom && b.length <= b.capacity - b.offset);
  if (gso == kVirtioNetHdrGsoNone) return;
  const uint8_t protocol = gso == kVirtioNetHdrGsoUdpL4 ? kIpProtocolUdp : kIpProtocolTcp;
  PacketLayout layout;
  require(parse_packet_layout(b.data(), b.length, link, protocol, &layout) == 0);
  require(layout.end == b.length);  // padding was dropped
  const uint8_t* ip = b.data() + layout.l3;
  const uint32_t l4_length = static_cast<uint32_t>(layout.end - layout.l4);
  uint32_t sum;
  if (layout.ip_version == 4) {
    require(checksum_fold(checksum_add(ip, layout.l4 - layout.l3, 0)) == 0xFFFF);
    sum = pseudo_header_sum_ipv4(ip + 12, b.data() + layout.pseudo_destination, protocol, l4_length);
  } else {
    sum = pseudo_header_sum_ipv6(ip + 8, ip + 24, protocol, l4_length);
  }
  require(checksum_fold(checksum_add(b.data() + layout.l4, l4_length, sum)) == 0xFFFF);
  if (protocol == kIpProtocolUdp) require(load_be16(b.data() + layout.l4 + 4) == l4_length);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 5) return 0;
  static Outputs large(kHeadroom + 512);
  static Outputs small(kHeadroom + 80);
  static const uint8_t kTypes[8] = {kVirtioNetHdrGsoNone, kVirtioNetHdrGsoTcpv4, kVirtioNetHdrGsoTcpv6,
                                    kVirtioNetHdrGsoUdpL4, kVirtioNetHdrGsoTcpv4 | kVirtioNetHdrGsoEcn,
                                    kVirtioNetHdrGsoUdp, kVirtioNetHdrGsoTcpv6, 0};
  const uint8_t mode = data[0], shape = data[1];
  VirtioNetHeader vnet;
  vnet.gso_type = (mode & 7) == 7 ? data[4] : kTypes[mode & 7];
  vnet.flags = (mode >> 3) & 3;
  vnet.gso_size = data[2] == 0xFF ? 0 : static_cast<uint16_t>(1 + data[2] % 64);
  vnet.hdr_len = data[4];
  vnet.csum_start = static_cast<uint16_t>(data[3] % 64);
  vnet.csum_offset = static_cast<uint16_t>(data[4] % 32);
  const uint32_t link = (shape & 1) ? 14 : (shape & 0x40) ? 3 : 0;
  std::vector<uint8_t> frame(data + 5, data + size);
  const uint8_t gso = vnet.gso_type & static_cast<uint8_t>(~kVirtioNetHdrGsoEcn);
  if ((shape & 2) && gso != kVirtioNetHdrGsoNone && link != 3) repair(frame, gso, shape, link, data[4], &vnet);

  // Exactly-sized copy: a read at frame[length] is an ASan report.
  const size_t length = frame.size();
  std::unique_ptr<uint8_t[]> exact(new uint8_t[length ? length : 1]);
  if (length) std::memcpy(exact.get(), frame.data(), length);
  Outputs& outputs = (shape & 0x80) ? small : large;
  const size_t out_count = 1 + data[3] % kMaxOut;
  // Mostly the one-shot call; sometimes a chunk from the middle (segment `first` onwards).
  const size_t first = (shape & 0x40) && link != 3 ? data[4] % 8 : 0;
  size_t total = 0;
  const int n = first == 0 ? segment_super_frame(vnet, exact.get(), length, link, outputs.buffers.data(), out_count)
                           : segment_super_frame_range(vnet, exact.get(), length, link, first,
                                                       outputs.buffers.data(), out_count, &total);
  require(n >= kSegmentBufferTooSmall && n <= static_cast<int>(out_count) && (n != 0 || first >= total));
  for (int i = 0; i < n; i++) check_segment(outputs.buffers[static_cast<size_t>(i)], gso == kVirtioNetHdrGsoNone ? 0 : gso, link);
  // Without copying payload: the same segments as headers plus tails inside the frame, or the
  // same error (a buffer too small for the headers alone is a later, separate refusal).
  if (gso != kVirtioNetHdrGsoNone) {
    static Outputs headers_only(kHeadroom + 512);
    size_t total_headers = 0;
    const int h = segment_super_frame_headers(vnet, exact.get(), length, link, first, headers_only.buffers.data(),
                                              out_count, &total_headers);
    if (n > 0 && &outputs == &large) require(h == n);
    if (n < 0 && n != kSegmentBufferTooSmall && n != kSegmentTooManySegments) require(h == n);
    for (int i = 0; i < h && i < n; i++) {
      const PacketBuffer& b = headers_only.buffers[static_cast<size_t>(i)];
      const PacketBuffer& c = outputs.buffers[static_cast<size_t>(i)];
      require(b.tail >= exact.get() && b.tail + b.tail_length <= exact.get() + length);
      require(b.wire_length() == c.length && std::memcmp(b.data(), c.data(), b.length) == 0 &&
              (b.tail_length == 0 || std::memcmp(b.tail, c.data() + b.length, b.tail_length) == 0));
    }
  }
  if (n > 0 && first == 0 && gso == kVirtioNetHdrGsoNone) {
    require(outputs.buffers[0].length == length);
    if (!(vnet.flags & kVirtioNetHdrFNeedsCsum)) require(length == 0 || std::memcmp(outputs.buffers[0].data(), exact.get(), length) == 0);
  }
  return 0;
}
