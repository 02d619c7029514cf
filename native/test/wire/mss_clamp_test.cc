#include "wire/mss_clamp.h"

#include <random>

#include "wire/checksum.h"
#include "ip_test_packets.h"
#include "test.h"

using namespace ovl;
using namespace ovl_test;

namespace {

constexpr uint8_t kSyn = 0x02, kAck = 0x10;

// Where the TCP header starts in a packet made below.
size_t tcp_at(const Bytes& p) { return (p[0] >> 4) == 4 ? size_t{p[0] & 0x0Fu} * 4 : 40; }
size_t ip_end(const Bytes& p) { return (p[0] >> 4) == 4 ? get16(p, 2) : 40 + size_t{get16(p, 4)}; }

Bytes pseudo_and_segment(const Bytes& p) {
  const size_t l4 = tcp_at(p);
  return ref_pseudo_and_l4(p.data(), p[0] >> 4, p.data() + l4, ip_end(p) - l4, 6);
}

void fix_tcp_checksum(Bytes& p) {
  const size_t l4 = tcp_at(p);
  put16(p, l4 + 16, 0);
  put16(p, l4 + 16, static_cast<uint16_t>(~ref_fold(pseudo_and_segment(p))));
}

bool tcp_checksum_ok(const Bytes& p) { return ref_fold(pseudo_and_segment(p)) == 0xFFFF; }

// A TCP segment with the given option bytes (a multiple of 4 long), flags and payload, in an
// IPv4 or IPv6 packet, with a correct checksum.
Bytes make_tcp(int version, const Bytes& options, uint8_t flags = kSyn, size_t payload = 0, uint32_t seed = 1) {
  const size_t tcp_length = 20 + options.size() + payload;
  Bytes p = version == 4 ? make_ipv4(Ipv4Spec{}, 20 + tcp_length) : make_ipv6(Ipv6Spec{}, 40 + tcp_length);
  const size_t l4 = tcp_at(p);
  std::mt19937 random(seed);
  for (size_t i = l4; i < p.size(); i++) p[i] = static_cast<uint8_t>(random());
  put16(p, l4, 40000);  // ports
  put16(p, l4 + 2, 443);
  p[l4 + 12] = static_cast<uint8_t>((20 + options.size()) / 4 << 4);
  p[l4 + 13] = flags;
  std::copy(options.begin(), options.end(), p.begin() + l4 + 20);
  fix_tcp_checksum(p);
  return p;
}

Bytes mss_option(uint16_t mss) { return {2, 4, static_cast<uint8_t>(mss >> 8), static_cast<uint8_t>(mss)}; }

// Linux's SYN options: MSS, SACK permitted, timestamps, NOP, window scale.
Bytes linux_syn_options(uint16_t mss) {
  Bytes o = mss_option(mss);
  const Bytes rest = {4, 2, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 3, 3, 7};
  o.insert(o.end(), rest.begin(), rest.end());
  return o;
}

uint16_t mss_at(const Bytes& p, size_t option_offset) { return get16(p, tcp_at(p) + 20 + option_offset + 2); }

bool clamp(Bytes& p, uint16_t max_mss, bool partial = false) {
  return clamp_tcp_mss(p.data(), p.size(), max_mss, partial);
}

// Clamps and checks: the result, only the MSS value and checksum changed, the checksum still
// verifies from scratch and equals a full recomputation.
void expect_clamped(Bytes p, size_t option_offset, uint16_t max_mss) {
  const Bytes before = p;
  CHECK(clamp(p, max_mss));
  CHECK_EQ(mss_at(p, option_offset), max_mss);
  CHECK(tcp_checksum_ok(p));
  Bytes recomputed = p;
  fix_tcp_checksum(recomputed);
  CHECK_EQ(get16(recomputed, tcp_at(p) + 16), get16(p, tcp_at(p) + 16));
  const size_t value = tcp_at(p) + 20 + option_offset + 2, checksum = tcp_at(p) + 16;
  for (size_t i = 0; i < p.size(); i++) {
    if (i != value && i != value + 1 && i != checksum && i != checksum + 1 && p[i] != before[i]) {
      CHECK(!"clamp touched a byte other than the MSS and the checksum");
      break;
    }
  }
  // Clamping again changes nothing.
  const Bytes once = p;
  CHECK(!clamp(p, max_mss));
  CHECK(p == once);
}

void expect_untouched(Bytes p, uint16_t max_mss) {
  const Bytes before = p;
  CHECK(!clamp(p, max_mss));
  CHECK(p == before);
}

}  // namespace

TEST(mss_clamp_ipv4_linux_syn) {
  const Bytes syn = make_tcp(4, linux_syn_options(1460));
  CHECK(tcp_checksum_ok(syn));
  expect_clamped(syn, 0, 1360);
  // A SYN-ACK too, and a SYN with data (TCP fast open).
  expect_clamped(make_tcp(4, linux_syn_options(1460), kSyn | kAck), 0, 1400);
  expect_clamped(make_tcp(4, linux_syn_options(1460), kSyn, 100), 0, 1400);
  expect_clamped(make_tcp(4, linux_syn_options(65535), kSyn, 1, 9), 0, 536);
}

TEST(mss_clamp_ipv6_syn) {
  expect_clamped(make_tcp(6, linux_syn_options(1440)), 0, 1340);
  expect_clamped(make_tcp(6, linux_syn_options(8940), kSyn | kAck, 33), 0, 1390);
}

TEST(mss_clamp_leaves_small_mss_and_non_syn_alone) {
  expect_untouched(make_tcp(4, linux_syn_options(1360)), 1360);  // equal: nothing to do
  expect_untouched(make_tcp(4, linux_syn_options(536)), 1360);   // never raised
  expect_untouched(make_tcp(4, linux_syn_options(1460), kAck), 1360);
  expect_untouched(make_tcp(6, linux_syn_options(1460), kAck | 0x08), 1360);
  expect_untouched(make_tcp(4, {4, 2, 1, 1}), 1360);  // no MSS option at all
  expect_untouched(make_tcp(4, {}), 1360);            // no options
}

TEST(mss_clamp_option_positions_and_alignment) {
  // After NOPs: even and odd offsets (the value then straddles checksum words).
  for (size_t nops = 0; nops < 8; nops++) {
    Bytes options(nops, 1);
    const Bytes mss = mss_option(1460);
    options.insert(options.end(), mss.begin(), mss.end());
    while (options.size() % 4) options.push_back(0);  // EOL padding
    for (int version : {4, 6}) {
      for (uint32_t seed = 1; seed < 40; seed++) {
        expect_clamped(make_tcp(version, options, kSyn, seed % 5, seed), nops, 1300);
      }
    }
  }
  // After window scale (3 bytes): MSS at offset 3.
  expect_clamped(make_tcp(4, {3, 3, 7, 2, 4, 0x05, 0xB4, 0}), 3, 1200);
  // Last in a 40-byte option list.
  Bytes last(36, 1);
  const Bytes mss = mss_option(9000);
  last.insert(last.end(), mss.begin(), mss.end());
  expect_clamped(make_tcp(4, last), 36, 1400);
}

TEST(mss_clamp_every_value_pair_verifies) {
  std::mt19937 random(3);
  for (int i = 0; i < 3000; i++) {
    const uint16_t mss = static_cast<uint16_t>(random());
    const uint16_t max_mss = static_cast<uint16_t>(random());
    const size_t nops = random() % 4;
    Bytes options(nops, 1);
    const Bytes m = mss_option(mss);
    options.insert(options.end(), m.begin(), m.end());
    while (options.size() % 4) options.push_back(1);
    Bytes p = make_tcp(random() & 1 ? 4 : 6, options, kSyn, random() % 7, static_cast<uint32_t>(random()));
    const bool changed = clamp(p, max_mss);
    if (changed != (mss > max_mss)) CHECK(!"clamp result wrong");
    if (mss_at(p, nops) != (mss > max_mss ? max_mss : mss)) CHECK(!"MSS value wrong");
    if (!tcp_checksum_ok(p)) CHECK(!"checksum broken");
  }
}

TEST(mss_clamp_several_mss_options) {
  // Odd but parseable: every MSS option above the limit is lowered.
  Bytes options = mss_option(1460);
  const Bytes second = mss_option(9000);
  options.insert(options.end(), second.begin(), second.end());
  Bytes p = make_tcp(4, options);
  CHECK(clamp(p, 1400));
  CHECK_EQ(mss_at(p, 0), 1400);
  CHECK_EQ(mss_at(p, 4), 1400);
  CHECK(tcp_checksum_ok(p));
}

TEST(mss_clamp_end_of_list) {
  // Bytes after EOL are padding, not options: garbage there is fine, an MSS there is ignored.
  Bytes options = mss_option(1460);
  const Bytes tail = {0, 0xFF, 0x00, 0x07};
  options.insert(options.end(), tail.begin(), tail.end());
  expect_clamped(make_tcp(4, options), 0, 1400);
  Bytes hidden = {0, 1, 1, 1};
  const Bytes mss = mss_option(1460);
  hidden.insert(hidden.end(), mss.begin(), mss.end());
  expect_untouched(make_tcp(4, hidden), 1400);
}

TEST(mss_clamp_malformed_options_untouched) {
  const std::vector<Bytes> bad = {
      {2, 4, 0x05, 0xB4, 8, 0, 0, 0},       // length 0 after a good MSS: the whole list is refused
      {2, 4, 0x05, 0xB4, 8, 1, 0, 0},       // length 1
      {2, 4, 0x05, 0xB4, 1, 1, 8, 10},      // timestamps running off the end
      {2, 3, 0x05, 0xB4},                   // MSS of length 3
      {2, 5, 0x05, 0xB4, 0, 0, 0, 0},       // MSS of length 5
      {1, 1, 1, 2},                         // MSS kind as the very last byte
      {1, 1, 2, 4},                         // MSS value missing
      {3, 3, 7, 2},                         // MSS without its length byte
      {2, 6, 0x05, 0xB4},                   // length beyond the header
  };
  for (const auto& options : bad) {
    expect_untouched(make_tcp(4, options), 1000);
    expect_untouched(make_tcp(6, options), 1000);
  }
}

TEST(mss_clamp_malformed_packets_untouched) {
  const Bytes good = make_tcp(4, linux_syn_options(1460));
  // The TCP header claims more than the segment holds.
  Bytes p = good;
  p[20 + 12] = 0xF0;
  expect_untouched(p, 1000);
  // Data offset below 5.
  p = good;
  p[20 + 12] = 0x40;
  expect_untouched(p, 1000);
  // The IP total length cuts into the TCP options (IP checksum fixed: it is not the reason).
  p = good;
  put16(p, 2, 20 + 30);
  fix_ipv4_checksum(p);
  expect_untouched(p, 1000);
  // Shorter than its total length claims.
  p = good;
  p.resize(p.size() - 1);
  expect_untouched(p, 1000);
  // A non-first fragment: its bytes are not a TCP header.
  p = good;
  put16(p, 6, 0x0004);
  fix_ipv4_checksum(p);
  expect_untouched(p, 1000);
  // Not TCP.
  p = good;
  p[9] = 17;
  fix_ipv4_checksum(p);
  expect_untouched(p, 1000);
  // IPv6 with a hop-by-hop header before TCP: left alone.
  Bytes v6 = make_tcp(6, linux_syn_options(1460));
  v6[6] = 0;
  expect_untouched(v6, 1000);
  expect_untouched(Bytes{}, 1000);
  expect_untouched(Bytes{0x45}, 1000);
  // A bare TCP header of fewer than 20 bytes.
  p = make_ipv4(Ipv4Spec{}, 20 + 19);
  for (size_t i = 20; i < p.size(); i++) p[i] = 0x02;
  expect_untouched(p, 1000);
}

TEST(mss_clamp_first_fragment_and_padding) {
  // A first fragment (MF, offset 0) holds the header: clamped, and the update stays exact.
  Bytes p = make_tcp(4, linux_syn_options(1460), kSyn, 64);
  put16(p, 6, 0x2000);
  fix_ipv4_checksum(p);
  fix_tcp_checksum(p);
  expect_clamped(p, 0, 1400);
  // Ethernet padding after the packet is neither read as options nor touched.
  Bytes padded = make_tcp(4, {2, 4, 0x05, 0xB4});
  padded.resize(padded.size() + 6, 0x02);
  expect_clamped(padded, 0, 1400);
}

TEST(mss_clamp_partial_checksum_left_for_completion) {
  for (int version : {4, 6}) {
    Bytes p = make_tcp(version, linux_syn_options(1460), kSyn, 10);
    const size_t l4 = tcp_at(p);
    const size_t tcp_length = ip_end(p) - l4;
    // What a vnet_hdr NEEDS_CSUM packet carries: the folded pseudo-header sum, uncomplemented.
    const uint32_t pseudo = version == 4 ? pseudo_header_sum_ipv4(&p[12], &p[16], 6, static_cast<uint32_t>(tcp_length))
                                         : pseudo_header_sum_ipv6(&p[8], &p[24], 6, static_cast<uint32_t>(tcp_length));
    put16(p, l4 + 16, checksum_fold(pseudo));
    const uint16_t partial = get16(p, l4 + 16);
    CHECK(clamp(p, 1300, true));
    CHECK_EQ(mss_at(p, 0), 1300);
    CHECK_EQ(get16(p, l4 + 16), partial);  // untouched
    // Completing it afterwards (as complete_partial_checksum does) gives a correct checksum.
    put16(p, l4 + 16, checksum_finish(checksum_add(&p[l4], tcp_length, 0)));
    CHECK(tcp_checksum_ok(p));
  }
}
