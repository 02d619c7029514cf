#include "offload/offload_coalesce.h"

#include <cstring>
#include <memory>
#include <vector>

#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "offload/offload_segment.h"
#include "base/packet_buffer.h"
#include "reference_checksum.h"
#include "test.h"

using namespace ovl;
using ovl_test::ref_fold;

// TCP is the only protocol the coalescer merges.
static std::vector<uint8_t> ref_pseudo_and_l4(const uint8_t* ip, int version, const uint8_t* l4, size_t l4_length) {
  return ovl_test::ref_pseudo_and_l4(ip, version, l4, l4_length, 6);
}

namespace {

// ---- TCP frame builder with a knob for every field the coalescer compares. ----

constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10, kUrg = 0x20, kEce = 0x40,
                  kCwr = 0x80;

struct Spec {
  uint32_t link = 14;  // 14: Ethernet, 0: raw IP
  bool vlan = false;
  int version = 4;
  size_t payload = 1448;
  size_t payload_offset = 0;
  uint16_t sport = 40000;
  uint8_t tos = 0;
  uint8_t ttl = 64;
  bool df = true;
  uint32_t flow_label = 0xBCDEF;
  std::vector<uint8_t> ipv4_options;
  uint16_t ip_id = 0x1234;
  uint32_t seq = 1000;
  uint32_t ack = 0x0A0B0C0D;
  uint16_t window = 0x0200;
  bool timestamps = true;
  uint32_t tsval = 0x11223344;
  uint8_t tcp_flags = kAck;
  uint8_t mac_last = 0x01;
  bool full_checksum = true;  // false: the NEEDS_CSUM seed (folded pseudo-header sum)
};

struct Built {
  std::vector<uint8_t> frame;
  size_t l3, l4, payload;
};

uint8_t pattern(size_t i) { return static_cast<uint8_t>(i * 131 + (i >> 8) * 7 + 3); }

Built build(const Spec& spec) {
  Built b;
  std::vector<uint8_t>& f = b.frame;
  if (spec.link == 14) {
    f = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, spec.mac_last};
    if (spec.vlan) f.insert(f.end(), {0x81, 0x00, 0x00, 0x64});
    f.push_back(spec.version == 4 ? 0x08 : 0x86);
    f.push_back(spec.version == 4 ? 0x00 : 0xDD);
  }
  b.l3 = f.size();
  const size_t l4_header = spec.timestamps ? 32 : 20;
  if (spec.version == 4) {
    const size_t ihl = 20 + spec.ipv4_options.size();
    f.insert(f.end(), {static_cast<uint8_t>(0x40 | ihl / 4), spec.tos, 0, 0, 0, 0, static_cast<uint8_t>(spec.df ? 0x40 : 0), 0,
                       spec.ttl, 6, 0, 0, 198, 19, 0, 1, 198, 19, 0, 2});
    f.insert(f.end(), spec.ipv4_options.begin(), spec.ipv4_options.end());
    store_be16(&f[b.l3 + 2], static_cast<uint16_t>(ihl + l4_header + spec.payload));
    store_be16(&f[b.l3 + 4], spec.ip_id);
    store_be16(&f[b.l3 + 10], static_cast<uint16_t>(~ref_fold(std::vector<uint8_t>(f.begin() + b.l3, f.end()))));
  } else {
    f.insert(f.end(), {0, 0, 0, 0, 0, 0, 6, spec.ttl, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
                       0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2});
    store_be32(&f[b.l3], 0x60000000u | uint32_t{spec.tos} << 20 | spec.flow_label);
    store_be16(&f[b.l3 + 4], static_cast<uint16_t>(l4_header + spec.payload));
  }
  b.l4 = f.size();
  f.insert(f.end(), {0, 0, 0x14, 0x51, 0, 0, 0, 0, 0, 0, 0, 0, static_cast<uint8_t>(l4_header / 4 << 4), spec.tcp_flags,
                     0, 0, 0, 0, 0, 0});
  store_be16(&f[b.l4], spec.sport);
  store_be32(&f[b.l4 + 4], spec.seq);
  store_be32(&f[b.l4 + 8], spec.ack);
  store_be16(&f[b.l4 + 14], spec.window);
  if (spec.timestamps) {
    f.insert(f.end(), {1, 1, 8, 10, 0, 0, 0, 0, 0x55, 0x66, 0x77, 0x88});
    store_be32(&f[b.l4 + 24], spec.tsval);
  }
  b.payload = f.size();
  for (size_t i = 0; i < spec.payload; i++) f.push_back(pattern(spec.payload_offset + i));
  const size_t l4_length = f.size() - b.l4;
  if (spec.full_checksum) {
    store_be16(&f[b.l4 + 16], static_cast<uint16_t>(~ref_fold(ref_pseudo_and_l4(&f[b.l3], spec.version, &f[b.l4], l4_length))));
  } else {
    std::vector<uint8_t> pseudo = ref_pseudo_and_l4(&f[b.l3], spec.version, &f[b.l4], 0);
    if (spec.version == 4) store_be16(&pseudo[10], static_cast<uint16_t>(l4_length));
    else store_be32(&pseudo[32], static_cast<uint32_t>(l4_length));
    store_be16(&f[b.l4 + 16], ref_fold(pseudo));
  }
  return b;
}

// Segment i of a stream: payload offset, seq and IP ID advanced by i segments of `spec.payload`.
Spec nth(Spec spec, size_t i) {
  spec.payload_offset += i * spec.payload;
  spec.seq += static_cast<uint32_t>(i * spec.payload);
  spec.ip_id = static_cast<uint16_t>(spec.ip_id + i);
  return spec;
}

// A batch of buffers, each its own exactly-sized allocation (ASan sees overruns).
struct Batch {
  std::vector<std::unique_ptr<uint8_t[]>> memory;
  std::vector<std::unique_ptr<PacketBuffer>> buffers;
  std::vector<std::unique_ptr<GroCoalescer>> coalescers;
  PacketBuffer* add(const std::vector<uint8_t>& frame, uint32_t capacity = kHeadroom + kMaxPacket) {
    memory.emplace_back(new uint8_t[capacity]);
    buffers.emplace_back(new PacketBuffer);
    PacketBuffer* b = buffers.back().get();
    b->base = memory.back().get();
    b->capacity = capacity;
    b->reset();
    if (!frame.empty()) std::memcpy(b->data(), frame.data(), frame.size());
    b->length = static_cast<uint32_t>(frame.size());
    return b;
  }
};

std::vector<uint8_t> bytes_of(const PacketBuffer* b) { return std::vector<uint8_t>(b->data(), b->data() + b->length); }
// An output as the device write gathers it: the head, then the later segments' payloads.
std::vector<uint8_t> bytes_of(const CoalescedFrame& f) {
  std::vector<uint8_t> bytes = bytes_of(f.buffer);
  for (uint32_t i = 0; i < f.payload_count; i++) {
    const auto* p = static_cast<const uint8_t*>(f.payloads[i].iov_base);
    bytes.insert(bytes.end(), p, p + f.payloads[i].iov_len);
  }
  CHECK_EQ(bytes.size(), size_t{f.length()});
  return bytes;
}

// Feeds frames, finishes, returns the outputs.
std::vector<CoalescedFrame> coalesce(Batch& batch, const std::vector<std::vector<uint8_t>>& frames, uint32_t link = 14,
                                     uint32_t capacity = kHeadroom + kMaxPacket) {
  // The outputs' payload iovecs belong to the coalescer: it lives as long as the batch.
  batch.coalescers.emplace_back(new GroCoalescer(link));
  GroCoalescer& coalescer = *batch.coalescers.back();
  for (const auto& f : frames) coalescer.add(batch.add(f, capacity));
  CHECK_EQ(coalescer.pending() <= frames.size(), true);
  std::vector<CoalescedFrame> out;
  const size_t n = coalescer.finish(out);
  CHECK_EQ(n, out.size());
  CHECK_EQ(coalescer.pending(), 0u);
  return out;
}

bool is_merged(const CoalescedFrame& f) { return f.vnet.gso_type != kVirtioNetHdrGsoNone; }
bool is_untouched_valid(const CoalescedFrame& f) {
  return f.vnet.flags == kVirtioNetHdrFDataValid && f.vnet.gso_type == kVirtioNetHdrGsoNone && f.vnet.gso_size == 0 &&
         f.vnet.hdr_len == 0 && f.vnet.csum_start == 0 && f.vnet.csum_offset == 0;
}
bool is_plain(const CoalescedFrame& f) {
  return f.vnet.flags == 0 && f.vnet.gso_type == kVirtioNetHdrGsoNone && f.vnet.gso_size == 0;
}

// Checks that `out` is the merge of `count` segments of `first` (each of first.payload bytes,
// the last `last_payload` bytes) byte for byte, with the header the kernel expects.
void check_merged(const CoalescedFrame& out, const Spec& first, size_t count, size_t last_payload, uint8_t flags) {
  Spec whole = first;
  whole.payload = first.payload * (count - 1) + last_payload;
  whole.tcp_flags = flags;
  whole.full_checksum = false;  // the merged frame carries the NEEDS_CSUM seed
  const Built expected = build(whole);
  CHECK(is_merged(out));
  CHECK_EQ(out.vnet.flags, kVirtioNetHdrFNeedsCsum);
  CHECK_EQ(out.vnet.gso_type, first.version == 4 ? kVirtioNetHdrGsoTcpv4 : kVirtioNetHdrGsoTcpv6);
  CHECK_EQ(out.vnet.gso_size, first.payload);
  CHECK_EQ(out.vnet.hdr_len, expected.payload);
  CHECK_EQ(out.vnet.csum_start, expected.l4);
  CHECK_EQ(out.vnet.csum_offset, 16);
  const std::vector<uint8_t> got = bytes_of(out);
  CHECK_EQ(got.size(), expected.frame.size());
  CHECK(got == expected.frame);
  // Completing the checksum as the kernel would gives a valid one.
  std::vector<uint8_t> l4(got.begin() + static_cast<long>(expected.l4), got.end());
  const uint16_t complete = static_cast<uint16_t>(~ref_fold(l4));
  store_be16(&l4[16], complete);
  CHECK_EQ(ref_fold(ref_pseudo_and_l4(got.data() + expected.l3, first.version, l4.data(), l4.size())), 0xFFFF);
}

std::vector<std::vector<uint8_t>> stream(const Spec& spec, size_t count) {
  std::vector<std::vector<uint8_t>> frames;
  for (size_t i = 0; i < count; i++) frames.push_back(build(nth(spec, i)).frame);
  return frames;
}

// Segment a super-frame with segment_super_frame, coalesce the segments, compare with the
// original, and segment the result again.
void round_trip(const Spec& spec, uint16_t mss, uint32_t capacity = kHeadroom + kMaxPacket) {
  Spec super_spec = spec;
  super_spec.full_checksum = false;
  const Built super = build(super_spec);
  VirtioNetHeader vnet;
  vnet.flags = kVirtioNetHdrFNeedsCsum;
  vnet.gso_type = spec.version == 4 ? kVirtioNetHdrGsoTcpv4 : kVirtioNetHdrGsoTcpv6;
  vnet.hdr_len = static_cast<uint16_t>(super.payload);
  vnet.gso_size = mss;
  vnet.csum_start = static_cast<uint16_t>(super.l4);
  vnet.csum_offset = 16;
  Batch segments;
  std::vector<PacketBuffer*> out;
  for (int i = 0; i < 64; i++) out.push_back(segments.add({}));
  std::vector<PacketBuffer> array;
  for (auto* b : out) array.push_back(*b);
  const int n = segment_super_frame(vnet, super.frame.data(), super.frame.size(), spec.link, array.data(), array.size());
  CHECK(n > 1);
  if (n <= 1) return;
  std::vector<std::vector<uint8_t>> frames;
  for (int i = 0; i < n; i++) frames.push_back(bytes_of(&array[static_cast<size_t>(i)]));

  Batch batch;
  const std::vector<CoalescedFrame> merged = coalesce(batch, frames, spec.link, capacity);
  CHECK_EQ(merged.size(), 1u);
  if (merged.size() != 1) return;
  CHECK(bytes_of(merged[0]) == super.frame);
  CHECK_EQ(merged[0].vnet.flags, vnet.flags);
  CHECK_EQ(merged[0].vnet.gso_type, vnet.gso_type);
  CHECK_EQ(merged[0].vnet.hdr_len, vnet.hdr_len);
  CHECK_EQ(merged[0].vnet.gso_size, vnet.gso_size);
  CHECK_EQ(merged[0].vnet.csum_start, vnet.csum_start);
  CHECK_EQ(merged[0].vnet.csum_offset, vnet.csum_offset);
  // And back: the same segments again.
  const std::vector<uint8_t> again = bytes_of(merged[0]);
  const int n2 = segment_super_frame(merged[0].vnet, again.data(), again.size(), spec.link, array.data(), array.size());
  CHECK_EQ(n2, n);
  for (int i = 0; i < n && i < n2; i++) CHECK(bytes_of(&array[static_cast<size_t>(i)]) == frames[static_cast<size_t>(i)]);
}

}  // namespace

TEST(coalesce_round_trip_ipv4_tap_with_timestamps) {
  Spec spec;
  spec.payload = 20000;
  spec.tcp_flags = kAck | kPsh;
  round_trip(spec, 1448);
  spec.tcp_flags = kAck;
  spec.payload = 1448 * 10;  // all full
  round_trip(spec, 1448);
}

TEST(coalesce_round_trip_ipv6_tun_and_vlan) {
  Spec spec;
  spec.version = 6;
  spec.link = 0;
  spec.payload = 30001;
  spec.tcp_flags = kAck | kPsh;
  round_trip(spec, 1428);
  spec.link = 14;
  spec.vlan = true;
  spec.timestamps = false;
  round_trip(spec, 1440);
  spec.version = 4;
  spec.ip_id = 0xFFFA;  // IDs wrap inside the run
  spec.seq = 0xFFFFFF00u;  // and so do sequence numbers
  round_trip(spec, 1000);
}

TEST(coalesce_round_trip_largest) {
  // A 65535-byte IP packet, with TUN and with TAP behind a VLAN tag: the run needs no room in
  // its head's buffer, so segments of exactly their own size do.
  Spec spec;
  spec.link = 0;
  spec.payload = 65535 - 20 - 32;
  round_trip(spec, 1448, kHeadroom + 20 + 32 + 1448);
  spec.link = 14;
  spec.vlan = true;
  round_trip(spec, 1448, kHeadroom + 18 + 20 + 32 + 1448);
}

TEST(coalesce_merges_a_stream_and_reports_gso) {
  Spec spec;
  Batch batch;
  auto frames = stream(spec, 5);
  const auto out = coalesce(batch, frames);
  CHECK_EQ(out.size(), 1u);
  if (out.size() == 1) check_merged(out[0], spec, 5, 1448, kAck);
  CHECK(out[0].buffer == batch.buffers[0].get());  // the head buffer carries the run
  CHECK_EQ(out[0].buffer->offset, kHeadroom);      // headroom left for the caller's vnet header
}

TEST(coalesce_single_segment_is_untouched_and_data_valid) {
  Spec spec;
  Batch batch;
  const auto frame = build(spec).frame;
  const auto out = coalesce(batch, {frame});
  CHECK_EQ(out.size(), 1u);
  CHECK(is_untouched_valid(out[0]));
  CHECK(bytes_of(out[0]) == frame);
}

TEST(coalesce_interleaved_flows_keep_per_flow_order) {
  Spec a, b;
  b.sport = 40001;
  b.seq = 777777;
  Batch batch;
  const auto out = coalesce(batch, {build(nth(a, 0)).frame, build(nth(b, 0)).frame, build(nth(a, 1)).frame,
                                    build(nth(b, 1)).frame, build(nth(a, 2)).frame});
  CHECK_EQ(out.size(), 2u);
  if (out.size() != 2) return;
  check_merged(out[0], a, 3, 1448, kAck);
  check_merged(out[1], b, 2, 1448, kAck);
  // The reverse direction (ports swapped) is another flow.
}

TEST(coalesce_passes_non_tcp_through_in_order) {
  Spec a;
  std::vector<uint8_t> udp = build(a).frame;
  udp[14 + 9] = 17;  // not TCP any more (checksums irrelevant)
  const std::vector<uint8_t> arp = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1};
  Batch batch;
  const auto out = coalesce(batch, {build(nth(a, 0)).frame, udp, build(nth(a, 1)).frame, arp, build(nth(a, 2)).frame});
  CHECK_EQ(out.size(), 3u);
  if (out.size() != 3) return;
  check_merged(out[0], a, 3, 1448, kAck);
  CHECK(is_plain(out[1]) && bytes_of(out[1]) == udp);
  CHECK(is_plain(out[2]) && bytes_of(out[2]) == arp);
}

TEST(coalesce_bad_checksum_passes_through_untouched_and_splits_the_run) {
  Spec a;
  auto frames = stream(a, 5);
  frames[2][frames[2].size() - 1] ^= 0x01;  // corrupt payload: TCP checksum fails
  Batch batch;
  const auto out = coalesce(batch, frames);
  CHECK_EQ(out.size(), 3u);
  if (out.size() != 3) return;
  check_merged(out[0], a, 2, 1448, kAck);
  CHECK(is_plain(out[1]));
  CHECK(bytes_of(out[1]) == frames[2]);
  check_merged(out[2], nth(a, 3), 2, 1448, kAck);

  // A bad IPv4 header checksum: the same.
  frames = stream(a, 3);
  frames[1][14 + 10] ^= 0x10;
  Batch batch2;
  const auto out2 = coalesce(batch2, frames);
  CHECK_EQ(out2.size(), 3u);
  if (out2.size() == 3) {
    CHECK(is_untouched_valid(out2[0]));
    CHECK(is_plain(out2[1]) && bytes_of(out2[1]) == frames[1]);
    CHECK(is_untouched_valid(out2[2]));
  }
}

TEST(coalesce_requires_contiguous_sequence) {
  Spec a;
  Batch batch;
  // seq gap, then a retransmission of the same segment.
  const auto out = coalesce(batch, {build(nth(a, 0)).frame, build(nth(a, 2)).frame, build(nth(a, 3)).frame,
                                    build(nth(a, 3)).frame});
  CHECK_EQ(out.size(), 3u);
  if (out.size() != 3) return;
  CHECK(is_untouched_valid(out[0]));
  check_merged(out[1], nth(a, 2), 2, 1448, kAck);
  CHECK(is_untouched_valid(out[2]));
}

TEST(coalesce_requires_equal_headers) {
  struct Variant {
    const char* name;
    void (*change)(Spec&);
  };
  const Variant variants[] = {
      {"ack", [](Spec& s) { s.ack += 1; }},
      {"window", [](Spec& s) { s.window += 1; }},
      {"tsval", [](Spec& s) { s.tsval += 1; }},
      {"no timestamps", [](Spec& s) { s.timestamps = false; }},
      {"ttl", [](Spec& s) { s.ttl -= 1; }},
      {"tos", [](Spec& s) { s.tos = 0x02; }},
      {"ip id", [](Spec& s) { s.ip_id += 5; }},
      {"mac", [](Spec& s) { s.mac_last = 9; }},
  };
  for (const auto& variant : variants) {
    Spec a;
    Spec changed = nth(a, 1);
    variant.change(changed);
    Batch batch;
    const auto out = coalesce(batch, {build(a).frame, build(changed).frame});
    if (out.size() != 2) std::printf("    variant %s\n", variant.name);
    CHECK_EQ(out.size(), 2u);
    for (const auto& f : out) CHECK(is_untouched_valid(f));
  }
  // IPv6: flow label and hop limit.
  for (int which = 0; which < 2; which++) {
    Spec a;
    a.version = 6;
    Spec changed = nth(a, 1);
    if (which == 0) changed.flow_label ^= 1;
    else changed.ttl = 1;
    Batch batch;
    CHECK_EQ(coalesce(batch, {build(a).frame, build(changed).frame}).size(), 2u);
  }
}

TEST(coalesce_ipv4_needs_df_and_no_options) {
  Spec no_df;
  no_df.df = false;
  Batch batch;
  auto out = coalesce(batch, stream(no_df, 3));
  CHECK_EQ(out.size(), 3u);
  for (const auto& f : out) CHECK(is_untouched_valid(f));
  Spec options;
  options.ipv4_options = {0x94, 0x04, 0x00, 0x00};  // Router Alert
  Batch batch2;
  out = coalesce(batch2, stream(options, 3));
  CHECK_EQ(out.size(), 3u);
  for (const auto& f : out) CHECK(is_untouched_valid(f));
}

TEST(coalesce_psh_and_short_segment_end_the_run) {
  Spec a;
  auto frames = stream(a, 3);
  Spec psh = nth(a, 1);
  psh.tcp_flags = kAck | kPsh;
  frames[1] = build(psh).frame;
  Batch batch;
  auto out = coalesce(batch, frames);
  CHECK_EQ(out.size(), 2u);
  if (out.size() == 2) {
    check_merged(out[0], a, 2, 1448, kAck | kPsh);  // PSH carried onto the merged header
    CHECK(is_untouched_valid(out[1]));
  }
  // Short segment: 1448, 500, then 1448 (seq continues) starts anew.
  Spec short_one = nth(a, 1);
  short_one.payload = 500;
  Spec after = nth(a, 1);
  after.seq += 500;
  after.payload_offset = 1448 + 500;
  Batch batch2;
  out = coalesce(batch2, {build(a).frame, build(short_one).frame, build(after).frame});
  CHECK_EQ(out.size(), 2u);
  if (out.size() == 2) {
    check_merged(out[0], a, 2, 500, kAck);
    CHECK(is_untouched_valid(out[1]));
  }
  // A larger second segment can't follow a smaller first one.
  Spec small = a;
  small.payload = 500;
  Spec large = a;
  large.seq += 500;
  large.payload_offset = 500;
  large.ip_id += 1;
  Batch batch3;
  out = coalesce(batch3, {build(small).frame, build(large).frame});
  CHECK_EQ(out.size(), 2u);
}

TEST(coalesce_control_segments_pass_through_and_split_the_run) {
  for (uint8_t flags : {uint8_t{kAck | kFin}, uint8_t{kAck | kSyn}, uint8_t{kAck | kRst}, uint8_t{kAck | kUrg},
                        uint8_t{kAck | kEce}, uint8_t{kAck | kCwr}, uint8_t{kPsh}, uint8_t{0}}) {
    Spec a;
    auto frames = stream(a, 4);
    Spec odd = nth(a, 2);
    odd.tcp_flags = flags;
    frames[2] = build(odd).frame;
    Batch batch;
    const auto out = coalesce(batch, frames);
    CHECK_EQ(out.size(), 3u);
    if (out.size() != 3) continue;
    check_merged(out[0], a, 2, 1448, kAck);
    CHECK(is_untouched_valid(out[1]));
    CHECK(bytes_of(out[1]) == frames[2]);
    CHECK(is_untouched_valid(out[2]));  // seq 3 can't join the closed run
  }
  // A pure ACK (no payload) in the flow splits it too.
  Spec a;
  auto frames = stream(a, 3);
  Spec ack = nth(a, 2);
  ack.payload = 0;
  frames.insert(frames.begin() + 2, build(ack).frame);
  Batch batch;
  const auto out = coalesce(batch, frames);
  CHECK_EQ(out.size(), 3u);
}

TEST(coalesce_unparseable_tcp_keeps_order) {
  // An IPv4 fragment of a TCP packet between segments: runs held so far are closed.
  Spec a;
  auto frames = stream(a, 4);
  std::vector<uint8_t> fragment = build(Spec()).frame;
  fragment[14 + 6] = 0x20;  // MF
  fragment[14 + 7] = 0;
  frames.insert(frames.begin() + 2, fragment);
  Batch batch;
  const auto out = coalesce(batch, frames);
  CHECK_EQ(out.size(), 3u);
  if (out.size() == 3) {
    check_merged(out[0], a, 2, 1448, kAck);
    CHECK(is_plain(out[1]));
    check_merged(out[2], nth(a, 2), 2, 1448, kAck);
  }
}

TEST(coalesce_limits_runs_to_64k_of_ip) {
  Spec a;
  Batch batch;
  const auto out = coalesce(batch, stream(a, 50));
  // 20 + 32 + 45 * 1448 = 65212 fits; a 46th would not.
  CHECK_EQ(out.size(), 2u);
  if (out.size() == 2) {
    check_merged(out[0], a, 45, 1448, kAck);
    check_merged(out[1], nth(a, 45), 5, 1448, kAck);
    CHECK(out[0].length() <= 14 + 65535u);
  }
}

TEST(coalesce_limits_runs_to_64_segments) {
  // Small segments: 64 of 100 bytes are far from 64 KB, but a run of more would need more
  // iovecs per write than a run is allowed (kMaxRunSegments).
  Spec a;
  a.payload = 100;
  Batch batch;
  const auto out = coalesce(batch, stream(a, 70));
  CHECK_EQ(out.size(), 2u);
  if (out.size() == 2) {
    check_merged(out[0], a, 64, 100, kAck);
    check_merged(out[1], nth(a, 64), 6, 100, kAck);
    CHECK_EQ(out[0].payload_count, 63u);
  }
}

TEST(coalesce_full_64k_tap_run_needs_no_room_in_its_buffer) {
  // A 65535-byte IP packet behind a 14-byte Ethernet header, from buffers that hold exactly
  // one segment each: the run's payloads stay where they are, nothing grows into tailroom.
  Spec a;
  std::vector<std::vector<uint8_t>> all = stream(a, 45);
  Spec last = nth(a, 45);
  last.payload = 65535 - 20 - 32 - 45 * 1448;  // 323: this one makes it exactly 65535
  all.push_back(build(last).frame);
  Batch exact;
  const auto out = coalesce(exact, all, 14, kHeadroom + static_cast<uint32_t>(all[0].size()));
  CHECK_EQ(out.size(), 1u);
  if (out.size() == 1) check_merged(out[0], a, 46, 323, kAck);
  // One byte more and the run splits.
  all.back() = build([&] { Spec more = last; more.payload++; return more; }()).frame;
  Batch again;
  CHECK_EQ(coalesce(again, all, 14).size(), 2u);
}

TEST(coalesce_does_not_merge_padded_frames) {
  Spec a;
  a.payload = 4;
  auto frames = stream(a, 3);
  for (auto& f : frames) f.resize(f.size() + 6, 0);  // link padding after the IP packet
  Batch batch;
  const auto out = coalesce(batch, frames);
  CHECK_EQ(out.size(), 3u);
  for (size_t i = 0; i < out.size(); i++) {
    CHECK(is_untouched_valid(out[i]));
    CHECK(bytes_of(out[i]) == frames[i]);
  }
}

TEST(coalesce_tun_ipv4_and_reuse_across_batches) {
  Spec a;
  a.link = 0;
  GroCoalescer coalescer(0);
  for (int round = 0; round < 3; round++) {
    Batch batch;
    const Spec first = nth(a, static_cast<size_t>(round) * 4);
    for (const auto& f : stream(first, 4)) coalescer.add(batch.add(f));
    CHECK_EQ(coalescer.pending(), 1u);
    std::vector<CoalescedFrame> out;
    CHECK_EQ(coalescer.finish(out), 1u);
    if (out.size() == 1) check_merged(out[0], first, 4, 1448, kAck);
    CHECK_EQ(out.size() ? out[0].vnet.csum_start : 0, 20);
  }
  // Garbage and short frames pass through, whatever they are.
  GroCoalescer tap(14);
  Batch batch;
  for (size_t n = 0; n < 80; n++) {
    std::vector<uint8_t> junk(n, 0x45);
    tap.add(batch.add(junk));
  }
  std::vector<CoalescedFrame> out;
  CHECK_EQ(tap.finish(out), 80u);
}

// ---- UDP (USO writes) ----

// A UDP datagram of `payload` bytes (pattern from `offset`) from 198.19.0.1:40000 to
// 198.19.0.2:5201, behind Ethernet (link 14) or bare (0), DF set, checksummed.
std::vector<uint8_t> udp_frame(int version, uint32_t link, size_t payload, uint16_t ip_id, size_t offset = 0) {
  Spec ip;
  ip.version = version;
  ip.link = link;
  ip.payload = 0;
  ip.timestamps = false;
  Built b = build(ip);  // link and IP header of a TCP frame: turned into UDP below
  std::vector<uint8_t> f(b.frame.begin(), b.frame.begin() + static_cast<long>(b.l4));
  const size_t l4 = f.size();
  f.insert(f.end(), {0x9c, 0x40, 0x14, 0x51, 0, 0, 0, 0});
  for (size_t i = 0; i < payload; i++) f.push_back(pattern(offset + i));
  const size_t l4_length = f.size() - l4;
  store_be16(&f[l4 + 4], static_cast<uint16_t>(l4_length));
  if (version == 4) {
    f[b.l3 + 9] = 17;
    store_be16(&f[b.l3 + 2], static_cast<uint16_t>(20 + l4_length));
    store_be16(&f[b.l3 + 4], ip_id);
    store_be16(&f[b.l3 + 10], 0);
    store_be16(&f[b.l3 + 10], static_cast<uint16_t>(~ref_fold(std::vector<uint8_t>(f.begin() + static_cast<long>(b.l3),
                                                                                      f.begin() + static_cast<long>(l4)))));
  } else {
    f[b.l3 + 6] = 17;
    store_be16(&f[b.l3 + 4], static_cast<uint16_t>(l4_length));
  }
  const uint16_t sum = static_cast<uint16_t>(~ref_fold(ovl_test::ref_pseudo_and_l4(&f[b.l3], version, &f[l4], l4_length, 17)));
  store_be16(&f[l4 + 6], sum == 0 ? 0xFFFF : sum);
  return f;
}

std::vector<CoalescedFrame> coalesce_udp(Batch& batch, const std::vector<std::vector<uint8_t>>& frames, uint32_t link,
                                         bool udp) {
  batch.coalescers.emplace_back(new GroCoalescer(link));
  GroCoalescer& coalescer = *batch.coalescers.back();
  coalescer.coalesce_udp(udp);
  for (const auto& f : frames) coalescer.add(batch.add(f));
  std::vector<CoalescedFrame> out;
  coalescer.finish(out);
  return out;
}

TEST(coalesce_udp_stream_becomes_one_uso_frame_that_segments_back) {
  for (uint32_t link : {14u, 0u}) {
    for (int version : {4, 6}) {
      std::vector<std::vector<uint8_t>> frames;
      for (size_t i = 0; i < 20; i++) frames.push_back(udp_frame(version, link, 64, static_cast<uint16_t>(0xFFF0 + i), i * 64));
      frames.push_back(udp_frame(version, link, 30, static_cast<uint16_t>(0xFFF0 + 20), 20 * 64));  // a shorter last one
      Batch batch;
      const auto out = coalesce_udp(batch, frames, link, true);
      CHECK_EQ(out.size(), 1u);
      if (out.size() != 1) continue;
      const CoalescedFrame& merged = out[0];
      CHECK_EQ(merged.vnet.gso_type, kVirtioNetHdrGsoUdpL4);
      CHECK_EQ(merged.vnet.flags, kVirtioNetHdrFNeedsCsum);
      CHECK_EQ(merged.vnet.gso_size, 64);
      const size_t l4 = link + (version == 4 ? 20u : 40u);
      CHECK_EQ(merged.vnet.csum_start, l4);
      CHECK_EQ(merged.vnet.csum_offset, 6);
      CHECK_EQ(merged.vnet.hdr_len, l4 + 8);
      CHECK_EQ(merged.payload_count, 20u);
      // What the kernel does with it: cut it at gso_size, which must give back every datagram.
      const std::vector<uint8_t> whole = bytes_of(merged);
      CHECK_EQ(load_be16(&whole[l4 + 4]), whole.size() - l4);  // the merged UDP length
      Batch segments;
      std::vector<PacketBuffer> array;
      for (int i = 0; i < 32; i++) array.push_back(*segments.add({}));
      const int n = segment_super_frame(merged.vnet, whole.data(), whole.size(), link, array.data(), array.size());
      CHECK_EQ(n, 21);
      for (int i = 0; i < n && i < 21; i++) CHECK(bytes_of(&array[static_cast<size_t>(i)]) == frames[static_cast<size_t>(i)]);
      // Without USO on the device, every datagram goes alone and untouched.
      Batch plain;
      const auto alone = coalesce_udp(plain, frames, link, false);
      CHECK_EQ(alone.size(), 21u);
      for (size_t i = 0; i < alone.size(); i++) CHECK(is_plain(alone[i]) && bytes_of(alone[i]) == frames[i]);
    }
  }
}

TEST(coalesce_udp_refuses_what_it_could_not_give_back) {
  const auto stream_with = [](auto&& change) {
    std::vector<std::vector<uint8_t>> frames;
    for (size_t i = 0; i < 6; i++) frames.push_back(udp_frame(4, 14, 64, static_cast<uint16_t>(100 + i), i * 64));
    change(frames);
    return frames;
  };
  const size_t l4 = 14 + 20;
  // No checksum (0): nothing to verify, and a merged run would come out with one.
  auto frames = stream_with([&](auto& f) { store_be16(&f[2][l4 + 6], 0); });
  Batch a;
  auto out = coalesce_udp(a, frames, 14, true);
  CHECK_EQ(out.size(), 3u);  // [0, 1], 2 alone (flags 0: for the kernel to judge), [3, 4, 5]
  if (out.size() == 3) {
    CHECK_EQ(out[0].payload_count, 1u);
    CHECK(is_plain(out[1]) && bytes_of(out[1]) == frames[2]);
    CHECK_EQ(out[2].payload_count, 2u);
  }
  // A bad checksum: passed through untouched, and the run split around it.
  frames = stream_with([&](auto& f) { f[3].back() ^= 1; });
  Batch b;
  out = coalesce_udp(b, frames, 14, true);
  CHECK_EQ(out.size(), 3u);
  if (out.size() == 3) CHECK(is_plain(out[1]) && bytes_of(out[1]) == frames[3]);
  // A gap in the IPv4 IDs (a lost datagram): the kernel would number a merged run without it.
  frames = stream_with([&](auto& f) { f.erase(f.begin() + 2); });
  Batch c;
  CHECK_EQ(coalesce_udp(c, frames, 14, true).size(), 2u);
  // Another port is another flow: two runs.
  frames = stream_with([&](auto& f) {
    for (size_t i = 3; i < f.size(); i++) {
      store_be16(&f[i][l4 + 2], 5202);
      store_be16(&f[i][l4 + 6], 0);
      const uint16_t sum = static_cast<uint16_t>(~ref_fold(ovl_test::ref_pseudo_and_l4(&f[i][14], 4, &f[i][l4], f[i].size() - l4, 17)));
      store_be16(&f[i][l4 + 6], sum);
    }
  });
  Batch d;
  out = coalesce_udp(d, frames, 14, true);
  CHECK_EQ(out.size(), 2u);
  if (out.size() == 2) CHECK(out[0].payload_count == 2u && out[1].payload_count == 2u);
}

// The verifying tests above again, under each checksum implementation (wire/checksum.h): the
// coalescer checks every segment's IPv4 and TCP checksums, so a wrong sum would split runs or
// let a corrupted segment merge. To see which implementation fails, run core_tests with
// OVERLAYFWD_CHECKSUM=scalar, avx2 or avx512.
TEST(coalesce_checksums_under_every_checksum_implementation) {
  const ChecksumImplementation chosen = checksum_implementation();
  for (ChecksumImplementation implementation : kChecksumImplementations) {
    if (!checksum_use_implementation(implementation)) continue;
    test_coalesce_round_trip_ipv4_tap_with_timestamps();
    test_coalesce_round_trip_ipv6_tun_and_vlan();
    test_coalesce_round_trip_largest();
    test_coalesce_merges_a_stream_and_reports_gso();
    test_coalesce_bad_checksum_passes_through_untouched_and_splits_the_run();
    test_coalesce_tun_ipv4_and_reuse_across_batches();
    test_coalesce_udp_stream_becomes_one_uso_frame_that_segments_back();
    test_coalesce_udp_refuses_what_it_could_not_give_back();
  }
  checksum_use_implementation(chosen);
}
