// The monotonic clocks the data path reads: coarse seconds for table ageing (read once per
// wakeup), microseconds for rate limits and busy polling.
#pragma once

#include <cstdint>
#include <ctime>

namespace ovl {

inline uint32_t monotonic_seconds() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return static_cast<uint32_t>(now.tv_sec);
}

inline uint64_t monotonic_microseconds() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000000u + static_cast<uint64_t>(now.tv_nsec) / 1000u;
}

}  // namespace ovl
