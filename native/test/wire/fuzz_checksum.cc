// Fuzz target for checksum_add's implementations (wire/checksum.h): every one this CPU
// supports, and checksum_add itself, against a byte-at-a-time RFC 1071 sum, on the input placed
// at the offset from a 64-byte boundary that its first byte picks, ending where its allocation
// ends (ASan sees any load past the end; the bytes before it are poison that must not be
// summed). Inputs are taken as they are, or (selector bit 6) stretched by repetition to a length
// up to 72 KB that bytes 1-2 pick, so that the short inputs of the stand-in driver reach the
// vector loops too, and (bit 7) with the body replaced by 0xFF so that every add carries.
// Promises checked: the exact result checksum_combine(initial, reference) for every
// implementation; chaining at an even split and byte-swapping at an odd one fold to the same
// sum (what callers and checksum_replace_value rely on).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "wire/checksum.h"

namespace {

using namespace ovl;

void require(bool condition) {
  if (!condition) std::abort();
}

uint16_t reference(const uint8_t* data, size_t length) {
  uint64_t sum = 0;
  for (size_t i = 0; i < length; i++) sum += (i % 2 == 0) ? uint32_t{data[i]} << 8 : data[i];
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

uint16_t swap16(uint16_t value) { return static_cast<uint16_t>(value << 8 | value >> 8); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* input, size_t size) {
  const uint8_t selector = size > 0 ? input[0] : 0;
  const size_t alignment = selector & 63;
  const uint32_t initial = size >= 7 ? uint32_t{input[3]} << 24 | uint32_t{input[4]} << 16 |
                                           uint32_t{input[5]} << 8 | input[6]
                                     : 0;
  // Stretched: up to 8 KB, or with bit 7 too up to 72 KB (past 64 KB super-frames).
  size_t length = size;
  if ((selector & 0x40) && size >= 3) {
    const size_t picked = size_t{input[1]} << 8 | input[2];
    length = selector & 0x80 ? picked + 7000 : picked >> 3;
  }
  const bool all_ones = size >= 10 && (input[9] & 1);

  // Allocated 64-byte aligned with exactly `alignment` bytes in front of the data.
  void* memory = nullptr;
  require(posix_memalign(&memory, 64, alignment + length + (alignment + length == 0)) == 0);
  uint8_t* const block = static_cast<uint8_t*>(memory);
  for (size_t i = 0; i < alignment; i++) block[i] = static_cast<uint8_t>(0xA5 ^ i);
  uint8_t* const data = block + alignment;
  for (size_t at = 0; at < length; at += size) std::memcpy(data + at, input, length - at < size ? length - at : size);
  if (all_ones && length > 10) std::memset(data + 10, 0xFF, length - 10);

  const uint16_t expected = reference(data, length);
  const uint32_t whole = checksum_combine(initial, expected);
  require(checksum_add(data, length, initial) == whole);
  for (ChecksumImplementation implementation : kChecksumImplementations) {
    if (!checksum_implementation_supported(implementation)) continue;
    require(checksum_add_with(implementation, data, length, initial) == whole);
    // A split picked by the input: chained if even, swapped if odd.
    if (length > 0) {
      const size_t split = (size >= 9 ? (size_t{input[7]} << 8 | input[8]) : size) % (length + 1);
      const uint32_t first = checksum_add_with(implementation, data, split, initial);
      const uint32_t rest = checksum_add_with(implementation, data + split, length - split, 0);
      if (split % 2 == 0) {
        require(checksum_fold(checksum_add_with(implementation, data + split, length - split, first)) ==
                checksum_fold(whole));
        require(checksum_fold(checksum_combine(first, rest)) == checksum_fold(whole));
      } else {
        require(checksum_fold(checksum_combine(first, swap16(checksum_fold(rest)))) == checksum_fold(whole));
      }
    }
  }
  std::free(memory);
  return 0;
}
