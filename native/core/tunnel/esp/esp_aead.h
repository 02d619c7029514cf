// The AEAD ciphers of ESP, through OpenSSL's EVP interface: AES-GCM with 128- and 256-bit keys
// (RFC 4106) and ChaCha20-Poly1305 (RFC 7634), all with a 16-byte ICV.
//
// Which OpenSSL: inside the addon, the one Node ships. Node exports its OpenSSL symbols, so the
// addon is linked without -lcrypto and compiled against the headers under node-gyp's include
// directory (<nodedir>/include/node/openssl); the EVP_* references resolve against the node
// binary when the addon is loaded. The standalone test build (native/CMakeLists.txt) links the
// system libcrypto instead (Debian 12: OpenSSL 3.0, the series Node 20 bundles). This header
// keeps OpenSSL's own headers out, so code that only passes an EspAead around needs neither.
//
// Key material (RFC 4106 §8.1, RFC 7634 §2): the cipher key followed by a 4-byte salt, so 20
// bytes for AES-128-GCM and 36 for AES-256-GCM and ChaCha20-Poly1305. The 12-byte nonce is
// salt || the packet's 8-byte IV (RFC 4106 §4, RFC 7634 §2). A (key, IV) pair must never repeat:
// esp_codec.h uses the 64-bit sequence number as the IV, which is unique per key because the
// sequence counter never wraps (esp_sequence.h).
//
// One EspAead per SA direction per worker: EVP contexts are not thread-safe, and keying one
// costs more than a tenth of a packet (AES key schedule and GHASH table), so a context is
// keyed once when its SA is installed and only the nonce changes per packet. Measured with
// native/test/bench_esp_aead (-O2, 1400-byte packets, best of 10 slices of CPU time, one core
// of a shared 2-vCPU AMD EPYC VM with VAES, system OpenSSL 3.0.19):
//
//                          keyed once            key + nonce per packet
//   AES-128-GCM seal       2091 MB/s  670 ns     1701 MB/s  823 ns
//   AES-256-GCM seal       2059 MB/s  680 ns     1668 MB/s  839 ns
//   ChaCha20-Poly1305 seal 1107 MB/s 1265 ns     1061 MB/s 1320 ns
//
// Rekeying per packet (one context per worker shared by all SAs) would cost ~150 ns, about
// 20%, per AES-GCM packet. (`openssl speed -evp aes-256-gcm -bytes 1400` does rekey per packet
// and gave 1656 MB/s on the same machine, matching the right-hand column.) A context takes about
// a kilobyte, so one per SA direction per worker is cheap. Of what
// remains per packet, roughly a tenth is OpenSSL 3's EVP plumbing (parameters looked up by
// name with strcmp on every init and tag query); the rest is the cipher.
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
