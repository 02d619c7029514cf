#include "wire/ethernet.h"
#include "tables/peer_table.h"
#include "base/socket_address.h"
#include "base/stats_layout.h"
#include "system/sys_error.h"
#include "test.h"

using namespace ovl;

namespace {
PeerSpec spec(uint32_t slot, const char* address, std::vector<MacKey> macs = {}) {
  return PeerSpec{slot, *parse_socket_address(address, 4789), std::move(macs)};
}
}  // namespace

TEST(mac_parse_and_format_round_trip) {
  const auto mac = parse_mac("02:00:5e:10:00:0a");
  CHECK(mac.has_value());
  CHECK_EQ(*mac, MacKey{0x02005e10000a});
  CHECK(format_mac(*mac) == "02:00:5e:10:00:0a");
  CHECK(!parse_mac("02:00:5e:10:00").has_value());
  CHECK(!parse_mac("02:00:5e:10:00:0a:0b").has_value());
  CHECK(!parse_mac("zz:00:5e:10:00:0a").has_value());
  const auto mixed_case = parse_mac("02:AB:cd:Ef:00:0A");
  CHECK(mixed_case.has_value() && *mixed_case == MacKey{0x02abcdef000a});
}

// What sscanf's %2x let through (found by fuzz_address_text; its regressions keep the inputs):
// signs and "0x", blanks, other separators, and a NUL that ends the C string early.
TEST(mac_parse_refuses_what_is_not_six_hex_pairs) {
  CHECK(!parse_mac("-1:-1:-1:-1:-1:-1").has_value());
  CHECK(!parse_mac("+1:+1:+1:+1:+1:+1").has_value());
  CHECK(!parse_mac(" a: b: c: d: e: f").has_value());
  CHECK(!parse_mac("0x:00:5e:10:00:0a").has_value());
  CHECK(!parse_mac("02-00-5e-10-00-0a").has_value());
  CHECK(!parse_mac("02:00:5e:10:00:0a\n").has_value());
  CHECK(!parse_mac(std::string("02:00:5e:10:00:a\0", 17)).has_value());
}

TEST(mac_classes) {
  const uint8_t broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  const uint8_t multicast[6] = {0x01, 0x00, 0x5e, 0, 0, 1};
  const uint8_t unicast[6] = {0x02, 0, 0, 0, 0, 1};
  const uint8_t zero[6] = {};
  CHECK(mac_is_multicast(broadcast));
  CHECK(mac_is_multicast(multicast));
  CHECK(!mac_is_multicast(unicast));
  CHECK(mac_is_valid_source(unicast));
  CHECK(!mac_is_valid_source(zero));
  CHECK(!mac_is_valid_source(multicast));
}

TEST(socket_address_parses_both_families) {
  const auto v4 = parse_socket_address("198.18.0.2", 4789);
  CHECK(v4 && v4->family() == AF_INET && v4->port() == 4789);
  CHECK(v4->to_string() == "198.18.0.2:4789");
  const auto v6 = parse_socket_address("fd00::2", 6081);
  CHECK(v6 && v6->family() == AF_INET6 && v6->port() == 6081);
  CHECK(v6->to_string() == "[fd00::2]:6081");
  CHECK(!parse_socket_address("198.18.0.256", 1));
  CHECK(!parse_socket_address("fd00::2%nosuchif0", 1));
}

TEST(address_key_ignores_port) {
  const auto a = parse_socket_address("198.18.0.2", 4789);
  const auto b = parse_socket_address("198.18.0.2", 50000);
  const auto c = parse_socket_address("198.18.0.3", 4789);
  CHECK(address_key(a->get()) == address_key(b->get()));
  CHECK(!(address_key(a->get()) == address_key(c->get())));
}

TEST(peer_table_lookups) {
  PeerTable table({spec(7, "198.18.0.2", {0x020000000002}), spec(9, "198.18.0.3")});
  CHECK_EQ(table.peers().size(), size_t{2});
  const auto from_b = parse_socket_address("198.18.0.2", 61000);
  CHECK_EQ(table.by_source(from_b->get()), 0u);
  const auto stranger = parse_socket_address("198.18.0.99", 4789);
  CHECK_EQ(table.by_source(stranger->get()), PeerTable::kNone);
  CHECK_EQ(table.by_static_mac(0x020000000002), 0u);
  CHECK_EQ(table.by_static_mac(0x020000000003), PeerTable::kNone);
  CHECK_EQ(table.by_slot(9), 1u);
  CHECK_EQ(table.by_slot(8), PeerTable::kNone);
}

TEST(peer_table_rejects_duplicates) {
  CHECK_THROWS(PeerTable({spec(1, "198.18.0.2"), spec(1, "198.18.0.3")}));
  CHECK_THROWS(PeerTable({spec(1, "198.18.0.2"), spec(2, "198.18.0.2")}));
  CHECK_THROWS(PeerTable({spec(1, "198.18.0.2", {5}), spec(2, "198.18.0.3", {5})}));
}

TEST(stats_sections_are_per_worker_and_per_peer) {
  StatsBlock block(2, 4);
  // Two workers of five sections (totals and four peers), then the shared section.
  CHECK_EQ(block.size(), size_t{(2 * 5 + 1) * kSectionSize});
  CHECK(block.shared_section() == block.data() + 2 * 5 * kSectionSize);
  WorkerStats w0(block.worker_base(0), 4), w1(block.worker_base(1), 4);
  w0.add(2, kTxPackets);
  w0.add(2, kTxBytes, 100);
  w1.add(WorkerStats::kNoPeer, kDropUnknownPeer);
  w1.add(9, kRxPackets);  // out-of-range slot: totals only
  const uint64_t* c = block.data();
  CHECK_EQ(c[kTxPackets], 1u);
  CHECK_EQ(c[kTxBytes], 100u);
  CHECK_EQ(c[(1 + 2) * kSectionSize + kTxBytes], 100u);
  CHECK_EQ(c[5 * kSectionSize + kDropUnknownPeer], 1u);
  CHECK_EQ(c[5 * kSectionSize + kRxPackets], 1u);
  for (uint32_t i = 0; i < kCounterCount; i++) CHECK(counter_name(i) != nullptr);
}
