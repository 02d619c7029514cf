// The L3 routing table: allowedIps prefixes (IPv4 and IPv6) → peer, longest prefix wins. On
// send it picks the peer for an inner destination; on receive it answers anti-spoofing: an
// inner source is allowed from a peer iff lookup(source) == that peer, so a more specific
// prefix routed elsewhere is carved out of the peer's range, as in WireGuard.
//
// Immutable, like every table a worker reads (tables are snapshots): the control side builds a
// new one off the fast path and publishes it; lookups take no lock and allocate nothing.
//
// Lookups probe one hash table per present prefix length by binary search on the length
// (Waldvogel et al., SIGCOMM 1997): cost grows with the distinct lengths, not the routes. Why this
// and not DIR-24-8 or a trie, and what it costs in memory: native/core/NOTES.md.
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
