#include "wire/icmp_too_big.h"

#include <cstring>
#include <limits>

#include "ip_test_packets.h"
#include "test.h"

using namespace ovl;
using namespace ovl_test;

namespace {

const uint8_t kOurV4[4] = {198, 19, 0, 1};
const uint8_t kOurV6[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x99};

// Builds into an exact-size buffer (ASan catches any write past `capacity`) and returns the
// answer, empty when the builder declined. Checks the declined case wrote nothing.
Bytes answer_v4(const Bytes& original, uint16_t mtu, size_t capacity = kIcmpv4ErrorMaxSize, uint16_t id = 0) {
  Bytes out(capacity, 0xEE);
  const size_t n = build_ipv4_frag_needed(out.data(), out.size(), original.data(), original.size(), mtu, kOurV4, id);
  CHECK(n <= capacity);
  if (n == 0) {
    for (uint8_t byte : out) {
      if (byte != 0xEE) {
        CHECK(!"a declined answer wrote into the buffer");
        break;
      }
    }
  }
  out.resize(n);
  return out;
}

Bytes answer_v6(const Bytes& original, uint32_t mtu, size_t capacity = kIcmpv6ErrorMaxSize) {
  Bytes out(capacity, 0xEE);
  const size_t n = build_ipv6_packet_too_big(out.data(), out.size(), original.data(), original.size(), mtu, kOurV6);
  CHECK(n <= capacity);
  out.resize(n);
  return out;
}

// Verifies an ICMP Fragmentation Needed packet field by field against its original.
void check_frag_needed(const Bytes& answer, const Bytes& original, uint16_t mtu, uint16_t id = 0) {
  const size_t original_total = get16(original, 2);
  const size_t quote = std::min<size_t>(original_total, 548);
  CHECK_EQ(answer.size(), 28 + quote);
  if (answer.size() != 28 + quote) return;
  CHECK_EQ(answer[0], 0x45);
  CHECK_EQ(answer[1], 0xC0);
  CHECK_EQ(size_t{get16(answer, 2)}, answer.size());
  CHECK_EQ(get16(answer, 4), id);
  CHECK_EQ(get16(answer, 6), 0);  // no DF, not a fragment
  CHECK_EQ(answer[8], 64);
  CHECK_EQ(answer[9], 1);
  CHECK(ipv4_checksum_ok(answer));
  CHECK(std::memcmp(&answer[12], kOurV4, 4) == 0);
  CHECK(std::memcmp(&answer[16], &original[12], 4) == 0);  // back to the sender
  CHECK_EQ(answer[20], 3);
  CHECK_EQ(answer[21], 4);
  CHECK_EQ(get16(answer, 24), 0);
  CHECK_EQ(get16(answer, 26), mtu);
  CHECK_EQ(ref_fold(Bytes(answer.begin() + 20, answer.end())), 0xFFFF);  // ICMP checksum
  CHECK(std::equal(answer.begin() + 28, answer.end(), original.begin()));
}

void check_packet_too_big(const Bytes& answer, const Bytes& original, uint32_t mtu) {
  const size_t original_total = 40 + size_t{get16(original, 4)};
  const size_t quote = std::min<size_t>(original_total, 1232);
  CHECK_EQ(answer.size(), 48 + quote);
  if (answer.size() != 48 + quote) return;
  CHECK_EQ(get32(answer, 0), 0x60000000u);  // version 6, traffic class 0, flow label 0
  CHECK_EQ(size_t{get16(answer, 4)}, 8 + quote);
  CHECK_EQ(answer[6], 58);
  CHECK_EQ(answer[7], 64);
  CHECK(std::memcmp(&answer[8], kOurV6, 16) == 0);
  CHECK(std::memcmp(&answer[24], &original[8], 16) == 0);
  CHECK_EQ(answer[40], 2);
  CHECK_EQ(answer[41], 0);
  CHECK_EQ(get32(answer, 44), mtu);
  const Bytes covered = ref_pseudo_and_l4(answer.data(), 6, answer.data() + 40, answer.size() - 40, 58);
  CHECK_EQ(ref_fold(covered), 0xFFFF);
  CHECK(std::equal(answer.begin() + 48, answer.end(), original.begin()));
}

Ipv4Spec v4_with_source(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  Ipv4Spec spec;
  spec.source[0] = a;
  spec.source[1] = b;
  spec.source[2] = c;
  spec.source[3] = d;
  return spec;
}

// An IPv4 ICMP packet of `total` bytes with the given type.
Bytes icmp_v4(uint8_t type, size_t total = 60) {
  Ipv4Spec spec;
  spec.protocol = 1;
  Bytes b = make_ipv4(spec, total);
  if (total > 20) b[20] = type;
  return b;
}

// An IPv6 packet whose chain is `headers` (extension header types, each 8 bytes) then ICMPv6
// of `type`.
Bytes icmp_v6(uint8_t type, const std::vector<uint8_t>& headers = {}, size_t total = 200) {
  Ipv6Spec spec;
  spec.next_header = headers.empty() ? 58 : headers[0];
  Bytes b = make_ipv6(spec, total);
  size_t at = 40;
  for (size_t i = 0; i < headers.size(); i++) {
    b[at] = i + 1 < headers.size() ? headers[i + 1] : 58;
    b[at + 1] = 0;  // 8 bytes long: (0 + 1) * 8, and for AH (0 + 2) * 4
    if (headers[i] == 44) put16(b, at + 2, 0);  // fragment offset 0
    at += 8;
  }
  if (at < b.size()) b[at] = type;
  return b;
}

}  // namespace

TEST(icmp_v4_frag_needed_full_size_answer) {
  const Bytes original = make_ipv4(Ipv4Spec{}, 1500);
  const Bytes answer = answer_v4(original, 1400, kIcmpv4ErrorMaxSize, 0xBEEF);
  CHECK_EQ(answer.size(), 576u);
  check_frag_needed(answer, original, 1400, 0xBEEF);
}

TEST(icmp_v4_frag_needed_quotes_small_packets_whole) {
  for (size_t total : {20u, 21u, 28u, 100u, 547u, 548u, 549u, 1000u}) {
    const Bytes original = make_ipv4(Ipv4Spec{}, total);
    check_frag_needed(answer_v4(original, 1280), original, 1280);
  }
  // With IPv4 options, the header is quoted with them.
  Ipv4Spec spec;
  spec.options = 40;
  const Bytes with_options = make_ipv4(spec, 90);
  check_frag_needed(answer_v4(with_options, 68), with_options, 68);
}

TEST(icmp_v4_frag_needed_does_not_quote_padding) {
  Bytes original = make_ipv4(Ipv4Spec{}, 30);
  original.resize(46, 0xAB);  // Ethernet padding after a short packet
  const Bytes answer = answer_v4(original, 1400);
  CHECK_EQ(answer.size(), 28u + 30u);
  CHECK_EQ(get16(answer, 2), 58);
}

TEST(icmp_v4_capacity) {
  const Bytes original = make_ipv4(Ipv4Spec{}, 100);
  CHECK_EQ(answer_v4(original, 1400, 128).size(), 128u);  // exactly enough
  CHECK(answer_v4(original, 1400, 127).empty());          // one short: nothing, not a shorter quote
  CHECK(answer_v4(original, 1400, 0).empty());
}

TEST(icmp_v4_never_answers_icmp_errors) {
  for (uint8_t type : {3, 4, 5, 11, 12, 6, 19, 30, 31, 40, 41, 44, 200, 255}) {
    CHECK(answer_v4(icmp_v4(type), 1400).empty());
  }
  for (uint8_t type : {0, 8, 9, 10, 13, 14, 15, 16, 17, 18, 42, 43}) {
    const Bytes original = icmp_v4(type);
    check_frag_needed(answer_v4(original, 1400), original, 1400);
  }
  // ICMP whose type byte is missing: cannot tell, so silence.
  CHECK(answer_v4(icmp_v4(8, 20), 1400).empty());
  CHECK_EQ(answer_v4(icmp_v4(8, 21), 1400).size(), 49u);
}

TEST(icmp_v4_fragments) {
  Ipv4Spec spec;
  spec.flags_fragment = 0x2000;  // first fragment: answered
  Bytes original = make_ipv4(spec, 1500);
  check_frag_needed(answer_v4(original, 1400), original, 1400);
  for (uint16_t fragment : {0x0001, 0x2001, 0x1FFF, 0x3FFF}) {
    spec.flags_fragment = fragment;
    CHECK(answer_v4(make_ipv4(spec, 1500), 1400).empty());
  }
  // A non-first fragment of an ICMP error is refused for being a fragment, whatever its bytes.
  spec.protocol = 1;
  spec.flags_fragment = 0x0010;
  CHECK(answer_v4(make_ipv4(spec, 100), 1400).empty());
}

TEST(icmp_v4_sources_and_destinations) {
  CHECK(!answer_v4(make_ipv4(v4_with_source(10, 1, 2, 3), 100), 1400).empty());
  CHECK(!answer_v4(make_ipv4(v4_with_source(223, 255, 255, 255), 100), 1400).empty());
  CHECK(!answer_v4(make_ipv4(v4_with_source(1, 0, 0, 0), 100), 1400).empty());
  const uint8_t bad_sources[][4] = {{0, 0, 0, 0},     {0, 1, 2, 3},     {127, 0, 0, 1}, {127, 255, 0, 9},
                                    {224, 0, 0, 1},   {239, 1, 1, 1},   {240, 0, 0, 1}, {255, 255, 255, 255}};
  for (const auto& source : bad_sources) {
    CHECK(answer_v4(make_ipv4(v4_with_source(source[0], source[1], source[2], source[3]), 100), 1400).empty());
  }
  Ipv4Spec spec;
  const uint8_t bad_destinations[][4] = {{224, 0, 0, 1}, {239, 255, 255, 250}, {255, 255, 255, 255}};
  for (const auto& destination : bad_destinations) {
    std::memcpy(spec.destination, destination, 4);
    CHECK(answer_v4(make_ipv4(spec, 100), 1400).empty());
  }
  const uint8_t directed_broadcast[4] = {10, 255, 255, 255};  // indistinguishable from a host
  std::memcpy(spec.destination, directed_broadcast, 4);
  CHECK(!answer_v4(make_ipv4(spec, 100), 1400).empty());
}

TEST(icmp_v4_malformed_originals) {
  CHECK(answer_v4(Bytes{}, 1400).empty());
  CHECK(answer_v4(make_ipv6(Ipv6Spec{}, 100), 1400).empty());
  Bytes b = make_ipv4(Ipv4Spec{}, 100);
  put16(b, 2, 101);
  CHECK(answer_v4(b, 1400).empty());
  b = make_ipv4(Ipv4Spec{}, 100);
  b[0] = 0x43;
  CHECK(answer_v4(b, 1400).empty());
  b.resize(19);
  CHECK(answer_v4(b, 1400).empty());
}

TEST(icmp_v6_packet_too_big_full_size_answer) {
  const Bytes original = make_ipv6(Ipv6Spec{}, 1500);
  const Bytes answer = answer_v6(original, 1400);
  CHECK_EQ(answer.size(), 1280u);
  check_packet_too_big(answer, original, 1400);
}

TEST(icmp_v6_quotes_small_packets_whole_and_not_padding) {
  for (size_t total : {40u, 41u, 48u, 200u, 1231u, 1232u, 1233u, 9000u}) {
    const Bytes original = make_ipv6(Ipv6Spec{}, total);
    check_packet_too_big(answer_v6(original, 1280), original, 1280);
  }
  Bytes padded = make_ipv6(Ipv6Spec{}, 50);
  padded.resize(80, 0);
  CHECK_EQ(answer_v6(padded, 1280).size(), 48u + 50u);
}

TEST(icmp_v6_mtu_below_minimum_is_raised) {
  const Bytes original = make_ipv6(Ipv6Spec{}, 1500);
  check_packet_too_big(answer_v6(original, 1000), original, 1280);
  check_packet_too_big(answer_v6(original, 0), original, 1280);
  check_packet_too_big(answer_v6(original, 9000), original, 9000);
  check_packet_too_big(answer_v6(original, 0xFFFFFFFF), original, 0xFFFFFFFF);
}

TEST(icmp_v6_capacity) {
  const Bytes original = make_ipv6(Ipv6Spec{}, 100);
  CHECK_EQ(answer_v6(original, 1280, 148).size(), 148u);
  CHECK(answer_v6(original, 1280, 147).empty());
}

TEST(icmp_v6_never_answers_icmpv6_errors) {
  for (uint8_t type : {0, 1, 2, 3, 4, 100, 127, 137}) {
    CHECK(answer_v6(icmp_v6(type), 1280).empty());
    CHECK(answer_v6(icmp_v6(type, {0}), 1280).empty());              // behind hop-by-hop
    CHECK(answer_v6(icmp_v6(type, {0, 60, 43}), 1280).empty());      // behind three headers
    CHECK(answer_v6(icmp_v6(type, {44}), 1280).empty());             // first fragment
    CHECK(answer_v6(icmp_v6(type, {60, 51}), 1280).empty());         // behind AH
  }
  for (uint8_t type : {128, 129, 133, 135, 136, 200, 255}) {
    const Bytes original = icmp_v6(type, {0, 60});
    check_packet_too_big(answer_v6(original, 1280), original, 1280);
  }
  // ICMPv6 without its type byte, directly or behind a header.
  Ipv6Spec spec;
  spec.next_header = 58;
  CHECK(answer_v6(make_ipv6(spec, 40), 1280).empty());
  Bytes behind = icmp_v6(128, {60}, 48);
  CHECK(answer_v6(behind, 1280).empty());
}

TEST(icmp_v6_non_first_fragment_is_answered) {
  // After a fragment header with offset != 0 come payload bytes, not an ICMPv6 header: a byte
  // that looks like an error type there means nothing.
  Bytes original = icmp_v6(1, {44});
  put16(original, 40 + 2, 185 << 3);  // offset 185 * 8
  check_packet_too_big(answer_v6(original, 1280), original, 1280);
}

TEST(icmp_v6_malformed_chains) {
  // A header that runs past the end of the packet.
  Bytes b = icmp_v6(128, {0});
  b[41] = 30;  // (30 + 1) * 8 bytes: beyond 200
  CHECK(answer_v6(b, 1280).empty());
  // Too many headers (17 destination options headers).
  std::vector<uint8_t> many(17, 60);
  CHECK(answer_v6(icmp_v6(128, many, 400), 1280).empty());
  std::vector<uint8_t> enough(16, 60);
  CHECK(!answer_v6(icmp_v6(128, enough, 400), 1280).empty());
  // Upper layers that are not ICMPv6 end the walk: answered.
  for (uint8_t upper : {6, 17, 50, 59, 4, 41}) {
    Ipv6Spec spec;
    spec.next_header = upper;
    CHECK(!answer_v6(make_ipv6(spec, 100), 1280).empty());
  }
  CHECK(answer_v6(make_ipv4(Ipv4Spec{}, 100), 1280).empty());
  Bytes truncated = make_ipv6(Ipv6Spec{}, 100);
  truncated.resize(99);
  CHECK(answer_v6(truncated, 1280).empty());
}

TEST(icmp_v6_sources_and_destinations) {
  Ipv6Spec spec;
  const uint8_t unspecified[16] = {};
  const uint8_t loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  const uint8_t multicast[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  for (const uint8_t* source : {unspecified, loopback, multicast}) {
    std::memcpy(spec.source, source, 16);
    CHECK(answer_v6(make_ipv6(spec, 1500), 1280).empty());
  }
  // Packet Too Big is sent even for a multicast destination (RFC 4443 §2.4(e.3)).
  Ipv6Spec to_group;
  std::memcpy(to_group.destination, multicast, 16);
  const Bytes original = make_ipv6(to_group, 1500);
  check_packet_too_big(answer_v6(original, 1400), original, 1400);
  // Link-local sources are answered.
  Ipv6Spec link_local;
  link_local.source[0] = 0xfe;
  link_local.source[1] = 0x80;
  CHECK(!answer_v6(make_ipv6(link_local, 1500), 1280).empty());
}

namespace {

const uint8_t kSenderMac[6] = {0x02, 0, 0, 0, 0, 0x0A};
const uint8_t kGatewayMac[6] = {0x02, 0, 0, 0, 0, 0x0B};

Bytes frame_of(const Bytes& packet, uint16_t ether_type) {
  Bytes frame(14);
  std::memcpy(frame.data(), kGatewayMac, 6);
  std::memcpy(frame.data() + 6, kSenderMac, 6);
  put16(frame, 12, ether_type);
  frame.insert(frame.end(), packet.begin(), packet.end());
  return frame;
}

Bytes answer_frame(const Bytes& frame, uint32_t mtu, const uint8_t* source, size_t capacity = 1294) {
  Bytes out(capacity, 0xEE);
  const size_t n = build_too_big_frame(out.data(), out.size(), frame.data(), frame.size(), mtu, source);
  CHECK(n <= capacity);
  out.resize(n);
  return out;
}

}  // namespace

TEST(icmp_frame_ipv4) {
  const Bytes packet = make_ipv4(Ipv4Spec{}, 1500);
  const Bytes answer = answer_frame(frame_of(packet, 0x0800), 1450, kOurV4);
  CHECK_EQ(answer.size(), 14u + 576u);
  if (answer.size() != 590) return;
  CHECK(std::memcmp(answer.data(), kSenderMac, 6) == 0);
  CHECK(std::memcmp(answer.data() + 6, kGatewayMac, 6) == 0);
  CHECK_EQ(get16(answer, 12), 0x0800);
  check_frag_needed(Bytes(answer.begin() + 14, answer.end()), packet, 1450);
  // An MTU beyond 16 bits is capped; capacity counts the Ethernet header.
  check_frag_needed(Bytes(answer.begin() + 14, answer.end()), packet, 1450);
  const Bytes capped = answer_frame(frame_of(packet, 0x0800), 100000, kOurV4);
  CHECK_EQ(get16(capped, 14 + 26), 0xFFFF);
  CHECK_EQ(answer_frame(frame_of(packet, 0x0800), 1450, kOurV4, 590).size(), 590u);
  CHECK(answer_frame(frame_of(packet, 0x0800), 1450, kOurV4, 589).empty());
}

TEST(icmp_frame_ipv6) {
  const Bytes packet = make_ipv6(Ipv6Spec{}, 1500);
  const Bytes answer = answer_frame(frame_of(packet, 0x86DD), 1450, kOurV6);
  CHECK_EQ(answer.size(), 14u + 1280u);
  if (answer.size() != 1294) return;
  CHECK(std::memcmp(answer.data(), kSenderMac, 6) == 0);
  CHECK(std::memcmp(answer.data() + 6, kGatewayMac, 6) == 0);
  CHECK_EQ(get16(answer, 12), 0x86DD);
  check_packet_too_big(Bytes(answer.begin() + 14, answer.end()), packet, 1450);
  CHECK(answer_frame(frame_of(packet, 0x86DD), 1450, kOurV6, 1293).empty());
}

TEST(icmp_frame_refusals) {
  const Bytes v4 = make_ipv4(Ipv4Spec{}, 1500);
  const Bytes v6 = make_ipv6(Ipv6Spec{}, 1500);
  // Version and EtherType disagree.
  CHECK(answer_frame(frame_of(v6, 0x0800), 1450, kOurV4).empty());
  CHECK(answer_frame(frame_of(v4, 0x86DD), 1450, kOurV6).empty());
  // Tagged frames, ARP, anything else.
  for (uint16_t type : {0x8100, 0x88A8, 0x0806, 0x6558, 0x0000}) {
    CHECK(answer_frame(frame_of(v4, type), 1450, kOurV4).empty());
  }
  // A VLAN-tagged frame whose inner type is IPv4 is refused too.
  Bytes tagged = frame_of(Bytes(4), 0x8100);
  put16(tagged, 14 + 2, 0x0800);
  tagged.insert(tagged.end(), v4.begin(), v4.end());
  CHECK(answer_frame(tagged, 1450, kOurV4).empty());
  // Group or zero MAC addresses.
  Bytes frame = frame_of(v4, 0x0800);
  frame[6] |= 0x01;  // multicast source
  CHECK(answer_frame(frame, 1450, kOurV4).empty());
  frame = frame_of(v4, 0x0800);
  std::memset(frame.data(), 0xFF, 6);  // broadcast destination
  CHECK(answer_frame(frame, 1450, kOurV4).empty());
  frame = frame_of(v4, 0x0800);
  std::memset(frame.data() + 6, 0, 6);  // zero source
  CHECK(answer_frame(frame, 1450, kOurV4).empty());
  // Too short to hold anything.
  CHECK(answer_frame(Bytes(14, 0x02), 1450, kOurV4).empty());
  CHECK(answer_frame(Bytes(3, 0x02), 1450, kOurV4).empty());
  CHECK(answer_frame(frame_of(v4, 0x0800), 1450, kOurV4, 13).empty());
  // The IP rules apply inside frames too.
  CHECK(answer_frame(frame_of(icmp_v4(11), 0x0800), 1450, kOurV4).empty());
  CHECK(answer_frame(frame_of(icmp_v6(1), 0x86DD), 1450, kOurV6).empty());
}

TEST(token_bucket_burst_then_rate) {
  TokenBucket bucket(100, 50);
  uint64_t now = 1000000;
  for (int i = 0; i < 50; i++) CHECK(bucket.take(now));
  CHECK(!bucket.take(now));
  CHECK(!bucket.take(now + 9999));  // 100/s: one token per 10 ms
  CHECK(bucket.take(now + 10000));
  CHECK(!bucket.take(now + 10000));
  // Over one second at most 100 more, however often it is asked.
  int taken = 0;
  for (uint64_t t = now + 10000; t <= now + 1010000; t += 100) taken += bucket.take(t);
  CHECK_EQ(taken, 100);
  // A long idle refills to the burst, not beyond.
  now += 3600ull * 1000000;
  taken = 0;
  for (int i = 0; i < 1000; i++) taken += bucket.take(now);
  CHECK_EQ(taken, 50);
}

TEST(token_bucket_fractions_accumulate) {
  TokenBucket bucket(3, 1);  // one token every 333333.3 us
  CHECK(bucket.take(0));
  int taken = 0;
  for (uint64_t t = 1; t <= 10000000; t += 1000) taken += bucket.take(t);
  CHECK(taken >= 29 && taken <= 30);
}

TEST(token_bucket_odd_clocks_and_limits) {
  TokenBucket bucket(100, 2);
  CHECK(bucket.take(5000000));
  CHECK(bucket.take(5000000));
  CHECK(!bucket.take(4000000));  // backwards: adds nothing
  CHECK(!bucket.take(5000000));  // and did not move the reference back
  CHECK(bucket.take(std::numeric_limits<uint64_t>::max()));  // no overflow on huge gaps
  CHECK(bucket.take(std::numeric_limits<uint64_t>::max()));
  CHECK(!bucket.take(std::numeric_limits<uint64_t>::max()));
  TokenBucket never(100, 0);
  CHECK(!never.take(0));
  CHECK(!never.take(10000000));
  TokenBucket no_refill(0, 3);
  CHECK(no_refill.take(0) && no_refill.take(1) && no_refill.take(2));
  CHECK(!no_refill.take(1000000000));
  TokenBucket huge(std::numeric_limits<uint32_t>::max(), std::numeric_limits<uint32_t>::max());
  CHECK(huge.take(0));
  CHECK(huge.take(std::numeric_limits<uint64_t>::max() / 2));
  TokenBucket defaults(kIcmpTooBigPerSecond, kIcmpTooBigBurst);
  int taken = 0;
  for (int i = 0; i < 100; i++) taken += defaults.take(0);
  CHECK_EQ(taken, 50);
}
