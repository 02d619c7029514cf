#include "tables/route_table.h"

#include <arpa/inet.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "system/sys_error.h"
#include "test.h"

using namespace ovl;

namespace {

RoutePrefix prefix(const char* cidr, uint32_t peer) {
  const auto parsed = parse_route_prefix(cidr, peer);
  if (!parsed) throw std::runtime_error(std::string("bad prefix in test: ") + cidr);
  return *parsed;
}

// Looks up a textual address in the family it is written in.
uint32_t lookup(const RouteTable& table, const char* address) {
  uint8_t bytes[16];
  if (inet_pton(AF_INET, address, bytes) == 1) return table.lookup_v4(bytes);
  if (inet_pton(AF_INET6, address, bytes) == 1) return table.lookup_v6(bytes);
  throw std::runtime_error(std::string("bad address in test: ") + address);
}

constexpr uint32_t kNoRoute = RouteTable::kNoRoute;

bool contains(const RoutePrefix& p, const uint8_t* address) {
  unsigned bits = p.length;
  for (unsigned i = 0; bits > 0; i++, bits = bits >= 8 ? bits - 8 : 0) {
    const uint8_t mask = bits >= 8 ? 0xFF : static_cast<uint8_t>(0xFF << (8 - bits));
    if ((p.address[i] & mask) != (address[i] & mask)) return false;
  }
  return true;
}

// The obvious answer: every prefix of the family, longest containing one wins.
uint32_t linear_lookup(const std::vector<RoutePrefix>& prefixes, bool ipv6, const uint8_t* address) {
  int best_length = -1;
  uint32_t best = kNoRoute;
  for (const RoutePrefix& p : prefixes) {
    if (p.ipv6 == ipv6 && static_cast<int>(p.length) > best_length && contains(p, address)) {
      best_length = p.length;
      best = p.peer;
    }
  }
  return best;
}

std::array<uint8_t, 16> masked(std::array<uint8_t, 16> address, unsigned length) {
  for (unsigned i = 0; i < 16; i++) {
    const unsigned keep = length >= 8 * (i + 1) ? 8 : (length > 8 * i ? length - 8 * i : 0);
    address[i] &= keep == 8 ? 0xFF : static_cast<uint8_t>(0xFF << (8 - keep));
  }
  return address;
}

// A second reference, fast enough for 100,000 prefixes × 200,000 lookups: one ordered map per
// (family, length), probed from the longest length down. Checked against linear_lookup too.
class MapReference {
 public:
  explicit MapReference(const std::vector<RoutePrefix>& prefixes) {
    for (const RoutePrefix& p : prefixes) maps_[p.ipv6][p.length][masked(p.address, p.length)] = p.peer;
  }
  uint32_t lookup(bool ipv6, const uint8_t* address) const {
    std::array<uint8_t, 16> full{};
    std::copy(address, address + (ipv6 ? 16 : 4), full.begin());
    for (int length = ipv6 ? 128 : 32; length >= 0; length--) {
      const auto& map = maps_[ipv6][length];
      if (map.empty()) continue;
      auto it = map.find(masked(full, static_cast<unsigned>(length)));
      if (it != map.end()) return it->second;
    }
    return kNoRoute;
  }

 private:
  std::map<std::array<uint8_t, 16>, uint32_t> maps_[2][129];
};

// Random prefixes of every length from 1 up, in both families, distinct, with nesting: a third
// are carved out of an earlier prefix. Addresses cluster as overlay ranges do (IPv4 in 10/8 and
// 100/8, IPv6 in fd00::/8 and fe00::/8), which leaves half of each space without a route.
std::vector<RoutePrefix> random_prefixes(std::mt19937_64& random, size_t count, uint32_t peers) {
  std::vector<RoutePrefix> out;
  std::set<std::tuple<bool, unsigned, std::array<uint8_t, 16>>> seen;
  while (out.size() < count) {
    RoutePrefix p{};
    p.ipv6 = random() % 2 == 1;
    const unsigned max = p.ipv6 ? 128 : 32;
    for (auto& byte : p.address) byte = static_cast<uint8_t>(random());
    if (p.ipv6) {
      p.address[0] = random() % 2 ? 0xfd : 0xfe;
    } else {
      for (unsigned i = 4; i < 16; i++) p.address[i] = 0;
      p.address[0] = random() % 2 ? 10 : 100;
    }
    p.length = static_cast<uint8_t>(1 + random() % max);
    if (!out.empty() && random() % 3 == 0) {
      const RoutePrefix& parent = out[random() % out.size()];
      if (parent.ipv6 == p.ipv6 && parent.length < max) {
        std::array<uint8_t, 16> ones;
        ones.fill(0xFF);
        const auto netmask = masked(ones, parent.length);
        for (unsigned i = 0; i < 16; i++) {
          p.address[i] = static_cast<uint8_t>((parent.address[i] & netmask[i]) | (p.address[i] & ~netmask[i]));
        }
        p.length = static_cast<uint8_t>(parent.length + 1 + random() % (max - parent.length));
      }
    }
    p.peer = static_cast<uint32_t>(random() % peers);
    if (!seen.insert({p.ipv6, p.length, masked(p.address, p.length)}).second) continue;
    out.push_back(p);
  }
  return out;
}

struct Probe {
  bool ipv6;
  std::array<uint8_t, 16> address;
};

// Addresses biased to hit: half fall inside a random prefix (host bits random), a quarter
// differ from one in a single prefix bit (near misses), a quarter are anywhere.
std::vector<Probe> random_probes(std::mt19937_64& random, const std::vector<RoutePrefix>& prefixes, size_t count) {
  std::vector<Probe> out;
  out.reserve(count);
  for (size_t i = 0; i < count; i++) {
    Probe probe{};
    const RoutePrefix& p = prefixes[random() % prefixes.size()];
    const unsigned kind = random() % 4;
    probe.ipv6 = kind == 3 ? random() % 2 == 1 : p.ipv6;
    for (auto& byte : probe.address) byte = static_cast<uint8_t>(random());
    if (kind < 3) {
      const unsigned bytes = probe.ipv6 ? 16 : 4;
      for (unsigned b = 0; b < bytes; b++) {
        const unsigned keep = p.length >= 8 * (b + 1) ? 8 : (p.length > 8 * b ? p.length - 8 * b : 0);
        const uint8_t mask = keep == 8 ? 0xFF : static_cast<uint8_t>(0xFF << (8 - keep));
        probe.address[b] = static_cast<uint8_t>((p.address[b] & mask) | (probe.address[b] & ~mask));
      }
      if (kind == 2 && p.length > 0) {
        const unsigned bit = random() % p.length;
        probe.address[bit / 8] ^= static_cast<uint8_t>(0x80 >> (bit % 8));
      }
    }
    out.push_back(probe);
  }
  return out;
}

uint32_t lookup(const RouteTable& table, const Probe& probe) {
  return probe.ipv6 ? table.lookup_v6(probe.address.data()) : table.lookup_v4(probe.address.data());
}

}  // namespace

TEST(route_longest_match_wins_across_nested_prefixes) {
  const RouteTable table({prefix("10.0.0.0/8", 1), prefix("10.1.0.0/16", 2), prefix("10.1.2.0/24", 3),
                          prefix("10.1.2.128/25", 4), prefix("10.1.2.130/32", 5), prefix("fd00::/8", 11),
                          prefix("fd00:1::/32", 12), prefix("fd00:1:2::/48", 13), prefix("fd00:1:2:3::/64", 14)});
  CHECK_EQ(lookup(table, "10.9.9.9"), 1u);
  CHECK_EQ(lookup(table, "10.1.9.9"), 2u);
  CHECK_EQ(lookup(table, "10.1.2.1"), 3u);
  CHECK_EQ(lookup(table, "10.1.2.129"), 4u);
  CHECK_EQ(lookup(table, "10.1.2.130"), 5u);
  CHECK_EQ(lookup(table, "10.1.2.131"), 4u);
  CHECK_EQ(lookup(table, "fd99::1"), 11u);
  CHECK_EQ(lookup(table, "fd00:1:9::1"), 12u);
  CHECK_EQ(lookup(table, "fd00:1:2:9::1"), 13u);
  CHECK_EQ(lookup(table, "fd00:1:2:3::1"), 14u);
  CHECK_EQ(table.size(), size_t{9});
}

TEST(route_order_of_prefixes_does_not_matter) {
  const RouteTable table({prefix("10.1.2.0/24", 3), prefix("10.0.0.0/8", 1), prefix("10.1.0.0/16", 2)});
  CHECK_EQ(lookup(table, "10.1.2.3"), 3u);
  CHECK_EQ(lookup(table, "10.1.3.3"), 2u);
  CHECK_EQ(lookup(table, "10.2.3.3"), 1u);
}

TEST(route_marker_without_a_shorter_match_is_no_route) {
  // Only long prefixes: an address sharing their leading bits but outside them has no route.
  const RouteTable table({prefix("10.1.2.3/32", 1), prefix("10.1.0.0/17", 2), prefix("10.1.2.0/30", 3)});
  CHECK_EQ(lookup(table, "10.1.2.4"), 2u);
  CHECK_EQ(lookup(table, "10.1.128.1"), kNoRoute);
  CHECK_EQ(lookup(table, "10.1.2.2"), 3u);
  CHECK_EQ(lookup(table, "10.1.2.3"), 1u);
}

TEST(route_default_routes) {
  const RouteTable v4_default({prefix("0.0.0.0/0", 7), prefix("10.0.0.0/8", 1)});
  CHECK_EQ(lookup(v4_default, "192.0.2.1"), 7u);
  CHECK_EQ(lookup(v4_default, "10.0.0.1"), 1u);
  CHECK_EQ(lookup(v4_default, "2001:db8::1"), kNoRoute);  // an IPv4 default does not route IPv6
  const RouteTable both({prefix("0.0.0.0/0", 7), prefix("::/0", 8), prefix("fd00::/8", 2)});
  CHECK_EQ(lookup(both, "255.255.255.255"), 7u);
  CHECK_EQ(lookup(both, "2001:db8::1"), 8u);
  CHECK_EQ(lookup(both, "fd00::1"), 2u);
  const RouteTable only_default({prefix("::/0", 8)});
  CHECK_EQ(lookup(only_default, "::"), 8u);
  CHECK_EQ(lookup(only_default, "1.2.3.4"), kNoRoute);
}

TEST(route_host_routes) {
  const RouteTable table({prefix("198.19.0.2/32", 2), prefix("198.19.0.3", 3), prefix("fd00::2/128", 4),
                          prefix("fd00::3", 5), prefix("255.255.255.255/32", 6), prefix("0.0.0.0/32", 9)});
  CHECK_EQ(lookup(table, "198.19.0.2"), 2u);
  CHECK_EQ(lookup(table, "198.19.0.3"), 3u);
  CHECK_EQ(lookup(table, "198.19.0.4"), kNoRoute);
  CHECK_EQ(lookup(table, "fd00::2"), 4u);
  CHECK_EQ(lookup(table, "fd00::3"), 5u);
  CHECK_EQ(lookup(table, "fd00::4"), kNoRoute);
  CHECK_EQ(lookup(table, "255.255.255.255"), 6u);
  CHECK_EQ(lookup(table, "0.0.0.0"), 9u);
  CHECK_EQ(lookup(table, "0.0.0.1"), kNoRoute);
}

TEST(route_families_are_separate) {
  // The same leading bytes in both families.
  const RouteTable table({prefix("10.0.0.0/8", 1), prefix("a00::/8", 2)});
  CHECK_EQ(lookup(table, "10.1.1.1"), 1u);
  CHECK_EQ(lookup(table, "a01::1"), 2u);
  const RouteTable v4_only({prefix("10.0.0.0/8", 1)});
  CHECK_EQ(lookup(v4_only, "a00::1"), kNoRoute);
  const RouteTable v6_only({prefix("a00::/8", 2)});
  CHECK_EQ(lookup(v6_only, "10.0.0.1"), kNoRoute);
}

TEST(route_host_bits_are_masked) {
  const RouteTable table({prefix("10.1.2.3/16", 1), prefix("fd00::1:2:3/64", 2), prefix("10.1.2.3/16", 1)});
  CHECK_EQ(table.size(), size_t{2});  // listed twice, same peer: one route
  CHECK_EQ(lookup(table, "10.1.99.99"), 1u);
  CHECK_EQ(lookup(table, "10.1.0.0"), 1u);
  CHECK_EQ(lookup(table, "fd00::9"), 2u);
  // Same prefix once host bits are masked, different peers: a config error.
  CHECK_THROWS(RouteTable({prefix("10.1.2.3/16", 1), prefix("10.1.0.0/16", 2)}));
}

TEST(route_no_match) {
  const RouteTable empty(std::vector<RoutePrefix>{});
  CHECK_EQ(empty.size(), size_t{0});
  CHECK_EQ(lookup(empty, "10.0.0.1"), kNoRoute);
  CHECK_EQ(lookup(empty, "fd00::1"), kNoRoute);
  const RouteTable table({prefix("10.0.0.0/8", 1), prefix("fd00::/8", 2)});
  CHECK_EQ(lookup(table, "11.0.0.1"), kNoRoute);
  CHECK_EQ(lookup(table, "fe00::1"), kNoRoute);
}

TEST(route_rejects_bad_prefixes) {
  RoutePrefix v4 = prefix("10.0.0.0/8", 1);
  v4.length = 33;
  CHECK_THROWS(RouteTable({v4}));
  RoutePrefix v6 = prefix("fd00::/8", 1);
  v6.length = 129;
  CHECK_THROWS(RouteTable({v6}));
  CHECK_THROWS(RouteTable({prefix("10.0.0.0/8", RouteTable::kMaxPeer + 1)}));
  CHECK_THROWS(RouteTable({prefix("10.0.0.0/8", RouteTable::kNoRoute)}));
  const RouteTable top({prefix("10.0.0.0/8", RouteTable::kMaxPeer)});
  CHECK_EQ(lookup(top, "10.0.0.1"), RouteTable::kMaxPeer);
  std::string message;
  try {
    RouteTable({prefix("fd00::1/64", 1), prefix("fd00::/64", 2)});
  } catch (const InvalidArgument& error) {
    message = error.what();
  }
  CHECK(message.find("fd00::/64") != std::string::npos);
}

TEST(route_anti_spoofing_is_lookup_equals_sender) {
  // Peer 1 owns 10.1.0.0/16 except 10.1.5.0/24, which is peer 2's.
  const RouteTable table({prefix("10.1.0.0/16", 1), prefix("10.1.5.0/24", 2)});
  CHECK(lookup(table, "10.1.4.1") == 1u);
  CHECK(lookup(table, "10.1.5.1") != 1u);
  CHECK(lookup(table, "10.1.5.1") == 2u);
  CHECK(lookup(table, "10.2.0.1") != 1u);
}

TEST(route_parse_prefix) {
  auto v4 = parse_route_prefix("198.19.0.0/16", 3);
  CHECK(v4 && !v4->ipv6 && v4->length == 16 && v4->peer == 3u);
  CHECK(v4 && v4->address[0] == 198 && v4->address[1] == 19 && v4->address[4] == 0);
  auto v6 = parse_route_prefix("fd00::/64", 4);
  CHECK(v6 && v6->ipv6 && v6->length == 64 && v6->address[0] == 0xfd && v6->address[15] == 0);
  CHECK(parse_route_prefix("198.19.0.2", 0)->length == 32);
  CHECK(parse_route_prefix("fd00::2", 0)->length == 128);
  CHECK(parse_route_prefix("0.0.0.0/0", 0)->length == 0);
  CHECK(parse_route_prefix("::/128", 0)->length == 128);
  const char* bad[] = {"", "/8", "10.0.0.0/", "10.0.0.0/33", "fd00::/129", "10.0.0.0/-1", "10.0.0.0/+8",
                       "10.0.0.0/8/8", "10.0.0/8", "10.0.0.256/8", "10.0.0.0 /8", "10.0.0.0/ 8", "fd00::%eth0/64",
                       "10.0.0.0/0008", "fd00::/1x", "host/8"};
  for (const char* text : bad) {
    if (parse_route_prefix(text, 0)) ovl_test::record_failure(__FILE__, __LINE__, std::string("parsed: ") + text);
  }
  CHECK(!parse_route_prefix(std::string("10.0.0.0\0/8", 11), 0));
}

TEST(route_random_100k_prefixes_match_reference) {
  std::mt19937_64 random(20260311);
  const std::vector<RoutePrefix> prefixes = random_prefixes(random, 100000, 10000);
  const RouteTable table(prefixes);
  CHECK_EQ(table.size(), prefixes.size());
  const MapReference reference(prefixes);
  const std::vector<Probe> probes = random_probes(random, prefixes, 200000);
  size_t mismatches = 0, hits = 0, checked_linear = 0;
  for (size_t i = 0; i < probes.size(); i++) {
    const Probe& probe = probes[i];
    const uint32_t expected = reference.lookup(probe.ipv6, probe.address.data());
    // The map reference is itself checked against a linear scan on the first lookups.
    if (i < 500) {
      checked_linear++;
      CHECK_EQ(expected, linear_lookup(prefixes, probe.ipv6, probe.address.data()));
    }
    const uint32_t got = lookup(table, probe);
    if (got != expected && mismatches++ < 10) {
      char text[INET6_ADDRSTRLEN];
      inet_ntop(probe.ipv6 ? AF_INET6 : AF_INET, probe.address.data(), text, sizeof text);
      ovl_test::record_failure(__FILE__, __LINE__,
                               std::string("lookup ") + text + ": " + std::to_string(got) + " vs " + std::to_string(expected));
    }
    if (expected != kNoRoute) hits++;
  }
  CHECK_EQ(mismatches, size_t{0});
  CHECK(hits > probes.size() / 2);
  std::printf("     %zu lookups (%zu routed), %zu also against a linear scan; table %.1f MiB\n", probes.size(), hits,
              checked_linear, table.memory_bytes() / 1048576.0);
}

namespace {

// 10,000 peers with a /32, a /128 and eight /24s each: the shape of the 100,000 routes.
std::vector<RoutePrefix> config_routes() {
  std::vector<RoutePrefix> config;
  for (uint32_t peer = 0; peer < 10000; peer++) {
    RoutePrefix host{};
    host.address = {10, static_cast<uint8_t>(peer >> 8), static_cast<uint8_t>(peer), 1};
    host.length = 32;
    host.peer = peer;
    config.push_back(host);
    RoutePrefix host6{};
    host6.ipv6 = true;
    host6.address = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, static_cast<uint8_t>(peer >> 8), static_cast<uint8_t>(peer)};
    host6.length = 128;
    host6.peer = peer;
    config.push_back(host6);
    for (uint32_t subnet = 0; subnet < 8; subnet++) {
      RoutePrefix net{};
      const uint32_t n = peer * 8 + subnet;
      net.address = {static_cast<uint8_t>(100 + (n >> 16)), static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n), 0};
      net.length = 24;
      net.peer = peer;
      config.push_back(net);
    }
  }
  return config;
}

}  // namespace

TEST(route_timing) {
  // Printed, not asserted; under the sanitizer build the figures are several times the addon's.
  // "hot": 64 destinations, as a bench run with a few flows sees; "cold": 200,000 destinations
  // spread over every route, so a large table is mostly out of cache.
  using Clock = std::chrono::steady_clock;
  std::mt19937_64 random(7);
  auto time_lookups = [](const RouteTable& table, const std::vector<Probe>& probes) {
    uint32_t sink = 0;
    size_t count = 0;
    const auto begin = Clock::now();
    for (int round = 0; round < 5; round++) {
      for (size_t i = 0; i < 200000; i++) sink += lookup(table, probes[i % probes.size()]);
      count += 200000;
    }
    const double ns = std::chrono::duration<double, std::nano>(Clock::now() - begin).count();
    volatile uint32_t keep = sink;
    (void)keep;
    return ns / static_cast<double>(count);
  };
  const std::pair<const char*, std::vector<RoutePrefix>> sets[] = {
      {"random prefixes, lengths 1-32/1-128", random_prefixes(random, 100000, 10000)},
      {"a /32, a /128 and 8 /24s per peer  ", config_routes()},
  };
  for (const auto& [name, routes] : sets) {
    const std::vector<RoutePrefix> few(routes.begin(), routes.begin() + 10);
    const auto start = Clock::now();
    const RouteTable table(routes);
    const double build_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    const RouteTable few_table(few);
    const std::vector<Probe> hot = random_probes(random, routes, 64), cold = random_probes(random, routes, 200000);
    const std::vector<Probe> few_hot = random_probes(random, few, 64), few_cold = random_probes(random, few, 200000);
    std::printf("     %s: build %zu in %.1f ms, %.1f MiB; ns/lookup hot %.1f (10 routes) vs %.1f, cold %.1f vs %.1f\n",
                name, routes.size(), build_ms, table.memory_bytes() / 1048576.0, time_lookups(few_table, few_hot),
                time_lookups(table, hot), time_lookups(few_table, few_cold), time_lookups(table, cold));
  }
}
