// Fuzz target: ESP receive (esp_decode) with a fixed SA. Whatever the bytes, it must never read
// or write outside the packet, and must never accept a packet that was not sealed with the
// SA's key: random bytes carry no valid ICV, so esp_decode on the raw input must never say ok,
// and must leave the replay window where it was.
//
// Random bytes never get past the ICV, so the deeper checks (pad length, padding bytes, next
// header, inner header) would go untested. So each input is also sealed: its bytes become the
// whole plaintext (payload, padding, pad length, next header as the input has them) of an
// authentic packet under the SA's key, which is then decoded; if that is accepted, what ok
// promises is checked. Finally the sealed packet gets one bit flipped (position from the
// input), which must fail the ICV, and is sent again as is, which must be a replay.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "tunnel/esp/esp_aead.h"
#include "tunnel/esp/esp_codec.h"
#include "wire/ethernet.h"
#include "tunnel/esp/replay_window.h"

namespace {

using namespace ovl;

void require(bool condition) {
  if (!condition) std::abort();
}

constexpr uint32_t kSpi = 0x2001;

EspAead& sa(EspCipher cipher) {
  static EspAead contexts[3];
  static bool keyed = false;
  if (!keyed) {
    for (EspCipher c : {EspCipher::aes128_gcm, EspCipher::aes256_gcm, EspCipher::chacha20_poly1305}) {
      std::vector<uint8_t> key(esp_key_material_size(c));
      for (size_t i = 0; i < key.size(); i++) key[i] = static_cast<uint8_t>(0xA0 + i);
      contexts[static_cast<int>(c)].set_key(c, key.data(), key.size());
    }
    keyed = true;
  }
  return contexts[static_cast<int>(cipher)];
}

// What esp_decode's ok promises about `packet` (decrypted in place) and `plaintext` (what was sealed).
void check_accepted(const std::vector<uint8_t>& packet, const std::vector<uint8_t>& plaintext, EspPayload device,
                    const EspDecoded& decoded, uint64_t sequence) {
  require(decoded.spi == kSpi && decoded.sequence == sequence);
  require(decoded.payload_offset == kEspPrefixSize);
  require(size_t{decoded.payload_length} + decoded.pad_length + 2 == plaintext.size());
  require(decoded.next_header == plaintext.back() && decoded.pad_length == plaintext[plaintext.size() - 2]);
  require(esp_next_header_accepted(device, decoded.next_header));
  for (uint32_t i = 0; i < decoded.pad_length; i++) require(plaintext[decoded.payload_length + i] == i + 1);
  require(std::memcmp(packet.data() + kEspPrefixSize, plaintext.data(), plaintext.size()) == 0);
  const uint8_t* inner = packet.data() + decoded.payload_offset;
  if (decoded.next_header == kEspNextHeaderIpv4) require(decoded.payload_length >= 20 && inner[0] >> 4 == 4);
  if (decoded.next_header == kEspNextHeaderIpv6) require(decoded.payload_length >= 40 && inner[0] >> 4 == 6);
  if (decoded.next_header == kEspNextHeaderEthernet) require(decoded.payload_length >= kEthernetHeaderSize);
  // Touch all of the payload, as delivering it will.
  volatile uint8_t sum = 0;
  for (uint32_t i = 0; i < decoded.payload_length; i++) sum = static_cast<uint8_t>(sum + inner[i]);
  (void)sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  const EspCipher cipher = static_cast<EspCipher>(selector % 3);
  const bool esn = (selector & 0x04) != 0;
  const EspPayload device = (selector & 0x08) ? EspPayload::ethernet : EspPayload::ip;
  EspAead& aead = sa(cipher);

  // 1. The raw bytes as a packet: never accepted, the window never moves.
  {
    std::vector<uint8_t> packet(data, data + size);  // exact size: ASan sees overreads
    ReplayWindow window(esn);
    EspDecoded decoded;
    const EspStatus status = esp_decode(aead, window, device, packet.data(), packet.size(), &decoded);
    require(status != EspStatus::ok && status != EspStatus::dummy && status != EspStatus::unsupported_next_header);
    require(window.top() == 0);
    uint32_t spi = 0, wire = 0;
    (void)esp_parse_header(packet.data(), packet.size(), &spi, &wire);
  }

  // 2. The bytes (after the selector) as the plaintext of an authentic packet. The plaintext
  // must be a whole number of 4-byte words, at least one; trim to that.
  size_t plain_size = (size - 1) & ~size_t{3};
  if (plain_size == 0) return 0;
  std::vector<uint8_t> plaintext(data + 1, data + 1 + plain_size);
  // Random trailers are nearly always malformed; half the time, repair this one into a
  // well-formed trailer (minimal 1-2-3 padding, a next header the selector picks, the IP
  // version its next header names) so that the accepting path is covered too.
  if (selector & 0x20) {
    const uint8_t next_headers[4] = {kEspNextHeaderIpv4, kEspNextHeaderIpv6, kEspNextHeaderEthernet, kEspNextHeaderNone};
    const uint8_t next_header = next_headers[selector >> 6];
    const size_t pad_length = std::min<size_t>(plaintext[plain_size - 2] % 4, plain_size - 2);
    for (size_t i = 0; i < pad_length; i++) plaintext[plain_size - 2 - pad_length + i] = static_cast<uint8_t>(i + 1);
    plaintext[plain_size - 2] = static_cast<uint8_t>(pad_length);
    plaintext[plain_size - 1] = next_header;
    if (plain_size - 2 - pad_length > 0) {
      if (next_header == kEspNextHeaderIpv4) plaintext[0] = static_cast<uint8_t>(0x40 | (plaintext[0] & 0x0F));
      if (next_header == kEspNextHeaderIpv6) plaintext[0] = static_cast<uint8_t>(0x60 | (plaintext[0] & 0x0F));
    }
  }
  // The sequence number: small, or (with ESN) past a 2^32 boundary, from the selector.
  const uint64_t sequence = esn && (selector & 0x10) ? (uint64_t{3} << 32) + selector : uint64_t{1} + selector;

  std::vector<uint8_t> sealed(kEspPrefixSize + plain_size + kEspIcvSize);
  store_be32(sealed.data(), kSpi);
  store_be32(sealed.data() + 4, static_cast<uint32_t>(sequence));
  for (int i = 0; i < 8; i++) sealed[8 + i] = static_cast<uint8_t>(sequence >> (56 - 8 * i));
  std::memcpy(sealed.data() + kEspPrefixSize, plaintext.data(), plain_size);
  uint8_t aad[12];
  size_t aad_length = 8;
  std::memcpy(aad, sealed.data(), 4);
  if (esn) {
    store_be32(aad + 4, static_cast<uint32_t>(sequence >> 32));
    std::memcpy(aad + 8, sealed.data() + 4, 4);
    aad_length = 12;
  } else {
    std::memcpy(aad + 4, sealed.data() + 4, 4);
  }
  require(aead.seal(sealed.data() + 8, aad, aad_length, sealed.data() + kEspPrefixSize, plain_size,
                    sealed.data() + kEspPrefixSize + plain_size));

  ReplayWindow window(esn);
  if (sequence > (uint64_t{1} << 32)) require(window.update(sequence - 100));
  const uint64_t top_before = window.top();

  // A flipped bit anywhere: the ICV fails and the window stays.
  {
    std::vector<uint8_t> flipped(sealed);
    const size_t bit = (size_t{data[size - 1]} << 8 | data[size / 2]) % (flipped.size() * 8);
    flipped[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    EspDecoded decoded;
    const EspStatus status = esp_decode(aead, window, device, flipped.data(), flipped.size(), &decoded);
    // Flipping the sequence number can make it a number the window refuses outright.
    require(status == EspStatus::auth_failed || status == EspStatus::replay);
    require(window.top() == top_before);
  }

  // The authentic packet: whatever its trailer says, it is authentic, so the window takes the
  // number, and only a well-formed trailer for this device is delivered.
  std::vector<uint8_t> packet(sealed);
  EspDecoded decoded;
  const EspStatus status = esp_decode(aead, window, device, packet.data(), packet.size(), &decoded);
  require(status == EspStatus::ok || status == EspStatus::malformed || status == EspStatus::dummy ||
          status == EspStatus::unsupported_next_header);
  require(window.top() == sequence);
  if (status == EspStatus::ok) check_accepted(packet, plaintext, device, decoded, sequence);
  const uint8_t next_header = plaintext.back();
  const uint8_t pad_length = plaintext[plain_size - 2];
  if (pad_length + size_t{2} > plain_size) require(status == EspStatus::malformed);
  if (status == EspStatus::dummy) require(next_header == kEspNextHeaderNone);
  if (status == EspStatus::unsupported_next_header) require(!esp_next_header_accepted(device, next_header));

  // And again: a replay, refused before decryption (the bytes are left as they came).
  std::vector<uint8_t> replayed(sealed);
  require(esp_decode(aead, window, device, replayed.data(), replayed.size(), &decoded) == EspStatus::replay);
  require(replayed == sealed);
  return 0;
}
