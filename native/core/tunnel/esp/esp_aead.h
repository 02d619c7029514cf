// The AEAD ciphers of ESP, through OpenSSL's EVP interface: AES-GCM with 128- and 256-bit keys
// (RFC 4106) and ChaCha20-Poly1305 (RFC 7634), all with a 16-byte ICV.
//
// Inside the addon this is the OpenSSL Node ships (its EVP symbols, no -lcrypto); the test build
// links the system libcrypto. Key material is the cipher key || a 4-byte salt; the nonce is
// salt || the packet's IV. One EspAead per SA direction per worker, keyed once: contexts are
// not thread-safe and keying per packet costs ~20%. Measurements and details:
// native/core/NOTES.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

struct evp_cipher_ctx_st;  // OpenSSL's EVP_CIPHER_CTX

namespace ovl {

enum class EspCipher { aes128_gcm, aes256_gcm, chacha20_poly1305 };

constexpr size_t kEspSaltSize = 4;
constexpr size_t kEspAeadIvSize = 8;    // the explicit IV carried in each packet
constexpr size_t kEspAeadTagSize = 16;  // the ICV
constexpr size_t kEspNonceSize = kEspSaltSize + kEspAeadIvSize;

// Bytes of cipher key, without the salt.
constexpr size_t esp_cipher_key_size(EspCipher cipher) { return cipher == EspCipher::aes128_gcm ? 16 : 32; }
// Bytes of key material an SA is configured with: cipher key followed by the salt.
constexpr size_t esp_key_material_size(EspCipher cipher) { return esp_cipher_key_size(cipher) + kEspSaltSize; }

// The names the config uses: "aes-128-gcm", "aes-256-gcm", "chacha20-poly1305".
const char* esp_cipher_name(EspCipher cipher);
std::optional<EspCipher> parse_esp_cipher(const std::string& name);

class EspAead {
 public:
  // Allocates the EVP context (throws std::bad_alloc if OpenSSL cannot). Not yet keyed.
  EspAead();
  ~EspAead();
  EspAead(EspAead&& other) noexcept;
  EspAead& operator=(EspAead&& other) noexcept;
  EspAead(const EspAead&) = delete;
  EspAead& operator=(const EspAead&) = delete;

  // Keys the context for `cipher` from its key material (cipher key || 4-byte salt). Throws
  // InvalidArgument if `length` is not esp_key_material_size(cipher), std::runtime_error if
  // OpenSSL refuses; neither message contains key bytes. May be called again to rekey.
  void set_key(EspCipher cipher, const uint8_t* key_material, size_t length);
  bool keyed() const { return keyed_; }
  EspCipher cipher() const { return cipher_; }

  // Encrypts the `length` bytes at `data` in place, authenticates them and the `aad_length`
  // bytes at `aad`, and writes the 16-byte tag at `tag`. The nonce is salt || iv (8 bytes).
  // False only if the context is not keyed or OpenSSL fails (which it does not for these
  // ciphers short of running out of memory); the data is then unusable.
  bool seal(const uint8_t* iv, const uint8_t* aad, size_t aad_length, uint8_t* data, size_t length, uint8_t* tag);

  // The same over a plaintext in pieces, each encrypted from `in` to `out` (the same place, or
  // a copy made by the cipher itself: the one pass over a payload that lies elsewhere). The
  // ciphertext is the pieces' concatenation, as if they had been one.
  struct Piece {
    const uint8_t* in;
    uint8_t* out;
    size_t length;
  };
  bool seal(const uint8_t* iv, const uint8_t* aad, size_t aad_length, const Piece* pieces, size_t count, uint8_t* tag);

  // Decrypts the `length` bytes at `data` in place and verifies `tag` over them and the AAD.
  // False if the tag does not verify: the data has then been overwritten with garbage and must
  // be dropped. (OpenSSL decrypts before it can compare tags; nothing reads the output first.)
  bool open(const uint8_t* iv, const uint8_t* aad, size_t aad_length, uint8_t* data, size_t length, const uint8_t* tag);

 private:
  bool start(const uint8_t* iv, int encrypt);

  evp_cipher_ctx_st* ctx_ = nullptr;
  EspCipher cipher_ = EspCipher::aes256_gcm;
  bool keyed_ = false;
  uint8_t nonce_[kEspNonceSize] = {};  // salt, then the IV of the packet in hand
};

}  // namespace ovl
