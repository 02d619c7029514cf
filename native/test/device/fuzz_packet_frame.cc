// Fuzz target: what the AF_PACKET device does to a frame it read (device/packet_device.h):
// complete_frame_checksum, which parses Ethernet, up to two VLAN tags and IPv4/IPv6 to complete a
// TCP or UDP checksum a local sender left partial, and insert_vlan_tag, which puts a stripped tag
// back (and moves a virtio header's offsets).
//
// complete_frame_checksum must accept exactly the frames a reference parser below finds a TCP or
// UDP segment in, change nothing else than the checksum field, and leave a checksum that verifies
// against the partial sum the field held (and so, when the frame is "repaired" first with the
// pseudo-header sum a sender leaves there, one that verifies against the pseudo-header).
//
// Input: byte 0 the repair (bit 0 on; bit 1 IPv6; bit 2 a VLAN tag; bit 3 UDP rather than TCP;
// bit 4 QinQ with two tags), byte 1 the insert_vlan_tag case (bit 0 with a vnet header, bit 1
// QinQ, bits 2-7 the headroom), then the frame.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "base/packet_buffer.h"
#include "device/packet_device.h"
#include "offload/offload_segment.h"
#include "wire/ethernet.h"
#include "reference_checksum.h"

namespace {

using namespace ovl;
using Bytes = std::vector<uint8_t>;

void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "fuzz_packet_frame: %s\n", what);
    std::abort();
  }
}

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
void put16(uint8_t* p, size_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

struct Segment {
  size_t l3, l4, end, field;
  int version;
  uint8_t protocol;
};

// Where the TCP/UDP checksum of an Ethernet frame is, by the rules complete_frame_checksum states.
bool locate(const Bytes& f, Segment* s) {
  if (f.size() < 14) return false;
  size_t type_at = 12;
  for (int tags = 0; tags < 2; tags++) {
    const uint16_t type = be16(&f[type_at]);
    if (type != 0x8100 && type != 0x88A8) break;
    if (f.size() < type_at + 4 + 2) return false;
    type_at += 4;
  }
  const uint16_t type = be16(&f[type_at]);
  s->l3 = type_at + 2;
  if (type == 0x0800) {
    if (f.size() < s->l3 + 20 || f[s->l3] >> 4 != 4) return false;
    const size_t ihl = size_t{f[s->l3] & 0x0Fu} * 4;
    s->end = s->l3 + be16(&f[s->l3 + 2]);
    if (ihl < 20 || s->end < s->l3 + ihl || s->end > f.size()) return false;
    if ((be16(&f[s->l3 + 6]) & 0x3FFF) != 0) return false;  // MF or an offset: a fragment
    s->protocol = f[s->l3 + 9];
    s->l4 = s->l3 + ihl;
    s->version = 4;
  } else if (type == 0x86DD) {
    if (f.size() < s->l3 + 40 || f[s->l3] >> 4 != 6) return false;
    s->end = s->l3 + 40 + be16(&f[s->l3 + 4]);
    if (s->end > f.size()) return false;
    s->protocol = f[s->l3 + 6];
    s->l4 = s->l3 + 40;
    s->version = 6;
  } else {
    return false;
  }
  if (s->protocol == 6 && s->end >= s->l4 + 20) s->field = s->l4 + 16;
  else if (s->protocol == 17 && s->end >= s->l4 + 8) s->field = s->l4 + 6;
  else return false;
  return true;
}

// Makes random bytes a frame with a TCP or UDP segment whose checksum field holds the
// pseudo-header sum, as a sender that offloads its checksum leaves it.
void repair(Bytes& f, uint8_t how) {
  const bool v6 = how & 2, udp = how & 8;
  const int tags = (how & 0x10) ? 2 : (how & 4) ? 1 : 0;
  const size_t l3 = 14 + 4 * tags;
  const size_t need = l3 + (v6 ? 40 : 20) + (udp ? 8 : 20);
  if (f.size() < need) f.resize(need, 0x5A);
  for (int t = 0; t < tags; t++) put16(&f[12 + 4 * t], t == 0 && tags == 2 ? 0x88A8 : 0x8100);
  put16(&f[l3 - 2], v6 ? 0x86DD : 0x0800);
  const size_t packet = f.size() - l3 - (f.size() % 3 == 0 ? 1 : 0);  // sometimes a byte of padding
  if (v6) {
    f[l3] = static_cast<uint8_t>(0x60 | (f[l3] & 0x0F));
    put16(&f[l3 + 4], packet - 40);
    f[l3 + 6] = udp ? 17 : 6;
  } else {
    f[l3] = 0x45;
    put16(&f[l3 + 2], packet);
    put16(&f[l3 + 6], 0x4000);
    f[l3 + 9] = udp ? 17 : 6;
  }
  Segment s;
  if (!locate(f, &s)) return;
  const size_t l4_length = s.end - s.l4;
  // The pseudo-header sum alone: the reference sum of the pseudo header over an empty segment.
  const Bytes pseudo = ovl_test::ref_pseudo_and_l4(&f[s.l3], s.version, &f[s.l4], 0, s.protocol);
  Bytes with_length(pseudo);
  if (s.version == 4) put16(&with_length[10], l4_length);
  else {
    with_length[32] = static_cast<uint8_t>(l4_length >> 24);
    with_length[33] = static_cast<uint8_t>(l4_length >> 16);
    with_length[34] = static_cast<uint8_t>(l4_length >> 8);
    with_length[35] = static_cast<uint8_t>(l4_length);
  }
  put16(&f[s.field], ovl_test::ref_fold(with_length));
}

void check_checksum(Bytes f, bool repaired) {
  Segment s;
  const bool expected = locate(f, &s);
  const Bytes before(f);
  std::unique_ptr<uint8_t[]> exact(new uint8_t[f.empty() ? 1 : f.size()]);
  if (!f.empty()) std::memcpy(exact.get(), f.data(), f.size());
  const bool got = complete_frame_checksum(exact.get(), f.size());
  require(got == expected, got ? "completed a frame without a TCP/UDP segment" : "refused a TCP/UDP segment");
  const Bytes after(exact.get(), exact.get() + f.size());
  for (size_t i = 0; i < f.size(); i++) {
    if (!got || (i != s.field && i != s.field + 1)) require(after[i] == before[i], "changed a byte besides the checksum");
  }
  if (!got) return;
  require(be16(&after[s.field]) != 0, "a zero checksum (means none for UDP)");
  // The field's old partial sum plus the segment as it is now must verify.
  Bytes sum(after.begin() + static_cast<std::ptrdiff_t>(s.l4), after.begin() + static_cast<std::ptrdiff_t>(s.end));
  const size_t odd = sum.size() % 2;
  if (odd) sum.push_back(0);
  sum.push_back(before[s.field]);
  sum.push_back(before[s.field + 1]);
  require(ovl_test::ref_fold(sum) == 0xFFFF, "the completed checksum does not verify against the partial sum");
  if (repaired) {
    const Bytes full = ovl_test::ref_pseudo_and_l4(&after[s.l3], s.version, &after[s.l4], s.end - s.l4, s.protocol);
    require(ovl_test::ref_fold(full) == 0xFFFF, "the completed checksum does not verify");
  }
}

void check_vlan(const Bytes& frame, uint8_t how) {
  const uint32_t vnet_length = (how & 1) ? kVirtioNetHeaderSize : 0;
  const uint16_t tpid = (how & 2) ? 0x88A8 : 0x8100;
  const uint16_t tci = static_cast<uint16_t>(frame.size() * 37);
  const uint32_t headroom = (how >> 2) % 8;  // 0-7 bytes before the data: 4 are needed
  std::unique_ptr<uint8_t[]> memory(new uint8_t[headroom + frame.size() + 1]);
  PacketBuffer buffer;
  buffer.base = memory.get();
  buffer.capacity = static_cast<uint32_t>(headroom + frame.size());
  buffer.offset = headroom;
  buffer.length = static_cast<uint32_t>(frame.size());
  if (!frame.empty()) std::memcpy(buffer.data(), frame.data(), frame.size());
  const bool expected = headroom >= 4 && frame.size() >= vnet_length + 12;
  const bool got = insert_vlan_tag(buffer, vnet_length, tpid, tci);
  require(got == expected, "insert_vlan_tag accepted or refused wrongly");
  if (!got) {
    require(buffer.offset == headroom && buffer.length == frame.size(), "a refused tag moved the buffer");
    require(frame.empty() || std::memcmp(buffer.data(), frame.data(), frame.size()) == 0, "a refused tag changed bytes");
    return;
  }
  require(buffer.offset == headroom - 4 && buffer.length == frame.size() + 4, "insert_vlan_tag: length");
  const uint8_t* out = buffer.data();
  const size_t macs = vnet_length + 12;
  require(be16(out + macs) == tpid && be16(out + macs + 2) == tci, "the tag");
  require(std::memcmp(out + macs + 4, frame.data() + macs, frame.size() - macs) == 0, "the frame after the tag");
  require(std::memcmp(out + vnet_length, frame.data() + vnet_length, 12) == 0, "the MAC addresses");
  if (vnet_length) {
    VirtioNetHeader old_header, new_header;
    require(parse_virtio_net_header(frame.data(), vnet_length, &old_header), "vnet");
    require(parse_virtio_net_header(out, vnet_length, &new_header), "vnet");
    const bool needs = old_header.flags & kVirtioNetHdrFNeedsCsum;
    require(new_header.flags == old_header.flags && new_header.gso_type == old_header.gso_type &&
                new_header.gso_size == old_header.gso_size && new_header.csum_offset == old_header.csum_offset,
            "vnet fields that must stay");
    require(new_header.csum_start == static_cast<uint16_t>(old_header.csum_start + (needs ? 4 : 0)), "csum_start");
    require(new_header.hdr_len == static_cast<uint16_t>(old_header.hdr_len + (old_header.hdr_len ? 4 : 0)), "hdr_len");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const Bytes frame(data + 2, data + size);
  check_checksum(frame, false);
  if (data[0] & 1) {
    Bytes repaired(frame);
    repair(repaired, data[0]);
    check_checksum(repaired, true);
  }
  check_vlan(frame, data[1]);
  return 0;
}
