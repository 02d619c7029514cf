// ESP codec: round trips for every cipher with and without ESN, the in-place buffer contract,
// and every way esp_decode refuses a packet, with the replay window moved only by authentic
// packets.
#include "tunnel/esp/esp_codec.h"

#include <algorithm>
#include <cstring>
#include <random>

#include "tunnel/esp/esp_aead.h"
#include "wire/ethernet.h"
#include "tunnel/esp/replay_window.h"
#include "system/sys_error.h"
#include "esp_test_util.h"
#include "test.h"

using namespace ovl;
using ovl_test::Bytes;

namespace {

constexpr EspCipher kCiphers[] = {EspCipher::aes128_gcm, EspCipher::aes256_gcm, EspCipher::chacha20_poly1305};
constexpr uint32_t kSpi = 0x00001001;

Bytes key_material(EspCipher cipher, uint8_t seed = 1) {
  Bytes key(esp_key_material_size(cipher));
  for (size_t i = 0; i < key.size(); i++) key[i] = static_cast<uint8_t>(seed * 31 + i * 7);
  return key;
}

EspAead make_aead(EspCipher cipher, uint8_t seed = 1) {
  EspAead aead;
  const Bytes key = key_material(cipher, seed);
  aead.set_key(cipher, key.data(), key.size());
  return aead;
}

// A payload of `length` bytes that looks like what the next header names.
Bytes payload(uint8_t next_header, size_t length, uint32_t seed = 1) {
  std::mt19937 random(seed);
  Bytes p(length);
  for (auto& byte : p) byte = static_cast<uint8_t>(random());
  if (length > 0) {
    if (next_header == kEspNextHeaderIpv4) p[0] = 0x45;
    if (next_header == kEspNextHeaderIpv6) p[0] = 0x60;
    if (next_header == kEspNextHeaderEthernet) p[0] = 0x02;
  }
  return p;
}

// Encodes the way the worker will: the payload sits in a buffer after headroom, with tailroom
// behind it; the header goes in front and the trailer behind, in place. Returns exactly the ESP
// packet and checks that nothing outside it was written.
Bytes encode(EspAead& aead, uint64_t sequence, bool esn, uint8_t next_header, const Bytes& inner,
             uint32_t spi = kSpi) {
  constexpr size_t kHeadroom = 40, kTailroom = 40;
  Bytes buffer(kHeadroom + kEspPrefixSize + inner.size() + kEspMaxTrailerSize + kTailroom, 0xEE);
  std::copy(inner.begin(), inner.end(), buffer.begin() + kHeadroom + kEspPrefixSize);
  const size_t n = esp_encode(aead, spi, sequence, esn, next_header, buffer.data() + kHeadroom, inner.size());
  CHECK_EQ(n, esp_encoded_size(inner.size()));
  bool outside_untouched = true;
  for (size_t i = 0; i < kHeadroom; i++) outside_untouched &= buffer[i] == 0xEE;
  for (size_t i = kHeadroom + n; i < buffer.size(); i++) outside_untouched &= buffer[i] == 0xEE;
  CHECK(outside_untouched);
  return Bytes(buffer.begin() + kHeadroom, buffer.begin() + kHeadroom + static_cast<long>(n));
}

// An authentic packet whose whole plaintext (payload, padding, pad length, next header) the
// test chooses, so that trailers esp_encode never writes can be tried.
Bytes seal_plaintext(EspAead& aead, uint64_t sequence, bool esn, const Bytes& plaintext, uint32_t spi = kSpi) {
  Bytes packet(kEspPrefixSize + plaintext.size() + kEspIcvSize);
  store_be32(packet.data(), spi);
  store_be32(packet.data() + 4, static_cast<uint32_t>(sequence));
  for (int i = 0; i < 8; i++) packet[8 + i] = static_cast<uint8_t>(sequence >> (56 - 8 * i));
  std::copy(plaintext.begin(), plaintext.end(), packet.begin() + kEspPrefixSize);
  uint8_t aad[12];
  size_t aad_length = 8;
  std::memcpy(aad, packet.data(), 4);
  if (esn) {
    store_be32(aad + 4, static_cast<uint32_t>(sequence >> 32));
    std::memcpy(aad + 8, packet.data() + 4, 4);
    aad_length = 12;
  } else {
    std::memcpy(aad + 4, packet.data() + 4, 4);
  }
  CHECK(aead.seal(packet.data() + 8, aad, aad_length, packet.data() + kEspPrefixSize, plaintext.size(),
                  packet.data() + kEspPrefixSize + plaintext.size()));
  return packet;
}

// payload || trailer bytes as given.
Bytes with_trailer(const Bytes& inner, const Bytes& padding, uint8_t pad_length, uint8_t next_header) {
  Bytes plaintext = ovl_test::concat(inner, padding);
  plaintext.push_back(pad_length);
  plaintext.push_back(next_header);
  return plaintext;
}

EspStatus decode(EspAead& aead, ReplayWindow& window, Bytes packet, EspPayload device = EspPayload::ip,
                 EspDecoded* out = nullptr) {
  EspDecoded scratch;
  return esp_decode(aead, window, device, packet.data(), packet.size(), out ? out : &scratch);
}

TEST(esp_padding_aligns_to_four_bytes) {
  const uint32_t expected[4] = {2, 1, 0, 3};
  for (size_t length = 0; length < 64; length++) {
    CHECK_EQ(esp_padding_size(length), expected[length % 4]);
    CHECK_EQ((length + esp_padding_size(length) + 2) % 4, 0u);
    CHECK(esp_trailer_size(length) <= kEspMaxTrailerSize);
    CHECK_EQ(esp_encoded_size(length), kEspPrefixSize + length + esp_trailer_size(length));
  }
  CHECK_EQ(kEspMinPacketSize, 36u);
}

// Every cipher, with and without ESN, many payload sizes: the packet has the documented
// layout (SPI, low sequence number, IV = the 64-bit sequence number, 1-2-3 padding) and decodes
// to the same payload, next header and sequence number.
TEST(esp_round_trip) {
  for (EspCipher cipher : kCiphers) {
    for (bool esn : {false, true}) {
      EspAead sender = make_aead(cipher);
      EspAead receiver = make_aead(cipher);
      ReplayWindow window(esn);
      // With ESN, start just below a 2^32 boundary so the high half is exercised.
      uint64_t sequence = esn ? (uint64_t{7} << 32) - 20 : 0;
      if (esn) CHECK(window.update(sequence));
      std::vector<size_t> sizes;
      for (size_t n = 20; n < 90; n++) sizes.push_back(n);
      for (size_t n : {576, 1400, 1500, 9000, 65535}) sizes.push_back(n);
      for (size_t size : sizes) {
        const uint8_t next_header = size % 3 == 0 ? kEspNextHeaderIpv6 : kEspNextHeaderIpv4;
        const Bytes inner = payload(next_header, std::max<size_t>(size, next_header == kEspNextHeaderIpv6 ? 40 : 20),
                                    static_cast<uint32_t>(size));
        ++sequence;
        const Bytes packet = encode(sender, sequence, esn, next_header, inner);
        CHECK_EQ(load_be32(packet.data()), kSpi);
        CHECK_EQ(load_be32(packet.data() + 4), static_cast<uint32_t>(sequence));
        CHECK_EQ(ovl_test::be_number(Bytes(packet.begin() + 8, packet.begin() + 16)), sequence);
        CHECK_EQ((packet.size() - kEspPrefixSize - kEspIcvSize) % 4, 0u);
        Bytes received = packet;
        EspDecoded decoded;
        CHECK(esp_decode(receiver, window, EspPayload::ip, received.data(), received.size(), &decoded) ==
              EspStatus::ok);
        CHECK_EQ(decoded.spi, kSpi);
        CHECK_EQ(decoded.sequence, sequence);
        CHECK_EQ(decoded.next_header, next_header);
        CHECK_EQ(decoded.payload_offset, kEspPrefixSize);
        CHECK_EQ(decoded.payload_length, inner.size());
        CHECK_EQ(decoded.pad_length, esp_padding_size(inner.size()));
        CHECK(Bytes(received.begin() + kEspPrefixSize, received.begin() + kEspPrefixSize + decoded.payload_length) ==
              inner);
        // The padding as decrypted: 1, 2, 3, ...
        for (uint32_t i = 0; i < decoded.pad_length; i++) {
          CHECK_EQ(received[kEspPrefixSize + inner.size() + i], i + 1);
        }
      }
    }
  }
}

TEST(esp_encode_gather_equals_encode_of_the_whole) {
  // A segment's headers in the buffer and its payload elsewhere (where the device read put it):
  // the cipher reads the second piece from there and writes it behind the first. Every split
  // point, so that pieces end inside cipher blocks (16 bytes for AES, 64 for ChaCha20).
  for (EspCipher cipher : kCiphers) {
    for (bool esn : {false, true}) {
      EspAead whole_aead = make_aead(cipher);
      EspAead gather_aead = make_aead(cipher);
      for (size_t size : {size_t{20}, size_t{67}, size_t{130}, size_t{1466}}) {
        const Bytes inner = payload(kEspNextHeaderIpv4, size, static_cast<uint32_t>(size));
        for (size_t split = 0; split <= size; split += (size > 200 ? 7 : 1)) {
          const uint64_t sequence = 1000 + split;
          const Bytes expected = encode(whole_aead, sequence, esn, kEspNextHeaderIpv4, inner);
          constexpr size_t kTailroom = 40;
          Bytes buffer(kEspPrefixSize + size + kEspMaxTrailerSize + kTailroom, 0xEE);
          std::copy(inner.begin(), inner.begin() + static_cast<long>(split), buffer.begin() + kEspPrefixSize);
          const Bytes rest(inner.begin() + static_cast<long>(split), inner.end());  // its own allocation
          const size_t n = esp_encode_gather(gather_aead, kSpi, sequence, esn, kEspNextHeaderIpv4, buffer.data(), split,
                                             rest.data(), rest.size());
          CHECK_EQ(n, expected.size());
          CHECK(Bytes(buffer.begin(), buffer.begin() + static_cast<long>(n)) == expected);
          for (size_t i = n; i < buffer.size(); i++) CHECK_EQ(buffer[i], 0xEE);
        }
      }
    }
  }
}

TEST(esp_round_trip_ethernet) {
  for (EspCipher cipher : kCiphers) {
    EspAead aead = make_aead(cipher);
    ReplayWindow window(true);
    for (size_t size : {14, 15, 16, 17, 60, 1514}) {
      const Bytes frame = payload(kEspNextHeaderEthernet, size);
      const Bytes packet = encode(aead, size, true, kEspNextHeaderEthernet, frame);
      EspDecoded decoded;
      CHECK(decode(aead, window, packet, EspPayload::ethernet, &decoded) == EspStatus::ok);
      CHECK_EQ(decoded.payload_length, size);
      CHECK_EQ(decoded.next_header, kEspNextHeaderEthernet);
    }
  }
}

TEST(esp_encode_refuses_numbers_that_must_not_be_sent) {
  EspAead aead = make_aead(EspCipher::aes256_gcm);
  Bytes buffer(kEspPrefixSize + 40 + kEspMaxTrailerSize);
  CHECK_EQ(esp_encode(aead, kSpi, 0, false, 4, buffer.data(), 40), 0u);
  CHECK_EQ(esp_encode(aead, kSpi, 0, true, 4, buffer.data(), 40), 0u);
  CHECK_EQ(esp_encode(aead, kSpi, uint64_t{1} << 32, false, 4, buffer.data(), 40), 0u);
  CHECK(esp_encode(aead, kSpi, 0xFFFFFFFFu, false, 4, buffer.data(), 40) != 0u);
  CHECK(esp_encode(aead, kSpi, uint64_t{1} << 32, true, 4, buffer.data(), 40) != 0u);
  CHECK(esp_encode(aead, kSpi, ~uint64_t{0}, true, 4, buffer.data(), 40) != 0u);
  EspAead unkeyed;
  CHECK_EQ(esp_encode(unkeyed, kSpi, 1, true, 4, buffer.data(), 40), 0u);
}

TEST(esp_parse_header_reads_spi_and_sequence) {
  EspAead aead = make_aead(EspCipher::aes128_gcm);
  const Bytes packet = encode(aead, (uint64_t{3} << 32) | 0xABCDEF01u, true, 4, payload(4, 20), 0xCAFE0001);
  uint32_t spi = 0, wire = 0;
  CHECK(esp_parse_header(packet.data(), packet.size(), &spi, &wire) == EspStatus::ok);
  CHECK_EQ(spi, 0xCAFE0001u);
  CHECK_EQ(wire, 0xABCDEF01u);
  const Bytes zero = encode(aead, 5, true, 4, payload(4, 20), 0);
  CHECK(esp_parse_header(zero.data(), zero.size(), &spi, &wire) == EspStatus::spi_zero);
}

// Cut short anywhere: malformed where the length cannot be an ESP packet, otherwise the ICV
// (now read from the wrong place) fails. Either way the window does not move.
TEST(esp_truncated_packets_are_refused) {
  for (EspCipher cipher : kCiphers) {
    EspAead aead = make_aead(cipher);
    const Bytes packet = encode(aead, 9, true, 4, payload(4, 61));
    ReplayWindow window(true);
    for (size_t length = 0; length < packet.size(); length++) {
      // An exact-size copy, so ASan sees any read past the end.
      Bytes cut(packet.begin(), packet.begin() + static_cast<long>(length));
      const bool shaped = length >= kEspMinPacketSize && (length - kEspPrefixSize - kEspIcvSize) % 4 == 0;
      const EspStatus status = decode(aead, window, cut);
      CHECK(status == (shaped ? EspStatus::auth_failed : EspStatus::malformed));
      CHECK_EQ(window.top(), 0u);
    }
    CHECK(decode(aead, window, packet) == EspStatus::ok);
  }
}

// SPI 0 is refused before anything else, even for a packet that would authenticate.
TEST(esp_spi_zero) {
  EspAead aead = make_aead(EspCipher::aes256_gcm);
  ReplayWindow window(false);
  const Bytes packet = encode(aead, 1, false, 4, payload(4, 40), 0);
  CHECK(decode(aead, window, packet) == EspStatus::spi_zero);
  CHECK_EQ(window.top(), 0u);
  CHECK(esp_open(aead, false, 0, Bytes(packet).data(), packet.size()) == EspStatus::ok);
}

// A forged or mis-keyed packet fails the ICV and leaves the window alone: a forged packet with
// a number far ahead must not push genuine ones out of the window.
TEST(esp_forgeries_fail_and_do_not_move_the_window) {
  for (EspCipher cipher : kCiphers) {
    EspAead aead = make_aead(cipher);
    ReplayWindow window(true);
    const Bytes genuine = encode(aead, 100, true, 4, payload(4, 100));
    // A forged ICV on a number far ahead.
    Bytes forged = encode(aead, 1000000, true, 4, payload(4, 100));
    forged.back() ^= 0x01;
    CHECK(decode(aead, window, forged) == EspStatus::auth_failed);
    CHECK_EQ(window.top(), 0u);
    // The right packet under another key, another cipher's key, or with another SPI in its AAD.
    EspAead other = make_aead(cipher, 2);
    CHECK(decode(other, window, genuine) == EspStatus::auth_failed);
    Bytes respi = genuine;
    store_be32(respi.data(), kSpi + 1);
    CHECK(decode(aead, window, respi) == EspStatus::auth_failed);
    const EspCipher different = cipher == EspCipher::aes256_gcm ? EspCipher::chacha20_poly1305 : EspCipher::aes256_gcm;
    EspAead wrong_cipher;
    const Bytes same_bytes = key_material(different);
    wrong_cipher.set_key(different, same_bytes.data(), same_bytes.size());
    CHECK(decode(wrong_cipher, window, genuine) == EspStatus::auth_failed);
    CHECK_EQ(window.top(), 0u);
    CHECK(decode(aead, window, genuine) == EspStatus::ok);
    CHECK_EQ(window.top(), 100u);
  }
}

// Replays are refused before decryption (the packet is not touched), packets left of the
// window too; out-of-order packets inside it are fine.
TEST(esp_replays_are_refused) {
  EspAead aead = make_aead(EspCipher::aes256_gcm);
  ReplayWindow window(false);
  std::vector<Bytes> packets;
  for (uint64_t sequence = 1; sequence <= 3000; sequence++) packets.push_back(encode(aead, sequence, false, 4, payload(4, 20)));
  CHECK(decode(aead, window, packets[4]) == EspStatus::ok);   // 5
  CHECK(decode(aead, window, packets[2]) == EspStatus::ok);   // 3, late but inside
  Bytes again = packets[4];
  EspDecoded decoded;
  CHECK(esp_decode(aead, window, EspPayload::ip, again.data(), again.size(), &decoded) == EspStatus::replay);
  CHECK(again == packets[4]);
  CHECK(decode(aead, window, packets[2]) == EspStatus::replay);
  CHECK(decode(aead, window, packets[2999]) == EspStatus::ok);  // 3000: jumps ahead
  // 3000 - 1984 + 1 = 1017 is the bottom of the window now.
  CHECK(decode(aead, window, packets[1015]) == EspStatus::replay);  // 1016
  CHECK(decode(aead, window, packets[1016]) == EspStatus::ok);      // 1017
  CHECK(decode(aead, window, packets[3]) == EspStatus::replay);     // 4, never seen but too old
}

// Trailers only a broken or hostile key holder sends: authentic, so the number is spent (a
// second copy is a replay), but malformed.
TEST(esp_bad_trailers_are_malformed) {
  for (EspCipher cipher : kCiphers) {
    EspAead aead = make_aead(cipher);
    ReplayWindow window(true);
    const Bytes inner = payload(4, 22);  // 22 + 2 = 24: no padding needed
    uint64_t sequence = 0;
    auto expect = [&](const Bytes& plaintext, EspStatus status) {
      const Bytes packet = seal_plaintext(aead, ++sequence, true, plaintext);
      CHECK(decode(aead, window, packet) == status);
      CHECK_EQ(window.top(), sequence);
      CHECK(decode(aead, window, packet) == EspStatus::replay);
    };
    expect(with_trailer(inner, {}, 0, 4), EspStatus::ok);
    // Pad length beyond the encrypted data.
    expect(with_trailer(inner, {}, 23, 4), EspStatus::malformed);
    expect(with_trailer(inner, {}, 255, 4), EspStatus::malformed);
    expect(with_trailer({}, {1, 2}, 3, 4), EspStatus::malformed);
    // Padding bytes that are not 1, 2, 3, ...
    expect(with_trailer(inner, {1, 2, 4, 4}, 4, 4), EspStatus::malformed);
    expect(with_trailer(inner, {0, 0, 0, 0}, 4, 4), EspStatus::malformed);
    expect(with_trailer(inner, {2, 1, 3, 4}, 4, 4), EspStatus::malformed);
    // More padding than we send, correctly filled: accepted (RFC 4303 allows up to 255).
    Bytes long_padding;
    for (int i = 1; i <= 252; i++) long_padding.push_back(static_cast<uint8_t>(i));
    expect(with_trailer(inner, long_padding, 252, 4), EspStatus::ok);
    Bytes padding_only;
    for (int i = 1; i <= 42; i++) padding_only.push_back(static_cast<uint8_t>(i));
    expect(with_trailer(payload(41, 40), padding_only, 42, kEspNextHeaderIpv6), EspStatus::ok);
  }
}

// Next header 59 is an authentic dummy packet: counted apart, number spent, never delivered.
// Other next headers must be what the device carries, with at least their header.
TEST(esp_next_header_rules) {
  EspAead aead = make_aead(EspCipher::chacha20_poly1305);
  ReplayWindow window(false);
  uint64_t sequence = 0;
  auto status_of = [&](uint8_t next_header, const Bytes& inner, EspPayload device) {
    return decode(aead, window, encode(aead, ++sequence, false, next_header, inner), device);
  };
  CHECK(status_of(kEspNextHeaderNone, {}, EspPayload::ip) == EspStatus::dummy);
  CHECK_EQ(window.top(), sequence);
  CHECK(status_of(kEspNextHeaderNone, payload(4, 100), EspPayload::ethernet) == EspStatus::dummy);
  CHECK(status_of(kEspNextHeaderEthernet, payload(143, 60), EspPayload::ip) == EspStatus::unsupported_next_header);
  CHECK(status_of(kEspNextHeaderIpv4, payload(4, 60), EspPayload::ethernet) == EspStatus::unsupported_next_header);
  CHECK(status_of(kEspNextHeaderIpv6, payload(41, 60), EspPayload::ethernet) == EspStatus::unsupported_next_header);
  CHECK(status_of(6, payload(4, 60), EspPayload::ip) == EspStatus::unsupported_next_header);
  CHECK(status_of(1, payload(4, 60), EspPayload::ip) == EspStatus::unsupported_next_header);
  // Inner headers: long enough, and the IP version the next header names.
  CHECK(status_of(kEspNextHeaderIpv4, payload(4, 20), EspPayload::ip) == EspStatus::ok);
  CHECK(status_of(kEspNextHeaderIpv4, payload(4, 19), EspPayload::ip) == EspStatus::malformed);
  CHECK(status_of(kEspNextHeaderIpv4, payload(41, 60), EspPayload::ip) == EspStatus::malformed);
  CHECK(status_of(kEspNextHeaderIpv6, payload(41, 40), EspPayload::ip) == EspStatus::ok);
  CHECK(status_of(kEspNextHeaderIpv6, payload(41, 39), EspPayload::ip) == EspStatus::malformed);
  CHECK(status_of(kEspNextHeaderIpv6, payload(4, 60), EspPayload::ip) == EspStatus::malformed);
  CHECK(status_of(kEspNextHeaderIpv4, {}, EspPayload::ip) == EspStatus::malformed);
  CHECK(status_of(kEspNextHeaderEthernet, payload(143, 14), EspPayload::ethernet) == EspStatus::ok);
  CHECK(status_of(kEspNextHeaderEthernet, payload(143, 13), EspPayload::ethernet) == EspStatus::malformed);
  CHECK_EQ(window.top(), sequence);
}

// ESN end to end: the receiver infers the high half across a 2^32 boundary, forwards and (for
// late packets) backwards; a receiver without ESN cannot authenticate an ESN sender's packets.
TEST(esp_extended_sequence_numbers_across_a_wrap) {
  EspAead aead = make_aead(EspCipher::aes256_gcm);
  ReplayWindow window(true);
  const uint64_t boundary = uint64_t{5} << 32;
  CHECK(window.update(boundary - 10));
  std::vector<Bytes> late;
  for (uint64_t sequence = boundary - 9; sequence < boundary + 10; sequence++) {
    const Bytes packet = encode(aead, sequence, true, 4, payload(4, 20));
    if (sequence % 3 == 0) {
      late.push_back(packet);
      continue;
    }
    EspDecoded decoded;
    CHECK(decode(aead, window, packet, EspPayload::ip, &decoded) == EspStatus::ok);
    CHECK_EQ(decoded.sequence, sequence);
  }
  CHECK_EQ(window.top(), boundary + 9);
  for (const Bytes& packet : late) CHECK(decode(aead, window, packet) == EspStatus::ok);  // before and after the wrap
  ReplayWindow plain(false);
  CHECK(decode(aead, plain, encode(aead, boundary + 20, true, 4, payload(4, 20))) == EspStatus::auth_failed);
}

TEST(esp_aead_keys_and_names) {
  CHECK_EQ(esp_key_material_size(EspCipher::aes128_gcm), 20u);
  CHECK_EQ(esp_key_material_size(EspCipher::aes256_gcm), 36u);
  CHECK_EQ(esp_key_material_size(EspCipher::chacha20_poly1305), 36u);
  for (EspCipher cipher : kCiphers) {
    const auto parsed = parse_esp_cipher(esp_cipher_name(cipher));
    CHECK(parsed.has_value() && *parsed == cipher);
    EspAead aead;
    CHECK(!aead.keyed());
    const Bytes key = key_material(cipher);
    CHECK_THROWS(aead.set_key(cipher, key.data(), key.size() - 1));
    Bytes longer(key);
    longer.push_back(0);
    CHECK_THROWS(aead.set_key(cipher, longer.data(), longer.size()));
    CHECK(!aead.keyed());
    aead.set_key(cipher, key.data(), key.size());
    CHECK(aead.keyed());
    CHECK(aead.cipher() == cipher);
  }
  CHECK(!parse_esp_cipher("aes-192-gcm").has_value());
  CHECK(!parse_esp_cipher("AES-256-GCM").has_value());
  CHECK(!parse_esp_cipher("").has_value());
  // The error names the cipher and the sizes, never the key.
  try {
    const Bytes key(35, 0xAB);
    EspAead aead;
    aead.set_key(EspCipher::aes256_gcm, key.data(), key.size());
    CHECK(!"no throw");
  } catch (const InvalidArgument& error) {
    const std::string what = error.what();
    CHECK(what.find("aes-256-gcm") != std::string::npos);
    CHECK(what.find("36") != std::string::npos);
    CHECK(what.find("ab") == std::string::npos && what.find("AB") == std::string::npos);
  }
}

// One context can be rekeyed, even to another cipher (an SA replaced by one with a different
// transform), and moves keep the key; a moved-from or unkeyed context refuses to work.
TEST(esp_aead_rekey_and_move) {
  EspAead aead = make_aead(EspCipher::aes128_gcm);
  ReplayWindow window(true);
  for (EspCipher cipher : kCiphers) {
    const Bytes key = key_material(cipher, 9);
    aead.set_key(cipher, key.data(), key.size());
    EspAead reference = make_aead(cipher, 9);
    const Bytes packet = encode(aead, window.top() + 1, true, 4, payload(4, 30));
    CHECK(decode(reference, window, packet) == EspStatus::ok);
  }
  EspAead moved(std::move(aead));
  CHECK(moved.keyed());
  CHECK(!aead.keyed());  // NOLINT(bugprone-use-after-move): checking the moved-from state is the point
  uint8_t data[16] = {}, tag[16], iv[8] = {};
  CHECK(!aead.seal(iv, data, 8, data, sizeof(data), tag));
  CHECK(moved.seal(iv, data, 8, data, sizeof(data), tag));
  EspAead assigned;
  assigned = std::move(moved);
  CHECK(assigned.keyed());
  EspAead unkeyed;
  CHECK(!unkeyed.seal(iv, data, 8, data, sizeof(data), tag));
  CHECK(!unkeyed.open(iv, data, 8, data, sizeof(data), tag));
}

// The AEAD layer on its own: in place, and the tag covers AAD, nonce and data.
TEST(esp_aead_seal_open) {
  for (EspCipher cipher : kCiphers) {
    EspAead aead = make_aead(cipher);
    const Bytes plain = payload(4, 333);
    Bytes data = plain;
    const uint8_t iv[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const uint8_t aad[12] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2};
    uint8_t tag[16];
    CHECK(aead.seal(iv, aad, sizeof(aad), data.data(), data.size(), tag));
    CHECK(data != plain);
    Bytes copy = data;
    CHECK(aead.open(iv, aad, sizeof(aad), copy.data(), copy.size(), tag));
    CHECK(copy == plain);
    copy = data;
    uint8_t other_aad[12];
    std::memcpy(other_aad, aad, sizeof(aad));
    other_aad[11] ^= 0x80;
    CHECK(!aead.open(iv, other_aad, sizeof(other_aad), copy.data(), copy.size(), tag));
    copy = data;
    CHECK(!aead.open(iv, aad, 8, copy.data(), copy.size(), tag));
    copy = data;
    const uint8_t other_iv[8] = {1, 2, 3, 4, 5, 6, 7, 9};
    CHECK(!aead.open(other_iv, aad, sizeof(aad), copy.data(), copy.size(), tag));
    copy = data;
    uint8_t other_tag[16];
    std::memcpy(other_tag, tag, sizeof(tag));
    other_tag[0] ^= 0x01;
    CHECK(!aead.open(iv, aad, sizeof(aad), copy.data(), copy.size(), other_tag));
    // Still usable after failures.
    copy = data;
    CHECK(aead.open(iv, aad, sizeof(aad), copy.data(), copy.size(), tag));
    CHECK(copy == plain);
  }
}

}  // namespace
