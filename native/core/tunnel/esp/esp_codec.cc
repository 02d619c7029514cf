#include "tunnel/esp/esp_codec.h"

#include <cstring>

#include "wire/ethernet.h"

namespace ovl {

namespace {

static_assert(kEspIvSize == kEspAeadIvSize && kEspIcvSize == kEspAeadTagSize, "ESP and AEAD sizes agree");

constexpr size_t kMaxAadSize = 12;

// Long enough for prefix, pad length, next header and ICV, and the encrypted part (payload,
// padding, pad length, next header) a whole number of 4-byte words (RFC 4303 §2.4).
bool length_ok(size_t length) {
  return length >= kEspMinPacketSize && (length - kEspPrefixSize - kEspIcvSize) % 4 == 0;
}

// The AAD of a packet whose SPI and (low) sequence number are at `header`: SPI || seq, or with
// ESN SPI || seq high || seq low (RFC 4106 §5, RFC 7634 §2.1). Returns its length.
size_t build_aad(uint8_t* aad, const uint8_t* header, bool esn, uint32_t sequence_high) {
  std::memcpy(aad, header, 4);
  if (!esn) {
    std::memcpy(aad + 4, header + 4, 4);
    return 8;
  }
  store_be32(aad + 4, sequence_high);
  std::memcpy(aad + 8, header + 4, 4);
  return 12;
}

void store_be64(uint8_t* p, uint64_t v) {
  store_be32(p, static_cast<uint32_t>(v >> 32));
  store_be32(p + 4, static_cast<uint32_t>(v));
}

// Whether a payload that the next header says is IPv4, IPv6 or Ethernet holds at least that
// header (and, for IP, says the same version): the caller reads addresses from it.
bool inner_header_ok(uint8_t next_header, const uint8_t* payload, size_t length) {
  switch (next_header) {
    case kEspNextHeaderIpv4: return length >= 20 && (payload[0] >> 4) == 4;
    case kEspNextHeaderIpv6: return length >= 40 && (payload[0] >> 4) == 6;
    case kEspNextHeaderEthernet: return length >= kEthernetHeaderSize;
    default: return false;
  }
}

}  // namespace

namespace {

// esp_encode_with_iv with the payload as `in_place` bytes behind the prefix and then `rest`.
size_t encode(EspAead& aead, uint32_t spi, uint64_t sequence, bool esn, const uint8_t* iv, uint8_t next_header,
              uint8_t* packet, size_t in_place, const uint8_t* rest, size_t rest_length) {
  // 0 is never a sequence number, and without ESN nothing above 2^32 - 1 fits the field: the
  // sender's counter stops before either (esp_sequence.h), this is the last line.
  if (sequence == 0 || (!esn && sequence > 0xFFFFFFFFu)) return 0;
  store_be32(packet, spi);
  store_be32(packet + 4, static_cast<uint32_t>(sequence));
  std::memmove(packet + kEspHeaderSize, iv, kEspIvSize);  // memmove: iv may already be in place

  const size_t payload_length = in_place + rest_length;
  uint8_t* plaintext = packet + kEspPrefixSize;
  uint8_t* trailer = plaintext + payload_length;
  const uint32_t padding = esp_padding_size(payload_length);
  for (uint32_t i = 0; i < padding; i++) trailer[i] = static_cast<uint8_t>(i + 1);
  trailer[padding] = static_cast<uint8_t>(padding);
  trailer[padding + 1] = next_header;
  const size_t encrypted = payload_length + padding + 2;

  uint8_t aad[kMaxAadSize];
  const size_t aad_length = build_aad(aad, packet, esn, static_cast<uint32_t>(sequence >> 32));
  const EspAead::Piece pieces[3] = {{plaintext, plaintext, in_place},
                                    {rest, plaintext + in_place, rest_length},
                                    {trailer, trailer, padding + 2u}};
  if (!aead.seal(packet + kEspHeaderSize, aad, aad_length, pieces, 3, plaintext + encrypted)) return 0;
  return kEspPrefixSize + encrypted + kEspIcvSize;
}

}  // namespace

size_t esp_encode_with_iv(EspAead& aead, uint32_t spi, uint64_t sequence, bool esn, const uint8_t* iv,
                          uint8_t next_header, uint8_t* packet, size_t payload_length) {
  return encode(aead, spi, sequence, esn, iv, next_header, packet, payload_length, nullptr, 0);
}

size_t esp_encode_gather(EspAead& aead, uint32_t spi, uint64_t sequence, bool esn, uint8_t next_header,
                         uint8_t* packet, size_t payload_length, const uint8_t* rest, size_t rest_length) {
  uint8_t iv[kEspIvSize];
  store_be64(iv, sequence);
  return encode(aead, spi, sequence, esn, iv, next_header, packet, payload_length, rest, rest_length);
}

size_t esp_encode(EspAead& aead, uint32_t spi, uint64_t sequence, bool esn, uint8_t next_header, uint8_t* packet,
                  size_t payload_length) {
  uint8_t iv[kEspIvSize];
  store_be64(iv, sequence);
  return esp_encode_with_iv(aead, spi, sequence, esn, iv, next_header, packet, payload_length);
}

EspStatus esp_parse_header(const uint8_t* packet, size_t length, uint32_t* spi, uint32_t* wire_sequence) {
  if (!length_ok(length)) return EspStatus::malformed;
  const uint32_t value = load_be32(packet);
  if (value == 0) return EspStatus::spi_zero;
  *spi = value;
  *wire_sequence = load_be32(packet + 4);
  return EspStatus::ok;
}

EspStatus esp_open(EspAead& aead, bool esn, uint32_t sequence_high, uint8_t* packet, size_t length) {
  if (!length_ok(length)) return EspStatus::malformed;
  uint8_t aad[kMaxAadSize];
  const size_t aad_length = build_aad(aad, packet, esn, sequence_high);
  const size_t encrypted = length - kEspPrefixSize - kEspIcvSize;
  if (!aead.open(packet + kEspHeaderSize, aad, aad_length, packet + kEspPrefixSize, encrypted,
                 packet + length - kEspIcvSize)) {
    return EspStatus::auth_failed;
  }
  return EspStatus::ok;
}

EspStatus esp_parse_trailer(const uint8_t* packet, size_t length, EspDecoded* out) {
  if (!length_ok(length)) return EspStatus::malformed;
  const uint8_t* plaintext = packet + kEspPrefixSize;
  const size_t encrypted = length - kEspPrefixSize - kEspIcvSize;  // >= 4
  const uint8_t pad_length = plaintext[encrypted - 2];
  const uint8_t next_header = plaintext[encrypted - 1];
  if (pad_length > encrypted - 2) return EspStatus::malformed;
  const size_t payload_length = encrypted - 2 - pad_length;
  const uint8_t* padding = plaintext + payload_length;
  for (uint32_t i = 0; i < pad_length; i++) {
    if (padding[i] != static_cast<uint8_t>(i + 1)) return EspStatus::malformed;
  }
  out->next_header = next_header;
  out->pad_length = pad_length;
  out->payload_offset = kEspPrefixSize;
  out->payload_length = static_cast<uint32_t>(payload_length);
  return EspStatus::ok;
}

EspStatus esp_decode(EspAead& aead, ReplayWindow& window, EspPayload payload, uint8_t* packet, size_t length,
                     EspDecoded* out, std::mutex* window_lock) {
  uint32_t spi = 0, wire = 0;
  const EspStatus header = esp_parse_header(packet, length, &spi, &wire);
  if (header != EspStatus::ok) return header;

  // Cheap before costly: a replay is refused before any decryption.
  uint64_t sequence = 0;
  ReplayCheck fresh;
  {
    std::unique_lock<std::mutex> lock = window_lock ? std::unique_lock<std::mutex>(*window_lock) : std::unique_lock<std::mutex>();
    fresh = window.check(wire, &sequence);
  }
  if (fresh != ReplayCheck::fresh) return EspStatus::replay;
  const EspStatus opened = esp_open(aead, window.esn(), static_cast<uint32_t>(sequence >> 32), packet, length);
  if (opened != EspStatus::ok) return opened;
  // Authentic from here on, so the number is spent whatever the contents turn out to be. (With
  // a shared window another worker may have accepted the same number meanwhile: a replay too.)
  bool updated;
  {
    std::unique_lock<std::mutex> lock = window_lock ? std::unique_lock<std::mutex>(*window_lock) : std::unique_lock<std::mutex>();
    updated = window.update(sequence);
  }
  if (!updated) return EspStatus::replay;

  EspDecoded decoded;
  decoded.spi = spi;
  decoded.sequence = sequence;
  const EspStatus trailer = esp_parse_trailer(packet, length, &decoded);
  if (trailer != EspStatus::ok) return trailer;
  if (decoded.next_header == kEspNextHeaderNone) return EspStatus::dummy;
  if (!esp_next_header_accepted(payload, decoded.next_header)) return EspStatus::unsupported_next_header;
  if (!inner_header_ok(decoded.next_header, packet + decoded.payload_offset, decoded.payload_length)) {
    return EspStatus::malformed;
  }
  *out = decoded;
  return EspStatus::ok;
}

}  // namespace ovl
