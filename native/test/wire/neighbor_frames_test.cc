// The announcement frames byte by byte: a gratuitous ARP as Linux's arp_notify and arping -U send
// it, an unsolicited Neighbor Advertisement as RFC 4861 §7.2.6 asks, its checksum checked by the
// tests' own RFC 1071 sum. tshark dissects both in test/netns/stable-mac.test.ts.
#include "wire/neighbor_frames.h"

#include <cstring>
#include <vector>

#include "wire/ethernet.h"
#include "reference_checksum.h"
#include "test.h"

using namespace ovl;

namespace {
const uint8_t kMac[6] = {0x02, 0x5a, 0x11, 0x22, 0x33, 0x44};
}

TEST(gratuitous_arp_is_a_broadcast_request_for_its_own_address) {
  const uint8_t ip[4] = {198, 19, 0, 1};
  uint8_t frame[kGratuitousArpFrameSize + 8];
  std::memset(frame, 0xee, sizeof frame);
  CHECK_EQ(build_gratuitous_arp(frame, kMac, ip), size_t{42});
  const std::vector<uint8_t> expected = {
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x5a, 0x11, 0x22, 0x33, 0x44, 0x08, 0x06,  // Ethernet, ARP
      0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01,                                            // Ethernet/IPv4, request
      0x02, 0x5a, 0x11, 0x22, 0x33, 0x44, 198, 19, 0, 1,                                   // sender
      0, 0, 0, 0, 0, 0, 198, 19, 0, 1,                                                     // target
  };
  CHECK(std::vector<uint8_t>(frame, frame + 42) == expected);
  CHECK_EQ(frame[42], 0xee);  // nothing written past the frame
}

TEST(unsolicited_na_is_to_all_nodes_from_the_target_with_override_and_its_link_address) {
  const uint8_t ip[16] = {0xfd, 0x00, 0x01, 0x98, 0x00, 0x19, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  for (const bool router : {false, true}) {
    uint8_t frame[kUnsolicitedNaFrameSize + 8];
    std::memset(frame, 0xee, sizeof frame);
    CHECK_EQ(build_unsolicited_na(frame, kMac, ip, router), size_t{86});
    CHECK_EQ(frame[86], 0xee);
    const uint8_t ethernet[14] = {0x33, 0x33, 0, 0, 0, 1, 0x02, 0x5a, 0x11, 0x22, 0x33, 0x44, 0x86, 0xdd};
    CHECK(std::memcmp(frame, ethernet, 14) == 0);
    const uint8_t* ipv6 = frame + 14;
    CHECK_EQ(ipv6[0], 0x60);
    CHECK_EQ(load_be16(ipv6 + 4), 32);  // payload: ICMPv6 header, target, one option
    CHECK_EQ(ipv6[6], 58);
    CHECK_EQ(ipv6[7], 255);  // hop limit 255, or receivers discard it (RFC 4861 §7.1.2)
    CHECK(std::memcmp(ipv6 + 8, ip, 16) == 0);
    const uint8_t all_nodes[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    CHECK(std::memcmp(ipv6 + 24, all_nodes, 16) == 0);
    const uint8_t* icmp = ipv6 + 40;
    CHECK_EQ(icmp[0], 136);
    CHECK_EQ(icmp[1], 0);
    CHECK_EQ(icmp[4], router ? 0xa0 : 0x20);  // Router as asked, Solicited clear, Override set
    CHECK(icmp[5] == 0 && icmp[6] == 0 && icmp[7] == 0);
    CHECK(std::memcmp(icmp + 8, ip, 16) == 0);
    CHECK_EQ(icmp[24], 2);  // Target Link-Layer Address
    CHECK_EQ(icmp[25], 1);
    CHECK(std::memcmp(icmp + 26, kMac, 6) == 0);
    CHECK_EQ(ovl_test::ref_fold(ovl_test::ref_pseudo_and_l4(ipv6, 6, icmp, 32, 58)), 0xFFFF);
  }
}
