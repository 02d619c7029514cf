#include "base/flow_hash.h"

#include <cstring>
#include <set>
#include <vector>

#include "wire/ethernet.h"
#include "test.h"

using namespace ovl;

namespace {

std::vector<uint8_t> udp_frame(uint32_t src_ip, uint32_t dst_ip, uint16_t sport, uint16_t dport, uint16_t frag = 0) {
  std::vector<uint8_t> f(14 + 20 + 8 + 16, 0);
  f[0] = 0x02;
  f[6] = 0x02;
  f[11] = 1;
  store_be16(&f[12], kEtherTypeIpv4);
  uint8_t* ip = &f[14];
  ip[0] = 0x45;
  store_be16(ip + 6, frag);
  ip[9] = 17;
  store_be32(ip + 12, src_ip);
  store_be32(ip + 16, dst_ip);
  store_be16(ip + 20, sport);
  store_be16(ip + 22, dport);
  return f;
}

}  // namespace

TEST(flow_hash_is_stable_per_flow) {
  auto a = udp_frame(0xC6130001, 0xC6130002, 1000, 2000);
  auto b = udp_frame(0xC6130001, 0xC6130002, 1000, 2000);
  b[14 + 30] = 0x55;  // payload differs, flow does not
  CHECK_EQ(ethernet_flow_hash(a.data(), a.size()), ethernet_flow_hash(b.data(), b.size()));
}

TEST(flow_hash_separates_flows) {
  std::set<uint32_t> hashes;
  for (uint16_t port = 1; port <= 1000; port++) {
    auto f = udp_frame(0xC6130001, 0xC6130002, port, 80);
    hashes.insert(ethernet_flow_hash(f.data(), f.size()));
  }
  CHECK(hashes.size() > 990);
}

TEST(flow_hash_keeps_fragments_together) {
  // Later fragments carry no ports: hash all fragments of a datagram on addresses alone.
  auto first = udp_frame(0xC6130001, 0xC6130002, 1000, 2000, 0x2000 /* MF */);
  auto later = udp_frame(0xC6130001, 0xC6130002, 0x1234, 0x5678, 0x00B9 /* offset */);
  CHECK_EQ(ethernet_flow_hash(first.data(), first.size()), ethernet_flow_hash(later.data(), later.size()));
}

TEST(flow_hash_reads_through_vlan_tag) {
  auto plain = udp_frame(1, 2, 3, 4);
  std::vector<uint8_t> tagged(plain.begin(), plain.begin() + 12);
  const uint8_t tag[4] = {0x81, 0x00, 0x00, 0x64};
  tagged.insert(tagged.end(), tag, tag + 4);
  tagged.insert(tagged.end(), plain.begin() + 12, plain.end());
  auto other_port = udp_frame(1, 2, 3, 5);
  std::vector<uint8_t> tagged2(other_port.begin(), other_port.begin() + 12);
  tagged2.insert(tagged2.end(), tag, tag + 4);
  tagged2.insert(tagged2.end(), other_port.begin() + 12, other_port.end());
  CHECK(ethernet_flow_hash(tagged.data(), tagged.size()) != ethernet_flow_hash(tagged2.data(), tagged2.size()));
}

TEST(flow_hash_handles_short_and_garbage_input) {
  uint8_t bytes[64];
  for (size_t n = 0; n < sizeof bytes; n++) {
    std::memset(bytes, 0xff, sizeof bytes);
    (void)ethernet_flow_hash(bytes, n);
    (void)ip_flow_hash(bytes, n);
  }
  CHECK(true);
}

TEST(port_from_hash_stays_in_range) {
  CHECK_EQ(port_from_hash(0, kEntropyPortLow, kEntropyPortHigh), kEntropyPortLow);
  CHECK_EQ(port_from_hash(0xffffffffu, kEntropyPortLow, kEntropyPortHigh), kEntropyPortHigh);
  uint32_t h = 12345;
  for (int i = 0; i < 100000; i++) {
    h = h * 1664525u + 1013904223u;
    const uint16_t port = port_from_hash(h, kEntropyPortLow, kEntropyPortHigh);
    if (port < kEntropyPortLow) CHECK(!"port below range");
  }
}
