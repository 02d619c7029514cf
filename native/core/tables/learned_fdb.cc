#include "tables/learned_fdb.h"

namespace ovl {

LearnedFdb::LearnedFdb(size_t max_entries, uint32_t ageing_seconds)
    : max_entries_(max_entries), ageing_seconds_(ageing_seconds), stripes_(kStripes) {}

bool LearnedFdb::learn(MacKey mac, uint32_t slot, uint32_t now) {
  Stripe& stripe = stripe_for(mac);
  std::lock_guard<std::mutex> lock(stripe.mutex);
  auto it = stripe.entries.find(mac);
  if (it != stripe.entries.end()) {
    // A station that moved to another peer follows at once (roaming), as in a bridge.
    it->second.slot = slot;
    it->second.seen.store(now, std::memory_order_relaxed);
    return true;
  }
  if (size_.load(std::memory_order_relaxed) >= max_entries_) return false;
  stripe.entries.emplace(std::piecewise_construct, std::forward_as_tuple(mac), std::forward_as_tuple(slot, now));
  size_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

uint32_t LearnedFdb::lookup(MacKey mac, uint32_t now) const {
  const Stripe& stripe = stripe_for(mac);
  std::lock_guard<std::mutex> lock(stripe.mutex);
  auto it = stripe.entries.find(mac);
  if (it == stripe.entries.end() || !fresh(it->second.seen.load(std::memory_order_relaxed), now)) return kNone;
  return it->second.slot;
}

void LearnedFdb::expire(uint32_t now) {
  for (Stripe& stripe : stripes_) {
    std::lock_guard<std::mutex> lock(stripe.mutex);
    for (auto it = stripe.entries.begin(); it != stripe.entries.end();) {
      if (fresh(it->second.seen.load(std::memory_order_relaxed), now)) {
        ++it;
      } else {
        it = stripe.entries.erase(it);
        size_.fetch_sub(1, std::memory_order_relaxed);
      }
    }
  }
}

std::vector<LearnedEntry> LearnedFdb::snapshot(uint32_t now) const {
  std::vector<LearnedEntry> out;
  for (const Stripe& stripe : stripes_) {
    std::lock_guard<std::mutex> lock(stripe.mutex);
    for (const auto& [mac, entry] : stripe.entries) {
      const uint32_t seen = entry.seen.load(std::memory_order_relaxed);
      if (fresh(seen, now)) out.push_back(LearnedEntry{mac, entry.slot, static_cast<int32_t>(now - seen) < 0 ? 0 : now - seen});
    }
  }
  return out;
}

}  // namespace ovl
