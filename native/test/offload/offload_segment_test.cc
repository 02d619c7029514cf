#include "offload/offload_segment.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "base/packet_buffer.h"
#include "reference_checksum.h"
#include "test.h"

using namespace ovl;
using ovl_test::ref_fold;
using ovl_test::ref_pseudo_and_l4;

namespace {

// True when the L4 checksum of the packet verifies (the sum over everything folds to 0xFFFF).
bool ref_l4_valid(const uint8_t* ip, int version, const uint8_t* l4, size_t l4_length, uint8_t protocol,
                  const uint8_t* final_destination = nullptr) {
  return ref_fold(ref_pseudo_and_l4(ip, version, l4, l4_length, protocol, final_destination)) == 0xFFFF;
}

bool ref_ipv4_header_valid(const uint8_t* ip) {
  const size_t length = size_t{ip[0] & 0x0Fu} * 4;
  return ref_fold(std::vector<uint8_t>(ip, ip + length)) == 0xFFFF;
}

// ---- Frame builder. ----

constexpr uint8_t kFin = 0x01, kPsh = 0x08, kAck = 0x10, kEce = 0x40, kCwr = 0x80;

struct Spec {
  uint32_t link = 14;      // 14: Ethernet, 0: raw IP
  bool vlan = false;       // one 802.1Q tag
  int version = 4;
  uint8_t protocol = 6;    // 6 TCP, 17 UDP
  size_t payload = 4000;
  size_t payload_offset = 0;  // where in the endless payload pattern this frame's payload starts
  bool timestamps = true;
  uint8_t tcp_flags = kAck | kPsh;
  std::vector<uint8_t> ipv4_options;  // a multiple of 4 bytes
  bool ipv6_hop_by_hop = false;
  uint16_t ip_id = 0x1234;
  uint32_t seq = 0x01020304;
  bool full_checksum = false;  // true: a complete L4 checksum; false: the kernel's NEEDS_CSUM seed
  const uint8_t* final_destination = nullptr;  // pseudo-header destination override (source route)
};

struct Built {
  std::vector<uint8_t> frame;
  size_t l3, l4, payload;  // offsets
};

uint8_t pattern(size_t i) { return static_cast<uint8_t>(i * 131 + (i >> 8) * 7 + 3); }

Built build(const Spec& spec) {
  Built b;
  std::vector<uint8_t>& f = b.frame;
  if (spec.link == 14) {
    f = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01};
    if (spec.vlan) f.insert(f.end(), {0x81, 0x00, 0x20, 0x64});  // PCP 1, VID 100
    f.push_back(spec.version == 4 ? 0x08 : 0x86);
    f.push_back(spec.version == 4 ? 0x00 : 0xDD);
  }
  b.l3 = f.size();
  const size_t l4_header = spec.protocol == 6 ? (spec.timestamps ? 32 : 20) : 8;
  if (spec.version == 4) {
    const size_t ihl = 20 + spec.ipv4_options.size();
    f.insert(f.end(), {static_cast<uint8_t>(0x40 | ihl / 4), 0x02 /* ECT(0) */, 0, 0, 0, 0, 0x40, 0x00 /* DF */,
                       64, spec.protocol, 0, 0, 198, 19, 0, 1, 198, 19, 0, 2});
    f.insert(f.end(), spec.ipv4_options.begin(), spec.ipv4_options.end());
    store_be16(&f[b.l3 + 2], static_cast<uint16_t>(ihl + l4_header + spec.payload));
    store_be16(&f[b.l3 + 4], spec.ip_id);
    store_be16(&f[b.l3 + 10], static_cast<uint16_t>(~ref_fold(std::vector<uint8_t>(f.begin() + b.l3, f.end()))));
  } else {
    f.insert(f.end(), {0x6A, 0x1B, 0xCD, 0xEF, 0, 0, spec.ipv6_hop_by_hop ? uint8_t{0} : spec.protocol, 64,
                       0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
                       0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2});
    size_t extension = 0;
    if (spec.ipv6_hop_by_hop) {
      f.insert(f.end(), {spec.protocol, 0, 0x01, 0x04, 0, 0, 0, 0});  // PadN
      extension = 8;
    }
    store_be16(&f[b.l3 + 4], static_cast<uint16_t>(extension + l4_header + spec.payload));
  }
  b.l4 = f.size();
  if (spec.protocol == 6) {
    f.insert(f.end(), {0x9C, 0x40 /* 40000 */, 0x14, 0x51 /* 5201 */, 0, 0, 0, 0, 0x0A, 0x0B, 0x0C, 0x0D,
                       static_cast<uint8_t>(l4_header / 4 << 4), spec.tcp_flags, 0x02, 0x00, 0, 0, 0, 0});
    store_be32(&f[b.l4 + 4], spec.seq);
    if (spec.timestamps) f.insert(f.end(), {1, 1, 8, 10, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88});
  } else {
    f.insert(f.end(), {0x9C, 0x40, 0x11, 0x51 /* 4433 */, 0, 0, 0, 0});
    store_be16(&f[b.l4 + 4], static_cast<uint16_t>(8 + spec.payload));
  }
  b.payload = f.size();
  for (size_t i = 0; i < spec.payload; i++) f.push_back(pattern(spec.payload_offset + i));
  const size_t check_at = b.l4 + (spec.protocol == 6 ? 16 : 6);
  const size_t l4_length = f.size() - b.l4;
  if (spec.full_checksum) {
    uint16_t check = static_cast<uint16_t>(
        ~ref_fold(ref_pseudo_and_l4(&f[b.l3], spec.version, &f[b.l4], l4_length, spec.protocol, spec.final_destination)));
    if (check == 0 && spec.protocol == 17) check = 0xFFFF;
    store_be16(&f[check_at], check);
  } else {
    // What the kernel leaves with NEEDS_CSUM: the folded pseudo-header sum, not complemented.
    std::vector<uint8_t> pseudo = ref_pseudo_and_l4(&f[b.l3], spec.version, &f[b.l4], 0, spec.protocol, spec.final_destination);
    if (spec.version == 4) store_be16(&pseudo[10], static_cast<uint16_t>(l4_length));
    else store_be32(&pseudo[32], static_cast<uint32_t>(l4_length));
    store_be16(&f[check_at], ref_fold(pseudo));
  }
  return b;
}

VirtioNetHeader gso_header(const Spec& spec, const Built& b, uint16_t gso_size) {
  VirtioNetHeader h;
  h.flags = kVirtioNetHdrFNeedsCsum;
  h.gso_type = spec.protocol == 17 ? kVirtioNetHdrGsoUdpL4 : spec.version == 4 ? kVirtioNetHdrGsoTcpv4 : kVirtioNetHdrGsoTcpv6;
  h.hdr_len = static_cast<uint16_t>(b.payload);
  h.gso_size = gso_size;
  h.csum_start = static_cast<uint16_t>(b.l4);
  h.csum_offset = spec.protocol == 6 ? 16 : 6;
  return h;
}

// Output buffers allocated one by one with exactly `capacity` bytes, so ASan sees any overrun.
struct Buffers {
  std::vector<std::unique_ptr<uint8_t[]>> memory;
  std::vector<PacketBuffer> buffers;
  Buffers(size_t count, uint32_t capacity) : buffers(count) {
    for (auto& b : buffers) {
      memory.emplace_back(new uint8_t[capacity]);
      std::memset(memory.back().get(), 0xEE, capacity);
      b.base = memory.back().get();
      b.capacity = capacity;
      b.offset = 7;  // segment_super_frame must reset()
      b.length = 3;
    }
  }
  std::vector<uint8_t> frame(size_t i) const {
    return std::vector<uint8_t>(buffers[i].data(), buffers[i].data() + buffers[i].length);
  }
  // The datagram as it leaves: the buffer's bytes, then its tail.
  std::vector<uint8_t> wire(size_t i) const {
    std::vector<uint8_t> bytes = frame(i);
    bytes.insert(bytes.end(), buffers[i].tail, buffers[i].tail + buffers[i].tail_length);
    return bytes;
  }
};

// segment_super_frame_headers gives, segment for segment, the copying call's bytes as headers
// plus a tail inside the super-frame, from buffers that hold only the headers.
void check_headers_only(const VirtioNetHeader& vnet, const std::vector<uint8_t>& super, uint32_t link, size_t headers,
                        const Buffers& copied, size_t count) {
  Buffers out(count + 1, kHeadroom + static_cast<uint32_t>(headers));
  size_t total = 0;
  const int n = segment_super_frame_headers(vnet, super.data(), super.size(), link, 0, out.buffers.data(),
                                            out.buffers.size(), &total);
  CHECK_EQ(n, static_cast<int>(count));
  CHECK_EQ(total, count);
  for (size_t i = 0; i < count && static_cast<int>(i) < n; i++) {
    const PacketBuffer& b = out.buffers[i];
    CHECK_EQ(b.length, headers);
    CHECK(b.tail >= super.data() && b.tail + b.tail_length <= super.data() + super.size());
    CHECK(out.wire(i) == copied.frame(i));
  }
  // One byte short of the headers: refused, nothing written.
  if (headers > 0) {
    Buffers tight(count, kHeadroom + static_cast<uint32_t>(headers) - 1);
    CHECK_EQ(segment_super_frame_headers(vnet, super.data(), super.size(), link, 0, tight.buffers.data(), count, &total),
             kSegmentBufferTooSmall);
    CHECK_EQ(tight.buffers[0].offset, 7u);
  }
}

// ---- pcap output for an external check (tshark) when OVERLAYFWD_PCAP_DIR is set. ----

std::vector<std::vector<uint8_t>>& pcap_frames() {
  static std::vector<std::vector<uint8_t>> frames;
  return frames;
}

// Raw IP frames get an Ethernet header so that one linktype (1) covers all.
void remember_for_pcap(const std::vector<uint8_t>& frame, uint32_t link) {
  if (link == 14) {
    pcap_frames().push_back(frame);
    return;
  }
  std::vector<uint8_t> f = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01};
  f.push_back((frame[0] >> 4) == 4 ? 0x08 : 0x86);
  f.push_back((frame[0] >> 4) == 4 ? 0x00 : 0xDD);
  f.insert(f.end(), frame.begin(), frame.end());
  pcap_frames().push_back(f);
}

void write_pcap(const std::string& path, const std::vector<std::vector<uint8_t>>& frames) {
  FILE* file = std::fopen(path.c_str(), "wb");
  if (!file) return;
  // Global header (host byte order, which the magic announces): v2.4, snaplen 65535, Ethernet.
  const uint32_t magic = 0xa1b2c3d4, snaplen = 65535, linktype = 1;
  const uint16_t major = 2, minor = 4;
  const int32_t zone = 0;
  const uint32_t sigfigs = 0;
  std::fwrite(&magic, 4, 1, file);
  std::fwrite(&major, 2, 1, file);
  std::fwrite(&minor, 2, 1, file);
  std::fwrite(&zone, 4, 1, file);
  std::fwrite(&sigfigs, 4, 1, file);
  std::fwrite(&snaplen, 4, 1, file);
  std::fwrite(&linktype, 4, 1, file);
  uint32_t second = 1700000000;
  for (const auto& frame : frames) {
    const uint32_t record[4] = {second++, 0, static_cast<uint32_t>(frame.size()), static_cast<uint32_t>(frame.size())};
    std::fwrite(record, 4, 4, file);
    std::fwrite(frame.data(), 1, frame.size(), file);
  }
  std::fclose(file);
}

// Segments `spec`'s super-frame at `mss` and checks every output byte against a frame built
// independently (with the reference checksum) for that segment, plus the fields one by one.
void check_segmentation(const Spec& spec, uint16_t mss, size_t expected_count) {
  const Built super = build(spec);
  const VirtioNetHeader vnet = gso_header(spec, super, mss);
  Buffers out(expected_count + 2, kHeadroom + kMaxPacket);
  const int n = segment_super_frame(vnet, super.frame.data(), super.frame.size(), spec.link, out.buffers.data(),
                                    out.buffers.size());
  CHECK_EQ(n, static_cast<int>(expected_count));
  if (n != static_cast<int>(expected_count)) return;
  check_headers_only(vnet, super.frame, spec.link, super.payload, out, expected_count);
  const bool tcp = spec.protocol == 6;
  for (size_t i = 0; i < expected_count; i++) {
    const bool first = i == 0, last = i + 1 == expected_count;
    const size_t piece = last ? spec.payload - i * mss : mss;
    Spec s = spec;
    s.payload = piece;
    s.payload_offset = spec.payload_offset + i * mss;
    s.ip_id = static_cast<uint16_t>(spec.ip_id + i);
    s.seq = spec.seq + static_cast<uint32_t>(i * mss);
    s.tcp_flags = spec.tcp_flags;
    if (!last) s.tcp_flags &= static_cast<uint8_t>(~(kFin | kPsh));
    if (!first) s.tcp_flags &= static_cast<uint8_t>(~kCwr);
    s.full_checksum = true;
    const Built expected = build(s);
    const std::vector<uint8_t> got = out.frame(i);
    CHECK_EQ(out.buffers[i].offset, kHeadroom);
    CHECK_EQ(got.size(), expected.frame.size());
    CHECK(got == expected.frame);

    // Field by field, so a failure says which.
    const uint8_t* ip = got.data() + super.l3;
    const uint8_t* l4 = got.data() + super.l4;
    CHECK(std::memcmp(got.data(), super.frame.data(), super.l3) == 0);  // link header (incl. VLAN tag)
    if (spec.version == 4) {
      CHECK_EQ(load_be16(ip + 2), got.size() - super.l3);
      CHECK_EQ(load_be16(ip + 4), static_cast<uint16_t>(spec.ip_id + i));
      CHECK(ref_ipv4_header_valid(ip));
      CHECK(std::memcmp(ip + 20, super.frame.data() + super.l3 + 20, spec.ipv4_options.size()) == 0);
    } else {
      CHECK_EQ(load_be16(ip + 4), got.size() - super.l3 - 40);
      CHECK(std::memcmp(ip, super.frame.data() + super.l3, 4) == 0);  // traffic class, flow label
    }
    CHECK(ref_l4_valid(ip, spec.version, l4, got.size() - super.l4, spec.protocol, spec.final_destination));
    if (tcp) {
      CHECK_EQ(load_be32(l4 + 4), spec.seq + static_cast<uint32_t>(i * mss));
      CHECK_EQ(l4[13] & kPsh, last ? (spec.tcp_flags & kPsh) : 0);
      CHECK_EQ(l4[13] & kFin, last ? (spec.tcp_flags & kFin) : 0);
      CHECK_EQ(l4[13] & kCwr, first ? (spec.tcp_flags & kCwr) : 0);
      CHECK_EQ(l4[13] & kEce, spec.tcp_flags & kEce);
      CHECK(std::memcmp(l4 + 8, super.frame.data() + super.l4 + 8, 4) == 0);  // ack
    } else {
      CHECK_EQ(load_be16(l4 + 4), 8 + piece);
      CHECK(load_be16(l4 + 6) != 0);
    }
    CHECK(std::memcmp(got.data() + super.payload, super.frame.data() + super.payload + i * mss, piece) == 0);
    remember_for_pcap(got, spec.link);
  }
  // Buffers past the count are untouched.
  CHECK_EQ(out.buffers[expected_count].offset, 7u);
  CHECK_EQ(out.buffers[expected_count].length, 3u);
}

int segment(const VirtioNetHeader& vnet, const std::vector<uint8_t>& frame, uint32_t link, size_t out_count = 64,
            uint32_t capacity = kHeadroom + kMaxPacket) {
  Buffers out(out_count, capacity);
  return segment_super_frame(vnet, frame.data(), frame.size(), link, out.buffers.data(), out.buffers.size());
}

}  // namespace

TEST(virtio_net_header_wire_form) {
  VirtioNetHeader h;
  h.flags = kVirtioNetHdrFNeedsCsum;
  h.gso_type = kVirtioNetHdrGsoTcpv4 | kVirtioNetHdrGsoEcn;
  h.hdr_len = 0x0042;
  h.gso_size = 0x05a8;
  h.csum_start = 0x0022;
  h.csum_offset = 0x0010;
  uint8_t bytes[kVirtioNetHeaderSize];
  write_virtio_net_header(h, bytes);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  const uint8_t expected[10] = {0x01, 0x81, 0x42, 0x00, 0xa8, 0x05, 0x22, 0x00, 0x10, 0x00};
  CHECK(std::memcmp(bytes, expected, 10) == 0);
#endif
  VirtioNetHeader back;
  CHECK(parse_virtio_net_header(bytes, 10, &back));
  CHECK_EQ(back.flags, h.flags);
  CHECK_EQ(back.gso_type, h.gso_type);
  CHECK_EQ(back.hdr_len, h.hdr_len);
  CHECK_EQ(back.gso_size, h.gso_size);
  CHECK_EQ(back.csum_start, h.csum_start);
  CHECK_EQ(back.csum_offset, h.csum_offset);
  CHECK(!parse_virtio_net_header(bytes, 9, &back));
  // The values fixed by the virtio spec and <linux/if_tun.h>.
  CHECK_EQ(kVirtioNetHdrGsoUdpL4, 5);
  CHECK_EQ(kVirtioNetHdrGsoTcpv6, 4);
  CHECK_EQ(kTunFUso4, 0x20u);
  CHECK_EQ(kTunFUso6, 0x40u);
}

TEST(segment_ethernet_ipv4_tcp_with_timestamps) {
  Spec spec;
  spec.payload = 4000;
  check_segmentation(spec, 1448, 3);  // 1448 + 1448 + 1104
}

TEST(segment_tcp_flags_fin_psh_last_cwr_first) {
  Spec spec;
  spec.tcp_flags = kCwr | kEce | kAck | kPsh | kFin;
  spec.payload = 5000;
  check_segmentation(spec, 1000, 5);
  Spec ecn = spec;  // the same with the ECN bit in gso_type
  const Built super = build(ecn);
  VirtioNetHeader vnet = gso_header(ecn, super, 1000);
  vnet.gso_type |= kVirtioNetHdrGsoEcn;
  Buffers out(8, kHeadroom + kMaxPacket);
  CHECK_EQ(segment_super_frame(vnet, super.frame.data(), super.frame.size(), 14, out.buffers.data(), 8), 5);
  CHECK_EQ(out.buffers[0].data()[super.l4 + 13], kCwr | kEce | kAck);
  CHECK_EQ(out.buffers[2].data()[super.l4 + 13], kEce | kAck);
  CHECK_EQ(out.buffers[4].data()[super.l4 + 13], kEce | kAck | kPsh | kFin);
}

TEST(segment_sequence_and_ip_id_wrap) {
  Spec spec;
  spec.seq = 0xFFFFF000u;
  spec.ip_id = 0xFFFE;
  spec.payload = 9000;
  check_segmentation(spec, 1448, 7);
}

TEST(segment_tun_ipv6_tcp) {
  Spec spec;
  spec.link = 0;
  spec.version = 6;
  spec.payload = 60000;
  check_segmentation(spec, 1428, 43);
}

TEST(segment_ipv6_hop_by_hop_header_is_copied) {
  Spec spec;
  spec.version = 6;
  spec.ipv6_hop_by_hop = true;
  spec.payload = 3000;
  check_segmentation(spec, 1400, 3);
}

TEST(segment_vlan_tagged_ipv4_and_ipv6) {
  Spec spec;
  spec.vlan = true;
  spec.payload = 2896;
  check_segmentation(spec, 1448, 2);
  spec.version = 6;
  spec.timestamps = false;
  check_segmentation(spec, 1440, 3);
}

TEST(segment_uso_ipv4_and_ipv6) {
  Spec spec;
  spec.protocol = 17;
  spec.payload = 10000;
  check_segmentation(spec, 1200, 9);
  spec.version = 6;
  spec.link = 0;
  check_segmentation(spec, 1232, 9);
  spec.vlan = true;
  spec.link = 14;
  spec.payload = 1232 * 3;
  check_segmentation(spec, 1232, 3);
}

TEST(segment_exact_multiple_single_and_empty_payload) {
  Spec spec;
  spec.payload = 1448 * 4;
  check_segmentation(spec, 1448, 4);
  spec.payload = 100;
  check_segmentation(spec, 1448, 1);
  spec.payload = 0;
  check_segmentation(spec, 1448, 1);
  spec.payload = 1;
  check_segmentation(spec, 1, 1);
  spec.payload = 64;
  check_segmentation(spec, 1, 64);
}

TEST(segment_largest_super_frame) {
  Spec spec;
  spec.payload = 65535 - 20 - 32;
  check_segmentation(spec, 1448, 46);
}

TEST(segment_ipv4_options_are_copied) {
  Spec spec;
  spec.ipv4_options = {0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00};  // Router Alert, NOP, NOP, NOP, EOL
  spec.payload = 3000;
  check_segmentation(spec, 1448, 3);
}

TEST(segment_ipv4_source_route_uses_final_destination) {
  // LSRR with two addresses: the pseudo-header carries the last one (the final destination).
  Spec spec;
  spec.ipv4_options = {0x01, 0x83, 11, 4, 198, 19, 0, 7, 198, 19, 0, 9};
  static const uint8_t final_destination[4] = {198, 19, 0, 9};
  spec.final_destination = final_destination;
  spec.payload = 2000;
  check_segmentation(spec, 1000, 2);
}

TEST(segment_none_copies_and_completes_checksum) {
  for (int version : {4, 6}) {
    for (uint8_t protocol : {uint8_t{6}, uint8_t{17}}) {
      for (size_t payload : {0u, 1u, 77u, 1400u}) {
        Spec spec;
        spec.version = version;
        spec.protocol = protocol;
        spec.payload = payload;
        const Built b = build(spec);
        VirtioNetHeader vnet = gso_header(spec, b, 0);
        vnet.gso_type = kVirtioNetHdrGsoNone;
        Buffers out(1, kHeadroom + static_cast<uint32_t>(b.frame.size()));  // exactly enough
        CHECK_EQ(segment_super_frame(vnet, b.frame.data(), b.frame.size(), 14, out.buffers.data(), 1), 1);
        const std::vector<uint8_t> got = out.frame(0);
        CHECK_EQ(got.size(), b.frame.size());
        CHECK(ref_l4_valid(got.data() + b.l3, version, got.data() + b.l4, got.size() - b.l4, protocol));
        // Everything but the checksum field is a copy.
        std::vector<uint8_t> masked = got;
        const size_t field = b.l4 + vnet.csum_offset;
        masked[field] = b.frame[field];
        masked[field + 1] = b.frame[field + 1];
        CHECK(masked == b.frame);
        Spec full = spec;
        full.full_checksum = true;
        CHECK(got == build(full).frame);
        remember_for_pcap(got, 14);
      }
    }
  }
  // Without NEEDS_CSUM: a byte-exact copy of anything, even garbage.
  std::vector<uint8_t> garbage(333);
  for (size_t i = 0; i < garbage.size(); i++) garbage[i] = static_cast<uint8_t>(i * 17);
  VirtioNetHeader none;
  Buffers out(1, kHeadroom + 333);
  CHECK_EQ(segment_super_frame(none, garbage.data(), garbage.size(), 14, out.buffers.data(), 1), 1);
  CHECK(out.frame(0) == garbage);
  CHECK_EQ(out.buffers[0].offset, kHeadroom);
}

TEST(segment_none_udp_zero_checksum_is_sent_as_ffff) {
  // Pick the last two payload bytes so that the data sums to 0xFFFF: the computed checksum is
  // then 0, which UDP must send as 0xFFFF (skb_checksum_help's CSUM_MANGLED_0).
  Spec spec;
  spec.protocol = 17;
  spec.payload = 100;
  Built b = build(spec);
  store_be16(&b.frame[b.frame.size() - 2], 0);
  std::vector<uint8_t> seeded(b.frame.begin() + b.l4, b.frame.end());  // checksum field holds the seed
  store_be16(&b.frame[b.frame.size() - 2], static_cast<uint16_t>(~ref_fold(seeded)));
  VirtioNetHeader vnet = gso_header(spec, b, 0);
  vnet.gso_type = kVirtioNetHdrGsoNone;
  Buffers out(1, kHeadroom + kMaxPacket);
  CHECK_EQ(segment_super_frame(vnet, b.frame.data(), b.frame.size(), 14, out.buffers.data(), 1), 1);
  CHECK_EQ(load_be16(out.buffers[0].data() + b.l4 + 6), 0xFFFF);
  CHECK(ref_l4_valid(out.buffers[0].data() + b.l3, 4, out.buffers[0].data() + b.l4, b.frame.size() - b.l4, 17));
}

TEST(segment_ignores_wrong_hdr_len_within_frame) {
  Spec spec;
  spec.payload = 3000;
  const Built b = build(spec);
  for (uint16_t hdr_len : {uint16_t{0}, uint16_t{54}, uint16_t{200}}) {
    VirtioNetHeader vnet = gso_header(spec, b, 1448);
    vnet.hdr_len = hdr_len;
    CHECK_EQ(segment(vnet, b.frame, 14), 3);
  }
  // Without NEEDS_CSUM (no csum_start to cross-check), still fully checksummed output.
  VirtioNetHeader vnet = gso_header(spec, b, 1448);
  vnet.flags = 0;
  Buffers out(4, kHeadroom + kMaxPacket);
  CHECK_EQ(segment_super_frame(vnet, b.frame.data(), b.frame.size(), 14, out.buffers.data(), 4), 3);
  CHECK(ref_l4_valid(out.buffers[1].data() + b.l3, 4, out.buffers[1].data() + b.l4, out.buffers[1].length - b.l4, 6));
}

TEST(segment_drops_link_padding_after_ip_packet) {
  Spec spec;
  spec.payload = 3000;
  Built b = build(spec);
  b.frame.insert(b.frame.end(), {0, 0, 0, 0});
  Buffers out(4, kHeadroom + kMaxPacket);
  CHECK_EQ(segment_super_frame(gso_header(spec, b, 1448), b.frame.data(), b.frame.size(), 14, out.buffers.data(), 4), 3);
  CHECK_EQ(out.buffers[2].length, b.payload + 3000 - 2 * 1448);
}

TEST(segment_rejects_truncated_frames) {
  for (int version : {4, 6}) {
    for (uint8_t protocol : {uint8_t{6}, uint8_t{17}}) {
      Spec spec;
      spec.version = version;
      spec.protocol = protocol;
      spec.payload = 300;
      spec.vlan = version == 6;
      const Built b = build(spec);
      VirtioNetHeader vnet = gso_header(spec, b, 100);
      vnet.hdr_len = 0;  // so the hdr_len check doesn't mask the others
      CHECK_EQ(segment(vnet, b.frame, 14), 3);
      for (size_t length = 0; length < b.frame.size(); length++) {
        // Exactly-sized copy, so ASan catches a read past `length`.
        std::unique_ptr<uint8_t[]> copy(new uint8_t[length ? length : 1]);
        std::memcpy(copy.get(), b.frame.data(), length);
        Buffers out(8, kHeadroom + kMaxPacket);
        const int n = segment_super_frame(vnet, copy.get(), length, 14, out.buffers.data(), 8);
        if (n != kSegmentMalformed) {
          CHECK_EQ(n, kSegmentMalformed);
          std::printf("    at length %zu of %zu\n", length, b.frame.size());
          break;
        }
      }
    }
  }
}

TEST(segment_rejects_bad_header_fields) {
  Spec spec;
  spec.payload = 3000;
  const Built b = build(spec);
  const VirtioNetHeader good = gso_header(spec, b, 1448);
  CHECK_EQ(segment(good, b.frame, 14), 3);

  VirtioNetHeader v = good;
  v.hdr_len = static_cast<uint16_t>(b.frame.size() + 1);
  CHECK_EQ(segment(v, b.frame, 14), kSegmentMalformed);
  v = good;
  v.gso_size = 0;
  CHECK_EQ(segment(v, b.frame, 14), kSegmentMalformed);
  for (uint8_t type : {uint8_t{2}, uint8_t{3} /* UFO */, uint8_t{6}, uint8_t{0x7f}, uint8_t{0x83}}) {
    v = good;
    v.gso_type = type;
    CHECK_EQ(segment(v, b.frame, 14), kSegmentUnsupported);
  }
  v = good;
  v.gso_type = kVirtioNetHdrGsoTcpv6;  // says IPv6, frame is IPv4
  CHECK_EQ(segment(v, b.frame, 14), kSegmentMalformed);
  v = good;
  v.gso_type = kVirtioNetHdrGsoUdpL4;  // says UDP, frame is TCP
  CHECK_EQ(segment(v, b.frame, 14), kSegmentMalformed);
  v = good;
  v.csum_start = static_cast<uint16_t>(b.l4 + 4);  // disagrees with the headers
  CHECK_EQ(segment(v, b.frame, 14), kSegmentMalformed);
  v = good;
  v.csum_offset = 6;
  CHECK_EQ(segment(v, b.frame, 14), kSegmentMalformed);
  // Link header length disagreeing with the frame: raw IP parse of an Ethernet frame.
  CHECK_EQ(segment(good, b.frame, 0), kSegmentMalformed);

  auto mutated = [&](size_t at, uint8_t value) {
    std::vector<uint8_t> f = b.frame;
    f[at] = value;
    return f;
  };
  CHECK_EQ(segment(good, mutated(12, 0x88), 14), kSegmentMalformed);         // EtherType not IP
  CHECK_EQ(segment(good, mutated(b.l3, 0x65), 14), kSegmentMalformed);       // version 6 under 0x0800
  CHECK_EQ(segment(good, mutated(b.l3, 0x44), 14), kSegmentMalformed);       // IHL 4
  CHECK_EQ(segment(good, mutated(b.l3 + 6, 0x60), 14), kSegmentMalformed);   // DF|MF: a fragment
  CHECK_EQ(segment(good, mutated(b.l3 + 7, 0x01), 14), kSegmentMalformed);   // fragment offset
  CHECK_EQ(segment(good, mutated(b.l3 + 9, 17), 14), kSegmentMalformed);     // protocol UDP
  CHECK_EQ(segment(good, mutated(b.l3 + 2, 0xFF), 14), kSegmentMalformed);   // total length > frame
  CHECK_EQ(segment(good, mutated(b.l4 + 12, 0x40), 14), kSegmentMalformed);  // TCP data offset 4
  CHECK_EQ(segment(good, mutated(b.l4 + 12, 0xF0), 14), 3);  // doff 15 (60 bytes): fits, payload shrinks
}

TEST(segment_rejects_malformed_ipv4_options) {
  const std::vector<std::vector<uint8_t>> bad = {
      {0x94, 0x00, 0x00, 0x00},  // option length 0
      {0x94, 0x01, 0x00, 0x00},  // option length 1
      {0x01, 0x01, 0x94, 0x05},  // option runs past the header
      {0x01, 0x01, 0x01, 0x94},  // type with no room for its length
  };
  for (const auto& options : bad) {
    Spec spec;
    spec.ipv4_options = options;
    spec.payload = 3000;
    const Built b = build(spec);
    CHECK_EQ(segment(gso_header(spec, b, 1448), b.frame, 14), kSegmentMalformed);
  }
}

TEST(segment_ipv6_extension_headers) {
  Spec spec;
  spec.version = 6;
  spec.payload = 3000;
  Built b = build(spec);
  const VirtioNetHeader vnet = gso_header(spec, b, 1448);
  std::vector<uint8_t> f = b.frame;
  f[b.l3 + 6] = 43;  // a routing header would change the pseudo-header: unsupported
  CHECK_EQ(segment(vnet, f, 14), kSegmentUnsupported);
  f[b.l3 + 6] = 44;  // fragment
  CHECK_EQ(segment(vnet, f, 14), kSegmentUnsupported);
  f[b.l3 + 6] = 59;  // no next header: not TCP
  CHECK_EQ(segment(vnet, f, 14), kSegmentMalformed);
  f = b.frame;
  store_be16(&f[b.l3 + 4], 0);  // jumbogram
  CHECK_EQ(segment(vnet, f, 14), kSegmentMalformed);
  // A hop-by-hop header whose length runs past the packet.
  Spec hbh = spec;
  hbh.ipv6_hop_by_hop = true;
  Built h = build(hbh);
  h.frame[b.l3 + 41] = 0xFF;
  CHECK_EQ(segment(gso_header(hbh, h, 1448), h.frame, 14), kSegmentMalformed);
}

TEST(segment_too_many_segments_and_small_buffers) {
  Spec spec;
  spec.payload = 10000;
  const Built b = build(spec);
  const VirtioNetHeader vnet = gso_header(spec, b, 1000);
  CHECK_EQ(segment(vnet, b.frame, 14, 10), 10);
  CHECK_EQ(segment(vnet, b.frame, 14, 9), kSegmentTooManySegments);
  CHECK_EQ(segment(vnet, b.frame, 14, 0), kSegmentTooManySegments);
  const uint32_t exact = kHeadroom + static_cast<uint32_t>(b.payload + 1000);
  CHECK_EQ(segment(vnet, b.frame, 14, 10, exact), 10);
  CHECK_EQ(segment(vnet, b.frame, 14, 10, exact - 1), kSegmentBufferTooSmall);
  CHECK_EQ(segment(vnet, b.frame, 14, 10, 100), kSegmentBufferTooSmall);  // smaller than the headroom
  VirtioNetHeader none;
  CHECK_EQ(segment(none, b.frame, 14, 1, kHeadroom + static_cast<uint32_t>(b.frame.size())), 1);
  CHECK_EQ(segment(none, b.frame, 14, 1, kHeadroom + static_cast<uint32_t>(b.frame.size()) - 1), kSegmentBufferTooSmall);
  // NONE with NEEDS_CSUM pointing outside the frame.
  none.flags = kVirtioNetHdrFNeedsCsum;
  none.csum_start = static_cast<uint16_t>(b.frame.size() - 1);
  none.csum_offset = 0;
  CHECK_EQ(segment(none, b.frame, 14), kSegmentMalformed);
  none.csum_start = 0;
  none.csum_offset = static_cast<uint16_t>(b.frame.size() - 1);
  CHECK_EQ(segment(none, b.frame, 14), kSegmentMalformed);
  none.csum_offset = static_cast<uint16_t>(b.frame.size() - 2);
  CHECK_EQ(segment(none, b.frame, 14), 1);
  CHECK(std::string(segment_error_name(kSegmentTooManySegments)) == "too many segments");
}

TEST(segment_range_in_chunks_equals_one_shot) {
  for (int version : {4, 6}) {
    Spec spec;
    spec.version = version;
    spec.payload = 30000;
    spec.tcp_flags = kCwr | kAck | kPsh | kFin;
    const Built b = build(spec);
    const VirtioNetHeader vnet = gso_header(spec, b, 536);  // 56 segments
    Buffers whole(64, kHeadroom + kMaxPacket);
    CHECK_EQ(segment_super_frame(vnet, b.frame.data(), b.frame.size(), 14, whole.buffers.data(), 64), 56);
    Buffers chunk(5, kHeadroom + 1000);
    size_t total = 0, written = 0;
    for (size_t first = 0; first < 56;) {
      const int n = segment_super_frame_range(vnet, b.frame.data(), b.frame.size(), 14, first, chunk.buffers.data(), 5, &total);
      CHECK_EQ(total, 56u);
      CHECK_EQ(n, first + 5 <= 56 ? 5 : static_cast<int>(56 - first));
      if (n <= 0) break;
      for (int i = 0; i < n; i++) CHECK(chunk.frame(static_cast<size_t>(i)) == whole.frame(first + static_cast<size_t>(i)));
      first += static_cast<size_t>(n);
      written += static_cast<size_t>(n);
    }
    CHECK_EQ(written, 56u);
    CHECK_EQ(segment_super_frame_range(vnet, b.frame.data(), b.frame.size(), 14, 56, chunk.buffers.data(), 5, &total), 0);
    CHECK_EQ(segment_super_frame_range(vnet, b.frame.data(), b.frame.size(), 14, 0, chunk.buffers.data(), 0, &total),
             kSegmentTooManySegments);
  }
  // NONE: one frame at first = 0, nothing after.
  Spec spec;
  const Built b = build(spec);
  VirtioNetHeader none;
  Buffers out(2, kHeadroom + kMaxPacket);
  size_t total = 0;
  CHECK_EQ(segment_super_frame_range(none, b.frame.data(), b.frame.size(), 14, 0, out.buffers.data(), 2, &total), 1);
  CHECK_EQ(total, 1u);
  CHECK_EQ(segment_super_frame_range(none, b.frame.data(), b.frame.size(), 14, 1, out.buffers.data(), 2, &total), 0);
  // Errors are the same as the one-shot call's.
  VirtioNetHeader bad = gso_header(spec, b, 0);
  CHECK_EQ(segment_super_frame_range(bad, b.frame.data(), b.frame.size(), 14, 0, out.buffers.data(), 2, &total),
           kSegmentMalformed);
}

TEST(segment_too_many_leaves_buffers_untouched) {
  Spec spec;
  spec.payload = 10000;
  const Built b = build(spec);
  Buffers out(3, kHeadroom + kMaxPacket);
  CHECK_EQ(segment_super_frame(gso_header(spec, b, 1000), b.frame.data(), b.frame.size(), 14, out.buffers.data(), 3),
           kSegmentTooManySegments);
  for (const auto& buffer : out.buffers) {
    CHECK_EQ(buffer.offset, 7u);
    CHECK_EQ(buffer.length, 3u);
    CHECK_EQ(buffer.base[kHeadroom], 0xEE);
  }
}

// Runs last among this file's tests (registration order): writes what the tests above produced.
TEST(segment_writes_pcap_when_asked) {
  const char* dir = std::getenv("OVERLAYFWD_PCAP_DIR");
  CHECK(!pcap_frames().empty());
  if (!dir || !*dir) return;
  const std::string path = std::string(dir) + "/offload_segments.pcap";
  write_pcap(path, pcap_frames());
  std::printf("    wrote %zu frames to %s\n", pcap_frames().size(), path.c_str());
}

// The checksumming tests above again, under each checksum implementation (wire/checksum.h):
// they check every output byte against frames built with the reference checksum, at the
// offsets real frames put the checksummed bytes at (TAP, TUN, VLAN tags, IPv4 options, odd
// segment lengths). A failure here and not above names an implementation's bug; to see which,
// run core_tests with OVERLAYFWD_CHECKSUM=scalar, avx2 or avx512.
TEST(segment_checksums_under_every_checksum_implementation) {
  const ChecksumImplementation chosen = checksum_implementation();
  for (ChecksumImplementation implementation : kChecksumImplementations) {
    if (!checksum_use_implementation(implementation)) continue;
    test_segment_ethernet_ipv4_tcp_with_timestamps();
    test_segment_tun_ipv6_tcp();
    test_segment_ipv6_hop_by_hop_header_is_copied();
    test_segment_vlan_tagged_ipv4_and_ipv6();
    test_segment_uso_ipv4_and_ipv6();
    test_segment_exact_multiple_single_and_empty_payload();
    test_segment_largest_super_frame();
    test_segment_ipv4_options_are_copied();
    test_segment_ipv4_source_route_uses_final_destination();
    test_segment_none_copies_and_completes_checksum();
    test_segment_none_udp_zero_checksum_is_sent_as_ffff();
    Spec odd;  // odd segment lengths: every segment's checksum ends on a padded byte
    odd.payload = 3001;
    check_segmentation(odd, 999, 4);
  }
  checksum_use_implementation(chosen);
}
