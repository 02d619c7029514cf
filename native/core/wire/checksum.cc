#include "wire/checksum.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace ovl {

namespace {

// One's complement addition of 64-bit words: add, then add the carry back in ("end-around").
// The one's complement sum is independent of the word size (RFC 1071 §2(C)), so 64-bit words
// folded down to 16 bits give the same result as 16-bit words. Nonzero stays nonzero: the
// folds below never turn a sum of nonzero data into 0 (which is why every implementation
// returns the same one of the two zeros, 0 or 0xFFFF, for the same data).
inline uint64_t add_with_carry(uint64_t sum, uint64_t word) {
  sum += word;
  return sum + (sum < word);
}

inline uint16_t fold64(uint64_t sum) {
  sum = (sum & 0xFFFFFFFFu) + (sum >> 32);  // at most 33 bits
  sum = (sum & 0xFFFFFFFFu) + (sum >> 32);  // 32 bits
  return checksum_fold(static_cast<uint32_t>(sum));
}

inline uint16_t swap16(uint16_t value) { return static_cast<uint16_t>(value << 8 | value >> 8); }

inline uint64_t load64(const uint8_t* p) {
  uint64_t word;
  std::memcpy(&word, p, 8);
  return word;
}

// Words are loaded in host byte order. The one's complement sum is byte-order independent
// (RFC 1071 §2(B)): summing little-endian words yields the byte-swapped big-endian sum. So every
// implementation sums natively, folds to 16 bits, and swaps once at the end on a little-endian
// host. Starting the words one byte later swaps the folded sum in the same way: every byte
// changes between the high and the low half of its word (the vector implementations rely on
// it when they start at an aligned address rather than at data[0]).
inline uint32_t finish_native(uint16_t folded, uint32_t initial) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  folded = swap16(folded);
#endif
  return checksum_combine(initial, folded);
}

// The native-order sum of `length` bytes taken as words from data[0], not yet folded (any
// alignment: the loads are unaligned, which costs nothing extra for 8-byte words). Four
// accumulators, each with its own carry count, so that no add waits for another word's carry
// (a single add-with-carry chain, as before, takes two cycles per word: about 3x slower, see
// native/test/wire/bench_checksum.cc).
inline uint64_t scalar_sum(const uint8_t* data, size_t length) {
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, c0 = 0, c1 = 0, c2 = 0, c3 = 0;
  while (length >= 32) {
    const uint64_t w0 = load64(data), w1 = load64(data + 8), w2 = load64(data + 16), w3 = load64(data + 24);
    s0 += w0;
    c0 += s0 < w0;
    s1 += w1;
    c1 += s1 < w1;
    s2 += w2;
    c2 += s2 < w2;
    s3 += w3;
    c3 += s3 < w3;
    data += 32;
    length -= 32;
  }
  // A carry out of bit 63 is worth 2^64, which is 1 in one's complement arithmetic. The counts
  // cannot overflow: at most one per 32 bytes each.
  uint64_t sum = add_with_carry(add_with_carry(s0, s1), add_with_carry(s2, s3));
  sum = add_with_carry(sum, c0 + c1 + c2 + c3);
  while (length >= 8) {
    sum = add_with_carry(sum, load64(data));
    data += 8;
    length -= 8;
  }
  // Fewer than 8 bytes left, at an even offset: a 4-byte, a 2-byte and a 1-byte piece, each
  // keeping its bytes at their positions within their 16-bit words. An odd final byte is the
  // high byte of a zero-padded big-endian word: the low byte of a little-endian one.
  if (length & 4) {
    uint32_t word;
    std::memcpy(&word, data, 4);
    sum = add_with_carry(sum, word);
    data += 4;
  }
  if (length & 2) {
    uint16_t word;
    std::memcpy(&word, data, 2);
    sum = add_with_carry(sum, word);
    data += 2;
  }
  if (length & 1) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    sum = add_with_carry(sum, *data);
#else
    sum = add_with_carry(sum, uint64_t{*data} << 8);
#endif
  }
  return sum;
}

uint32_t add_scalar(const uint8_t* data, size_t length, uint32_t initial) {
  return finish_native(fold64(scalar_sum(data, length)), initial);
}

// The vector implementations sum 32-bit halves of 64-bit lanes into 64-bit lanes (an AND and a
// shift per vector), so a lane cannot overflow before 2^32 vectors: they fold their lanes into
// a scalar every kVectorChunk bytes anyway, which keeps every length exact and lets the tests
// cross that boundary with a few megabytes.
constexpr size_t kVectorChunk = size_t{1} << 20;

#if defined(__x86_64__) && defined(__GNUC__)
#define OVL_CHECKSUM_X86 1

// Below this the head and tail handling costs more than the vector loop saves.
constexpr size_t kAvx2Minimum = 256;

__attribute__((target("avx2"))) inline uint64_t reduce256(__m256i v) {
  const __m128i half = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  return static_cast<uint64_t>(_mm_cvtsi128_si64(half)) + static_cast<uint64_t>(_mm_extract_epi64(half, 1));
}

// AVX2: the bytes up to a 32-byte boundary with scalar_sum, then aligned 32-byte loads (four
// per round, into four accumulators), the rest (under 32 bytes) with scalar_sum again. An odd
// number of head bytes shifts the body's words by one byte: its folded sum is swapped.
__attribute__((target("avx2"))) uint32_t add_avx2(const uint8_t* data, size_t length, uint32_t initial) {
  if (length < kAvx2Minimum) return add_scalar(data, length, initial);
  const size_t head = static_cast<size_t>(-reinterpret_cast<uintptr_t>(data)) & 31;
  const uint64_t head_sum = scalar_sum(data, head);
  data += head;
  length -= head;
  const __m256i low32 = _mm256_set1_epi64x(0xFFFFFFFF);
  uint64_t body = 0;
  while (length >= 32) {
    const size_t chunk = (length < kVectorChunk ? length : kVectorChunk) & ~size_t{31};
    const uint8_t* const end = data + chunk;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    while (end - data >= 128) {
      const __m256i v0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(data));
      const __m256i v1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(data + 32));
      const __m256i v2 = _mm256_load_si256(reinterpret_cast<const __m256i*>(data + 64));
      const __m256i v3 = _mm256_load_si256(reinterpret_cast<const __m256i*>(data + 96));
      a0 = _mm256_add_epi64(a0, _mm256_and_si256(v0, low32));
      a1 = _mm256_add_epi64(a1, _mm256_srli_epi64(v0, 32));
      a2 = _mm256_add_epi64(a2, _mm256_and_si256(v1, low32));
      a3 = _mm256_add_epi64(a3, _mm256_srli_epi64(v1, 32));
      a0 = _mm256_add_epi64(a0, _mm256_and_si256(v2, low32));
      a1 = _mm256_add_epi64(a1, _mm256_srli_epi64(v2, 32));
      a2 = _mm256_add_epi64(a2, _mm256_and_si256(v3, low32));
      a3 = _mm256_add_epi64(a3, _mm256_srli_epi64(v3, 32));
      data += 128;
    }
    while (data < end) {
      const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(data));
      a0 = _mm256_add_epi64(a0, _mm256_and_si256(v, low32));
      a1 = _mm256_add_epi64(a1, _mm256_srli_epi64(v, 32));
      data += 32;
    }
    body = add_with_carry(body, reduce256(_mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3))));
    length -= chunk;
  }
  body = add_with_carry(body, scalar_sum(data, length));
  uint16_t folded = fold64(body);
  if (head & 1) folded = swap16(folded);
  return finish_native(fold64(add_with_carry(head_sum, folded)), initial);
}

// GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized on their own _mm512_undefined_*()
// (GCC bug 105593, fixed in GCC 13): silenced for this function only.
#if !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
// AVX-512: every load is of an aligned 64-byte block. The first and the last block of the data
// are loaded with a byte mask, so the bytes outside [data, data + length) are neither read
// (masked-out bytes do not fault, and here they never cross a page either) nor summed. The sum
// is thus of words that start at the aligned address; an odd address swaps it.
__attribute__((target("avx512f,avx512bw"))) uint32_t add_avx512(const uint8_t* data, size_t length,
                                                                 uint32_t initial) {
  if (length == 0) return checksum_combine(initial, 0);
  const uintptr_t address = reinterpret_cast<uintptr_t>(data);
  const size_t offset = address & 63;
  const uint8_t* block = reinterpret_cast<const uint8_t*>(address - offset);
  size_t remaining = offset + length;  // bytes from `block` to the end of the data
  const __m512i low32 = _mm512_set1_epi64(0xFFFFFFFF);

  __mmask64 mask = ~uint64_t{0} << offset;
  if (remaining < 64) mask &= ~uint64_t{0} >> (64 - remaining);
  const __m512i first = _mm512_maskz_loadu_epi8(mask, block);
  __m512i a0 = _mm512_and_si512(first, low32), a1 = _mm512_srli_epi64(first, 32);
  __m512i a2 = _mm512_setzero_si512(), a3 = a2;
  uint64_t sum = 0;
  if (remaining > 64) {
    block += 64;
    remaining -= 64;
    while (remaining >= 64) {
      const size_t chunk = (remaining < kVectorChunk ? remaining : kVectorChunk) & ~size_t{63};
      const uint8_t* const end = block + chunk;
      while (end - block >= 256) {
        const __m512i v0 = _mm512_load_si512(block);
        const __m512i v1 = _mm512_load_si512(block + 64);
        const __m512i v2 = _mm512_load_si512(block + 128);
        const __m512i v3 = _mm512_load_si512(block + 192);
        a0 = _mm512_add_epi64(a0, _mm512_and_si512(v0, low32));
        a1 = _mm512_add_epi64(a1, _mm512_srli_epi64(v0, 32));
        a2 = _mm512_add_epi64(a2, _mm512_and_si512(v1, low32));
        a3 = _mm512_add_epi64(a3, _mm512_srli_epi64(v1, 32));
        a0 = _mm512_add_epi64(a0, _mm512_and_si512(v2, low32));
        a1 = _mm512_add_epi64(a1, _mm512_srli_epi64(v2, 32));
        a2 = _mm512_add_epi64(a2, _mm512_and_si512(v3, low32));
        a3 = _mm512_add_epi64(a3, _mm512_srli_epi64(v3, 32));
        block += 256;
      }
      while (block < end) {
        const __m512i v = _mm512_load_si512(block);
        a0 = _mm512_add_epi64(a0, _mm512_and_si512(v, low32));
        a1 = _mm512_add_epi64(a1, _mm512_srli_epi64(v, 32));
        block += 64;
      }
      remaining -= chunk;
      sum = add_with_carry(sum, static_cast<uint64_t>(_mm512_reduce_add_epi64(
                                    _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)))));
      a0 = a1 = a2 = a3 = _mm512_setzero_si512();
    }
    if (remaining > 0) {
      const __m512i last = _mm512_maskz_loadu_epi8(~uint64_t{0} >> (64 - remaining), block);
      a0 = _mm512_add_epi64(a0, _mm512_and_si512(last, low32));
      a1 = _mm512_add_epi64(a1, _mm512_srli_epi64(last, 32));
    }
  }
  sum = add_with_carry(sum, static_cast<uint64_t>(_mm512_reduce_add_epi64(
                                _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)))));
  uint16_t folded = fold64(sum);
  if (address & 1) folded = swap16(folded);
  return finish_native(folded, initial);
}
#if !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif  // x86-64

using AddFunction = uint32_t (*)(const uint8_t*, size_t, uint32_t);

AddFunction function_of(ChecksumImplementation implementation) {
#ifdef OVL_CHECKSUM_X86
  switch (implementation) {
    case ChecksumImplementation::avx2: return add_avx2;
    case ChecksumImplementation::avx512: return add_avx512;
    case ChecksumImplementation::scalar: break;
  }
#endif
  (void)implementation;
  return add_scalar;
}

uint32_t add_first_call(const uint8_t* data, size_t length, uint32_t initial);

// What checksum_add calls: add_first_call until the choice is made, then the chosen one. A
// relaxed load is a plain load on x86-64; the function pointer is the only shared state.
std::atomic<AddFunction> chosen_function{add_first_call};
std::atomic<ChecksumImplementation> chosen_implementation{ChecksumImplementation::scalar};

void install(ChecksumImplementation implementation) {
  chosen_implementation.store(implementation, std::memory_order_relaxed);
  chosen_function.store(function_of(implementation), std::memory_order_relaxed);
}

// The fastest supported implementation, or the one OVERLAYFWD_CHECKSUM names if supported.
ChecksumImplementation choose() {
  if (const char* forced = std::getenv("OVERLAYFWD_CHECKSUM")) {
    for (ChecksumImplementation implementation : kChecksumImplementations) {
      if (std::strcmp(forced, checksum_implementation_name(implementation)) == 0 &&
          checksum_implementation_supported(implementation)) {
        return implementation;
      }
    }
  }
  ChecksumImplementation best = ChecksumImplementation::scalar;
  for (ChecksumImplementation implementation : kChecksumImplementations) {
    if (checksum_implementation_supported(implementation)) best = implementation;
  }
  return best;
}

// Concurrent first calls all choose the same implementation, so a race installs it twice.
uint32_t add_first_call(const uint8_t* data, size_t length, uint32_t initial) {
  const ChecksumImplementation implementation = choose();
  install(implementation);
  return function_of(implementation)(data, length, initial);
}

}  // namespace

uint32_t checksum_add(const uint8_t* data, size_t length, uint32_t initial) {
  return chosen_function.load(std::memory_order_relaxed)(data, length, initial);
}

const char* checksum_implementation_name(ChecksumImplementation implementation) {
  switch (implementation) {
    case ChecksumImplementation::scalar: return "scalar";
    case ChecksumImplementation::avx2: return "avx2";
    case ChecksumImplementation::avx512: return "avx512";
  }
  return "unknown";
}

bool checksum_implementation_supported(ChecksumImplementation implementation) {
  switch (implementation) {
    case ChecksumImplementation::scalar: return true;
#ifdef OVL_CHECKSUM_X86
    // libgcc's checks include the OS's support of the registers (XCR0), not just CPUID.
    case ChecksumImplementation::avx2:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx2");
    case ChecksumImplementation::avx512:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
#else
    default: return false;
#endif
  }
  return false;
}

ChecksumImplementation checksum_implementation() {
  if (chosen_function.load(std::memory_order_relaxed) == add_first_call) install(choose());
  return chosen_implementation.load(std::memory_order_relaxed);
}

bool checksum_use_implementation(ChecksumImplementation implementation) {
  if (!checksum_implementation_supported(implementation)) return false;
  install(implementation);
  return true;
}

uint32_t checksum_add_with(ChecksumImplementation implementation, const uint8_t* data, size_t length,
                           uint32_t initial) {
  if (!checksum_implementation_supported(implementation)) implementation = ChecksumImplementation::scalar;
  return function_of(implementation)(data, length, initial);
}

// The pseudo-header and IPv4 header sums are a few words: loaded directly, without a call.
// Each returns exactly what the checksum_add calls they replace did (each address summed and
// folded on its own, then the two added).
namespace {
inline uint32_t address_sum4(const uint8_t* address) {
  uint32_t word;
  std::memcpy(&word, address, 4);
  return finish_native(fold64(word), 0);
}
inline uint32_t address_sum16(const uint8_t* address) {
  return finish_native(fold64(add_with_carry(load64(address), load64(address + 8))), 0);
}
}  // namespace

uint32_t pseudo_header_sum_ipv4(const uint8_t* source, const uint8_t* destination, uint8_t protocol,
                                uint32_t l4_length) {
  const uint32_t sum = address_sum4(source) + address_sum4(destination);
  // {zero, protocol} and the 16-bit length (IPv4 L4 lengths fit 16 bits; wider values are
  // folded in by the sum arithmetic, which is harmless for callers that already bounded them).
  return checksum_combine(sum, uint32_t{protocol} + (l4_length & 0xFFFF) + (l4_length >> 16));
}

uint32_t pseudo_header_sum_ipv6(const uint8_t* source, const uint8_t* destination, uint8_t next_header,
                                uint32_t l4_length) {
  const uint32_t sum = address_sum16(source) + address_sum16(destination);
  // 32-bit upper-layer length as two 16-bit words, then {0, 0, 0, next header}.
  return checksum_combine(sum, (l4_length >> 16) + (l4_length & 0xFFFF) + next_header);
}

uint16_t ipv4_header_checksum(const uint8_t* header, size_t header_length) {
  // Everything before the checksum field, then everything after it: the field counts as zero.
  // Both parts start at even offsets, so their words line up with the header's.
  uint16_t bytes_8_9;
  std::memcpy(&bytes_8_9, header + 8, 2);
  uint64_t sum = add_with_carry(load64(header), bytes_8_9);
  sum = add_with_carry(sum, scalar_sum(header + 12, header_length - 12));
  return checksum_finish(finish_native(fold64(sum), 0));
}

}  // namespace ovl
