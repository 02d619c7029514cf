// Learned forwarding entries: inner source MAC → the peer it arrived from, with ageing and
// a size cap, as a learning bridge (and the kernel's VXLAN device) keeps them.
//
// Shared by all workers of a forwarder: a flow's two directions can land on different
// queues, and a MAC learned on one must steer traffic on the other. The table is split into
// stripes, each with its own lock, so workers rarely meet; a refresh of a known entry that
// has not moved is a read under the lock and a relaxed store.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "wire/ethernet.h"

namespace ovl {

struct LearnedEntry {
  MacKey mac;
  uint32_t slot;
  uint32_t age_seconds;
};

class LearnedFdb {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  LearnedFdb(size_t max_entries, uint32_t ageing_seconds);

  // Records that `mac` was seen behind peer `slot` at `now` (monotonic seconds).
  // Returns false when the table is full and the MAC is new (it is then not learned).
  bool learn(MacKey mac, uint32_t slot, uint32_t now);

  // The slot `mac` was learned behind, or kNone if unknown or aged out.
  uint32_t lookup(MacKey mac, uint32_t now) const;

  // Drops entries older than the ageing time.
  void expire(uint32_t now);
  // Drops every entry learned behind a slot for which keep(slot) is false.
  template <typename Keep>
  void retain_slots(Keep keep) {
    for (Stripe& stripe : stripes_) {
      std::lock_guard<std::mutex> lock(stripe.mutex);
      for (auto it = stripe.entries.begin(); it != stripe.entries.end();) {
        if (keep(it->second.slot)) {
          ++it;
        } else {
          it = stripe.entries.erase(it);
          size_.fetch_sub(1, std::memory_order_relaxed);
        }
      }
    }
  }

  std::vector<LearnedEntry> snapshot(uint32_t now) const;
  size_t size() const { return size_.load(std::memory_order_relaxed); }

 private:
  struct Entry {
    uint32_t slot;
    std::atomic<uint32_t> seen;
    Entry(uint32_t s, uint32_t t) : slot(s), seen(t) {}
  };
  struct Stripe {
    mutable std::mutex mutex;
    std::unordered_map<MacKey, Entry> entries;
  };
  static constexpr size_t kStripes = 64;

  Stripe& stripe_for(MacKey mac) { return stripes_[(mac * 0x9e3779b97f4a7c15ull) >> 58]; }
  const Stripe& stripe_for(MacKey mac) const { return stripes_[(mac * 0x9e3779b97f4a7c15ull) >> 58]; }
  // Workers read the clock once per wakeup, so an entry may carry a time a second ahead of
  // the reader's `now`: a signed difference keeps that fresh instead of wrapping to "ancient".
  bool fresh(uint32_t seen, uint32_t now) const {
    const auto age = static_cast<int32_t>(now - seen);
    return age < 0 || static_cast<uint32_t>(age) < ageing_seconds_;
  }

  size_t max_entries_;
  uint32_t ageing_seconds_;
  std::atomic<size_t> size_{0};
  std::vector<Stripe> stripes_;
};

}  // namespace ovl
