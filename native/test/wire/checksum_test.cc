#include "wire/checksum.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "wire/checksum_update.h"
#include "wire/ethernet.h"
#include "test.h"

using namespace ovl;

namespace {

// RFC 1071 the slow, obvious way: big-endian 16-bit words, one byte at a time, folded at the end.
uint16_t reference_fold(const uint8_t* data, size_t length, uint32_t sum = 0) {
  for (size_t i = 0; i < length; i++) sum += (i % 2 == 0) ? uint32_t{data[i]} << 8 : data[i];
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// The same with a 64-bit sum, for megabytes (a 32-bit one overflows past about 128 KB of 0xFF).
uint16_t reference_fold64(const uint8_t* data, size_t length) {
  uint64_t sum = 0;
  for (size_t i = 0; i < length; i++) sum += (i % 2 == 0) ? uint32_t{data[i]} << 8 : data[i];
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

}  // namespace

TEST(checksum_rfc1071_example) {
  // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to 2ddf0, which folds to ddf2.
  const uint8_t bytes[8] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  CHECK_EQ(checksum_fold(checksum_add(bytes, 8, 0)), 0xddf2);
  CHECK_EQ(checksum_finish(checksum_add(bytes, 8, 0)), static_cast<uint16_t>(~0xddf2));
}

TEST(checksum_ipv4_header_known_value) {
  // A real header (the classic 192.168.0.1 -> 192.168.0.199 UDP example): checksum b861.
  uint8_t header[20] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                        0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  CHECK_EQ(ipv4_header_checksum(header, 20), 0xb861);
  // A header with a correct checksum sums to 0xFFFF.
  CHECK_EQ(checksum_fold(checksum_add(header, 20, 0)), 0xFFFF);
  header[10] = header[11] = 0;
  CHECK_EQ(ipv4_header_checksum(header, 20), 0xb861);  // the field is ignored
}

// ---- Every implementation against the reference ----

// Every length 0..4160 (64 B past 4 KB, so the vector loops' every entry and exit is crossed at
// every alignment) at every start offset 0..63 from a 64-byte boundary, with a random initial
// sum, over random bytes inside a larger random buffer (so that a vector load that summed bytes
// before or after the range would show), over all-0xFF bytes (every add carries) and over zeros.
// The result must be exactly checksum_combine(initial, reference): the same 32-bit value, not
// just the same folded one (callers only fold it, but this is the contract, and it pins the
// representation of zero). The reference is reference_fold kept incrementally, byte by byte.
TEST(checksum_every_implementation_matches_reference_for_every_length_and_alignment) {
  constexpr size_t kMaxLength = 4096 + 64;
  std::mt19937 random(7);
  std::vector<uint8_t> memory(kMaxLength + 3 * 64);
  uint8_t* const aligned = memory.data() + (64 - reinterpret_cast<uintptr_t>(memory.data()) % 64) % 64 + 64;
  for (int pattern = 0; pattern < 3; pattern++) {
    for (auto& b : memory) b = pattern == 0 ? static_cast<uint8_t>(random()) : pattern == 1 ? 0xFF : 0;
    for (ChecksumImplementation implementation : kChecksumImplementations) {
      if (!checksum_implementation_supported(implementation)) continue;
      for (size_t align = 0; align < 64; align++) {
        const uint8_t* const p = aligned + align;
        uint64_t reference = 0;  // RFC 1071 sum of p[0, length), not folded
        for (size_t length = 0; length <= kMaxLength; length++) {
          if (length > 0) reference += (length - 1) % 2 == 0 ? uint32_t{p[length - 1]} << 8 : p[length - 1];
          uint64_t folded = reference;
          while (folded >> 16) folded = (folded & 0xFFFF) + (folded >> 16);
          const uint32_t initial = static_cast<uint32_t>(random());
          const uint32_t got = checksum_add_with(implementation, p, length, initial);
          if (got != checksum_combine(initial, static_cast<uint32_t>(folded))) {
            std::printf("  %s, pattern %d, alignment %zu, length %zu\n", checksum_implementation_name(implementation),
                        pattern, align, length);
            CHECK_EQ(got, checksum_combine(initial, static_cast<uint32_t>(folded)));
            return;
          }
        }
      }
    }
  }
  // The incremental reference is reference_fold.
  for (size_t length : {0u, 1u, 63u, 1500u, 4160u}) {
    CHECK_EQ(checksum_fold(checksum_add(aligned + 5, length, 0)), reference_fold(aligned + 5, length));
  }
}

// The same where the range ends where its allocation ends, so that ASan sees any load past the
// end (a tail loop or a mask gone wrong), at every start offset from a 64-byte boundary. The
// allocation's bytes before the range are random and must not be summed.
TEST(checksum_every_implementation_reads_nothing_past_the_end) {
  std::mt19937 random(17);
  size_t checked = 0;
  for (size_t length = 0; length <= 300; length++) {
    for (size_t align = 0; align < 64; align++) {
      // An allocation of before + length bytes whose last `length` start at `align`: try
      // sizes until the allocator's address makes it so.
      for (size_t before = 0; before < 256; before++) {
        std::unique_ptr<uint8_t[]> memory(new uint8_t[before + length]);
        const uint8_t* data = memory.get() + before;
        if (reinterpret_cast<uintptr_t>(data) % 64 != align) continue;
        for (size_t i = 0; i < before + length; i++) memory[i] = static_cast<uint8_t>(random());
        const uint16_t expected = reference_fold(data, length);
        for (ChecksumImplementation implementation : kChecksumImplementations) {
          if (!checksum_implementation_supported(implementation)) continue;
          if (checksum_add_with(implementation, data, length, 0) != expected) {
            std::printf("  %s, alignment %zu, length %zu\n", checksum_implementation_name(implementation), align,
                        length);
            CHECK_EQ(checksum_add_with(implementation, data, length, 0), expected);
            return;
          }
        }
        checked++;
        break;
      }
    }
  }
  CHECK_EQ(checked, 301u * 64u);
}

TEST(checksum_carries_with_all_ones_and_large_input) {
  // 64 KB of 0xFF: every 64-bit add carries.
  std::vector<uint8_t> ones(65535, 0xFF);
  CHECK_EQ(checksum_fold(checksum_add(ones.data(), ones.size(), 0)), reference_fold(ones.data(), ones.size()));
  std::vector<uint8_t> zeros(100, 0);
  CHECK_EQ(checksum_fold(checksum_add(zeros.data(), zeros.size(), 0)), 0);
  CHECK_EQ(checksum_fold(checksum_add(ones.data(), 0, 0x1234)), 0x1234);
  // A large initial value still folds correctly.
  CHECK_EQ(checksum_fold(checksum_add(ones.data(), 64, 0xFFFFFFFFu)),
           reference_fold(ones.data(), 64, 0xFFFF));
}

TEST(checksum_composes_over_even_splits) {
  std::mt19937 random(11);
  std::vector<uint8_t> data(999);
  for (auto& b : data) b = static_cast<uint8_t>(random());
  const uint16_t whole = reference_fold(data.data(), data.size());
  for (size_t split = 0; split <= data.size(); split += 2) {
    const uint32_t first = checksum_add(data.data(), split, 0);
    const uint32_t both = checksum_add(data.data() + split, data.size() - split, first);
    if (checksum_fold(both) != whole) {
      CHECK_EQ(checksum_fold(both), whole);
      return;
    }
    const uint32_t combined = checksum_combine(checksum_add(data.data(), split, 0),
                                               checksum_add(data.data() + split, data.size() - split, 0));
    if (checksum_fold(combined) != whole) {
      CHECK_EQ(checksum_fold(combined), whole);
      return;
    }
  }
}

TEST(checksum_pseudo_headers_match_their_byte_layout) {
  const uint8_t src4[4] = {198, 19, 0, 1}, dst4[4] = {198, 19, 0, 2};
  for (uint32_t length : {0u, 8u, 1480u, 65515u}) {
    uint8_t pseudo[12];
    std::memcpy(pseudo, src4, 4);
    std::memcpy(pseudo + 4, dst4, 4);
    pseudo[8] = 0;
    pseudo[9] = 6;
    store_be16(pseudo + 10, static_cast<uint16_t>(length));
    CHECK_EQ(checksum_fold(pseudo_header_sum_ipv4(src4, dst4, 6, length)), reference_fold(pseudo, 12));
  }
  uint8_t src6[16] = {0x20, 0x01, 0x0d, 0xb8}, dst6[16] = {0x20, 0x01, 0x0d, 0xb8};
  src6[15] = 1;
  dst6[15] = 2;
  dst6[8] = 0xff;
  for (uint32_t length : {0u, 20u, 65535u, 70000u}) {
    uint8_t pseudo[40] = {};
    std::memcpy(pseudo, src6, 16);
    std::memcpy(pseudo + 16, dst6, 16);
    store_be32(pseudo + 32, length);
    pseudo[39] = 17;
    CHECK_EQ(checksum_fold(pseudo_header_sum_ipv6(src6, dst6, 17, length)), reference_fold(pseudo, 40));
  }
}

TEST(checksum_verifies_to_all_ones) {
  // Fill a TCP-like block, store the finished checksum, and sum again: 0xFFFF.
  std::mt19937 random(3);
  std::vector<uint8_t> block(301);
  for (auto& b : block) b = static_cast<uint8_t>(random());
  block[16] = block[17] = 0;
  const uint16_t check = checksum_finish(checksum_add(block.data(), block.size(), 0x4321));
  store_be16(&block[16], check);
  CHECK_EQ(checksum_fold(checksum_add(block.data(), block.size(), 0x4321)), 0xFFFF);
}

// ---- What callers rely on, under every implementation ----

namespace {

// Runs `body(implementation)` once per implementation this CPU supports.
template <typename Body>
void for_each_implementation(Body body) {
  for (ChecksumImplementation implementation : kChecksumImplementations) {
    if (checksum_implementation_supported(implementation)) body(implementation);
  }
}

uint16_t swap(uint16_t value) { return static_cast<uint16_t>(value << 8 | value >> 8); }

}  // namespace

TEST(checksum_every_implementation_handles_megabytes) {
  // Past the vector implementations' 1 MiB chunk (their lanes are folded into a scalar per
  // chunk) at several alignments and odd lengths, all ones (the most carries) and random.
  std::mt19937 random(23);
  std::vector<uint8_t> big(3 * 1024 * 1024 + 256);
  for (int pattern = 0; pattern < 2; pattern++) {
    for (auto& b : big) b = pattern == 0 ? 0xFF : static_cast<uint8_t>(random());
    for (size_t start : {0u, 1u, 33u, 63u}) {
      for (size_t length : {size_t{1} << 20, (size_t{1} << 20) + 1, (size_t{3} << 20) + 127}) {
        const uint16_t expected = reference_fold64(big.data() + start, length);
        for_each_implementation([&](ChecksumImplementation implementation) {
          CHECK_EQ(checksum_add_with(implementation, big.data() + start, length, 0), expected);
        });
      }
    }
  }
}

TEST(checksum_every_implementation_keeps_the_two_zeros_apart) {
  // All-zero data sums to 0 and other data whose sum is a multiple of 0xFFFF to 0xFFFF, as the
  // serial 16-bit sum has it. Callers depend on it through checksum_finish: a computed UDP
  // checksum of 0 (the finish of 0xFFFF) is sent as 0xFFFF (offload_segment.cc), and a packet
  // verifies when its sum folds to 0xFFFF. The bytes around the range are 0xFF: summing any of
  // them would show.
  std::vector<uint8_t> memory(2048 + 128);
  for_each_implementation([&](ChecksumImplementation implementation) {
    for (size_t align = 0; align < 64; align++) {
      for (size_t length : {0u, 1u, 2u, 5u, 63u, 64u, 255u, 256u, 1500u, 2048u}) {
        uint8_t* const p = memory.data() + align;
        std::fill(memory.begin(), memory.end(), 0xFF);
        std::fill(p, p + length, 0);
        CHECK_EQ(checksum_add_with(implementation, p, length, 0), 0u);
        if (length >= 4) {
          // 0x1234 + 0xEDCB = 0xFFFF.
          p[0] = 0x12;
          p[1] = 0x34;
          const size_t last = (length - 2) / 2 * 2;
          p[last] = 0xED;
          p[last + 1] = 0xCB;
          CHECK_EQ(checksum_add_with(implementation, p, length, 0), 0xFFFFu);
        }
        // All ones: words of 0xFFFF (a multiple of 0xFFFF), an odd last byte the word 0xFF00.
        std::fill(memory.begin(), memory.end(), 0);
        std::fill(p, p + length, 0xFF);
        const uint32_t expected = length == 0 ? 0u : length % 2 == 0 ? 0xFFFFu : 0xFF00u;
        CHECK_EQ(checksum_add_with(implementation, p, length, 0), expected);
      }
    }
  });
}

TEST(checksum_every_implementation_chains_even_blocks_and_swaps_odd_ones) {
  // Callers chain calls (GRE: header, then payload; offload: the pseudo-header sum as
  // `initial`, then the segment): fine when every block but the last has an even length. A
  // block that starts at an odd offset enters the sum byte-swapped: the rule that
  // checksum_replace_value's odd_offset and the vector implementations' alignment rely on.
  std::mt19937 random(29);
  std::vector<uint8_t> data(1501 + 64);
  for (auto& b : data) b = static_cast<uint8_t>(random());
  for_each_implementation([&](ChecksumImplementation implementation) {
    for (size_t align : {0u, 1u, 2u, 31u, 32u, 63u}) {
      for (size_t length : {0u, 1u, 40u, 129u, 300u, 1501u}) {
        const uint8_t* p = data.data() + align;
        const uint16_t whole = reference_fold(p, length);
        const uint32_t initial = static_cast<uint32_t>(random());
        const uint16_t whole_with_initial = checksum_fold(checksum_combine(initial, whole));
        for (size_t split = 0; split <= length; split++) {
          const uint32_t first = checksum_add_with(implementation, p, split, initial);
          const uint32_t rest = checksum_add_with(implementation, p + split, length - split, 0);
          if (split % 2 == 0) {
            CHECK_EQ(checksum_fold(checksum_add_with(implementation, p + split, length - split, first)),
                     whole_with_initial);
            CHECK_EQ(checksum_fold(checksum_combine(first, rest)), whole_with_initial);
          } else {
            CHECK_EQ(checksum_fold(checksum_combine(first, swap(checksum_fold(rest)))), whole_with_initial);
          }
        }
      }
    }
  });
}

TEST(checksum_every_implementation_agrees_with_incremental_updates) {
  // A stored checksum updated with checksum_replace_value (RFC 1624) equals a recomputation,
  // for values at even and odd offsets (the MSS clamp's option can sit at either).
  std::mt19937 random(31);
  std::vector<uint8_t> block(777);
  for_each_implementation([&](ChecksumImplementation implementation) {
    for (int round = 0; round < 200; round++) {
      for (auto& b : block) b = static_cast<uint8_t>(random());
      store_be16(&block[0], 0);
      store_be16(&block[0], checksum_finish(checksum_add_with(implementation, block.data(), block.size(), 0x4321)));
      const size_t at = 2 + random() % (block.size() - 3);
      const uint16_t old_value = load_be16(&block[at]), new_value = static_cast<uint16_t>(random());
      store_be16(&block[at], new_value);
      const uint16_t updated = checksum_replace_value(load_be16(&block[0]), old_value, new_value, at % 2 == 1);
      store_be16(&block[0], 0);
      CHECK_EQ(updated, checksum_finish(checksum_add_with(implementation, block.data(), block.size(), 0x4321)));
      store_be16(&block[0], updated);
      CHECK_EQ(checksum_fold(checksum_add_with(implementation, block.data(), block.size(), 0x4321)), 0xFFFF);
    }
  });
}

TEST(checksum_dispatch_switches_and_reports) {
  const ChecksumImplementation chosen = checksum_implementation();
  CHECK(checksum_implementation_supported(chosen));
  CHECK(checksum_implementation_supported(ChecksumImplementation::scalar));
  // The choice is the fastest supported one (the tests run without OVERLAYFWD_CHECKSUM unless
  // someone sets it to check another).
  if (std::getenv("OVERLAYFWD_CHECKSUM") == nullptr) {
    for (ChecksumImplementation implementation : kChecksumImplementations) {
      if (checksum_implementation_supported(implementation)) CHECK(chosen == implementation || chosen > implementation);
      if (static_cast<int>(implementation) > static_cast<int>(chosen)) {
        CHECK(!checksum_implementation_supported(implementation));
      }
    }
  }
  std::mt19937 random(37);
  std::vector<uint8_t> data(3000);
  for (auto& b : data) b = static_cast<uint8_t>(random());
  for (ChecksumImplementation implementation : kChecksumImplementations) {
    const bool supported = checksum_implementation_supported(implementation);
    CHECK_EQ(checksum_use_implementation(implementation), supported);
    if (!supported) continue;
    CHECK(checksum_implementation() == implementation);
    CHECK_EQ(checksum_add(data.data() + 3, 2990, 77), checksum_add_with(implementation, data.data() + 3, 2990, 77));
    CHECK_EQ(checksum_fold(checksum_add(data.data() + 3, 2990, 0)), reference_fold(data.data() + 3, 2990));
  }
  CHECK(std::strcmp(checksum_implementation_name(ChecksumImplementation::scalar), "scalar") == 0);
  CHECK(std::strcmp(checksum_implementation_name(ChecksumImplementation::avx2), "avx2") == 0);
  CHECK(std::strcmp(checksum_implementation_name(ChecksumImplementation::avx512), "avx512") == 0);
  CHECK(checksum_use_implementation(chosen));
  CHECK(checksum_implementation() == chosen);
}

TEST(checksum_pseudo_and_ipv4_header_sums_equal_the_checksum_add_calls_they_replace) {
  // They sum their few words inline; the values are exactly those of the checksum_add calls
  // they used to make (not only the same folded sum), at any alignment.
  std::mt19937 random(41);
  std::vector<uint8_t> bytes(64 + 40 + 60);
  for (int round = 0; round < 2000; round++) {
    for (auto& b : bytes) b = static_cast<uint8_t>(random());
    if (round % 7 == 0) std::fill(bytes.begin(), bytes.end(), round % 2 ? 0xFF : 0);
    const uint8_t* source = bytes.data() + random() % 64;
    const uint8_t* destination = source + 16 + random() % 8;
    const uint8_t protocol = static_cast<uint8_t>(random());
    const uint32_t length = round % 3 == 0 ? static_cast<uint32_t>(random()) : random() % 65536;
    const uint32_t extra4 = uint32_t{protocol} + (length & 0xFFFF) + (length >> 16);
    CHECK_EQ(pseudo_header_sum_ipv4(source, destination, protocol, length),
             checksum_combine(checksum_add(destination, 4, checksum_add(source, 4, 0)), extra4));
    const uint32_t extra6 = (length >> 16) + (length & 0xFFFF) + protocol;
    CHECK_EQ(pseudo_header_sum_ipv6(source, destination, protocol, length),
             checksum_combine(checksum_add(destination, 16, checksum_add(source, 16, 0)), extra6));
    // IPv4 headers of every length, the checksum field taken as zero.
    const size_t header_length = 20 + 4 * (random() % 11);
    std::vector<uint8_t> header(source, source + header_length);
    const uint16_t got = ipv4_header_checksum(source, header_length);
    header[10] = header[11] = 0;
    CHECK_EQ(got, static_cast<uint16_t>(~reference_fold(header.data(), header.size())));
  }
}
