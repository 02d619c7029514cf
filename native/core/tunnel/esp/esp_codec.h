// ESP (RFC 4303) in tunnel mode with the AEAD ciphers of esp_aead.h: AES-GCM (RFC 4106) and
// ChaCha20-Poly1305 (RFC 7634). The same packet runs directly over IP (protocol 50) and inside
// UDP port 4500 (RFC 3948); this codec sees only the ESP packet.
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  -+
//   |               Security Parameters Index (SPI)                 |   | header: in the AAD
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+   |
//   |          Sequence Number (the low 32 bits with ESN)           |   |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  -+
//   |                    IV (8 bytes, in the clear)                 |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  -+
//   |   Payload: the inner IP packet or Ethernet frame (variable)   |   |
//   +               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+   | encrypted
//   |               |     Padding 1, 2, 3, ... (0-255 bytes)        |   |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+   |
//   |                               |  Pad Length   | Next Header   |   |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  -+
//   |                        ICV (16 bytes)                         |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// AAD: SPI || sequence number (|| its inferred high half with ESN); IV: the 64-bit sequence
// number; padding 1, 2, 3, ... to 4-byte alignment; next header 4/41 (IP) or 143 (Ethernet), 59
// a dummy packet. Why each: native/core/NOTES.md.
//
// Receive order, the first failure wins (esp_decode):
//   length, alignment (malformed) and SPI 0 (spi_zero)  ->  caller looks the SPI up (unknownSpi)
//   -> replay window check (replay)  ->  ICV (auth_failed)  ->  replay window update (replay)
//   -> pad length and padding bytes (malformed)  ->  next header 59 (dummy)
//   -> next header for this device (unsupported_next_header)  ->  inner header (malformed).
// The ESP tunnel (tunnel/esp.cc) counts malformed, dummy and unsupported_next_header as
// malformed, spi_zero as unknownSpi, replay as replay and auth_failed as authFailed.
//
// Buffer layout for encode, with a PacketBuffer whose payload starts at data():
//   uint8_t* esp = buffer.push_front(kEspPrefixSize);      // 16 bytes: SPI, seq, IV
//   size_t n = esp_encode(aead, spi, seq, esn, nh, esp, payload_length);
//   buffer.length = n;                                      // payload_length + 16 + trailer
// which needs kEspPrefixSize bytes of headroom in front of the payload (outer IP/UDP headers
// go in front of that) and esp_trailer_size(payload_length) <= kEspMaxTrailerSize (21) bytes
// after it. The payload is encrypted in place; nothing is copied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>

#include "tunnel/esp/esp_aead.h"
#include "tunnel/esp/replay_window.h"
#include "wire/protocols.h"

namespace ovl {

constexpr uint32_t kEspHeaderSize = 8;                    // SPI, sequence number
constexpr uint32_t kEspIvSize = 8;                        // == kEspAeadIvSize
constexpr uint32_t kEspPrefixSize = kEspHeaderSize + kEspIvSize;  // in front of the payload
constexpr uint32_t kEspIcvSize = 16;                      // == kEspAeadTagSize
constexpr uint32_t kEspMaxTrailerSize = 3 + 2 + kEspIcvSize;  // what we append: padding, pad length, next header, ICV
// The shortest packet there can be: prefix, one 4-byte word (pad length and next header after
// at most 2 bytes of payload or padding), ICV.
constexpr uint32_t kEspMinPacketSize = kEspPrefixSize + 4 + kEspIcvSize;

constexpr uint8_t kEspNextHeaderIpv4 = kIpProtocolIpip;
constexpr uint8_t kEspNextHeaderIpv6 = kIpProtocolIpv6;
constexpr uint8_t kEspNextHeaderNone = kIpProtocolNone;  // dummy packet
constexpr uint8_t kEspNextHeaderEthernet = kIpProtocolEthernet;

// Which payloads a device carries: IP packets (TUN) or Ethernet frames (TAP, packet).
enum class EspPayload { ip, ethernet };

enum class EspStatus {
  ok,
  malformed,                // truncated, ciphertext not a multiple of 4, bad pad length or padding bytes, short inner header
  spi_zero,                 // SPI 0 is reserved (RFC 4303 §2.1): no SA can have it
  replay,                   // duplicate, or left of the replay window
  auth_failed,              // the ICV does not verify
  dummy,                    // next header 59: an authentic packet that carries nothing
  unsupported_next_header,  // a next header this device does not carry
};

// What a good packet carried. The payload is at packet + payload_offset, decrypted in place.
struct EspDecoded {
  uint32_t spi = 0;
  uint64_t sequence = 0;        // the full number (with ESN, the inferred high bits too)
  uint8_t next_header = 0;
  uint8_t pad_length = 0;
  uint32_t payload_offset = 0;  // always kEspPrefixSize
  uint32_t payload_length = 0;  // up to the padding: inner packet and any TFC padding
};

// The padding that aligns a payload of `payload_length` bytes: 0 to 3 bytes.
inline uint32_t esp_padding_size(size_t payload_length) {
  return static_cast<uint32_t>((4 - ((payload_length + 2) & 3)) & 3);
}
// What esp_encode writes after the payload: padding, pad length, next header, ICV.
inline uint32_t esp_trailer_size(size_t payload_length) { return esp_padding_size(payload_length) + 2 + kEspIcvSize; }
// The whole ESP packet esp_encode makes of a payload.
inline size_t esp_encoded_size(size_t payload_length) {
  return kEspPrefixSize + payload_length + esp_trailer_size(payload_length);
}

// Encodes in place. `packet` points at kEspPrefixSize bytes for the header and IV, followed by
// the `payload_length` bytes of payload, followed by room for esp_trailer_size(payload_length)
// bytes. Writes SPI, sequence number (its low 32 bits), IV = `sequence` (big-endian), padding,
// pad length and `next_header`, encrypts, and appends the ICV. Returns the packet's length,
// esp_encoded_size(payload_length); 0 if it refuses: sequence 0, a sequence above 2^32 - 1
// without ESN, or a failure inside OpenSSL. `sequence` comes from the SA's EspSequence.
size_t esp_encode(EspAead& aead, uint32_t spi, uint64_t sequence, bool esn, uint8_t next_header, uint8_t* packet,
                  size_t payload_length);

// esp_encode with the IV given instead of derived from the sequence number (the published
// test vectors use arbitrary IVs). The caller must never repeat an IV under one key.
size_t esp_encode_with_iv(EspAead& aead, uint32_t spi, uint64_t sequence, bool esn, const uint8_t* iv,
                          uint8_t next_header, uint8_t* packet, size_t payload_length);

// esp_encode of a payload in two pieces: the `payload_length` bytes behind the prefix, then the
// `rest_length` bytes at `rest` (a segment's payload where the device read put it), which the
// cipher reads from there and writes behind the first piece: encrypting is the only pass over
// them, no copy comes first. `packet` needs room for esp_encoded_size(payload_length +
// rest_length) bytes; `rest` must not overlap it. Returns what esp_encode would for the
// concatenated payload, which is also what it produces.
size_t esp_encode_gather(EspAead& aead, uint32_t spi, uint64_t sequence, bool esn, uint8_t next_header,
                         uint8_t* packet, size_t payload_length, const uint8_t* rest, size_t rest_length);

// First look at a received packet of `length` bytes: reads SPI and the sequence number as
// sent. malformed if it is shorter than kEspMinPacketSize or its ciphertext is not a multiple
// of 4 bytes; spi_zero for SPI 0. The caller then finds the SA for the SPI.
EspStatus esp_parse_header(const uint8_t* packet, size_t length, uint32_t* spi, uint32_t* wire_sequence);

// Receives a packet for the SA whose key `aead` and replay window `window` hold (the window
// also says whether the SA uses ESN), on a device that carries `payload`. Decrypts in place.
// On ok fills *out; on anything else the packet must be dropped (its bytes may have been
// decrypted with a key that did not fit) and *out is left alone. Order and statuses: see the top.
// `window_lock`, when the window is shared (workers receiving one SA), is held around the
// window's check and its update, not around the decryption between them.
EspStatus esp_decode(EspAead& aead, ReplayWindow& window, EspPayload payload, uint8_t* packet, size_t length,
                     EspDecoded* out, std::mutex* window_lock = nullptr);

// The steps esp_decode is made of, for callers that keep the replay state themselves and for
// tests. esp_open checks length and alignment, builds the AAD from the packet's SPI and
// sequence number (with `sequence_high` when `esn`), verifies the ICV and decrypts:
// ok, malformed (length) or auth_failed. esp_parse_trailer then checks pad length and padding
// bytes of a decrypted packet and fills next_header, pad_length, payload_offset and
// payload_length: ok or malformed. Neither looks at the next header's value.
EspStatus esp_open(EspAead& aead, bool esn, uint32_t sequence_high, uint8_t* packet, size_t length);
EspStatus esp_parse_trailer(const uint8_t* packet, size_t length, EspDecoded* out);

// Whether a device that carries `payload` accepts `next_header` (59 is never accepted).
inline bool esp_next_header_accepted(EspPayload payload, uint8_t next_header) {
  if (payload == EspPayload::ethernet) return next_header == kEspNextHeaderEthernet;
  return next_header == kEspNextHeaderIpv4 || next_header == kEspNextHeaderIpv6;
}

}  // namespace ovl
