// Publishes immutable tables to the workers. A worker compares one atomic generation per
// batch and takes the lock only when a new table is out, so the fast path stays lock-free
// and the old table lives until the last worker lets go of it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

namespace ovl {

template <typename Table>
class TablePublisher {
 public:
  explicit TablePublisher(std::shared_ptr<const Table> initial) : table_(std::move(initial)) {}

  void publish(std::shared_ptr<const Table> table) {
    std::lock_guard<std::mutex> lock(mutex_);
    table_ = std::move(table);
    generation_.fetch_add(1, std::memory_order_release);
  }

  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  std::shared_ptr<const Table> current(uint64_t* generation) const {
    std::lock_guard<std::mutex> lock(mutex_);
    *generation = generation_.load(std::memory_order_relaxed);
    return table_;
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const Table> table_;
  std::atomic<uint64_t> generation_{0};
};

}  // namespace ovl
