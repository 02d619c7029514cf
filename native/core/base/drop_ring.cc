#include "base/drop_ring.h"

#include <netinet/in.h>
#include <time.h>

#include <algorithm>
#include <cstring>

namespace ovl {

namespace {

constexpr size_t kHeaderWords = offsetof(DropRecord, bytes) / sizeof(uint64_t);
static_assert(offsetof(DropRecord, bytes) % sizeof(uint64_t) == 0, "the bytes start on a word");

}  // namespace

DropRing::DropRing() : slots_(new Slot[kDropRingSlots]) {}

void DropRing::record(const DropSample& sample, uint32_t slot, Counter reason, uint64_t packets) {
  DropRecord entry{};
  describe_drop(sample, slot, reason, packets, &entry);
  write(entry);
}

void DropRing::begin() {
  writing_ = written_.load(std::memory_order_relaxed) + 1;
  Slot& slot = slots_[(writing_ - 1) % kDropRingSlots];
  slot.version.store(2 * writing_ - 1, std::memory_order_relaxed);
  // A reader that sees any word stored below also sees the odd version (its acquire fence).
  std::atomic_thread_fence(std::memory_order_release);
}

void DropRing::commit(const DropRecord& record) {
  Slot& slot = slots_[(writing_ - 1) % kDropRingSlots];
  uint64_t words[kWords];
  std::memcpy(words, &record, sizeof record);
  // The header and the words the captured bytes cover; the rest of the slot keeps stale bytes
  // past `captured`, which no reader looks at.
  const size_t used = kHeaderWords + (std::min<uint32_t>(record.captured, kDropCaptureBytes) + 7) / 8;
  for (size_t w = 0; w < used; w++) slot.words[w].store(words[w], std::memory_order_relaxed);
  slot.version.store(2 * writing_, std::memory_order_release);
  written_.store(writing_, std::memory_order_release);
}

void describe_drop(const DropSample& sample, uint32_t slot, Counter reason, uint64_t packets, DropRecord* record) {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  record->time_ns = static_cast<uint64_t>(now.tv_sec) * 1000000000u + static_cast<uint64_t>(now.tv_nsec);
  record->slot = slot;
  record->packets = static_cast<uint32_t>(std::min<uint64_t>(packets, UINT32_MAX));
  record->length = sample.length;
  record->reason = static_cast<uint16_t>(reason);
  record->layer = static_cast<uint8_t>(sample.layer);
  record->direction = static_cast<uint8_t>(sample.direction);
  record->protocol = sample.protocol;
  record->local_port = sample.local_port;
  if (sample.remote != nullptr && sample.remote->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sample.remote);
    record->family = AF_INET;
    std::memcpy(record->remote_address, &in->sin_addr, 4);
    record->remote_port = ntohs(in->sin_port);
  } else if (sample.remote != nullptr && sample.remote->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sample.remote);
    record->family = AF_INET6;
    std::memcpy(record->remote_address, &in6->sin6_addr, 16);
    record->remote_port = ntohs(in6->sin6_port);
  }
  const uint32_t readable = sample.readable != 0 ? std::min(sample.readable, sample.length) : sample.length;
  const uint32_t captured = sample.data == nullptr ? 0 : std::min(readable, kDropCaptureBytes);
  record->captured = static_cast<uint16_t>(captured);
  if (captured > 0) std::memcpy(record->bytes, sample.data, captured);
}

}  // namespace ovl
