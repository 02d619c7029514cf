#include "wire/checksum.h"

#include <cstring>
#include <random>
#include <vector>

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

TEST(checksum_matches_reference_for_all_lengths_and_alignments) {
  std::mt19937 random(7);
  std::vector<uint8_t> buffer(4096 + 16);
  for (auto& b : buffer) b = static_cast<uint8_t>(random());
  for (size_t length = 0; length <= 300; length++) {
    for (size_t align = 0; align < 8; align++) {
      const uint8_t* p = buffer.data() + align;
      if (checksum_fold(checksum_add(p, length, 0)) != reference_fold(p, length)) {
        CHECK_EQ(checksum_fold(checksum_add(p, length, 0)), reference_fold(p, length));
        return;
      }
    }
  }
  for (size_t length : {1023u, 1024u, 1500u, 4095u, 4096u}) {
    CHECK_EQ(checksum_fold(checksum_add(buffer.data() + 3, length, 0)), reference_fold(buffer.data() + 3, length));
  }
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
