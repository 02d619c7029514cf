// GRE header codec: RFC 2784 with the key and sequence number extensions of RFC 2890. The
// same header runs directly over IP (protocol 47, mode `gre`) and inside UDP port 4754 (RFC
// 8086, mode `gre-udp`); this codec sees only the GRE header and what follows it.
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |C| |K|S| Reserved0       | Ver |         Protocol Type         |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |      Checksum (optional)      |       Reserved1 (Optional)    |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                         Key (optional)                        |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                 Sequence Number (Optional)                    |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Each of C, K and S adds one 32-bit word, in that order. The header is 4 to 16 bytes.
//
// What we accept, and why:
// - Ver must be 0. Version 1 is PPTP's enhanced GRE (RFC 2637), a different header.
// - Bits 1-5 must be zero (RFC 2784 §2.3: "A receiver MUST discard a packet where any of bits
//   1-5 are non-zero, unless that receiver implements RFC 1701").
//   RFC 2890 gives bits 2 and 3 a meaning (K and S), so the bits that remain are 1, 4 and 5:
//   RFC 1701's Routing Present, Strict Source Route and the top bit of its Recursion Control.
//   We do not implement RFC 1701 routing, so a packet that asks for it cannot be honoured.
//   (Linux checks only R and Ver; we are stricter on bits 4 and 5, as the RFC asks.)
// - Bits 6-12 "MUST be sent as zero and MUST be ignored on receipt" (RFC 2784 §2.3): ignored.
// - Reserved1 "MUST be transmitted as zero" (RFC 2784 §2.6) and the RFC says nothing about
//   receipt. Its RFC 1701 meaning (Offset) only applies with R set, which we drop, so it is
//   ignored on receipt, as Linux does. It is still covered by the checksum.
// - A checksum that is present is always verified, whether or not the expectation requires
//   one: RFC 2784 §2.2 says a compliant implementation MUST accept and process the field.
// - Keys (RFC 2890 §2.1) identify the tunnel: absent and present-with-value-0 are different
//   keys, and a packet must carry exactly the key the expectation names, or none if it names
//   none (Linux's ip_tunnel_key_match).
// - Sequence numbers (RFC 2890 §2.2) are only decoded here. What to do with them needs
//   per-flow receiver state (the last sequence number delivered, per key), which a pure codec
//   does not keep: the RFC says the receiver MUST use them to establish transmit order, that
//   an out-of-sequence packet SHOULD be silently discarded, and that reordering (buffering up
//   to OUTOFORDER_TIMER) is optional, a MAY. The worker decides; the codec hands it the number.
// - The payload must be at least the fixed header that its protocol type names (Ethernet 14,
//   IPv4 20, IPv6 40 bytes): the caller reads addresses from it.
//
// The checksum (RFC 2784 §2.5) is the RFC 1071 checksum of the GRE header and the payload,
// with the checksum field taken as zero. So `length` passed to gre_decode must be exactly the
// GRE packet (the delivery header's length minus its header), without link-layer padding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "wire/protocols.h"

namespace ovl {

constexpr uint32_t kGreBaseHeaderSize = 4;
constexpr uint32_t kGreMaxHeaderSize = 16;
constexpr uint16_t kGreProtocolIpv4 = 0x0800;
constexpr uint16_t kGreProtocolIpv6 = 0x86DD;
constexpr uint16_t kGreProtocolEthernet = kEtherTypeTransparentEthernet;

// The first 16 bits, as a big-endian number.
constexpr uint16_t kGreFlagChecksum = 0x8000;  // C, bit 0
constexpr uint16_t kGreFlagKey = 0x2000;       // K, bit 2
constexpr uint16_t kGreFlagSequence = 0x1000;  // S, bit 3
constexpr uint16_t kGreMustBeZero = 0x4C00;    // bits 1, 4 and 5: a receiver MUST discard
constexpr uint16_t kGreIgnored = 0x03F8;       // bits 6-12: sent as zero, ignored on receipt
constexpr uint16_t kGreVersionMask = 0x0007;   // bits 13-15

// What a sender puts in.
struct GreOptions {
  bool checksum = false;
  std::optional<uint32_t> key;
  bool sequence = false;
};

// Which payloads a device carries: IP packets (TUN) or Ethernet frames (TAP, packet).
enum class GrePayload { ip, ethernet };

// What a receiver insists on.
struct GreExpectation {
  std::optional<uint32_t> key;     // exactly this key, or no key at all
  bool checksum_required = false;  // drop packets without C (a present checksum is always verified)
  GrePayload payload = GrePayload::ip;
};

// What a good packet carried.
struct GreDecoded {
  uint32_t header_length = 0;  // where the payload starts
  uint16_t protocol = 0;
  bool checksum_present = false;
  std::optional<uint32_t> key;
  std::optional<uint32_t> sequence;
};

enum class GreStatus {
  ok,
  malformed,             // truncated header or payload, version not 0, or bit 1, 4 or 5 set
  bad_checksum,          // C set and the checksum does not verify
  missing_checksum,      // C clear, but the expectation requires a checksum
  wrong_key,             // key absent, present or different from the expected one
  unsupported_protocol,  // a protocol type this device does not carry
};

// 4 bytes, plus 4 for each of C, K and S.
inline uint32_t gre_header_size(const GreOptions& options) {
  return kGreBaseHeaderSize + (options.checksum ? 4 : 0) + (options.key ? 4 : 0) + (options.sequence ? 4 : 0);
}

// Writes the gre_header_size(options) bytes of header at `header`. `sequence` is used only with
// options.sequence (RFC 2890: the first packet of a flow carries 0, then a counter modulo 2^32).
// With options.checksum, the checksum covers this header and the `payload_length` bytes at
// `payload`; those are normally right behind the header (header + gre_header_size(options)),
// but need not be. Without it, `payload` is not read and may be null. A payload in two pieces
// (a segment's headers, then its payload where it lies) passes the second as `more`: the first
// piece must then be a whole number of 16-bit words, as every protocol header is.
void gre_encode(uint8_t* header, const GreOptions& options, uint16_t protocol, uint32_t sequence,
                const uint8_t* payload, size_t payload_length, const uint8_t* more = nullptr,
                size_t more_length = 0);

// Validates a GRE packet of `length` bytes (header + payload) against `expect`. On ok, fills
// *out; otherwise leaves it alone. Checks in this order, the first failure wins: version,
// bits 1/4/5 and lengths (malformed), checksum (bad_checksum, missing_checksum), key
// (wrong_key), protocol type (unsupported_protocol).
GreStatus gre_decode(const uint8_t* packet, size_t length, const GreExpectation& expect, GreDecoded* out);

// Whether a device that carries `payload` accepts `protocol`.
inline bool gre_protocol_accepted(GrePayload payload, uint16_t protocol) {
  if (payload == GrePayload::ethernet) return protocol == kGreProtocolEthernet;
  return protocol == kGreProtocolIpv4 || protocol == kGreProtocolIpv6;
}

}  // namespace ovl
