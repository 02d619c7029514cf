// Fuzz target: GRE header validation (gre_decode) on arbitrary bytes must never read out of
// bounds, and whatever it accepts must be consistent: the header lies within the input, the
// payload holds the header its protocol names, the key and protocol are the expected ones, and
// encoding the decoded fields again gives a header that decodes to the same fields.
//
// Random bytes almost never pass the flags and protocol checks, so each input is also tried
// "repaired": version and must-be-zero bits cleared, a carried protocol type written in, and
// (sometimes) a correct checksum. That keeps the accepting paths covered even under the
// random-input stand-in for libFuzzer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "base/flow_hash.h"
#include "tunnel/gre_codec.h"

namespace {

using namespace ovl;

void require(bool condition) {
  if (!condition) std::abort();
}

size_t minimum_payload(uint16_t protocol) {
  return protocol == kGreProtocolEthernet ? 14 : protocol == kGreProtocolIpv4 ? 20 : protocol == kGreProtocolIpv6 ? 40 : 0;
}

// Decodes `packet` (an exact-size allocation) with `expect` and checks what an ok promises.
void check(const std::vector<uint8_t>& packet, const GreExpectation& expect) {
  GreDecoded decoded;
  if (gre_decode(packet.data(), packet.size(), expect, &decoded) != GreStatus::ok) return;
  const size_t size = packet.size();
  const uint16_t flags = load_be16(packet.data());
  const bool c = flags & kGreFlagChecksum, k = flags & kGreFlagKey, s = flags & kGreFlagSequence;
  require((flags & (kGreVersionMask | kGreMustBeZero)) == 0);
  require(decoded.header_length == kGreBaseHeaderSize + 4u * static_cast<uint32_t>(c + k + s));
  require(decoded.header_length <= size);
  require(size - decoded.header_length >= minimum_payload(decoded.protocol));
  require(gre_protocol_accepted(expect.payload, decoded.protocol));
  require(decoded.key == expect.key);
  require(decoded.checksum_present == c);
  require(decoded.sequence.has_value() == s);
  require(!expect.checksum_required || c);
  if (c) require(checksum_fold(checksum_add(packet.data(), size, 0)) == 0xFFFF);

  // Touch the payload the way the worker will (its addresses, then all of it).
  const uint8_t* inner = packet.data() + decoded.header_length;
  const size_t inner_length = size - decoded.header_length;
  volatile uint32_t hash = decoded.protocol == kGreProtocolEthernet ? ethernet_flow_hash(inner, inner_length)
                                                                    : ip_flow_hash(inner, inner_length);
  volatile uint64_t mac = decoded.protocol == kGreProtocolEthernet ? mac_key(eth_source(inner)) : 0;
  (void)hash;
  (void)mac;

  // Encode the decoded fields in place in front of a copy of the payload and decode that.
  GreOptions options;
  options.checksum = decoded.checksum_present;
  options.key = decoded.key;
  options.sequence = decoded.sequence.has_value();
  const uint32_t header_size = gre_header_size(options);
  require(header_size == decoded.header_length);
  std::vector<uint8_t> again(header_size + inner_length);
  std::memcpy(again.data() + header_size, inner, inner_length);
  gre_encode(again.data(), options, decoded.protocol, decoded.sequence.value_or(0), again.data() + header_size,
             inner_length);
  GreDecoded redecoded;
  require(gre_decode(again.data(), again.size(), expect, &redecoded) == GreStatus::ok);
  require(redecoded.header_length == decoded.header_length && redecoded.protocol == decoded.protocol &&
          redecoded.key == decoded.key && redecoded.sequence == decoded.sequence &&
          redecoded.checksum_present == decoded.checksum_present);
  // Same header bytes, except what the receiver ignores: bits 6-12, Reserved1 and the checksum
  // (which covers them, and may be the other representation of zero).
  require(((load_be16(again.data()) ^ flags) & ~kGreIgnored) == 0);
  require(std::memcmp(again.data() + 2, packet.data() + 2, 2) == 0);
  const size_t fields = c ? 8 : 4;
  require(std::memcmp(again.data() + fields, packet.data() + fields, header_size - fields) == 0);
}

// Several receivers: keyless IP, keyed Ethernet (key taken from where a K header has it),
// key 0 with a required checksum, and the key the packet would carry with or without C.
void check_expectations(const std::vector<uint8_t>& packet) {
  const size_t size = packet.size();
  std::vector<GreExpectation> expectations(4);
  expectations[0].payload = GrePayload::ip;
  expectations[1].payload = GrePayload::ethernet;
  expectations[1].key = size >= 8 ? load_be32(packet.data() + 4) : 42;
  expectations[2].payload = GrePayload::ip;
  expectations[2].key = 0;
  expectations[2].checksum_required = true;
  expectations[3].payload = GrePayload::ethernet;
  expectations[3].key = size >= 12 ? load_be32(packet.data() + 8) : 7;
  for (const auto& expect : expectations) check(packet, expect);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> raw(data, data + size);
  check_expectations(raw);
  if (size < kGreBaseHeaderSize) return 0;

  std::vector<uint8_t> repaired(raw);
  const uint8_t selector = data[size - 1];
  uint16_t flags = load_be16(repaired.data());
  flags = static_cast<uint16_t>(flags & ~(kGreVersionMask | kGreMustBeZero));
  store_be16(repaired.data(), flags);
  const uint16_t protocols[3] = {kGreProtocolIpv4, kGreProtocolIpv6, kGreProtocolEthernet};
  const uint16_t protocol = protocols[selector % 3];
  store_be16(repaired.data() + 2, protocol);
  const bool c = flags & kGreFlagChecksum;
  if (c && size >= 8 && (selector & 0x10)) {
    store_be16(repaired.data() + 4, 0);
    store_be16(repaired.data() + 4, checksum_finish(checksum_add(repaired.data(), size, 0)));
  }
  GreExpectation expect;
  expect.payload = protocol == kGreProtocolEthernet ? GrePayload::ethernet : GrePayload::ip;
  expect.checksum_required = (selector & 0x20) != 0;
  const size_t key_at = kGreBaseHeaderSize + (c ? 4 : 0);
  if ((flags & kGreFlagKey) && size >= key_at + 4) expect.key = load_be32(repaired.data() + key_at);
  check(repaired, expect);
  check_expectations(repaired);
  return 0;
}
