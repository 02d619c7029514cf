// The most recent drops of one worker, with the first bytes of each dropped packet: a ring of
// fixed-size slots that the worker fills at its drop exit and that any thread copies out of
// without stopping it. What `overlayfwd drops` and overlay.recentDrops() read.
//
// One writer (the worker), any number of readers, no lock. Record r (1, 2, ...) goes to slot
// (r - 1) % kDropRingSlots; each slot is a seqlock whose version says which record it holds:
// 2r - 1 while the writer fills it, 2r once it is whole. A reader asks for the records from its
// cursor on, up to the last one written: one whose slot already holds a later record (or is
// being refilled) was overwritten before it was read, and counts as missed, as does one whose
// version changed while it was being copied (a torn read, never returned). The writer never
// waits for a reader; a slow reader loses the oldest records, and is told how many.
//
// The data path pays for this only when it drops a packet: the slot's words, the clock, and a
// copy of at most kDropCaptureBytes (NOTES.md: why a seqlock per slot and a ring per worker,
// and what a drop costs).
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/stats_layout.h"

namespace ovl {

constexpr uint32_t kDropRingSlots = 256;      // per worker
constexpr uint32_t kDropCaptureBytes = 128;   // outer and inner headers of most packets

// What the captured bytes are.
enum class DropLayer : uint8_t {
  none = 0,      // nothing was captured (a failed read of the device or the socket)
  underlay = 1,  // a datagram after its outer IP header (raw-IP modes) or UDP header (UDP modes)
  outer_ip = 2,  // a whole outer IP packet (raw IPv4 whose outer header failed its check)
  device = 3,    // an inner frame as the device reads and writes it (Ethernet on TAP, IP on TUN)
};

enum class DropDirection : uint8_t {
  rx = 0,  // underlay → device
  tx = 1,  // device → underlay
};

// What a drop site knows about the packet it drops. Built only on the drop path.
struct DropSample {
  const uint8_t* data = nullptr;
  uint32_t length = 0;
  DropLayer layer = DropLayer::none;
  DropDirection direction = DropDirection::rx;
  const sockaddr* remote = nullptr;  // underlay layers: the sender (rx) or the peer's endpoint (tx)
  uint16_t local_port = 0;           // UDP: our port (rx: the data-path port; tx: the sending socket's)
  uint8_t protocol = 0;              // underlay layers: the outer IP protocol (17 for UDP)
  // Bytes readable at `data` when fewer than `length` (a segment whose payload is elsewhere,
  // PacketBuffer::tail): the capture stops there. 0: all `length` bytes are.
  uint32_t readable = 0;

  static DropSample nothing(DropDirection direction) {
    DropSample sample;
    sample.direction = direction;
    return sample;
  }
  static DropSample device(const uint8_t* data, uint32_t length, DropDirection direction) {
    DropSample sample;
    sample.data = data;
    sample.length = length;
    sample.layer = DropLayer::device;
    sample.direction = direction;
    return sample;
  }
  static DropSample underlay(const uint8_t* data, uint32_t length, DropDirection direction, const sockaddr* remote,
                             uint16_t local_port, uint8_t protocol, DropLayer layer = DropLayer::underlay) {
    DropSample sample;
    sample.data = data;
    sample.length = length;
    sample.layer = layer;
    sample.direction = direction;
    sample.remote = remote;
    sample.local_port = local_port;
    sample.protocol = protocol;
    return sample;
  }
};

// One slot's content, as stored and as copied out. Plain bytes: the ring moves it word by word.
struct DropRecord {
  uint64_t time_ns;        // CLOCK_REALTIME
  uint32_t slot;           // the peer's stats slot, WorkerStats::kNoPeer for none
  uint32_t packets;        // packets the drop stands for (a GRO batch, frames a read lost)
  uint32_t length;         // the whole length of what `bytes` starts
  uint16_t reason;         // a Counter (drop reasons only)
  uint16_t captured;       // bytes in `bytes`
  uint8_t layer;           // DropLayer
  uint8_t direction;       // DropDirection
  uint8_t protocol;        // outer IP protocol
  uint8_t family;          // of remote_address: AF_INET, AF_INET6, or 0
  uint16_t remote_port;
  uint16_t local_port;
  uint8_t remote_address[16];
  uint8_t bytes[kDropCaptureBytes];
};
static_assert(sizeof(DropRecord) % sizeof(uint64_t) == 0, "records move as whole words");

// A record copied out, with its number in the worker's sequence.
struct DropEntry {
  uint64_t sequence;
  DropRecord record;
};

class DropRing {
 public:
  static constexpr size_t kWords = sizeof(DropRecord) / sizeof(uint64_t);

  DropRing();

  // Writer (the worker), at its drop exit: a record of the drop, with the first bytes of the
  // sample. Out of line: the data path calls it only for a packet it drops.
  __attribute__((noinline, cold)) void record(const DropSample& sample, uint32_t slot, Counter reason, uint64_t packets);

  // Writer: stores the next record. `record.captured` bytes of `record.bytes` are taken; the
  // rest of the record is copied as it is.
  void write(const DropRecord& record) {
    begin();
    commit(record);
  }

  // Writer: the record about to be written (so far: the number of the last record written + 1).
  uint64_t next_sequence() const { return written_.load(std::memory_order_relaxed) + 1; }

  // Reader, from any thread. Appends the records numbered `from` (≥ 1) and up that the ring
  // still holds, oldest first, to `out`; returns the cursor to pass next time (the number of
  // the record after the last one seen) and adds to `*missed` the records from `from` on that
  // were overwritten before they could be read.
  uint64_t read(uint64_t from, std::vector<DropEntry>& out, uint64_t* missed) const {
    return read_with(from, out, missed, [](uint64_t) {});
  }

  // The cursor of the oldest record the ring holds now (1 when it never wrapped).
  uint64_t oldest() const {
    const uint64_t written = written_.load(std::memory_order_acquire);
    return written > kDropRingSlots ? written - kDropRingSlots + 1 : 1;
  }

  // read(), with `between(sequence)` called after each slot is copied and before its version
  // is checked again: the unit tests overwrite the slot there to see a torn read refused.
  template <typename Between>
  uint64_t read_with(uint64_t from, std::vector<DropEntry>& out, uint64_t* missed, Between&& between) const;

  // The writer's two halves, apart for the tests (a reader meeting a slot half written).
  void begin();
  void commit(const DropRecord& record);

 private:
  struct alignas(64) Slot {
    std::atomic<uint64_t> version{0};
    std::atomic<uint64_t> words[kWords];
  };

  std::unique_ptr<Slot[]> slots_;
  std::atomic<uint64_t> written_{0};  // records whole so far; the last one's number
  uint64_t writing_ = 0;              // writer only: the record between begin() and commit()
};

template <typename Between>
uint64_t DropRing::read_with(uint64_t from, std::vector<DropEntry>& out, uint64_t* missed, Between&& between) const {
  if (from == 0) from = 1;
  const uint64_t last = written_.load(std::memory_order_acquire);
  if (from > last) return last + 1;  // nothing new (or a cursor from elsewhere: start at the next)
  uint64_t first = last > kDropRingSlots ? last - kDropRingSlots + 1 : 1;
  if (first < from) first = from;
  *missed += first - from;
  for (uint64_t sequence = first; sequence <= last; sequence++) {
    const Slot& slot = slots_[(sequence - 1) % kDropRingSlots];
    const uint64_t before = slot.version.load(std::memory_order_acquire);
    if (before != 2 * sequence) {
      // Refilled since `last` was read: this record and every older one in the ring are gone.
      (*missed)++;
      continue;
    }
    DropEntry entry;
    entry.sequence = sequence;
    uint64_t words[kWords];
    for (size_t w = 0; w < kWords; w++) words[w] = slot.words[w].load(std::memory_order_relaxed);
    between(sequence);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (slot.version.load(std::memory_order_relaxed) != before) {
      (*missed)++;  // torn: the writer came round while we copied
      continue;
    }
    static_assert(sizeof words == sizeof entry.record, "one record");
    __builtin_memcpy(&entry.record, words, sizeof words);
    out.push_back(entry);
  }
  return last + 1;
}

// Fills `record` for a drop: the time, the reason and slot, what the sample says and its first bytes.
void describe_drop(const DropSample& sample, uint32_t slot, Counter reason, uint64_t packets, DropRecord* record);

}  // namespace ovl
