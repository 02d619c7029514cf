#include "base/drop_ring.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "test.h"

using namespace ovl;

namespace {

constexpr uint64_t N = kDropRingSlots;

// A record whose every field and byte says which record it is, so a mix of two is visible.
DropRecord numbered(uint64_t sequence) {
  DropRecord record{};
  record.time_ns = sequence * 1000;
  record.slot = static_cast<uint32_t>(sequence % 7);
  record.packets = 1;
  record.length = static_cast<uint32_t>(sequence % 300);
  record.reason = static_cast<uint16_t>(kDropMalformed + sequence % 5);
  record.captured = static_cast<uint16_t>(std::min<uint32_t>(record.length, kDropCaptureBytes));
  for (uint32_t i = 0; i < record.captured; i++) record.bytes[i] = static_cast<uint8_t>(sequence * 31 + i);
  return record;
}

bool matches(const DropEntry& entry) {
  const DropRecord want = numbered(entry.sequence);
  const DropRecord& got = entry.record;
  if (got.time_ns != want.time_ns || got.slot != want.slot || got.length != want.length || got.reason != want.reason ||
      got.captured != want.captured) {
    return false;
  }
  return std::memcmp(got.bytes, want.bytes, want.captured) == 0;
}

void write_numbered(DropRing& ring, uint64_t count) {
  for (uint64_t i = 0; i < count; i++) ring.write(numbered(ring.next_sequence()));
}

}  // namespace

TEST(drop_ring_returns_records_in_order_with_a_cursor) {
  DropRing ring;
  std::vector<DropEntry> out;
  uint64_t missed = 0;
  CHECK_EQ(ring.read(1, out, &missed), 1u);  // nothing yet
  CHECK(out.empty());
  write_numbered(ring, 5);
  CHECK_EQ(ring.read(1, out, &missed), 6u);
  CHECK_EQ(out.size(), 5u);
  CHECK_EQ(missed, 0u);
  for (size_t i = 0; i < out.size(); i++) {
    CHECK_EQ(out[i].sequence, i + 1);
    CHECK(matches(out[i]));
  }
  // From the cursor: only what came since, and nothing twice.
  out.clear();
  CHECK_EQ(ring.read(6, out, &missed), 6u);
  CHECK(out.empty());
  write_numbered(ring, 3);
  CHECK_EQ(ring.read(6, out, &missed), 9u);
  CHECK_EQ(out.size(), 3u);
  CHECK_EQ(out.front().sequence, 6u);
  CHECK_EQ(missed, 0u);
  // A cursor from 0 means from the first record; one past the end starts at the next.
  out.clear();
  CHECK_EQ(ring.read(0, out, &missed), 9u);
  CHECK_EQ(out.size(), 8u);
  out.clear();
  CHECK_EQ(ring.read(1000, out, &missed), 9u);
  CHECK(out.empty());
  CHECK_EQ(missed, 0u);
}

TEST(drop_ring_wraps_around_keeping_the_newest_and_counting_the_rest) {
  DropRing ring;
  write_numbered(ring, 3 * N + 7);
  std::vector<DropEntry> out;
  uint64_t missed = 0;
  CHECK_EQ(ring.oldest(), 2 * N + 8);
  CHECK_EQ(ring.read(1, out, &missed), 3 * N + 8);
  CHECK_EQ(out.size(), N);
  CHECK_EQ(missed, 2 * N + 7);  // overrun: what the reader never saw
  for (size_t i = 0; i < out.size(); i++) {
    CHECK_EQ(out[i].sequence, 2 * N + 8 + i);
    CHECK(matches(out[i]));
  }
}

TEST(drop_ring_overrun_counts_exactly_what_a_slow_reader_lost) {
  DropRing ring;
  write_numbered(ring, 10);
  std::vector<DropEntry> out;
  uint64_t missed = 0;
  uint64_t cursor = ring.read(1, out, &missed);
  CHECK_EQ(cursor, 11u);
  write_numbered(ring, N + 25);  // 25 more than the ring holds since the cursor
  out.clear();
  cursor = ring.read(cursor, out, &missed);
  CHECK_EQ(missed, 25u);
  CHECK_EQ(out.size(), N);
  CHECK_EQ(out.front().sequence, 11u + 25u);
  CHECK_EQ(cursor, 11u + N + 25u);
}

TEST(drop_ring_refuses_a_slot_torn_while_it_was_copied) {
  DropRing ring;
  write_numbered(ring, N);
  std::vector<DropEntry> out;
  uint64_t missed = 0;
  // While record 5 is being copied, the writer comes round and refills slots 1 to 5.
  const uint64_t cursor = ring.read_with(1, out, &missed, [&](uint64_t sequence) {
    if (sequence == 5) write_numbered(ring, 5);
  });
  CHECK_EQ(missed, 1u);
  CHECK_EQ(out.size(), N - 1);
  for (const DropEntry& entry : out) {
    CHECK(entry.sequence != 5);
    CHECK(matches(entry));  // never a mix of record 5 and record N + 5
  }
  CHECK_EQ(cursor, N + 1);
  // The records written meanwhile come with the next read.
  out.clear();
  missed = 0;
  CHECK_EQ(ring.read(cursor, out, &missed), N + 6);
  CHECK_EQ(out.size(), 5u);
  CHECK_EQ(missed, 0u);
  CHECK_EQ(out.front().sequence, N + 1);
}

TEST(drop_ring_skips_a_slot_the_writer_is_filling) {
  DropRing ring;
  write_numbered(ring, N);
  ring.begin();  // record N + 1 half written, into record 1's slot
  std::vector<DropEntry> out;
  uint64_t missed = 0;
  uint64_t cursor = ring.read(1, out, &missed);
  CHECK_EQ(missed, 1u);  // record 1 is going
  CHECK_EQ(out.size(), N - 1);
  CHECK_EQ(out.front().sequence, 2u);
  CHECK_EQ(cursor, N + 1);  // and N + 1 is not there yet
  ring.commit(numbered(N + 1));
  out.clear();
  missed = 0;
  cursor = ring.read(cursor, out, &missed);
  CHECK_EQ(out.size(), 1u);
  CHECK_EQ(out.front().sequence, N + 1);
  CHECK(matches(out.front()));
  CHECK_EQ(cursor, N + 2);
}

// A writer at full speed and a reader looping over the cursor: every record returned is whole,
// and returned + missed = written.
TEST(drop_ring_reader_never_returns_a_torn_record_under_a_running_writer) {
  DropRing ring;
  constexpr uint64_t kRecords = 200000;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    write_numbered(ring, kRecords);
    done.store(true, std::memory_order_release);
  });
  uint64_t cursor = 1, missed = 0, returned = 0, torn = 0, reads = 0;
  std::vector<DropEntry> out;
  for (;;) {
    const bool last = done.load(std::memory_order_acquire);
    out.clear();
    uint64_t expected = cursor;
    cursor = ring.read(cursor, out, &missed);
    reads++;
    for (const DropEntry& entry : out) {
      if (!matches(entry) || entry.sequence < expected) torn++;
      expected = entry.sequence + 1;
    }
    returned += out.size();
    if (last) break;
  }
  writer.join();
  CHECK_EQ(torn, 0u);
  CHECK_EQ(cursor, kRecords + 1);
  CHECK_EQ(returned + missed, kRecords);
  CHECK(reads > 1);
}

TEST(drop_ring_describes_a_drop_from_its_sample) {
  uint8_t packet[300];
  for (size_t i = 0; i < sizeof packet; i++) packet[i] = static_cast<uint8_t>(i);
  sockaddr_in from{};
  from.sin_family = AF_INET;
  from.sin_port = htons(40000);
  inet_pton(AF_INET, "198.18.0.2", &from.sin_addr);
  DropRing ring;
  ring.record(DropSample::underlay(packet, sizeof packet, DropDirection::rx, reinterpret_cast<sockaddr*>(&from), 4789,
                                   17),
              3, kDropWrongVni, 1);
  sockaddr_in6 to{};
  to.sin6_family = AF_INET6;
  to.sin6_port = htons(6081);
  inet_pton(AF_INET6, "fd00::2", &to.sin6_addr);
  ring.record(DropSample::underlay(packet, 40, DropDirection::tx, reinterpret_cast<sockaddr*>(&to), 50000, 17), 0,
              kDropSocketError, 1);
  ring.record(DropSample::device(packet, 60, DropDirection::tx), WorkerStats::kNoPeer, kDropNoRoute, 1);
  ring.record(DropSample::nothing(DropDirection::rx), WorkerStats::kNoPeer, kDropTooBig, 7);
  std::vector<DropEntry> out;
  uint64_t missed = 0;
  ring.read(1, out, &missed);
  CHECK_EQ(out.size(), 4u);
  if (out.size() != 4) return;
  const DropRecord& a = out[0].record;
  CHECK_EQ(a.reason, kDropWrongVni);
  CHECK_EQ(a.slot, 3u);
  CHECK_EQ(a.length, 300u);
  CHECK_EQ(a.captured, kDropCaptureBytes);  // the first bytes only
  CHECK(std::memcmp(a.bytes, packet, kDropCaptureBytes) == 0);
  CHECK_EQ(a.layer, static_cast<uint8_t>(DropLayer::underlay));
  CHECK_EQ(a.direction, static_cast<uint8_t>(DropDirection::rx));
  CHECK_EQ(a.family, AF_INET);
  CHECK_EQ(a.remote_port, 40000u);
  CHECK_EQ(a.local_port, 4789u);
  CHECK_EQ(a.protocol, 17u);
  CHECK(std::memcmp(a.remote_address, &from.sin_addr, 4) == 0);
  CHECK(a.time_ns > 1600000000ull * 1000000000ull);  // the wall clock, in nanoseconds
  const DropRecord& b = out[1].record;
  CHECK_EQ(b.captured, 40u);
  CHECK_EQ(b.family, AF_INET6);
  CHECK_EQ(b.remote_port, 6081u);
  CHECK(std::memcmp(b.remote_address, &to.sin6_addr, 16) == 0);
  CHECK_EQ(b.direction, static_cast<uint8_t>(DropDirection::tx));
  const DropRecord& c = out[2].record;
  CHECK_EQ(c.layer, static_cast<uint8_t>(DropLayer::device));
  CHECK_EQ(c.slot, WorkerStats::kNoPeer);
  CHECK_EQ(c.family, 0);
  CHECK_EQ(c.captured, 60u);
  const DropRecord& d = out[3].record;
  CHECK_EQ(d.layer, static_cast<uint8_t>(DropLayer::none));
  CHECK_EQ(d.captured, 0u);
  CHECK_EQ(d.packets, 7u);
  CHECK(out[0].record.time_ns <= out[3].record.time_ns);
}
