// Fuzz target, differential: the learned FDB (learned_fdb.h: striped hash maps with ageing and a
// size cap) against a std::map model of what a learning bridge keeps. Every learn() result,
// lookup(), size() and snapshot() must agree after every operation, through expiry, slot removal
// (retain_slots) and clocks that step back by a second (workers read the clock once per wakeup).
//
// Input: byte 0 the size cap (0-31), byte 1 the ageing time (1-64 s), then 4-byte operations
// [op, mac, slot, time]: op picks learn / lookup / expire / retain / snapshot; mac one of 32
// MACs (a few sharing a stripe's bits) or, with op bit 7, one spread over all 48 bits; time
// moves the clock forward by 0-63 s, or back by one.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>
#include <tuple>
#include <vector>

#include "tables/learned_fdb.h"

namespace {

using ovl::LearnedEntry;
using ovl::LearnedFdb;
using ovl::MacKey;

struct Model {
  size_t max_entries;
  uint32_t ageing;
  struct Entry {
    uint32_t slot;
    uint32_t seen;
  };
  std::map<MacKey, Entry> entries;

  bool fresh(uint32_t seen, uint32_t now) const {
    const int64_t age = static_cast<int32_t>(now - seen);
    return age < 0 || age < static_cast<int64_t>(ageing);
  }
  bool learn(MacKey mac, uint32_t slot, uint32_t now) {
    auto it = entries.find(mac);
    if (it != entries.end()) {
      it->second = Entry{slot, now};
      return true;
    }
    if (entries.size() >= max_entries) return false;
    entries[mac] = Entry{slot, now};
    return true;
  }
  uint32_t lookup(MacKey mac, uint32_t now) const {
    auto it = entries.find(mac);
    return it == entries.end() || !fresh(it->second.seen, now) ? LearnedFdb::kNone : it->second.slot;
  }
  void expire(uint32_t now) {
    for (auto it = entries.begin(); it != entries.end();) it = fresh(it->second.seen, now) ? std::next(it) : entries.erase(it);
  }
  template <typename Keep>
  void retain(Keep keep) {
    for (auto it = entries.begin(); it != entries.end();) it = keep(it->second.slot) ? std::next(it) : entries.erase(it);
  }
  std::vector<std::tuple<MacKey, uint32_t, uint32_t>> snapshot(uint32_t now) const {
    std::vector<std::tuple<MacKey, uint32_t, uint32_t>> out;
    for (const auto& [mac, e] : entries) {
      if (fresh(e.seen, now)) out.emplace_back(mac, e.slot, static_cast<int32_t>(now - e.seen) < 0 ? 0 : now - e.seen);
    }
    return out;
  }
};

[[noreturn]] void fail(const char* what, size_t op) {
  std::fprintf(stderr, "fuzz_learned_fdb: %s (operation %zu)\n", what, op);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t max_entries = data[0] % 32;
  const uint32_t ageing = 1 + data[1] % 64;
  LearnedFdb fdb(max_entries, ageing);
  Model model{max_entries, ageing, {}};
  uint32_t now = 0xFFFFFF00u;  // near the wrap of the 32-bit clock

  for (size_t at = 2, op_index = 0; at + 4 <= size; at += 4, op_index++) {
    const uint8_t op = data[at], mac_byte = data[at + 1], slot_byte = data[at + 2], time = data[at + 3];
    now = time == 0xFF ? now - 1 : now + (time & 63);
    const MacKey mac = (op & 0x80) ? (MacKey{mac_byte} * 0x0000010203040506ull) & 0xFFFFFFFFFFFFull
                                   : 0x020000000000ull | (MacKey{mac_byte} % 32 << 40 >> (mac_byte & 3));
    const uint32_t slot = slot_byte % 8;
    switch (op % 5) {
      case 0:
      case 1:
        if (fdb.learn(mac, slot, now) != model.learn(mac, slot, now)) fail("learn differs", op_index);
        break;
      case 2:
        if (fdb.lookup(mac, now) != model.lookup(mac, now)) fail("lookup differs", op_index);
        break;
      case 3:
        if (op & 0x40) {
          fdb.expire(now);
          model.expire(now);
        } else {
          const uint32_t keep_mask = slot_byte;
          auto keep = [keep_mask](uint32_t s) { return ((keep_mask >> (s % 8)) & 1) != 0; };
          fdb.retain_slots(keep);
          model.retain(keep);
        }
        break;
      case 4: {
        std::vector<std::tuple<MacKey, uint32_t, uint32_t>> got;
        for (const LearnedEntry& e : fdb.snapshot(now)) got.emplace_back(e.mac, e.slot, e.age_seconds);
        std::sort(got.begin(), got.end());
        if (got != model.snapshot(now)) fail("snapshot differs", op_index);
        break;
      }
    }
    if (fdb.size() != model.entries.size()) fail("size differs", op_index);
    if (fdb.size() > max_entries) fail("over the cap", op_index);
  }
  // Every MAC the model knows, looked up at the end.
  for (const auto& [mac, entry] : model.entries) {
    if (fdb.lookup(mac, now) != model.lookup(mac, now)) fail("final lookup differs", 0);
  }
  return 0;
}
