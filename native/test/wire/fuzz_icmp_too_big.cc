// Fuzz target for icmp_too_big: random originals, as IP packets and as Ethernet frames, into
// exact-size output buffers of random capacity (ASan catches any write past the capacity or
// read past the original). Whatever is built must be a well-formed answer: lengths, checksums,
// addresses, and a quote that is a prefix of the original. The token bucket is driven with
// random clocks and must never hand out more than its burst plus its rate allows.
//
// Random bytes rarely make a valid IP header, so each input is also tried "repaired": version,
// IHL and lengths made consistent, and an extended copy (the input repeated) to reach the
// quote limits of 548 and 1232 bytes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "wire/icmp_too_big.h"
#include "wire/ip_packet.h"

namespace {

using namespace ovl;
using Bytes = std::vector<uint8_t>;

void require(bool condition) {
  if (!condition) std::abort();
}

const uint8_t kOurV4[4] = {198, 19, 0, 1};
const uint8_t kOurV6[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

// Checks an answer built from `original` (an IP packet of version `version`).
void check_answer(const uint8_t* answer, size_t size, const Bytes& original, int version, uint32_t mtu) {
  InnerIp ip, reply;
  require(parse_ip_packet(original.data(), original.size(), &ip) == IpParse::ok && ip.version == version);
  require(parse_ip_packet(answer, size, &reply) == IpParse::ok && reply.version == version);
  require(reply.total_length == size);
  const size_t header = version == 4 ? 20 : 40;
  const size_t quote = size - header - 8;
  require(quote == std::min<size_t>(ip.total_length, version == 4 ? kIcmpv4MaxQuote : kIcmpv6MaxQuote));
  require(std::memcmp(answer + header + 8, original.data(), quote) == 0);
  require(std::memcmp(reply.destination, ip.source, version == 4 ? 4 : 16) == 0);
  if (version == 4) {
    require(size <= kIcmpv4ErrorMaxSize);
    require(checksum_fold(checksum_add(answer, 20, 0)) == 0xFFFF);
    require(reply.protocol == 1 && answer[20] == 3 && answer[21] == 4);
    require(load_be16(answer + 26) == (mtu > 0xFFFF ? 0xFFFF : mtu));
    require(checksum_fold(checksum_add(answer + 20, size - 20, 0)) == 0xFFFF);
    require(ip.fragment_offset == 0);
  } else {
    require(size <= kIcmpv6ErrorMaxSize);
    require(reply.protocol == 58 && answer[40] == 2 && answer[41] == 0);
    require(load_be32(answer + 44) == (mtu < 1280 ? 1280 : mtu));
    const uint32_t sum = pseudo_header_sum_ipv6(answer + 8, answer + 24, 58, static_cast<uint32_t>(size - 40));
    require(checksum_fold(checksum_add(answer + 40, size - 40, sum)) == 0xFFFF);
    require(ip.source[0] != 0xFF);
  }
}

void try_ip(const Bytes& original, size_t capacity, uint32_t mtu) {
  Bytes out(capacity);
  const size_t v4 = build_ipv4_frag_needed(out.data(), out.size(), original.data(), original.size(),
                                           static_cast<uint16_t>(mtu), kOurV4, 7);
  require(v4 <= capacity);
  if (v4 != 0) check_answer(out.data(), v4, original, 4, static_cast<uint16_t>(mtu));
  const size_t v6 = build_ipv6_packet_too_big(out.data(), out.size(), original.data(), original.size(), mtu, kOurV6);
  require(v6 <= capacity);
  if (v6 != 0) check_answer(out.data(), v6, original, 6, mtu);
  require(v4 == 0 || v6 == 0);  // one packet is not both versions
}

void try_frame(const Bytes& packet, size_t capacity, uint32_t mtu, uint8_t selector) {
  Bytes frame(14 + packet.size());
  const uint8_t gateway[6] = {0x02, 0, 0, 0, 0, 0x0B};
  const uint8_t sender[6] = {static_cast<uint8_t>((selector & 0x80) ? 0x03 : 0x02), 0, 0, 0, 0, 0x0A};
  std::memcpy(frame.data(), gateway, 6);
  std::memcpy(frame.data() + 6, sender, 6);
  const uint16_t types[4] = {kEtherTypeIpv4, kEtherTypeIpv6, kEtherTypeVlan, kEtherTypeArp};
  const uint16_t type = types[selector & 3];
  store_be16(frame.data() + 12, type);
  std::copy(packet.begin(), packet.end(), frame.begin() + 14);
  Bytes out(capacity);
  const uint8_t* source = type == kEtherTypeIpv6 ? kOurV6 : kOurV4;
  const size_t n = build_too_big_frame(out.data(), out.size(), frame.data(), frame.size(), mtu, source);
  require(n <= capacity);
  if (n == 0) return;
  require(type == kEtherTypeIpv4 || type == kEtherTypeIpv6);
  require(std::memcmp(out.data(), sender, 6) == 0 && std::memcmp(out.data() + 6, gateway, 6) == 0);
  require(load_be16(out.data() + 12) == type);
  check_answer(out.data() + 14, n - 14, packet, type == kEtherTypeIpv4 ? 4 : 6, mtu);
}

// Makes the header's version, IHL and length fields consistent with the bytes.
Bytes repair(Bytes b, bool v6, uint8_t selector) {
  if (v6) {
    if (b.size() < 40) b.resize(40, 0);
    b[0] = static_cast<uint8_t>(0x60 | (b[0] & 0x0F));
    store_be16(b.data() + 4, static_cast<uint16_t>(b.size() - 40));
    if (selector & 0x10) b[6] = 58;  // ICMPv6 right after the header
  } else {
    if (b.size() < 20) b.resize(20, 0);
    size_t ihl = 5 + (selector & 0x03);
    if (ihl * 4 > b.size()) ihl = 5;
    b[0] = static_cast<uint8_t>(0x40 | ihl);
    store_be16(b.data() + 2, static_cast<uint16_t>(std::min<size_t>(b.size(), 0xFFFF)));
    if (selector & 0x10) store_be16(b.data() + 6, 0x4000);  // DF, not a fragment
    if (b[12] == 0 || b[12] == 127 || b[12] >= 224) b[12] = 10;
    if (b[16] >= 224) b[16] = 10;
  }
  return b;
}

void exercise_bucket(const uint8_t* data, size_t size) {
  if (size < 2) return;
  const uint32_t per_second = data[0] * 10u;
  const uint32_t burst = data[1] % 20;
  TokenBucket bucket(per_second, burst);
  uint64_t now = 0, first = 0;
  uint64_t taken = 0;
  bool started = false;
  for (size_t i = 2; i < size; i++) {
    now += uint64_t{data[i]} * 997;  // forward only, so the bound below holds
    if (!started) {
      first = now;
      started = true;
    }
    taken += bucket.take(now);
  }
  const uint64_t allowed = burst + (now - first) * per_second / 1000000 + 1;
  require(taken <= allowed);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Bytes raw(data, data + size);
  const uint8_t selector = size > 0 ? data[size - 1] : 0;
  const uint32_t mtu = size > 4 ? load_be32(data + size - 4) >> (selector & 0x1F) : 1280;
  const size_t capacities[4] = {kIcmpv6ErrorMaxSize + 14, kIcmpv4ErrorMaxSize, size_t{selector} * 5, 48};
  const size_t capacity = capacities[(selector >> 2) & 3];

  try_ip(raw, capacity, mtu);
  try_frame(raw, capacity, mtu, selector);

  // Repaired, and repaired after growing to a size that reaches the quote limits.
  Bytes grown(raw);
  const size_t target = (selector & 0x40) ? 1600 : 600;
  while (!raw.empty() && grown.size() < target) grown.insert(grown.end(), raw.begin(), raw.end());
  for (bool v6 : {false, true}) {
    const Bytes fixed = repair(raw, v6, selector);
    try_ip(fixed, capacity, mtu);
    try_ip(fixed, kIcmpv6ErrorMaxSize, mtu);
    try_frame(fixed, capacity, mtu, static_cast<uint8_t>(v6 ? 1 : 0));
    const Bytes big = repair(grown, v6, selector);
    try_ip(big, kIcmpv6ErrorMaxSize, mtu);
    try_ip(big, capacity, mtu);
    try_frame(big, kIcmpv6ErrorMaxSize + 14, mtu, static_cast<uint8_t>(v6 ? 1 : 0));
  }
  exercise_bucket(data, size);
  return 0;
}
