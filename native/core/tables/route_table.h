// The L3 routing table: allowedIps prefixes (IPv4 and IPv6) → peer, longest prefix wins. On
// send it picks the peer for an inner destination; on receive it answers anti-spoofing: an
// inner source is allowed from a peer iff lookup(source) == that peer, so a more specific
// prefix routed elsewhere is carved out of the peer's range, as in WireGuard.
//
// Immutable, like every table a worker reads (DESIGN.md principle 3): the control side builds a
// new one off the fast path and publishes it; lookups take no lock and allocate nothing.
//
// Why this structure. 100,000 prefixes over 10,000 peers, looked up per packet, with a full
// replacement built while traffic flows. The cost of a lookup must not grow with the number of
// routes, only (and slowly) with the number of distinct prefix lengths:
// - One open-addressing hash table per present prefix length, searched by *binary search on
//   prefix length* (Waldvogel et al., "Scalable High Speed IP Routing Lookups", SIGCOMM 1997): a
//   balanced tree over the lengths that occur, whose entries double as "markers" saying a longer
//   prefix lies below and carrying the best match so far. A lookup probes at most
//   ceil(log2(lengths + 1)) tables (6 for IPv4, 8 for IPv6) whatever the route count, and a
//   config of hosts plus a few subnets ({24, 32}, {48, 64, 128}) takes one to three probes of one
//   cache line each. Probing every present length from the longest down costs up to 32 or 128
//   probes on a miss, and anti-spoofing sees misses from every spoofed source.
// - Not DIR-24-8 (a 2^24-entry array for IPv4): 64 MiB per table, twice during a swap, and 16M
//   entries to rewrite on every replacement, for a table that usually holds a few thousand
//   hosts. Not a bit trie (WireGuard's allowedips): up to 32/128 dependent loads per lookup.
// - The price: out of cache, each probe is a likely miss, so with many distinct lengths and
//   traffic spread over all routes a lookup costs several misses. Real allowedIps use few lengths.
// Memory: each table holds twice its entries (load 1/2) in 8-byte IPv4 / 24-byte IPv6 slots, so
// 16 B per IPv4 and 48 B per IPv6 entry. Entries are the prefixes plus markers: at most 5 (IPv4)
// or 7 (IPv6) per prefix, shared by the prefixes under a common parent. Measured
// with 100,000 prefixes: /32 + /128 hosts 3.1 MiB; a /32, a /128 and eight /24s per peer 1.8 MiB;
// random prefixes of every length in both families 11-12 MiB (2 entries per IPv4 and 3.5 per
// IPv6 prefix). Build: one sort and one pass, 7-40 ms for those sets at -O2.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ovl {

struct RoutePrefix {
  std::array<uint8_t, 16> address;  // network order; IPv4 in the first 4 bytes
  uint8_t length;
  bool ipv6;
  uint32_t peer;  // caller's peer id (index or slot); must be < RouteTable::kMaxPeer
};

namespace route_detail {

struct Key128 {
  uint64_t hi, lo;
};

template <typename Key>
struct Slot {
  Key key;
  uint32_t value;  // see route_table.cc for the encoding
};

template <typename Key>
struct LengthNode {
  Key mask;           // network mask of this length
  uint32_t offset;    // first slot of this length's hash table
  uint32_t capacity;  // slots in it
  uint8_t length;
  uint8_t left, right;  // tree over the present lengths; kNil when absent
};

// One address family: the length tree and the hash tables it points into.
template <typename Key>
struct LengthSearch {
  std::vector<LengthNode<Key>> nodes;
  std::vector<Slot<Key>> slots;
  uint8_t root;
  uint32_t default_peer;  // the /0 route, or the "none" value

  uint32_t lookup(Key address) const;
};

}  // namespace route_detail

class RouteTable {
 public:
  static constexpr uint32_t kNoRoute = UINT32_MAX;
  static constexpr uint32_t kMaxPeer = 0x7FFFFFFE;  // largest peer id the table can hold

  // Builds from prefixes of both families, in any order. Host bits beyond `length` are ignored.
  // The same prefix listed twice for the same peer counts once; listed for two different peers it
  // is a config error. Throws InvalidArgument on that, on a length over 32/128 and on a peer id
  // over kMaxPeer.
  explicit RouteTable(const std::vector<RoutePrefix>& prefixes);
  RouteTable() : RouteTable(std::vector<RoutePrefix>{}) {}

  // The peer of the longest prefix containing `address`, or kNoRoute.
  uint32_t lookup_v4(const uint8_t* address) const;  // 4 bytes, network order
  uint32_t lookup_v6(const uint8_t* address) const;  // 16 bytes, network order

  // Distinct prefixes held.
  size_t size() const { return size_; }
  // Heap bytes held by the lookup structures (for stats and benchmarks).
  size_t memory_bytes() const;

 private:
  route_detail::LengthSearch<uint32_t> v4_;
  route_detail::LengthSearch<route_detail::Key128> v6_;
  size_t size_ = 0;
};

// Parses "198.19.0.0/16", "fd00::/64", or a bare address as a host route (/32, /128). Host bits
// are kept as written (the table masks them). nullopt when it is not a prefix.
std::optional<RoutePrefix> parse_route_prefix(const std::string& cidr, uint32_t peer);

}  // namespace ovl
