#include "tunnel/gre_codec.h"

#include <cstring>
#include <optional>
#include <random>
#include <vector>

#include "wire/ethernet.h"
#include "test.h"

using namespace ovl;

namespace {

using Bytes = std::vector<uint8_t>;

// RFC 1071 the slow, obvious way, independent of checksum.cc: big-endian 16-bit words taken one
// byte at a time (an odd last byte is the high half of a zero-padded word), end-around carry
// after every addition, complemented at the end.
uint16_t reference_checksum(const Bytes& bytes) {
  uint32_t sum = 0;
  for (size_t i = 0; i < bytes.size(); i++) {
    sum += (i % 2 == 0) ? uint32_t{bytes[i]} << 8 : uint32_t{bytes[i]};
    if (sum > 0xFFFF) sum = (sum & 0xFFFF) + 1;
  }
  return static_cast<uint16_t>(~sum & 0xFFFF);
}

// The checksum a GRE packet with C set should carry: the field taken as zero.
uint16_t expected_checksum(Bytes packet) {
  packet[4] = packet[5] = 0;
  return reference_checksum(packet);
}

// Recomputes the checksum of a packet with C set after a test has edited it, so that only the
// edit is wrong with it.
void refresh_checksum(Bytes& packet) {
  if ((load_be16(packet.data()) & kGreFlagChecksum) == 0) return;
  store_be16(&packet[4], expected_checksum(packet));
}

// A payload that looks like what the protocol type names, `length` bytes long.
Bytes payload(uint16_t protocol, size_t length, uint32_t seed = 1) {
  std::mt19937 random(seed);
  Bytes p(length);
  for (auto& byte : p) byte = static_cast<uint8_t>(random());
  if (length > 0) {
    if (protocol == kGreProtocolIpv4) p[0] = 0x45;
    if (protocol == kGreProtocolIpv6) p[0] = 0x60;
    if (protocol == kGreProtocolEthernet) p[0] = 0x02;  // unicast, locally administered
  }
  return p;
}

size_t minimum_payload(uint16_t protocol) {
  return protocol == kGreProtocolEthernet ? 14 : protocol == kGreProtocolIpv4 ? 20 : protocol == kGreProtocolIpv6 ? 40 : 0;
}

GrePayload family(uint16_t protocol) {
  return protocol == kGreProtocolEthernet ? GrePayload::ethernet : GrePayload::ip;
}

// Encodes the way the worker will: the payload sits in a buffer with headroom and the header is
// written in place right before it. Returns exactly the GRE packet (an exact-size allocation, so
// ASan sees any read past its end).
Bytes encapsulate(const GreOptions& options, uint16_t protocol, uint32_t sequence, const Bytes& inner) {
  Bytes buffer(kGreMaxHeaderSize + inner.size(), 0xEE);
  std::copy(inner.begin(), inner.end(), buffer.begin() + kGreMaxHeaderSize);
  const uint32_t size = gre_header_size(options);
  uint8_t* header = buffer.data() + kGreMaxHeaderSize - size;
  gre_encode(header, options, protocol, sequence, buffer.data() + kGreMaxHeaderSize, inner.size());
  // Headroom in front of the header is untouched.
  for (size_t i = 0; i < kGreMaxHeaderSize - size; i++) {
    if (buffer[i] != 0xEE) CHECK(!"gre_encode wrote in front of the header");
  }
  return Bytes(buffer.begin() + (kGreMaxHeaderSize - size), buffer.end());
}

GreStatus decode(const Bytes& p, const GreExpectation& expect, GreDecoded* out = nullptr) {
  GreDecoded scratch;
  return gre_decode(p.data(), p.size(), expect, out != nullptr ? out : &scratch);
}

// Every combination of C, K and S (the key, when present, is `key`).
std::vector<GreOptions> all_options(uint32_t key = 0x01020304) {
  std::vector<GreOptions> result;
  for (int bits = 0; bits < 8; bits++) {
    GreOptions options;
    options.checksum = (bits & 1) != 0;
    if (bits & 2) options.key = key;
    options.sequence = (bits & 4) != 0;
    result.push_back(options);
  }
  return result;
}

GreExpectation expectation_for(const GreOptions& options, uint16_t protocol) {
  GreExpectation expect;
  expect.key = options.key;
  expect.checksum_required = options.checksum;
  expect.payload = family(protocol);
  return expect;
}

const uint16_t kProtocols[] = {kGreProtocolIpv4, kGreProtocolIpv6, kGreProtocolEthernet};

}  // namespace

TEST(gre_header_size_counts_optional_words) {
  for (const auto& options : all_options()) {
    const uint32_t expected = 4u + (options.checksum ? 4u : 0u) + (options.key ? 4u : 0u) + (options.sequence ? 4u : 0u);
    CHECK_EQ(gre_header_size(options), expected);
  }
  GreOptions everything;
  everything.checksum = true;
  everything.key = 0;  // a key of 0 is still a key
  everything.sequence = true;
  CHECK_EQ(gre_header_size(everything), kGreMaxHeaderSize);
  CHECK_EQ(gre_header_size(GreOptions{}), kGreBaseHeaderSize);
}

TEST(gre_encode_exact_bytes) {
  // RFC 2784, no options, IPv4 payload.
  CHECK(encapsulate({}, kGreProtocolIpv4, 0, {}) == (Bytes{0x00, 0x00, 0x08, 0x00}));
  // RFC 2890 with a key, carrying Ethernet (what Linux gretap and OvS send with key 42).
  GreOptions keyed;
  keyed.key = 42;
  CHECK(encapsulate(keyed, kGreProtocolEthernet, 0, {}) == (Bytes{0x20, 0x00, 0x65, 0x58, 0x00, 0x00, 0x00, 0x2A}));
  keyed.key = 0x0A0B0C0D;
  CHECK(encapsulate(keyed, kGreProtocolEthernet, 99, {}) == (Bytes{0x20, 0x00, 0x65, 0x58, 0x0A, 0x0B, 0x0C, 0x0D}));
  // Sequence only: the first packet of a flow carries 0.
  GreOptions sequenced;
  sequenced.sequence = true;
  CHECK(encapsulate(sequenced, kGreProtocolIpv4, 0, {}) == (Bytes{0x10, 0x00, 0x08, 0x00, 0, 0, 0, 0}));
  // Key then sequence number, in that order.
  GreOptions both = keyed;
  both.key = 1;
  both.sequence = true;
  CHECK(encapsulate(both, kGreProtocolIpv6, 0xFFFFFFFE, {}) ==
        (Bytes{0x30, 0x00, 0x86, 0xDD, 0x00, 0x00, 0x00, 0x01, 0xFF, 0xFF, 0xFF, 0xFE}));
}

TEST(gre_encode_checksum_hand_computed) {
  GreOptions c;
  c.checksum = true;
  // Words 8000 0800 0000 0000 | 4500 0100 (the odd byte padded): sum ce00, checksum 31ff.
  CHECK(encapsulate(c, kGreProtocolIpv4, 0, {0x45, 0x00, 0x01}) ==
        (Bytes{0x80, 0x00, 0x08, 0x00, 0x31, 0xFF, 0x00, 0x00, 0x45, 0x00, 0x01}));
  // With a carry out of 16 bits: 8000 + 86dd + ffff + 8000 + 8001 = 306dd, folds to 06e0.
  CHECK(encapsulate(c, kGreProtocolIpv6, 0, {0xFF, 0xFF, 0x80, 0x00, 0x80, 0x01}) ==
        (Bytes{0x80, 0x00, 0x86, 0xDD, 0xF9, 0x1F, 0x00, 0x00, 0xFF, 0xFF, 0x80, 0x00, 0x80, 0x01}));
  // C, K and S: b000 + 0800 + 0102 + 0304 + 0000 + 0007 = bc0d, checksum 43f2.
  GreOptions all = c;
  all.key = 0x01020304;
  all.sequence = true;
  CHECK(encapsulate(all, kGreProtocolIpv4, 7, {}) ==
        (Bytes{0xB0, 0x00, 0x08, 0x00, 0x43, 0xF2, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x07}));
}

TEST(gre_encode_payload_need_not_be_adjacent) {
  GreOptions options;
  options.checksum = true;
  options.key = 7;
  const Bytes inner = payload(kGreProtocolIpv4, 33);
  uint8_t header[kGreMaxHeaderSize + 1];
  std::memset(header, 0xEE, sizeof header);
  gre_encode(header, options, kGreProtocolIpv4, 0, inner.data(), inner.size());
  CHECK_EQ(header[12], 0xEE);  // exactly gre_header_size() bytes written
  Bytes joined(header, header + gre_header_size(options));
  joined.insert(joined.end(), inner.begin(), inner.end());
  CHECK(joined == encapsulate(options, kGreProtocolIpv4, 0, inner));
  // Without C the payload is not read at all.
  GreOptions plain;
  gre_encode(header, plain, kGreProtocolIpv6, 0, nullptr, 1500);
  CHECK_EQ(load_be16(header + 2), kGreProtocolIpv6);
}

TEST(gre_checksum_matches_byte_at_a_time_rfc1071_for_every_length) {
  for (const auto& options : all_options()) {
    if (!options.checksum) continue;
    for (uint16_t protocol : kProtocols) {
      for (size_t length = minimum_payload(protocol); length < minimum_payload(protocol) + 70; length++) {
        const Bytes p = encapsulate(options, protocol, 0x55AA55AA, payload(protocol, length, static_cast<uint32_t>(length)));
        if (load_be16(&p[4]) != expected_checksum(p)) CHECK(!"checksum differs from the RFC 1071 reference");
        if (decode(p, expectation_for(options, protocol)) != GreStatus::ok) CHECK(!"checksummed packet refused");
      }
    }
  }
  // A jumbo-sized odd payload too.
  GreOptions c;
  c.checksum = true;
  const Bytes big = encapsulate(c, kGreProtocolIpv6, 0, payload(kGreProtocolIpv6, 9001, 3));
  CHECK_EQ(load_be16(&big[4]), expected_checksum(big));
}

TEST(gre_checksum_both_zeros_accepted) {
  // Header words 8000 0800 sum to 8800; a first payload word of 77ff makes the total ffff, so
  // the checksum is 0000. One's complement has two zeros: a sender that writes ffff instead
  // must verify too (the sum over everything still folds to ffff).
  GreOptions c;
  c.checksum = true;
  Bytes inner(20, 0);
  inner[0] = 0x77;
  inner[1] = 0xFF;
  Bytes p = encapsulate(c, kGreProtocolIpv4, 0, inner);
  CHECK_EQ(load_be16(&p[4]), 0x0000);
  GreExpectation expect;
  CHECK(decode(p, expect) == GreStatus::ok);
  store_be16(&p[4], 0xFFFF);
  CHECK(decode(p, expect) == GreStatus::ok);
  store_be16(&p[4], 0xFFFE);
  CHECK(decode(p, expect) == GreStatus::bad_checksum);
}

TEST(gre_checksum_detects_every_single_bit_error) {
  GreOptions options;
  options.checksum = true;
  options.key = 0xDEADBEEF;
  options.sequence = true;
  const Bytes good = encapsulate(options, kGreProtocolEthernet, 12345, payload(kGreProtocolEthernet, 61));
  const GreExpectation expect = expectation_for(options, kGreProtocolEthernet);
  CHECK(decode(good, expect) == GreStatus::ok);
  for (size_t byte = 0; byte < good.size(); byte++) {
    for (int bit = 0; bit < 8; bit++) {
      Bytes bad = good;
      bad[byte] ^= static_cast<uint8_t>(1u << bit);
      const GreStatus status = decode(bad, expect);
      if (byte >= 4) {
        // Checksum, Reserved1, key, sequence and payload: all covered by the checksum.
        if (status != GreStatus::bad_checksum) CHECK(!"corruption after the flags word not caught by the checksum");
      } else if (status == GreStatus::ok) {
        CHECK(!"corrupted flags or protocol accepted");
      }
    }
  }
}

TEST(gre_checksum_verified_even_when_not_required) {
  GreOptions c;
  c.checksum = true;
  Bytes p = encapsulate(c, kGreProtocolIpv4, 0, payload(kGreProtocolIpv4, 40));
  GreExpectation lax;  // checksum not required
  GreDecoded decoded;
  CHECK(decode(p, lax, &decoded) == GreStatus::ok);
  CHECK(decoded.checksum_present);
  p.back() ^= 0x01;
  CHECK(decode(p, lax) == GreStatus::bad_checksum);
}

TEST(gre_checksum_required_but_absent) {
  const Bytes p = encapsulate({}, kGreProtocolIpv4, 0, payload(kGreProtocolIpv4, 40));
  GreExpectation strict;
  strict.checksum_required = true;
  CHECK(decode(p, strict) == GreStatus::missing_checksum);
  GreDecoded decoded;
  CHECK(decode(p, GreExpectation{}, &decoded) == GreStatus::ok);
  CHECK(!decoded.checksum_present);
}

TEST(gre_reserved1_ignored_on_receipt) {
  // RFC 2784 §2.6 only says Reserved1 MUST be transmitted as zero. A non-zero value (with a
  // checksum that covers it) is accepted.
  GreOptions c;
  c.checksum = true;
  Bytes p = encapsulate(c, kGreProtocolIpv6, 0, payload(kGreProtocolIpv6, 41));
  CHECK_EQ(load_be16(&p[6]), 0);  // we send zero
  store_be16(&p[6], 0xABCD);
  refresh_checksum(p);
  GreExpectation expect;
  CHECK(decode(p, expect) == GreStatus::ok);
}

TEST(gre_round_trips_every_option_combination_and_payload) {
  const uint32_t sequences[] = {0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF};
  for (uint32_t key : {0u, 42u, 0xFFFFFFFFu}) {
    for (const auto& options : all_options(key)) {
      for (uint16_t protocol : kProtocols) {
        const size_t minimum = minimum_payload(protocol);
        for (size_t length : {minimum, minimum + 1, size_t{127}, size_t{1499}, size_t{1500}}) {
          for (uint32_t sequence : sequences) {
            const Bytes inner = payload(protocol, length, sequence ^ key);
            const Bytes p = encapsulate(options, protocol, sequence, inner);
            CHECK_EQ(p.size(), gre_header_size(options) + length);
            GreDecoded decoded;
            const GreStatus status = decode(p, expectation_for(options, protocol), &decoded);
            if (status != GreStatus::ok) {
              CHECK(!"round trip refused");
              continue;
            }
            CHECK_EQ(decoded.header_length, gre_header_size(options));
            CHECK_EQ(decoded.protocol, protocol);
            CHECK(decoded.checksum_present == options.checksum);
            CHECK(decoded.key == options.key);
            CHECK(decoded.sequence == (options.sequence ? std::optional<uint32_t>(sequence) : std::nullopt));
            CHECK(std::equal(inner.begin(), inner.end(), p.begin() + decoded.header_length));
            // A packet with C also decodes when the receiver does not insist on it.
            GreExpectation lax = expectation_for(options, protocol);
            lax.checksum_required = false;
            CHECK(decode(p, lax) == GreStatus::ok);
          }
        }
      }
    }
  }
}

TEST(gre_drops_reserved_bits_1_to_5) {
  // Bits 2 and 3 are K and S (RFC 2890); bits 1, 4 and 5 remain and each one drops the packet,
  // with or without a (correct) checksum.
  for (bool checksum : {false, true}) {
    GreOptions options;
    options.checksum = checksum;
    const Bytes good = encapsulate(options, kGreProtocolIpv4, 0, payload(kGreProtocolIpv4, 20));
    for (int bit : {1, 4, 5}) {
      Bytes bad = good;
      store_be16(bad.data(), static_cast<uint16_t>(load_be16(bad.data()) | (0x8000u >> bit)));
      refresh_checksum(bad);
      if (decode(bad, GreExpectation{}) != GreStatus::malformed) CHECK(!"reserved bit 1, 4 or 5 accepted");
    }
    // All of them at once, and alongside K and S.
    Bytes bad = good;
    store_be16(bad.data(), static_cast<uint16_t>(load_be16(bad.data()) | kGreMustBeZero));
    refresh_checksum(bad);
    CHECK(decode(bad, GreExpectation{}) == GreStatus::malformed);
  }
}

TEST(gre_ignores_reserved_bits_6_to_12) {
  // RFC 2784 §2.3: sent as zero, ignored on receipt.
  for (bool checksum : {false, true}) {
    GreOptions options;
    options.checksum = checksum;
    options.key = 5;
    options.sequence = true;
    const Bytes good = encapsulate(options, kGreProtocolEthernet, 9, payload(kGreProtocolEthernet, 14));
    const GreExpectation expect = expectation_for(options, kGreProtocolEthernet);
    for (int bit = 6; bit <= 12; bit++) {
      Bytes p = good;
      store_be16(p.data(), static_cast<uint16_t>(load_be16(p.data()) | (0x8000u >> bit)));
      refresh_checksum(p);
      GreDecoded decoded;
      if (decode(p, expect, &decoded) != GreStatus::ok) CHECK(!"an ignored reserved bit dropped the packet");
      CHECK_EQ(decoded.header_length, gre_header_size(options));
    }
    Bytes all = good;
    store_be16(all.data(), static_cast<uint16_t>(load_be16(all.data()) | kGreIgnored));
    refresh_checksum(all);
    CHECK(decode(all, expect) == GreStatus::ok);
  }
}

TEST(gre_drops_every_nonzero_version) {
  for (bool checksum : {false, true}) {
    GreOptions options;
    options.checksum = checksum;
    const Bytes good = encapsulate(options, kGreProtocolIpv6, 0, payload(kGreProtocolIpv6, 40));
    for (uint16_t version = 1; version <= 7; version++) {
      Bytes bad = good;
      store_be16(bad.data(), static_cast<uint16_t>(load_be16(bad.data()) | version));
      refresh_checksum(bad);
      if (decode(bad, GreExpectation{}) != GreStatus::malformed) CHECK(!"non-zero version accepted");
    }
  }
  // PPTP's enhanced GRE (version 1, K and S set, protocol 880b, RFC 2637).
  const Bytes pptp = {0x30, 0x01, 0x88, 0x0B, 0x00, 0x10, 0x00, 0x01, 0, 0, 0, 1};
  CHECK(decode(pptp, GreExpectation{}) == GreStatus::malformed);
}

TEST(gre_truncation_at_every_length) {
  for (const auto& options : all_options()) {
    for (uint16_t protocol : kProtocols) {
      const Bytes p = encapsulate(options, protocol, 3, payload(protocol, minimum_payload(protocol)));
      const GreExpectation expect = expectation_for(options, protocol);
      CHECK(decode(p, expect) == GreStatus::ok);
      for (size_t length = 0; length < p.size(); length++) {
        const Bytes cut(p.begin(), p.begin() + static_cast<std::ptrdiff_t>(length));  // exact size for ASan
        GreDecoded decoded;
        decoded.header_length = 0xBAD;
        if (decode(cut, expect, &decoded) != GreStatus::malformed) CHECK(!"truncated packet not malformed");
        CHECK_EQ(decoded.header_length, 0xBADu);  // left alone on failure
      }
    }
  }
  // A bare header with nothing behind it is malformed too, for every protocol we carry.
  GreExpectation tap;
  tap.payload = GrePayload::ethernet;
  CHECK(decode({0x00, 0x00, 0x65, 0x58}, tap) == GreStatus::malformed);
}

TEST(gre_key_mismatches_in_all_directions) {
  const std::optional<uint32_t> keys[] = {std::nullopt, 0u, 42u, 43u, 0xFFFFFFFFu};
  for (bool checksum : {false, true}) {
    for (bool sequence : {false, true}) {
      for (const auto& sent : keys) {
        GreOptions options;
        options.checksum = checksum;
        options.key = sent;
        options.sequence = sequence;
        const Bytes p = encapsulate(options, kGreProtocolIpv4, 77, payload(kGreProtocolIpv4, 20));
        for (const auto& wanted : keys) {
          GreExpectation expect;
          expect.key = wanted;
          GreDecoded decoded;
          const GreStatus status = decode(p, expect, &decoded);
          if (sent == wanted) {
            CHECK(status == GreStatus::ok);
            CHECK(decoded.key == sent);
          } else if (status != GreStatus::wrong_key) {
            CHECK(!"key mismatch not reported as wrong_key");
          }
        }
      }
    }
  }
}

TEST(gre_protocol_filtering) {
  const uint16_t others[] = {0x0000, 0x0806, 0x8100, 0x88A8, 0x8847, 0x88BE, 0x880B, 0x883E, 0xFFFF};
  GreExpectation tun;
  tun.payload = GrePayload::ip;
  GreExpectation tap;
  tap.payload = GrePayload::ethernet;
  const Bytes ipv4 = encapsulate({}, kGreProtocolIpv4, 0, payload(kGreProtocolIpv4, 64));
  const Bytes ipv6 = encapsulate({}, kGreProtocolIpv6, 0, payload(kGreProtocolIpv6, 64));
  const Bytes ethernet = encapsulate({}, kGreProtocolEthernet, 0, payload(kGreProtocolEthernet, 64));
  CHECK(decode(ipv4, tun) == GreStatus::ok);
  CHECK(decode(ipv6, tun) == GreStatus::ok);
  CHECK(decode(ethernet, tun) == GreStatus::unsupported_protocol);
  CHECK(decode(ethernet, tap) == GreStatus::ok);
  CHECK(decode(ipv4, tap) == GreStatus::unsupported_protocol);
  CHECK(decode(ipv6, tap) == GreStatus::unsupported_protocol);
  for (uint16_t protocol : others) {
    const Bytes p = encapsulate({}, protocol, 0, payload(protocol, 64));
    if (decode(p, tun) != GreStatus::unsupported_protocol) CHECK(!"other protocol accepted on TUN");
    if (decode(p, tap) != GreStatus::unsupported_protocol) CHECK(!"other protocol accepted on TAP");
  }
  CHECK(gre_protocol_accepted(GrePayload::ip, kEtherTypeIpv4));
  CHECK(gre_protocol_accepted(GrePayload::ip, kEtherTypeIpv6));
  CHECK(!gre_protocol_accepted(GrePayload::ip, kEtherTypeArp));
  CHECK(gre_protocol_accepted(GrePayload::ethernet, kGreProtocolEthernet));
}

TEST(gre_runt_payloads_are_malformed) {
  // One byte short of the header its protocol names; the checksum is correct, so the length is
  // the only thing wrong.
  for (uint16_t protocol : kProtocols) {
    for (bool checksum : {false, true}) {
      GreOptions options;
      options.checksum = checksum;
      const Bytes p = encapsulate(options, protocol, 0, payload(protocol, minimum_payload(protocol) - 1));
      if (decode(p, expectation_for(options, protocol)) != GreStatus::malformed) CHECK(!"runt payload accepted");
    }
  }
}

TEST(gre_checks_come_in_order) {
  GreOptions options;
  options.checksum = true;
  options.key = 1;
  const Bytes good = encapsulate(options, kGreProtocolEthernet, 0, payload(kGreProtocolEthernet, 60));
  GreExpectation wrong_everything;
  wrong_everything.key = 2;
  wrong_everything.payload = GrePayload::ip;
  // Key and protocol are wrong too, but a bad checksum means they cannot be trusted.
  Bytes corrupt = good;
  corrupt.back() ^= 0x80;
  CHECK(decode(corrupt, wrong_everything) == GreStatus::bad_checksum);
  // Good checksum: the key is reported before the protocol.
  CHECK(decode(good, wrong_everything) == GreStatus::wrong_key);
  // Version beats everything.
  Bytes versioned = corrupt;
  versioned[1] |= 1;
  CHECK(decode(versioned, wrong_everything) == GreStatus::malformed);
  // Truncation beats a (consequently) failing checksum.
  const Bytes cut(good.begin(), good.begin() + 8 + 4 + 13);
  CHECK(decode(cut, wrong_everything) == GreStatus::malformed);
  // A missing checksum is reported before the key.
  GreOptions no_checksum = options;
  no_checksum.checksum = false;
  GreExpectation strict = wrong_everything;
  strict.checksum_required = true;
  CHECK(decode(encapsulate(no_checksum, kGreProtocolEthernet, 0, payload(kGreProtocolEthernet, 60)), strict) ==
        GreStatus::missing_checksum);
}

TEST(gre_sequence_numbers_decoded_not_judged) {
  // The codec keeps no state: any sequence number, in any order, decodes.
  for (bool keyed : {false, true}) {
    GreOptions options;
    options.sequence = true;
    if (keyed) options.key = 9;
    for (uint32_t sequence : {5u, 4u, 0u, 0xFFFFFFFFu, 0u, 0x80000000u}) {
      const Bytes p = encapsulate(options, kGreProtocolIpv4, sequence, payload(kGreProtocolIpv4, 20));
      GreDecoded decoded;
      CHECK(decode(p, expectation_for(options, kGreProtocolIpv4), &decoded) == GreStatus::ok);
      CHECK(decoded.sequence == std::optional<uint32_t>(sequence));
    }
  }
  GreDecoded decoded;
  CHECK(decode(encapsulate({}, kGreProtocolIpv4, 1234, payload(kGreProtocolIpv4, 20)), GreExpectation{}, &decoded) ==
        GreStatus::ok);
  CHECK(!decoded.sequence.has_value());
}
