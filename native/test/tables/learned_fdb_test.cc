#include "tables/learned_fdb.h"

#include <atomic>
#include <thread>
#include <vector>

#include "test.h"

using namespace ovl;

TEST(fdb_learns_and_looks_up) {
  LearnedFdb fdb(16, 300);
  CHECK_EQ(fdb.lookup(0x020000000001, 100), LearnedFdb::kNone);
  CHECK(fdb.learn(0x020000000001, 3, 100));
  CHECK_EQ(fdb.lookup(0x020000000001, 100), 3u);
  CHECK_EQ(fdb.size(), size_t{1});
}

TEST(fdb_entry_follows_a_roaming_station) {
  LearnedFdb fdb(16, 300);
  fdb.learn(0x020000000001, 3, 100);
  fdb.learn(0x020000000001, 5, 101);
  CHECK_EQ(fdb.lookup(0x020000000001, 101), 5u);
  CHECK_EQ(fdb.size(), size_t{1});
}

TEST(fdb_entries_age_out) {
  LearnedFdb fdb(16, 10);
  fdb.learn(0x020000000001, 1, 100);
  CHECK_EQ(fdb.lookup(0x020000000001, 109), 1u);
  CHECK_EQ(fdb.lookup(0x020000000001, 110), LearnedFdb::kNone);
  fdb.learn(0x020000000002, 1, 105);
  fdb.expire(112);
  CHECK_EQ(fdb.size(), size_t{1});
  CHECK_EQ(fdb.lookup(0x020000000002, 112), 1u);
  fdb.expire(200);
  CHECK_EQ(fdb.size(), size_t{0});
}

TEST(fdb_refresh_keeps_entry_alive) {
  LearnedFdb fdb(16, 10);
  fdb.learn(0x020000000001, 1, 100);
  fdb.learn(0x020000000001, 1, 108);
  CHECK_EQ(fdb.lookup(0x020000000001, 115), 1u);
}

TEST(fdb_cap_refuses_new_macs_but_refreshes_known) {
  LearnedFdb fdb(4, 300);
  for (MacKey mac = 1; mac <= 4; mac++) CHECK(fdb.learn(0x020000000000 | mac, 0, 1));
  CHECK(!fdb.learn(0x020000000099, 0, 1));
  CHECK_EQ(fdb.lookup(0x020000000099, 1), LearnedFdb::kNone);
  CHECK(fdb.learn(0x020000000001, 2, 2));
  CHECK_EQ(fdb.size(), size_t{4});
  fdb.expire(1000);
  CHECK(fdb.learn(0x020000000099, 0, 1000));
}

TEST(fdb_retain_slots_forgets_departed_peers) {
  LearnedFdb fdb(16, 300);
  fdb.learn(0x020000000001, 1, 1);
  fdb.learn(0x020000000002, 2, 1);
  fdb.retain_slots([](uint32_t slot) { return slot != 2; });
  CHECK_EQ(fdb.lookup(0x020000000001, 1), 1u);
  CHECK_EQ(fdb.lookup(0x020000000002, 1), LearnedFdb::kNone);
  CHECK_EQ(fdb.size(), size_t{1});
}

TEST(fdb_is_safe_across_workers) {
  LearnedFdb fdb(100000, 300);
  std::vector<std::thread> threads;
  std::atomic<int> misses{0};
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&, t] {
      for (MacKey mac = 0; mac < 5000; mac++) {
        const MacKey key = 0x020000000000 | (static_cast<MacKey>(t) << 16) | mac;
        fdb.learn(key, static_cast<uint32_t>(t), 1);
        if (fdb.lookup(key, 1) != static_cast<uint32_t>(t)) misses++;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK_EQ(misses.load(), 0);
  CHECK_EQ(fdb.size(), size_t{20000});
  CHECK_EQ(fdb.snapshot(1).size(), size_t{20000});
}

TEST(fdb_entry_stamped_ahead_of_the_reader_is_fresh) {
  // Another worker's clock read a second later than ours.
  LearnedFdb fdb(16, 300);
  fdb.learn(0x020000000001, 4, 101);
  CHECK_EQ(fdb.lookup(0x020000000001, 100), 4u);
  fdb.expire(100);
  CHECK_EQ(fdb.size(), size_t{1});
  CHECK_EQ(fdb.snapshot(100).size(), size_t{1});
}
