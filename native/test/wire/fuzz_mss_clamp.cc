// Fuzz target for clamp_tcp_mss: random packets, and the same bytes "repaired" into IPv4/IPv6
// TCP SYNs with a correct checksum (random option bytes stay random). Promises checked:
// nothing is read or written outside the packet (ASan), a packet left alone is byte-identical,
// a changed one differs only in MSS values (now exactly max_mss, and only where they were
// larger) and the checksum, the checksum still verifies when it did before, a partial checksum
// is never touched, and clamping twice changes nothing the second time.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "wire/mss_clamp.h"

namespace {

using namespace ovl;
using Bytes = std::vector<uint8_t>;

void require(bool condition) {
  if (!condition) std::abort();
}

// The TCP header offset and segment length of a packet, when its IP lengths are consistent.
bool locate(const Bytes& p, size_t* l4, size_t* segment) {
  if (p.empty()) return false;
  if (p[0] >> 4 == 4 && p.size() >= 20) {
    const size_t header = size_t{p[0] & 0x0Fu} * 4, total = load_be16(p.data() + 2);
    if (header < 20 || total < header || total > p.size()) return false;
    *l4 = header;
    *segment = total - header;
    return true;
  }
  if (p[0] >> 4 == 6 && p.size() >= 40) {
    const size_t payload = load_be16(p.data() + 4);
    if (40 + payload > p.size()) return false;
    *l4 = 40;
    *segment = payload;
    return true;
  }
  return false;
}

bool checksum_ok(const Bytes& p) {
  size_t l4, segment;
  if (!locate(p, &l4, &segment)) return false;
  const uint32_t pseudo = p[0] >> 4 == 4
                              ? pseudo_header_sum_ipv4(&p[12], &p[16], 6, static_cast<uint32_t>(segment))
                              : pseudo_header_sum_ipv6(&p[8], &p[24], 6, static_cast<uint32_t>(segment));
  return checksum_fold(checksum_add(&p[l4], segment, pseudo)) == 0xFFFF;
}

void check(Bytes p, uint16_t max_mss, bool partial) {
  const Bytes before = p;
  const bool valid_before = checksum_ok(p);
  const bool changed = clamp_tcp_mss(p.data(), p.size(), max_mss, partial);
  if (!changed) {
    require(p == before);
    return;
  }
  size_t l4 = 0, segment = 0;
  require(locate(p, &l4, &segment));
  require(l4 + 20 <= p.size());
  require(p[l4 + 13] & 0x02);  // SYN
  const size_t checksum_at = l4 + 16;
  for (size_t i = 0; i < p.size(); i++) {
    if (p[i] == before[i] || i == checksum_at || i == checksum_at + 1) continue;
    // A changed byte belongs to an MSS value that is now max_mss and was larger.
    bool in_mss = false;
    for (size_t start = (i >= 1 ? i - 1 : 0); start <= i; start++) {
      if (start >= l4 + 22 && start + 1 < p.size() && before[start - 2] == 2 && before[start - 1] == 4 &&
          load_be16(&p[start]) == max_mss && load_be16(&before[start]) > max_mss) {
        in_mss = true;
      }
    }
    require(in_mss);
  }
  if (partial) {
    require(p[checksum_at] == before[checksum_at] && p[checksum_at + 1] == before[checksum_at + 1]);
  } else if (valid_before) {
    require(checksum_ok(p));
  }
  const Bytes once = p;
  require(!clamp_tcp_mss(p.data(), p.size(), max_mss, partial));
  require(p == once);
}

// Turns random bytes into a TCP SYN of the given version with a correct checksum.
Bytes repair(Bytes p, bool v6, uint8_t selector) {
  const size_t ip = v6 ? 40 : 20 + 4 * (selector & 1);
  if (p.size() < ip + 20) p.resize(ip + 20, 1);
  if (v6) {
    p[0] = static_cast<uint8_t>(0x60 | (p[0] & 0x0F));
    store_be16(&p[4], static_cast<uint16_t>(p.size() - 40));
    p[6] = 6;
  } else {
    p[0] = static_cast<uint8_t>(0x40 | ip / 4);
    store_be16(&p[2], static_cast<uint16_t>(p.size()));
    store_be16(&p[6], 0x4000);
    p[9] = 6;
  }
  const size_t options_room = (p.size() - ip - 20) / 4;
  const size_t words = (selector >> 1) % 11;
  p[ip + 12] = static_cast<uint8_t>((5 + (words < options_room ? words : options_room)) << 4);
  p[ip + 13] |= 0x02;
  if (selector & 0x20 && p.size() >= ip + 24) {  // plant an MSS option at a random spot
    const size_t at = ip + 20 + selector % 3;
    if (at + 4 <= p.size()) {
      for (size_t i = ip + 20; i < at; i++) p[i] = 1;
      p[at] = 2;
      p[at + 1] = 4;
    }
  }
  size_t l4 = 0, segment = 0;
  locate(p, &l4, &segment);
  store_be16(&p[l4 + 16], 0);
  const uint32_t pseudo = v6 ? pseudo_header_sum_ipv6(&p[8], &p[24], 6, static_cast<uint32_t>(segment))
                             : pseudo_header_sum_ipv4(&p[12], &p[16], 6, static_cast<uint32_t>(segment));
  store_be16(&p[l4 + 16], checksum_finish(checksum_add(&p[l4], segment, pseudo)));
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Bytes raw(data, data + size);
  const uint8_t selector = size > 0 ? data[0] : 0;
  const uint16_t max_mss = size > 2 ? load_be16(data + size - 2) : 1200;
  check(raw, max_mss, false);
  check(raw, max_mss, true);
  for (bool v6 : {false, true}) {
    const Bytes syn = repair(raw, v6, selector);
    require(checksum_ok(syn));
    check(syn, max_mss, false);
    check(syn, max_mss, true);
    check(syn, static_cast<uint16_t>(max_mss >> (selector & 7)), false);
  }
  return 0;
}
