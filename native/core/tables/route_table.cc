#include "tables/route_table.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "system/sys_error.h"

namespace ovl {

using route_detail::Key128;
using route_detail::LengthNode;
using route_detail::LengthSearch;
using route_detail::Slot;

namespace {

// A slot's value: the peer of the best (longest) real prefix of this length or shorter that
// contains the entry's key — for a real prefix, its own peer — in the low 31 bits (kNone when
// there is none), and kFinal when no longer prefix extends the entry, so the search can stop.
// An entry without kFinal is a marker (possibly a real prefix too) for a longer prefix. A final
// entry is always a real prefix and so has a peer: kFinal | kNone never occurs and marks an
// empty slot.
constexpr uint32_t kNone = 0x7FFFFFFF;
constexpr uint32_t kFinal = 0x80000000;
constexpr uint32_t kEmpty = kFinal | kNone;
constexpr uint8_t kNil = 0xFF;
static_assert(RouteTable::kMaxPeer < kNone, "peer ids must not collide with kNone");

// Keys are addresses as big-endian integers: the first address bit is the most significant.
uint32_t mask_of(unsigned length, uint32_t*) { return length == 0 ? 0 : ~uint32_t{0} << (32 - length); }
Key128 mask_of(unsigned length, Key128*) {
  if (length <= 64) return Key128{length == 0 ? 0 : ~uint64_t{0} << (64 - length), 0};
  return Key128{~uint64_t{0}, length == 128 ? ~uint64_t{0} : ~uint64_t{0} << (128 - length)};
}
template <typename Key>
Key mask_of(unsigned length) {
  return mask_of(length, static_cast<Key*>(nullptr));
}

inline uint32_t key_and(uint32_t a, uint32_t b) { return a & b; }
inline Key128 key_and(Key128 a, Key128 b) { return Key128{a.hi & b.hi, a.lo & b.lo}; }
inline bool key_equal(uint32_t a, uint32_t b) { return a == b; }
inline bool key_equal(Key128 a, Key128 b) { return a.hi == b.hi && a.lo == b.lo; }
inline bool key_less(uint32_t a, uint32_t b) { return a < b; }
inline bool key_less(Key128 a, Key128 b) { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo); }

// Fibonacci hashing of the prefix's own bits, host bits dropped: sequential hosts and sequential
// subnets alike become consecutive integers, which multiplication by 2^64/phi spreads evenly over
// the table (with the host bits kept, a prefix's trailing zeros would spoil the multiplier). The
// top 32 bits pick the home slot by multiply-high, so a table can be sized exactly.
constexpr uint64_t kPhi = 0x9E3779B97F4A7C15ull;
inline uint64_t key_hash(uint32_t key, unsigned length) { return uint64_t{key >> (32 - length)} * kPhi; }
inline uint64_t key_hash(Key128 key, unsigned length) {
  if (length <= 64) return (key.hi >> (64 - length)) * kPhi;
  return (key.hi * 0xD6E8FEB86659FD93ull + (key.lo >> (128 - length))) * kPhi;
}
template <typename Key>
inline uint32_t home_slot(Key key, const LengthNode<Key>& node) {
  return static_cast<uint32_t>(((key_hash(key, node.length) >> 32) * node.capacity) >> 32);
}

uint32_t load_v4(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}
uint64_t load_be64(const uint8_t* p) {
  uint64_t value = 0;
  for (int i = 0; i < 8; i++) value = value << 8 | p[i];
  return value;
}
Key128 load_v6(const uint8_t* p) { return Key128{load_be64(p), load_be64(p + 8)}; }

std::string format_prefix(uint32_t key, unsigned length) {
  uint8_t bytes[4] = {static_cast<uint8_t>(key >> 24), static_cast<uint8_t>(key >> 16), static_cast<uint8_t>(key >> 8),
                      static_cast<uint8_t>(key)};
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, bytes, text, sizeof text);
  return std::string(text) + "/" + std::to_string(length);
}
std::string format_prefix(Key128 key, unsigned length) {
  uint8_t bytes[16];
  for (int i = 0; i < 8; i++) {
    bytes[i] = static_cast<uint8_t>(key.hi >> (56 - 8 * i));
    bytes[8 + i] = static_cast<uint8_t>(key.lo >> (56 - 8 * i));
  }
  char text[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, bytes, text, sizeof text);
  return std::string(text) + "/" + std::to_string(length);
}

template <typename Key>
struct Item {
  Key key;  // masked
  uint8_t length;
  uint32_t peer;
};

// A balanced tree over the sorted present lengths [begin, end); the upper median is the root,
// so with two lengths (hosts and a subnet) a host hit is decided by the first probe.
template <typename Key>
uint8_t build_tree(const std::vector<uint8_t>& lengths, size_t begin, size_t end, std::vector<LengthNode<Key>>* nodes) {
  if (begin == end) return kNil;
  const size_t middle = (begin + end) / 2;
  const auto index = static_cast<uint8_t>(nodes->size());
  nodes->push_back(LengthNode<Key>{mask_of<Key>(lengths[middle]), 0, 0, lengths[middle], kNil, kNil});
  const uint8_t left = build_tree(lengths, begin, middle, nodes);
  const uint8_t right = build_tree(lengths, middle + 1, end, nodes);
  (*nodes)[index].left = left;
  (*nodes)[index].right = right;
  return index;
}

// Builds one family. Sorting by (key, length) walks the prefixes in depth-first order of their
// nesting, so a stack holds every real prefix that contains the current one: the best match
// for a marker is read off it, and each length's entries come out sorted by key, which makes
// duplicate markers adjacent.
template <typename Key>
LengthSearch<Key> build_family(std::vector<Item<Key>> items, unsigned bits, size_t* distinct) {
  std::sort(items.begin(), items.end(), [](const Item<Key>& a, const Item<Key>& b) {
    if (!key_equal(a.key, b.key)) return key_less(a.key, b.key);
    return a.length < b.length;
  });
  size_t kept = 0;
  for (size_t i = 0; i < items.size(); i++) {
    if (kept > 0 && key_equal(items[kept - 1].key, items[i].key) && items[kept - 1].length == items[i].length) {
      if (items[kept - 1].peer != items[i].peer) {
        throw InvalidArgument("route " + format_prefix(items[i].key, items[i].length) + " is given to two peers (" +
                              std::to_string(items[kept - 1].peer) + " and " + std::to_string(items[i].peer) + ")");
      }
      continue;
    }
    items[kept++] = items[i];
  }
  items.resize(kept);
  *distinct = kept;

  LengthSearch<Key> search;
  search.root = kNil;
  search.default_peer = kNone;
  bool present[129] = {};
  for (const Item<Key>& item : items) present[item.length] = true;
  std::vector<uint8_t> lengths;
  for (unsigned length = 1; length <= bits; length++) {
    if (present[length]) lengths.push_back(static_cast<uint8_t>(length));
  }
  search.root = build_tree<Key>(lengths, 0, lengths.size(), &search.nodes);

  std::vector<std::vector<Slot<Key>>> entries(search.nodes.size());
  auto add = [&entries](uint8_t node, Key key, uint32_t value) {
    std::vector<Slot<Key>>& list = entries[node];
    if (!list.empty() && key_equal(list.back().key, key)) {
      Slot<Key>& slot = list.back();
      const uint32_t best = (value & kFinal) ? (value & kNone) : (slot.value & kNone);
      slot.value = (slot.value & value & kFinal) | best;
    } else {
      list.push_back(Slot<Key>{key, value});
    }
  };
  std::vector<const Item<Key>*> stack;  // real prefixes containing the current one, shortest first
  for (const Item<Key>& item : items) {
    while (!stack.empty() &&
           !key_equal(key_and(item.key, mask_of<Key>(stack.back()->length)), stack.back()->key)) {
      stack.pop_back();
    }
    if (item.length == 0) {
      search.default_peer = item.peer;
    } else {
      // Markers on every length where the search for this one turns toward longer prefixes.
      uint8_t node = search.root;
      while (search.nodes[node].length != item.length) {
        const LengthNode<Key>& at = search.nodes[node];
        if (item.length > at.length) {
          uint32_t best = kNone;
          for (auto it = stack.rbegin(); it != stack.rend(); ++it) {
            if ((*it)->length <= at.length) {
              best = (*it)->peer;
              break;
            }
          }
          add(node, key_and(item.key, at.mask), best);
          node = at.right;
        } else {
          node = at.left;
        }
      }
      add(node, item.key, item.peer | kFinal);
    }
    stack.push_back(&item);
  }

  // One table per length at load factor 1/2, all in one array.
  size_t total = 0;
  for (size_t n = 0; n < search.nodes.size(); n++) {
    search.nodes[n].offset = static_cast<uint32_t>(total);
    search.nodes[n].capacity = static_cast<uint32_t>(2 * entries[n].size());
    total += 2 * entries[n].size();
    if (total > UINT32_MAX) throw InvalidArgument("too many routes: " + std::to_string(items.size()));
  }
  search.slots.assign(total, Slot<Key>{Key{}, kEmpty});
  for (size_t n = 0; n < search.nodes.size(); n++) {
    const LengthNode<Key>& node = search.nodes[n];
    Slot<Key>* const table = search.slots.data() + node.offset;
    const std::vector<Slot<Key>>& list = entries[n];
    // The inserts land at random in tables larger than the cache: fetch a few ahead.
    constexpr size_t kAhead = 8;
    for (size_t e = 0; e < list.size(); e++) {
      if (e + kAhead < list.size()) __builtin_prefetch(table + home_slot(list[e + kAhead].key, node), 1);
      uint32_t i = home_slot(list[e].key, node);
      while (table[i].value != kEmpty) i = i + 1 == node.capacity ? 0 : i + 1;
      table[i] = list[e];
    }
  }
  return search;
}

}  // namespace

namespace route_detail {

// Binary search on prefix length: a hit means the answer is this entry's best match or a
// longer prefix below it (go right, unless the entry is final); a miss means nothing at this
// length or longer contains the address on this path (go left).
template <typename Key>
uint32_t LengthSearch<Key>::lookup(Key address) const {
  uint32_t best = default_peer;
  const Slot<Key>* const table = slots.data();
  uint8_t n = root;
  while (n != kNil) {
    const LengthNode<Key>& node = nodes[n];
    const Key key = key_and(address, node.mask);
    uint32_t i = home_slot(key, node);
    for (;;) {
      const Slot<Key>& slot = table[node.offset + i];
      if (slot.value == kEmpty) {
        n = node.left;
        break;
      }
      if (key_equal(slot.key, key)) {
        best = slot.value & kNone;
        if (slot.value & kFinal) return best;
        n = node.right;
        break;
      }
      i = i + 1 == node.capacity ? 0 : i + 1;
    }
  }
  return best;
}

template struct LengthSearch<uint32_t>;
template struct LengthSearch<Key128>;

}  // namespace route_detail

RouteTable::RouteTable(const std::vector<RoutePrefix>& prefixes) {
  std::vector<Item<uint32_t>> v4;
  std::vector<Item<Key128>> v6;
  for (const RoutePrefix& prefix : prefixes) {
    if (prefix.peer > kMaxPeer) throw InvalidArgument("route peer id out of range: " + std::to_string(prefix.peer));
    if (prefix.ipv6) {
      if (prefix.length > 128) throw InvalidArgument("IPv6 prefix length over 128: " + std::to_string(prefix.length));
      v6.push_back({key_and(load_v6(prefix.address.data()), mask_of<Key128>(prefix.length)), prefix.length, prefix.peer});
    } else {
      if (prefix.length > 32) throw InvalidArgument("IPv4 prefix length over 32: " + std::to_string(prefix.length));
      v4.push_back({load_v4(prefix.address.data()) & mask_of<uint32_t>(prefix.length), prefix.length, prefix.peer});
    }
  }
  size_t v4_count = 0, v6_count = 0;
  v4_ = build_family(std::move(v4), 32, &v4_count);
  v6_ = build_family(std::move(v6), 128, &v6_count);
  size_ = v4_count + v6_count;
}

uint32_t RouteTable::lookup_v4(const uint8_t* address) const {
  const uint32_t peer = v4_.lookup(load_v4(address));
  return peer == kNone ? kNoRoute : peer;
}

uint32_t RouteTable::lookup_v6(const uint8_t* address) const {
  const uint32_t peer = v6_.lookup(load_v6(address));
  return peer == kNone ? kNoRoute : peer;
}

size_t RouteTable::memory_bytes() const {
  return v4_.nodes.capacity() * sizeof(v4_.nodes[0]) + v4_.slots.capacity() * sizeof(v4_.slots[0]) +
         v6_.nodes.capacity() * sizeof(v6_.nodes[0]) + v6_.slots.capacity() * sizeof(v6_.slots[0]);
}

std::optional<RoutePrefix> parse_route_prefix(const std::string& cidr, uint32_t peer) {
  if (cidr.find('\0') != std::string::npos) return std::nullopt;
  const size_t slash = cidr.find('/');
  const std::string address = cidr.substr(0, slash);
  RoutePrefix prefix{};
  prefix.peer = peer;
  unsigned max_length;
  if (inet_pton(AF_INET, address.c_str(), prefix.address.data()) == 1) {
    prefix.ipv6 = false;
    max_length = 32;
  } else if (inet_pton(AF_INET6, address.c_str(), prefix.address.data()) == 1) {
    prefix.ipv6 = true;
    max_length = 128;
  } else {
    return std::nullopt;
  }
  if (slash == std::string::npos) {
    prefix.length = static_cast<uint8_t>(max_length);
    return prefix;
  }
  const std::string digits = cidr.substr(slash + 1);
  if (digits.empty() || digits.size() > 3) return std::nullopt;
  unsigned length = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    length = length * 10 + static_cast<unsigned>(c - '0');
  }
  if (length > max_length) return std::nullopt;
  prefix.length = static_cast<uint8_t>(length);
  return prefix;
}

}  // namespace ovl
