// Published ESP test vectors, run through the codec the way packets are:
// - RFC 7634 Appendix A: the ESP example with ChaCha20-Poly1305.
// - draft-mcgrew-gcm-test-01 §4: every AES-GCM-ESP case with a 128- or 256-bit key, with and
//   without extended sequence numbers (its 192-bit case is left out: we do not offer AES-192,
//   and its AES-GMAC case is another transform).
//
// For each: esp_encode_with_iv must produce the document's packet byte for byte (so the AAD
// with and without ESN, the nonce = salt || IV, the padding and the trailer are all as the
// documents construct them), esp_open must decrypt it back to the document's plaintext, and
// flipping any single bit of the packet must make the ICV fail. The draft's plaintexts use next
// header 1 and its IVs are arbitrary, which is why the test uses the explicit-IV encoder and
// the lower-level open; esp_decode runs on them too, with a replay window placed so that it
// infers the high half of the extended sequence number.
#include <algorithm>
#include <cstring>

#include "tunnel/esp/esp_aead.h"
#include "tunnel/esp/esp_codec.h"
#include "tunnel/esp/replay_window.h"
#include "esp_test_util.h"
#include "test.h"

using namespace ovl;
using ovl_test::Bytes;
using ovl_test::hex;

namespace {

struct Vector {
  const char* name;
  EspCipher cipher;
  const char* key;        // the cipher key alone
  const char* spi;
  const char* sequence;   // 4 octets, or 8 with ESN
  const char* nonce;      // salt || IV
  const char* plaintext;  // payload, padding, pad length, next header
  const char* aad;
  const char* ciphertext_and_tag;
  const char* packet_start;  // the packet's first 16 bytes as the document prints them: SPI, sequence, IV
};

const Vector kVectors[] = {
    {"RFC 7634 A", EspCipher::chacha20_poly1305,
     "808182838485868788898a8b8c8d8e8f 909192939495969798999a9b9c9d9e9f", "01020304", "00000005",
     "a0a1a2a3 1011121314151617",
     "45000054a6f200004001e778c6336405 c000020508005b7a3a080000553bec10 0007362708090a0b0c0d0e0f10111213"
     "1415161718191a1b1c1d1e1f20212223 2425262728292a2b2c2d2e2f30313233 3435363701020204",
     "0102030400000005",
     "24039428b97f417e3c13753a4f05087b 67c352e6a7fab1b982d466ef407ae5c6 14ee8099d52844eb61aa95dfab4c02f7"
     "2aa71e7c4c4f64c9befe2facc638e8f3 cbec163fac469b502773f6fb94e664da 9165b82829f641e0"
     "76aaa8266b7fb0f7b11b369907e1ad43",
     "0102030400000005 1011121314151617"},
    {"mcgrew p6 (AES-128, ESN)", EspCipher::aes128_gcm, "4c80cdefbb5d10da906ac73c3613a634", "00004321",
     "8765432100000000", "2e443b684956ed7e3b244cfe",
     "45000048699a000080114db7c0a80102 c0a801010a9bf15638d3010000010000 00000000045f736970045f7564700373"
     "69700963796265726369747902646b00 0021000101020201",
     "000043218765432100000000",
     "fecf537e729d5b07dc30df528dd22b76 8d1b98736696a6fd348509fa13ceac34 cfa2436f14a3f3cf65925bf1f4a13c5d"
     "15b21e1884f5ff6247aeabb786b93bce 61bc17d768fd9732459018148f6cbe72 2fd04796562dfdb4",
     "00004321000000004956ed7e3b244cfe"},
    {"mcgrew p7 (AES-128)", EspCipher::aes128_gcm, "feffe9928665731c6d6a8f9467308308", "0000a5f8", "0000000a",
     "cafebabefacedbaddecaf888",
     "4500003e698f000080114dccc0a80102 c0a801010a980035002a2343b2d00100 00010000000000000373697009637962"
     "65726369747902646b00000100010001",
     "0000a5f80000000a",
     "deb22cd9b07c72c16e3a65beeb8df304 a5a5897d33ae530f1ba76d5d114d2a5c 3de81827c10e9a4f51330d0eec416642"
     "cfbb85a5b47e48a4ec3b9ba95d918bd1 83b70d3aa8bc6ee4c309e9d85a41ad4a",
     "0000a5f80000000afacedbaddecaf888"},
    {"mcgrew p8 (AES-256)", EspCipher::aes256_gcm,
     "abbccddef00112233445566778899aab abbccddef00112233445566778899aab", "4a2cbfe3", "00000002",
     "112233440102030405060708",
     "4500003069a6400080062690c0a80102 9389155e0a9e008b2dc57ee000000000 7002400020bf0000020405b401010402"
     "01020201",
     "4a2cbfe300000002",
     "ff425c9b724599df7a3bcd510194e00d 6a78107f1b0b1cbf06efae9d65a5d763 748a637985771d347f0545659f14e99d"
     "ef842d8eb335f4eecfdbf831824b4c49 15956c96",
     "4a2cbfe3000000020102030405060708"},
    {"mcgrew p9 (AES-128, SPI 0)", EspCipher::aes128_gcm, "00000000000000000000000000000000", "00000000",
     "00000001", "000000000000000000000000",
     "4500003c99c500008001cb7a40679318 010101010800075c0200440061626364 65666768696a6b6c6d6e6f7071727374"
     "75767761626364656667686901020201",
     "0000000000000001",
     "4688daf2f973a392732909c331d56d60 f694abaa414b5e7ff5fdcdfff5e9a284 456476492719ffb64de7d9dca1e1d894"
     "bc3bd57873ed4d181d19d4d5c8c18af3 f821d496eeb096e98ad2b69e4799c71d",
     "00000000000000010000000000000000"},
    {"mcgrew p10 (AES-128, ESN)", EspCipher::aes128_gcm, "3de09874b388e6491988d0c3607eae1f", "42f67e3f",
     "1010101010101010", "57690e434e280000a2fca1a3",
     "4500003c99c300008001cb7c40679318 010101010800085c0200430061626364 65666768696a6b6c6d6e6f7071727374"
     "75767761626364656667686901020201",
     "42f67e3f1010101010101010",
     "fba2caa4853cf9f0f22cb10d86dd83b0 fec75691cf1a04b00d1138ec9c357917 65acbd8701ad79845bf9fe3fba487bc9"
     "1755e6662b4c8d0d1f5e22739530320a e0d731cc978ecafaeae88f00e80d6e48",
     "42f67e3f101010104e280000a2fca1a3"},
    {"mcgrew p11 (AES-128, ESN, short)", EspCipher::aes128_gcm, "3de09874b388e6491988d0c3607eae1f", "42f67e3f",
     "1010101010101010", "57690e434e280000a2fca1a3", "4500001c42a200008001441f406793b6 e00000020a00f5ff01020201",
     "42f67e3f1010101010101010",
     "fba2ca845e5df9f0f22c3e6e86dd831e 1fc65792cd1af9130e1379ed369f071f 35e034be95f112e4e7d05d35",
     "42f67e3f101010104e280000a2fca1a3"},
    {"mcgrew p12 (AES-128, ESN)", EspCipher::aes128_gcm, "abbccddef00112233445566778899aab", "00000100",
     "0000000000000001", "decaf888cafedebaceface74",
     "4500004933ba00007f119106c3fb1d10 c2b1d326c02831ce0035dd7b800302d5 00004e20001e8c18d75b81dc91baa047"
     "6b91b924b280389d92c963bac046ec95 9b6266c04722b14923010101",
     "000001000000000000000001",
     "18a6fd42f72cbf4ab2a2ea901f73d814 e3e7f243d95412e1c349c1d2fbec168f 9190feebaf2cb01984e65863965d7472"
     "b79da345e0e780191f0d2f0e0f496c22 6f2127b27db35724e7845d68651f57e6 5f354f75ff17015769623436",
     "0000010000000001cafedebaceface74"},
    {"mcgrew p13 (AES-256, ESN)", EspCipher::aes256_gcm,
     "abbccddef00112233445566778899aab abbccddef00112233445566778899aab", "17405e67", "156f3126dd0db99b",
     "73616c74616e640169766563",
     "45080028732c00004006e9f90a010612 0a01038f06b88023dd6bafbecb712602 50101f646d540001",
     "17405e67156f3126dd0db99b",
     "f2d69ecdbd5a0d5b8d5ef38bad4da58d 1f278fde98ef67549d524a3018d9a57f f4d3a31ce673119e451626c2415771e3"
     "b7eebca614c89b35",
     "17405e67dd0db99b616e640169766563"},
    {"mcgrew p14 (AES-128, ESN)", EspCipher::aes128_gcm, "3de09874b388e6491988d0c3607eae1f", "42f67e3f",
     "1010101010101010", "57690e434e280000a2fca1a3",
     "45000049333e00007f119182c3fb1d10 c2b1d326c02831ce0035cb458003025b 000001e0001e8c18d65759d52284a035"
     "2c71475c8880391c764d6e5ee0496b32 5ae270c03899493915010101",
     "42f67e3f1010101010101010",
     "fba2cad12fc1f9f00d3cebf305410db8 3d7784b607323d220f24b0a97d541828 00cadb0f68d99ef0e0c0c89ae9bea888"
     "4e52d65bc1afd0740f742444747b5b39 ab533163aad4550ee5160975cdb608c5 769189609763b8e18caa81e2",
     "42f67e3f101010104e280000a2fca1a3"},
    {"mcgrew p15 (AES-256, ESN)", EspCipher::aes256_gcm,
     "abbccddef00112233445566778899aab abbccddef00112233445566778899aab", "17405e67", "156f3126dd0db99b",
     "73616c74616e640169766563",
     "636973636f0172756c65730174686501 6e6574776501646566696e6501746865 746563686e6f6c6f6769657301746861"
     "7477696c6c01646566696e65746f6d6f 72726f7701020201",
     "17405e67156f3126dd0db99b",
     "d4b7ed86a1777f2ea13d6973d324c69e 7b43f826fb56831226508bebd2dceb18 d0a6df10e5487df074113e14c641024e"
     "3e6773d91a62ee429b043a10e3efe6b0 12a49363412364f8c0cac587f249e56b 11e24f30e44ccc76",
     "17405e67dd0db99b616e640169766563"},
    {"mcgrew p16a (AES-128, empty payload)", EspCipher::aes128_gcm, "7d773d00c144c525ac619d18c84a3f47",
     "335467ae", "ffffffff", "d966426743457e9182443bc6", "01020201", "335467aeffffffff",
     "437f866bcb3f699fe9b0822bac961c45 04bef270", "335467aeffffffff43457e9182443bc6"},
    {"mcgrew p16b (AES-128, ESN)", EspCipher::aes128_gcm, "abbccddef00112233445566778899aab", "00000100",
     "0000000000000001", "decaf888cafedebaceface74", "746f016265016f72016e6f7401746f01 62650001",
     "000001000000000000000001",
     "29c9fc69a197d038ccdd14e2ddfcaa05 43332164412503524303ed3c6c5f2838 43af8c3e",
     "0000010000000001cafedebaceface74"},
    {"mcgrew p17 (AES-256, ESN 2^64-1)", EspCipher::aes256_gcm,
     "6c6567616c697a656d6172696a75616e 61616e64646f69746265666f72656961", "796b6963", "ffffffffffffffff",
     "7475726e333021696765746d",
     "45000030da3a00008001df3bc0a80005 c0a800010800c6cd0200070061626364 65666768696a6b6c6d6e6f7071727374"
     "01020201",
     "796b6963ffffffffffffffff",
     "f97ab2aa356d8edce17644ac8c78e25d d24dedbb29ebf1b64a274b39b49c3a86 4cd3d78ca4ae68a32b42458fb57dbe82"
     "1dcc63b9d0937ba2945f669368661a32 9fb4c053",
     "796b6963ffffffff333021696765746d"},
    {"mcgrew p19 (AES-128, ESN)", EspCipher::aes128_gcm, "3de09874b388e6491988d0c3607eae1f", "3f7ef642",
     "1010101010101010", "57690e434e280000a2fca1a3",
     "45000030da3a00008001df3bc0a80005 c0a800010800c6cd0200070061626364 65666768696a6b6c6d6e6f7071727374"
     "01020201",
     "3f7ef6421010101010101010",
     "fba2caa8c6c5f9f0f22ca54a061210ad 3f6e5791cf1aca210d117cec9c357917 65acbd8701ad79845bf9fe3fba487bc9"
     "6321930684eecadb56912546e7a95c97 40d7cb05",
     "3f7ef642101010104e280000a2fca1a3"},
    {"mcgrew p20 (AES-128, ESN)", EspCipher::aes128_gcm, "4c80cdefbb5d10da906ac73c3613a634", "00004321",
     "8765432100000007", "22433c644855ec7d3a234bfd",
     "0800c6cd020007006162636465666768 696a6b6c6d6e6f707172737401020201", "000043218765432100000007",
     "74752e8aeb5d873cd7c0f4acc36c4bff 84b7d7b98f0ca8b6acda6894bc619069 ef9cbc28fe1b56a7c4e0d58c86cd2bc0",
     "00004321000000074855ec7d3a234bfd"},
};

// A vector taken apart into what the codec is given and what it must produce.
struct Case {
  const Vector* vector;
  Bytes key_material;  // key || salt
  uint32_t spi;
  uint64_t sequence;
  bool esn;
  Bytes iv;
  Bytes payload;
  uint8_t next_header;
  Bytes plaintext;
  Bytes packet;  // the whole ESP packet
};

Case unpack(const Vector& v) {
  Case c;
  c.vector = &v;
  const Bytes nonce = hex(v.nonce);
  const Bytes salt(nonce.begin(), nonce.begin() + 4);
  c.key_material = ovl_test::concat(hex(v.key), salt);
  c.spi = static_cast<uint32_t>(ovl_test::be_number(hex(v.spi)));
  const Bytes sequence = hex(v.sequence);
  c.sequence = ovl_test::be_number(sequence);
  c.esn = sequence.size() == 8;
  c.iv.assign(nonce.begin() + 4, nonce.end());
  c.plaintext = hex(v.plaintext);
  c.next_header = c.plaintext.back();
  const size_t pad_length = c.plaintext[c.plaintext.size() - 2];
  c.payload.assign(c.plaintext.begin(), c.plaintext.end() - 2 - static_cast<long>(pad_length));
  c.packet = ovl_test::concat(hex(v.packet_start), hex(v.ciphertext_and_tag));
  return c;
}

EspAead keyed(const Case& c) {
  EspAead aead;
  aead.set_key(c.vector->cipher, c.key_material.data(), c.key_material.size());
  return aead;
}

// The vectors agree with themselves and with the AAD and packet layout esp_codec.h describes:
// AAD = SPI || (seq high) || seq low, packet = SPI || seq low || IV || ciphertext || tag.
TEST(esp_vectors_are_consistent) {
  for (const Vector& v : kVectors) {
    const Case c = unpack(v);
    // With ESN the document's sequence number is all 8 bytes, and all of it is in the AAD.
    const Bytes sequence = hex(v.sequence);
    CHECK(ovl_test::concat(hex(v.spi), sequence) == hex(v.aad));
    const Bytes low(sequence.end() - 4, sequence.end());
    const Bytes start = ovl_test::concat(ovl_test::concat(hex(v.spi), low), c.iv);
    CHECK(start == hex(v.packet_start));
    CHECK_EQ(hex(v.ciphertext_and_tag).size(), c.plaintext.size() + kEspIcvSize);
    CHECK_EQ(c.key_material.size(), esp_key_material_size(v.cipher));
  }
}

// Encoding the payload gives the document's packet, byte for byte, written in place between
// untouched headroom and tailroom.
TEST(esp_vectors_encode_exactly) {
  for (const Vector& v : kVectors) {
    const Case c = unpack(v);
    EspAead aead = keyed(c);
    constexpr size_t kHeadroom = 24, kTailroom = 24;
    Bytes buffer(kHeadroom + kEspPrefixSize + c.payload.size() + esp_trailer_size(c.payload.size()) + kTailroom, 0xEE);
    std::copy(c.payload.begin(), c.payload.end(), buffer.begin() + kHeadroom + kEspPrefixSize);
    const size_t n = esp_encode_with_iv(aead, c.spi, c.sequence, c.esn, c.iv.data(), c.next_header,
                                        buffer.data() + kHeadroom, c.payload.size());
    CHECK_EQ(n, c.packet.size());
    CHECK_EQ(n, esp_encoded_size(c.payload.size()));
    const Bytes out(buffer.begin() + kHeadroom, buffer.begin() + kHeadroom + static_cast<long>(n));
    if (out != c.packet) {
      std::fprintf(stderr, "  %s: encoded packet differs from the document\n", v.name);
      CHECK(out == c.packet);
    }
    for (size_t i = 0; i < kHeadroom; i++) CHECK_EQ(buffer[i], 0xEE);
    for (size_t i = kHeadroom + n; i < buffer.size(); i++) CHECK_EQ(buffer[i], 0xEE);
  }
}

// Decrypting the document's packet gives its plaintext back, and the trailer parses to the
// payload and next header it was built from.
TEST(esp_vectors_decrypt) {
  for (const Vector& v : kVectors) {
    const Case c = unpack(v);
    EspAead aead = keyed(c);
    Bytes packet = c.packet;
    CHECK(esp_open(aead, c.esn, static_cast<uint32_t>(c.sequence >> 32), packet.data(), packet.size()) ==
          EspStatus::ok);
    const Bytes plaintext(packet.begin() + kEspPrefixSize, packet.end() - kEspIcvSize);
    if (plaintext != c.plaintext) {
      std::fprintf(stderr, "  %s: decrypted plaintext differs from the document\n", v.name);
      CHECK(plaintext == c.plaintext);
    }
    EspDecoded decoded;
    CHECK(esp_parse_trailer(packet.data(), packet.size(), &decoded) == EspStatus::ok);
    CHECK_EQ(decoded.next_header, c.next_header);
    CHECK_EQ(decoded.payload_offset, kEspPrefixSize);
    CHECK_EQ(decoded.payload_length, c.payload.size());
  }
}

// Any single flipped bit, in SPI, sequence number, IV, ciphertext or ICV, fails the ICV: the
// first two are in the AAD, the IV is in the nonce.
TEST(esp_vectors_any_flipped_bit_fails) {
  for (const Vector& v : kVectors) {
    const Case c = unpack(v);
    EspAead aead = keyed(c);
    int accepted = 0;
    for (size_t bit = 0; bit < c.packet.size() * 8; bit++) {
      Bytes packet = c.packet;
      packet[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
      if (esp_open(aead, c.esn, static_cast<uint32_t>(c.sequence >> 32), packet.data(), packet.size()) !=
          EspStatus::auth_failed) {
        accepted++;
      }
    }
    CHECK_EQ(accepted, 0);
    // And the high half of an extended sequence number, which is not on the wire, counts too.
    if (c.esn) {
      Bytes packet = c.packet;
      CHECK(esp_open(aead, true, static_cast<uint32_t>(c.sequence >> 32) ^ 1u, packet.data(), packet.size()) ==
            EspStatus::auth_failed);
      packet = c.packet;
      CHECK(esp_open(aead, false, 0, packet.data(), packet.size()) == EspStatus::auth_failed);
    }
  }
}

// The full receive path on the vectors. A replay window whose top is a little below the
// vector's number infers the right high half; the draft's next header 1 is then refused as a
// payload a tunnel does not carry, and its SPI-0 vector stops at the SPI. RFC 7634's example
// is an IPv4 packet in tunnel mode and is delivered.
TEST(esp_vectors_decode) {
  for (const Vector& v : kVectors) {
    const Case c = unpack(v);
    EspAead aead = keyed(c);
    ReplayWindow window(c.esn);
    if (c.sequence > 10) CHECK(window.update(c.sequence - 10));
    Bytes packet = c.packet;
    EspDecoded decoded;
    const EspStatus status = esp_decode(aead, window, EspPayload::ip, packet.data(), packet.size(), &decoded);
    if (c.spi == 0) {
      CHECK(status == EspStatus::spi_zero);
      continue;
    }
    if (c.next_header == kEspNextHeaderIpv4) {
      CHECK(status == EspStatus::ok);
      CHECK_EQ(decoded.spi, c.spi);
      CHECK_EQ(decoded.sequence, c.sequence);
      CHECK_EQ(decoded.payload_length, c.payload.size());
      CHECK(Bytes(packet.begin() + kEspPrefixSize, packet.begin() + kEspPrefixSize + decoded.payload_length) ==
            c.payload);
    } else {
      CHECK(status == EspStatus::unsupported_next_header);
    }
    // Authentic either way, so the number is now spent.
    CHECK_EQ(window.top(), c.sequence);
    packet = c.packet;
    CHECK(esp_decode(aead, window, EspPayload::ip, packet.data(), packet.size(), &decoded) == EspStatus::replay);
    // The replay was refused before decryption: the packet is as it came.
    CHECK(packet == c.packet);
  }
}

}  // namespace
