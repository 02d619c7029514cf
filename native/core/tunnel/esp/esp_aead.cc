#include "tunnel/esp/esp_aead.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <climits>
#include <cstring>
#include <new>
#include <stdexcept>

#include "system/sys_error.h"

namespace ovl {

namespace {

const EVP_CIPHER* evp_cipher(EspCipher cipher) {
  switch (cipher) {
    case EspCipher::aes128_gcm: return EVP_aes_128_gcm();
    case EspCipher::aes256_gcm: return EVP_aes_256_gcm();
    case EspCipher::chacha20_poly1305: return EVP_chacha20_poly1305();
  }
  return nullptr;
}

// A failed operation may leave entries in this thread's OpenSSL error queue. Forged packets
// come in at line rate, so clear it rather than let whoever looks at the queue next on this
// thread find a stale error.
bool fail() {
  ERR_clear_error();
  return false;
}

}  // namespace

const char* esp_cipher_name(EspCipher cipher) {
  switch (cipher) {
    case EspCipher::aes128_gcm: return "aes-128-gcm";
    case EspCipher::aes256_gcm: return "aes-256-gcm";
    case EspCipher::chacha20_poly1305: return "chacha20-poly1305";
  }
  return "?";
}

std::optional<EspCipher> parse_esp_cipher(const std::string& name) {
  for (EspCipher cipher : {EspCipher::aes128_gcm, EspCipher::aes256_gcm, EspCipher::chacha20_poly1305}) {
    if (name == esp_cipher_name(cipher)) return cipher;
  }
  return std::nullopt;
}

EspAead::EspAead() : ctx_(EVP_CIPHER_CTX_new()) {
  if (ctx_ == nullptr) throw std::bad_alloc();
}

EspAead::~EspAead() {
  EVP_CIPHER_CTX_free(ctx_);  // frees the key schedule with OPENSSL_clear_free
  OPENSSL_cleanse(nonce_, sizeof(nonce_));
}

EspAead::EspAead(EspAead&& other) noexcept
    : ctx_(other.ctx_), cipher_(other.cipher_), keyed_(other.keyed_) {
  std::memcpy(nonce_, other.nonce_, sizeof(nonce_));
  OPENSSL_cleanse(other.nonce_, sizeof(other.nonce_));
  other.ctx_ = nullptr;
  other.keyed_ = false;
}

EspAead& EspAead::operator=(EspAead&& other) noexcept {
  if (this != &other) {
    EVP_CIPHER_CTX_free(ctx_);
    ctx_ = other.ctx_;
    cipher_ = other.cipher_;
    keyed_ = other.keyed_;
    std::memcpy(nonce_, other.nonce_, sizeof(nonce_));
    OPENSSL_cleanse(other.nonce_, sizeof(other.nonce_));
    other.ctx_ = nullptr;
    other.keyed_ = false;
  }
  return *this;
}

void EspAead::set_key(EspCipher cipher, const uint8_t* key_material, size_t length) {
  if (length != esp_key_material_size(cipher)) {
    throw InvalidArgument(std::string(esp_cipher_name(cipher)) + " key material must be " +
                          std::to_string(esp_key_material_size(cipher)) + " bytes (key followed by a 4-byte salt), got " +
                          std::to_string(length));
  }
  if (ctx_ == nullptr) throw std::logic_error("EspAead used after being moved from");
  keyed_ = false;
  // Resetting first lets one context change cipher when an SA is replaced by one with another.
  // The nonce length is the default of all three ciphers (12 bytes), so it is never set.
  EVP_CIPHER_CTX_reset(ctx_);
  if (EVP_CipherInit_ex(ctx_, evp_cipher(cipher), nullptr, key_material, nullptr, 1) != 1 ||
      EVP_CIPHER_CTX_get_iv_length(ctx_) != static_cast<int>(kEspNonceSize)) {
    ERR_clear_error();
    throw std::runtime_error(std::string("OpenSSL could not set up ") + esp_cipher_name(cipher));
  }
  cipher_ = cipher;
  std::memcpy(nonce_, key_material + esp_cipher_key_size(cipher), kEspSaltSize);
  keyed_ = true;
}

// Sets the nonce (and the direction) of the next operation; the key stays as it is.
bool EspAead::start(const uint8_t* iv, int encrypt) {
  std::memcpy(nonce_ + kEspSaltSize, iv, kEspAeadIvSize);
  return EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, nonce_, encrypt) == 1;
}

bool EspAead::seal(const uint8_t* iv, const uint8_t* aad, size_t aad_length, uint8_t* data, size_t length,
                   uint8_t* tag) {
  const Piece whole{data, data, length};
  return seal(iv, aad, aad_length, &whole, 1, tag);
}

bool EspAead::seal(const uint8_t* iv, const uint8_t* aad, size_t aad_length, const Piece* pieces, size_t count,
                   uint8_t* tag) {
  if (!keyed_ || aad_length > INT_MAX) return false;
  int written = 0;
  uint8_t none[16];  // AEAD finals write nothing, but want somewhere to write it
  if (!start(iv, 1)) return fail();
  if (EVP_CipherUpdate(ctx_, nullptr, &written, aad, static_cast<int>(aad_length)) != 1) return fail();
  // GCM and ChaCha20-Poly1305 are stream modes: OpenSSL carries a partial block from one update
  // to the next, so pieces of any length give the ciphertext of their concatenation.
  for (size_t i = 0; i < count; i++) {
    if (pieces[i].length > INT_MAX) return fail();
    if (pieces[i].length > 0 &&
        EVP_CipherUpdate(ctx_, pieces[i].out, &written, pieces[i].in, static_cast<int>(pieces[i].length)) != 1) {
      return fail();
    }
  }
  if (EVP_CipherFinal_ex(ctx_, none, &written) != 1) return fail();
  if (EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kEspAeadTagSize), tag) != 1) return fail();
  return true;
}

bool EspAead::open(const uint8_t* iv, const uint8_t* aad, size_t aad_length, uint8_t* data, size_t length,
                   const uint8_t* tag) {
  if (!keyed_ || aad_length > INT_MAX || length > INT_MAX) return false;
  int written = 0;
  uint8_t none[16];
  if (!start(iv, 0)) return fail();
  if (EVP_CipherUpdate(ctx_, nullptr, &written, aad, static_cast<int>(aad_length)) != 1) return fail();
  if (length > 0 && EVP_CipherUpdate(ctx_, data, &written, data, static_cast<int>(length)) != 1) return fail();
  // SET_TAG copies the tag; the pointer is only non-const in OpenSSL's signature.
  if (EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kEspAeadTagSize),
                          const_cast<uint8_t*>(tag)) != 1) {
    return fail();
  }
  if (EVP_CipherFinal_ex(ctx_, none, &written) != 1) return fail();  // the tag comparison
  return true;
}

}  // namespace ovl
