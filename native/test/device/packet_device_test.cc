// The socket-free parts of the packet device: putting a stripped VLAN tag back, finishing a
// partial checksum without a vnet header, and PacketReceiver's batching, dropping and compaction
// (over an AF_UNIX datagram pair, which carries no PACKET_AUXDATA). The sockets themselves are
// exercised against a real veth in test/netns/packet-device.test.ts.
#include "device/packet_device.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "wire/ethernet.h"
#include "offload/offload_segment.h"
#include "base/packet_buffer.h"
#include "reference_checksum.h"
#include "test.h"

using namespace ovl;
using ovl_test::ref_fold;
using ovl_test::ref_pseudo_and_l4;

namespace {

// Ethernet + IPv4 (or IPv6) + TCP (or UDP) with a payload, the L4 checksum seeded with the
// pseudo-header sum the way a sender with checksum offload leaves it (CHECKSUM_PARTIAL).
std::vector<uint8_t> partial_frame(int version, uint8_t protocol, size_t payload, size_t padding = 0) {
  const size_t ip_header = version == 4 ? 20 : 40;
  const size_t l4_header = protocol == 6 ? 20 : 8;
  std::vector<uint8_t> frame(14 + ip_header + l4_header + payload + padding, 0);
  for (int i = 0; i < 6; i++) frame[i] = static_cast<uint8_t>(0x02 + i), frame[6 + i] = static_cast<uint8_t>(0x12 + i);
  store_be16(&frame[12], version == 4 ? kEtherTypeIpv4 : kEtherTypeIpv6);
  uint8_t* ip = &frame[14];
  const size_t l4_length = l4_header + payload;
  if (version == 4) {
    ip[0] = 0x45;
    store_be16(ip + 2, static_cast<uint16_t>(20 + l4_length));
    ip[8] = 64;
    ip[9] = protocol;
    const uint8_t addresses[8] = {198, 19, 0, 1, 198, 19, 0, 2};
    std::memcpy(ip + 12, addresses, 8);
  } else {
    ip[0] = 0x60;
    store_be16(ip + 4, static_cast<uint16_t>(l4_length));
    ip[6] = protocol;
    ip[7] = 64;
    for (int i = 0; i < 32; i++) ip[8 + i] = static_cast<uint8_t>(0xfd + i);
  }
  uint8_t* l4 = ip + ip_header;
  store_be16(l4, 40000);
  store_be16(l4 + 2, 5001);
  if (protocol == 6) {
    l4[12] = 0x50;
    l4[13] = 0x18;
  } else {
    store_be16(l4 + 4, static_cast<uint16_t>(l4_length));
  }
  for (size_t i = 0; i < payload; i++) l4[l4_header + i] = static_cast<uint8_t>(i * 7 + 1);
  for (size_t i = 0; i < padding; i++) frame[frame.size() - 1 - i] = 0xEE;
  // The seed: the folded pseudo-header sum (no complement), as the kernel leaves it.
  std::vector<uint8_t> pseudo = ref_pseudo_and_l4(ip, version, l4, 0, protocol);
  // ref_pseudo_and_l4 puts a zero length in: add the real one.
  uint32_t sum = ref_fold(pseudo) + static_cast<uint32_t>(l4_length);
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  store_be16(l4 + (protocol == 6 ? 16 : 6), static_cast<uint16_t>(sum));
  return frame;
}

bool l4_checksum_valid(const std::vector<uint8_t>& frame, int version, uint8_t protocol, size_t l4_length) {
  const uint8_t* ip = &frame[14];
  const uint8_t* l4 = ip + (version == 4 ? 20 : 40);
  return ref_fold(ref_pseudo_and_l4(ip, version, l4, l4_length, protocol)) == 0xFFFF;
}

}  // namespace

TEST(packet_insert_vlan_tag_moves_macs_and_vnet_fields) {
  BufferPool pool(1, 2048);
  PacketBuffer& buffer = pool[0];
  buffer.reset();
  buffer.offset = kHeadroom + 4 - kVirtioNetHeaderSize;
  VirtioNetHeader vnet;
  vnet.flags = kVirtioNetHdrFNeedsCsum;
  vnet.gso_type = kVirtioNetHdrGsoTcpv4;
  vnet.hdr_len = 66;
  vnet.gso_size = 1398;
  vnet.csum_start = 34;
  vnet.csum_offset = 16;
  write_virtio_net_header(vnet, buffer.data());
  std::vector<uint8_t> frame = partial_frame(4, 6, 100);
  std::memcpy(buffer.data() + kVirtioNetHeaderSize, frame.data(), frame.size());
  buffer.length = static_cast<uint32_t>(kVirtioNetHeaderSize + frame.size());

  CHECK(insert_vlan_tag(buffer, kVirtioNetHeaderSize, kEtherTypeVlan, 0x2064));
  CHECK_EQ(buffer.offset, kHeadroom - kVirtioNetHeaderSize);
  CHECK_EQ(buffer.length, kVirtioNetHeaderSize + frame.size() + 4);
  VirtioNetHeader moved;
  CHECK(parse_virtio_net_header(buffer.data(), buffer.length, &moved));
  CHECK_EQ(moved.csum_start, 38);
  CHECK_EQ(moved.hdr_len, 70);
  CHECK_EQ(moved.gso_size, 1398);
  CHECK_EQ(moved.gso_type, kVirtioNetHdrGsoTcpv4);
  const uint8_t* tagged = buffer.data() + kVirtioNetHeaderSize;
  CHECK(std::memcmp(tagged, frame.data(), 12) == 0);
  CHECK_EQ(load_be16(tagged + 12), kEtherTypeVlan);
  CHECK_EQ(load_be16(tagged + 14), 0x2064);
  CHECK(std::memcmp(tagged + 16, frame.data() + 12, frame.size() - 12) == 0);
}

TEST(packet_insert_vlan_tag_without_vnet_and_limits) {
  BufferPool pool(1, 2048);
  PacketBuffer& buffer = pool[0];
  buffer.reset();
  std::vector<uint8_t> frame = partial_frame(6, 17, 10);
  std::memcpy(buffer.data(), frame.data(), frame.size());
  buffer.length = static_cast<uint32_t>(frame.size());
  CHECK(insert_vlan_tag(buffer, 0, kEtherTypeQinQ, 7));
  CHECK_EQ(load_be16(buffer.data() + 12), kEtherTypeQinQ);
  CHECK_EQ(load_be16(buffer.data() + 14), 7);
  CHECK_EQ(load_be16(buffer.data() + 16), kEtherTypeIpv6);
  // No headroom, or too short: refused, nothing changed.
  buffer.offset = 2;
  buffer.length = 100;
  CHECK(!insert_vlan_tag(buffer, 0, kEtherTypeVlan, 1));
  CHECK_EQ(buffer.offset, 2u);
  buffer.offset = kHeadroom;
  buffer.length = 11;
  CHECK(!insert_vlan_tag(buffer, 0, kEtherTypeVlan, 1));
  CHECK_EQ(buffer.length, 11u);
}

TEST(packet_complete_frame_checksum_tcp_udp_v4_v6) {
  for (int version : {4, 6}) {
    for (uint8_t protocol : {uint8_t{6}, uint8_t{17}}) {
      for (size_t payload : {size_t{0}, size_t{1}, size_t{1001}}) {
        std::vector<uint8_t> frame = partial_frame(version, protocol, payload);
        const size_t l4_length = (protocol == 6 ? 20 : 8) + payload;
        CHECK(!l4_checksum_valid(frame, version, protocol, l4_length));
        CHECK(complete_frame_checksum(frame.data(), frame.size()));
        CHECK(l4_checksum_valid(frame, version, protocol, l4_length));
      }
    }
  }
}

TEST(packet_complete_frame_checksum_ignores_padding_and_tags) {
  // Padding after the IP packet is not summed.
  std::vector<uint8_t> padded = partial_frame(4, 17, 2, 12);
  CHECK(complete_frame_checksum(padded.data(), padded.size()));
  CHECK(l4_checksum_valid(padded, 4, 17, 10));
  // Behind an 802.1Q tag.
  std::vector<uint8_t> frame = partial_frame(4, 6, 50);
  std::vector<uint8_t> tagged(frame.begin(), frame.begin() + 12);
  tagged.insert(tagged.end(), {0x81, 0x00, 0x00, 0x64});
  tagged.insert(tagged.end(), frame.begin() + 12, frame.end());
  CHECK(complete_frame_checksum(tagged.data(), tagged.size()));
  std::vector<uint8_t> untagged(tagged.begin(), tagged.begin() + 12);
  untagged.insert(untagged.end(), tagged.begin() + 16, tagged.end());
  CHECK(l4_checksum_valid(untagged, 4, 6, 70));
}

TEST(packet_complete_frame_checksum_refuses) {
  std::vector<uint8_t> arp(60, 0);
  store_be16(&arp[12], kEtherTypeArp);
  CHECK(!complete_frame_checksum(arp.data(), arp.size()));
  std::vector<uint8_t> icmp = partial_frame(4, 6, 10);
  icmp[14 + 9] = 1;
  CHECK(!complete_frame_checksum(icmp.data(), icmp.size()));
  std::vector<uint8_t> fragment = partial_frame(4, 17, 10);
  store_be16(&fragment[14 + 6], 0x2000);  // more fragments
  CHECK(!complete_frame_checksum(fragment.data(), fragment.size()));
  std::vector<uint8_t> truncated = partial_frame(4, 6, 10);
  const std::vector<uint8_t> before = truncated;
  CHECK(!complete_frame_checksum(truncated.data(), truncated.size() - 5));  // IP length beyond the frame
  CHECK(truncated == before);
  CHECK(!complete_frame_checksum(truncated.data(), 13));
}

TEST(packet_receiver_batches_drops_and_compacts) {
  int pair[2];
  CHECK(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, pair) == 0);
  BufferPool pool(8, 512);
  PacketReceiver receiver(8, /*vnet_header=*/true, 0);
  PacketReceiveCounts counts;
  CHECK_EQ(receiver.receive(pair[0], &pool[0], 8, &counts), 0);  // nothing waiting

  // vnet header + frame sizes: kept, runt, kept, too long for the buffer, kept.
  const size_t sizes[] = {10 + 60, 10 + 13, 10 + 14, 2000, 10 + 300};
  for (size_t i = 0; i < 5; i++) {
    std::vector<uint8_t> datagram(sizes[i], static_cast<uint8_t>(i + 1));
    CHECK(::send(pair[1], datagram.data(), datagram.size(), 0) == static_cast<ssize_t>(datagram.size()));
  }
  const int kept = receiver.receive(pair[0], &pool[0], 8, &counts);
  CHECK_EQ(kept, 3);
  CHECK_EQ(counts.malformed, 1u);
  CHECK_EQ(counts.truncated, 1u);
  CHECK_EQ(counts.vlan_tagged, 0u);
  const size_t expected_sizes[] = {10 + 60, 10 + 14, 10 + 300};
  const uint8_t expected_fill[] = {1, 3, 5};
  for (int i = 0; i < 3; i++) {
    CHECK_EQ(pool[i].length, expected_sizes[i]);
    CHECK_EQ(pool[i].data()[0], expected_fill[i]);
    // The frame after the vnet header starts 4 bytes past kHeadroom (room for a tag).
    CHECK_EQ(pool[i].offset + kVirtioNetHeaderSize, kHeadroom + 4);
  }
  // Buffers were swapped, not lost: all eight still point at distinct slabs.
  for (size_t i = 0; i < 8; i++) {
    for (size_t j = i + 1; j < 8; j++) CHECK(pool[i].base != pool[j].base);
  }
  // Fewer asked for than waiting: the rest stays for the next call.
  for (int i = 0; i < 3; i++) {
    std::vector<uint8_t> datagram(10 + 20, static_cast<uint8_t>(9));
    CHECK(::send(pair[1], datagram.data(), datagram.size(), 0) > 0);
  }
  CHECK_EQ(receiver.receive(pair[0], &pool[0], 2, &counts), 2);
  CHECK_EQ(receiver.receive(pair[0], &pool[0], 8, &counts), 1);
  ::close(pair[0]);
  ::close(pair[1]);
}

TEST(packet_receiver_without_vnet_drops_super_frames) {
  int pair[2];
  CHECK(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, pair) == 0);
  BufferPool pool(4, 4096);
  PacketReceiver receiver(4, /*vnet_header=*/false, 1514);
  PacketReceiveCounts counts;
  for (size_t size : {size_t{1514}, size_t{1515}, size_t{60}}) {
    std::vector<uint8_t> datagram(size, 0xAB);
    CHECK(::send(pair[1], datagram.data(), datagram.size(), 0) > 0);
  }
  CHECK_EQ(receiver.receive(pair[0], &pool[0], 4, &counts), 2);
  CHECK_EQ(counts.too_big, 1u);
  CHECK_EQ(pool[0].length, 1514u);
  CHECK_EQ(pool[1].length, 60u);
  CHECK_EQ(pool[0].offset, kHeadroom + 4);
  ::close(pair[0]);
  ::close(pair[1]);
}
