// Fuzz target: a route table built from prefixes decoded out of the input must answer every lookup as
// a linear scan over the same prefixes does, and must refuse exactly the inputs it should (a length
// over 32/128, one prefix given to two peers). The input is also fed to the CIDR parser.
//
// Layout: 16 bytes of base address, then 4-byte records [kind, a, b, c]. Every address is the base
// with a few bits flipped, so prefixes nest and lookups land near them. kind bit 0 picks the family,
// bit 7 a lookup (bits a, b, c flipped) over a prefix (bit b, and bit c if kind bit 6; length a, with
// 255 meaning one too long; peer from kind bits 1-3).
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "tables/route_table.h"
#include "system/sys_error.h"

namespace {

using ovl::RoutePrefix;
using ovl::RouteTable;

struct Probe {
  bool ipv6;
  std::array<uint8_t, 16> address;
};

bool contains(const RoutePrefix& p, const uint8_t* address) {
  for (unsigned bit = 0; bit < p.length; bit++) {
    const uint8_t mask = static_cast<uint8_t>(0x80 >> (bit % 8));
    if ((p.address[bit / 8] & mask) != (address[bit / 8] & mask)) return false;
  }
  return true;
}

uint32_t linear_lookup(const std::vector<RoutePrefix>& prefixes, bool ipv6, const uint8_t* address) {
  int best_length = -1;
  uint32_t best = RouteTable::kNoRoute;
  for (const RoutePrefix& p : prefixes) {
    if (p.ipv6 == ipv6 && static_cast<int>(p.length) > best_length && contains(p, address)) {
      best_length = p.length;
      best = p.peer;
    }
  }
  return best;
}

void flip(std::array<uint8_t, 16>* address, unsigned bit) { (*address)[bit / 8] ^= static_cast<uint8_t>(0x80 >> (bit % 8)); }

std::array<uint8_t, 16> masked(std::array<uint8_t, 16> address, unsigned length) {
  for (unsigned bit = length; bit < 128; bit++) address[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
  return address;
}

[[noreturn]] void fail(const char* what, const Probe* probe, uint32_t got, uint32_t expected) {
  std::fprintf(stderr, "fuzz_route_table: %s", what);
  if (probe) {
    std::fprintf(stderr, " (%s ", probe->ipv6 ? "v6" : "v4");
    for (unsigned i = 0; i < (probe->ipv6 ? 16u : 4u); i++) std::fprintf(stderr, "%02x", probe->address[i]);
    std::fprintf(stderr, ": %u, expected %u)", got, expected);
  }
  std::fprintf(stderr, "\n");
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    const auto parsed = ovl::parse_route_prefix(std::string(reinterpret_cast<const char*>(data), size < 64 ? size : 64), 1);
    if (parsed && parsed->length > (parsed->ipv6 ? 128 : 32)) fail("parser accepted a long prefix", nullptr, 0, 0);
  }
  if (size < 16) return 0;
  std::array<uint8_t, 16> base;
  std::memcpy(base.data(), data, 16);
  data += 16;
  size -= 16;

  std::vector<RoutePrefix> prefixes;
  std::vector<Probe> probes;
  bool invalid = false;
  for (; size >= 4; data += 4, size -= 4) {
    const uint8_t kind = data[0], a = data[1], b = data[2], c = data[3];
    const bool ipv6 = kind & 1;
    const unsigned bits = ipv6 ? 128 : 32;
    std::array<uint8_t, 16> address = base;
    if (!ipv6) std::memset(address.data() + 4, 0, 12);
    flip(&address, b % bits);
    if (kind & 0x80) {
      flip(&address, a % bits);
      flip(&address, c % bits);
      probes.push_back(Probe{ipv6, address});
    } else {
      if (kind & 0x40) flip(&address, c % bits);
      unsigned length = a % (bits + 1);
      if (a == 255) {
        length = bits + 1;
        invalid = true;
      }
      const unsigned peer = (kind >> 1) & 7;
      prefixes.push_back(RoutePrefix{address, static_cast<uint8_t>(length), ipv6, peer == 7 ? RouteTable::kMaxPeer : peer});
    }
  }

  // What the table must refuse, and how many distinct prefixes it must hold.
  std::map<std::tuple<bool, unsigned, std::array<uint8_t, 16>>, uint32_t> distinct;
  for (const RoutePrefix& p : prefixes) {
    if (p.length > (p.ipv6 ? 128 : 32)) continue;
    const auto inserted = distinct.emplace(std::make_tuple(p.ipv6, unsigned{p.length}, masked(p.address, p.length)), p.peer);
    if (!inserted.second && inserted.first->second != p.peer) invalid = true;
  }

  std::unique_ptr<RouteTable> table;
  try {
    table = std::make_unique<RouteTable>(prefixes);
  } catch (const ovl::InvalidArgument&) {
    if (!invalid) fail("refused a valid route set", nullptr, 0, 0);
    return 0;
  }
  if (invalid) fail("accepted an invalid route set", nullptr, 0, 0);
  if (table->size() != distinct.size()) fail("wrong size", nullptr, static_cast<uint32_t>(table->size()), static_cast<uint32_t>(distinct.size()));

  // The decoded lookups, and every prefix's own address (each family, so the other one is probed too).
  for (const RoutePrefix& p : prefixes) {
    probes.push_back(Probe{p.ipv6, p.address});
    probes.push_back(Probe{!p.ipv6, p.address});
  }
  for (const Probe& probe : probes) {
    const uint32_t expected = linear_lookup(prefixes, probe.ipv6, probe.address.data());
    // An exactly sized copy, so ASan sees a lookup reading past its family's address length.
    const size_t bytes = probe.ipv6 ? 16 : 4;
    const std::unique_ptr<uint8_t[]> exact(new uint8_t[bytes]);
    std::memcpy(exact.get(), probe.address.data(), bytes);
    const uint32_t got = probe.ipv6 ? table->lookup_v6(exact.get()) : table->lookup_v4(exact.get());
    if (got != expected) fail("lookup differs from a linear scan", &probe, got, expected);
  }
  return 0;
}
