#include "tunnel/gre_codec.h"

#include "wire/checksum.h"
#include "wire/ethernet.h"

namespace ovl {

namespace {

// The least a payload of `protocol` must hold for the caller to read its addresses: the
// Ethernet header, or the fixed IPv4 / IPv6 header. Other protocol types are refused later
// anyway, so they need nothing here.
size_t minimum_payload(uint16_t protocol) {
  switch (protocol) {
    case kGreProtocolEthernet: return kEthernetHeaderSize;
    case kGreProtocolIpv4: return 20;
    case kGreProtocolIpv6: return 40;
    default: return 0;
  }
}

}  // namespace

void gre_encode(uint8_t* header, const GreOptions& options, uint16_t protocol, uint32_t sequence,
                const uint8_t* payload, size_t payload_length, const uint8_t* more, size_t more_length) {
  uint16_t flags = 0;  // version 0, every reserved bit zero
  if (options.checksum) flags |= kGreFlagChecksum;
  if (options.key) flags |= kGreFlagKey;
  if (options.sequence) flags |= kGreFlagSequence;
  store_be16(header, flags);
  store_be16(header + 2, protocol);
  uint8_t* at = header + kGreBaseHeaderSize;
  uint8_t* checksum_field = nullptr;
  if (options.checksum) {
    checksum_field = at;
    store_be32(at, 0);  // the checksum counts as zero while it is computed; Reserved1 is zero
    at += 4;
  }
  if (options.key) {
    store_be32(at, *options.key);
    at += 4;
  }
  if (options.sequence) {
    store_be32(at, sequence);
    at += 4;
  }
  if (checksum_field != nullptr) {
    // The header is a whole number of 16-bit words, so the payload's words line up with the
    // packet's and the two sums can simply be chained (checksum.h: only the last block may be odd).
    uint32_t sum = checksum_add(header, static_cast<size_t>(at - header), 0);
    sum = checksum_add(payload, payload_length, sum);
    if (more_length > 0) sum = checksum_add(more, more_length, sum);
    store_be16(checksum_field, checksum_finish(sum));
  }
}

GreStatus gre_decode(const uint8_t* packet, size_t length, const GreExpectation& expect, GreDecoded* out) {
  if (length < kGreBaseHeaderSize) return GreStatus::malformed;
  const uint16_t flags = load_be16(packet);
  // Bits 6-12 (kGreIgnored) are deliberately not looked at.
  if ((flags & (kGreVersionMask | kGreMustBeZero)) != 0) return GreStatus::malformed;
  const bool has_checksum = (flags & kGreFlagChecksum) != 0;
  const bool has_key = (flags & kGreFlagKey) != 0;
  const bool has_sequence = (flags & kGreFlagSequence) != 0;
  const size_t header_length = kGreBaseHeaderSize + (has_checksum ? 4 : 0) + (has_key ? 4 : 0) + (has_sequence ? 4 : 0);
  const uint16_t protocol = load_be16(packet + 2);
  // Lengths first: a truncated packet is malformed, whatever else is wrong with it (with C set,
  // a cut-off payload would otherwise show up as a bad checksum).
  if (length < header_length || length - header_length < minimum_payload(protocol)) return GreStatus::malformed;

  // Integrity before identity: if the checksum fails, the key and protocol fields cannot be trusted.
  // A packet verifies when the sum over all of it, checksum field included, folds to 0xFFFF (this
  // accepts both representations of zero in the field). Reserved1 is covered but otherwise ignored.
  if (has_checksum) {
    if (checksum_fold(checksum_add(packet, length, 0)) != 0xFFFF) return GreStatus::bad_checksum;
  } else if (expect.checksum_required) {
    return GreStatus::missing_checksum;
  }

  size_t at = kGreBaseHeaderSize + (has_checksum ? 4 : 0);
  std::optional<uint32_t> key;
  if (has_key) {
    key = load_be32(packet + at);
    at += 4;
  }
  std::optional<uint32_t> sequence;
  if (has_sequence) sequence = load_be32(packet + at);

  // std::optional equality: both absent, or both present and equal. So a keyed packet on a
  // keyless tunnel, a keyless packet on a keyed one, and a different key all fail.
  if (key != expect.key) return GreStatus::wrong_key;
  if (!gre_protocol_accepted(expect.payload, protocol)) return GreStatus::unsupported_protocol;

  out->header_length = static_cast<uint32_t>(header_length);
  out->protocol = protocol;
  out->checksum_present = has_checksum;
  out->key = key;
  out->sequence = sequence;
  return GreStatus::ok;
}

}  // namespace ovl
