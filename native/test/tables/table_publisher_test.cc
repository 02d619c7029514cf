// The table swap: workers poll the generation and take the new table while it is being
// replaced. Run by core_tests (ASan, UBSan) and by the ThreadSanitizer build (run.sh), which is
// what checks the publisher's lock and generation order.
#include "tables/table_publisher.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "test.h"

using namespace ovl;

namespace {

// A table whose every field says which publication it came from: a torn or early read shows.
struct NumberedTable {
  explicit NumberedTable(uint64_t n) : number(n), rows(64, n) {}
  uint64_t number;
  std::vector<uint64_t> rows;
  bool whole() const {
    for (uint64_t row : rows) {
      if (row != number) return false;
    }
    return true;
  }
};

}  // namespace

TEST(table_publisher_hands_each_reader_whole_tables_in_order_while_they_are_swapped) {
  constexpr uint64_t kPublications = 2000;
  constexpr int kReaders = 3;
  TablePublisher<NumberedTable> publisher(std::make_shared<const NumberedTable>(0));
  std::weak_ptr<const NumberedTable> first;
  {
    uint64_t generation = 0;
    first = publisher.current(&generation);
  }
  std::atomic<bool> done{false};
  std::atomic<int> torn{0}, backwards{0}, mismatched{0};
  std::vector<uint64_t> last_seen(kReaders, 0);

  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; r++) {
    readers.emplace_back([&, r] {
      // A worker: compares the generation once per batch, and takes the lock only when it moved.
      uint64_t generation = 0;
      std::shared_ptr<const NumberedTable> table = publisher.current(&generation);
      for (;;) {
        const bool finished = done.load(std::memory_order_acquire);
        if (publisher.generation() != generation) {
          const uint64_t before = generation;
          table = publisher.current(&generation);
          if (generation < before) backwards++;
        }
        if (!table->whole()) torn++;
        // Publication n is table n: the generation and the table always travel together.
        if (table->number != generation) mismatched++;
        if (finished && generation == kPublications) break;
      }
      last_seen[r] = table->number;
    });
  }
  for (uint64_t n = 1; n <= kPublications; n++) publisher.publish(std::make_shared<const NumberedTable>(n));
  done.store(true, std::memory_order_release);
  for (auto& reader : readers) reader.join();

  CHECK_EQ(torn.load(), 0);
  CHECK_EQ(backwards.load(), 0);
  CHECK_EQ(mismatched.load(), 0);
  for (int r = 0; r < kReaders; r++) CHECK_EQ(last_seen[r], kPublications);
  CHECK_EQ(publisher.generation(), kPublications);
  // The first table went once the last reader let go of it.
  CHECK(first.expired());
}
