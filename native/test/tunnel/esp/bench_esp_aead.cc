// Cipher throughput per core for 1400-byte packets, to set next to `openssl speed`. What that
// times differs per cipher (OpenSSL 3.0.19, according to `perf record` of it):
//   openssl speed [-aead] -evp aes-256-gcm -bytes 1400  per packet: key and nonce set again
//                     (CRYPTO_gcm128_init), 13 bytes of AAD, update, final, tag: the work of
//                     "seal, rekeyed/packet" below
//   openssl speed [-aead] -evp chacha20-poly1305 ...    EVP_EncryptUpdate only, packet after
//                     packet on one context: "stream" below
// Prints MB/s in units of 10^6 bytes of payload per second of CPU time, as `openssl speed`
// counts; each figure is the best of 10 slices (see measure()).
//
// What it measures, per cipher:
//   seal, keyed once        EspAead::seal: nonce + AAD + encrypt + tag per packet (what a worker does)
//   open, keyed once        EspAead::open: the same with tag verification
//   seal, rekeyed/packet    the same, but the key is set again for every packet, i.e. one context
//                           per worker shared by all SAs instead of one per SA
//   stream                  EVP_EncryptUpdate only, packet after packet on one context (no
//                           nonce, AAD, final or tag): not something ESP can do
//   esp_encode              the whole ESP encapsulation (header, padding, seal)
//   esp_decode              the whole ESP receive path (replay check, open, trailer)
//
// Usage: bench_esp_aead [seconds per measurement, default 1] [packet bytes, default 1400] [cipher name]
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include "tunnel/esp/esp_aead.h"
#include "tunnel/esp/esp_codec.h"

using namespace ovl;

namespace {

double seconds_per_run = 1.0;
size_t packet_bytes = 1400;

// CPU time of this thread: what `openssl speed` divides by too (user CPU time unless
// -elapsed), so time the process spends descheduled on a busy machine does not count.
double thread_seconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

constexpr int kSlices = 10;

// Runs `body` (which handles one packet and returns false on failure) for about
// seconds_per_run of CPU time, in kSlices slices, and returns the best slice's rate in 10^6
// bytes per second: on a shared machine the best slice is the one least disturbed by others
// (cache, frequency), which is what a core of our own would see.
template <typename Body>
double measure(Body body) {
  auto run = [&](int packets) {
    for (int i = 0; i < packets; i++) {
      if (!body()) {
        std::fprintf(stderr, "bench: operation failed\n");
        std::exit(1);
      }
    }
  };
  run(2000);  // warm up: key schedules in cache, CPU clocked up
  double best = 0;
  for (int slice = 0; slice < kSlices; slice++) {
    uint64_t packets = 0;
    const double start = thread_seconds();
    double now;
    do {
      run(200);
      packets += 200;
      now = thread_seconds();
    } while (now - start < seconds_per_run / kSlices);
    const double rate = static_cast<double>(packets) * static_cast<double>(packet_bytes) / (now - start) / 1e6;
    if (rate > best) best = rate;
  }
  return best;
}

void report(const char* cipher, const char* what, double mbps) {
  const double ns_per_packet = static_cast<double>(packet_bytes) / (mbps * 1e6) * 1e9;
  std::printf("%-18s %-22s %9.1f MB/s  %7.0f ns/packet\n", cipher, what, mbps, ns_per_packet);
}

const EVP_CIPHER* evp(EspCipher cipher) {
  switch (cipher) {
    case EspCipher::aes128_gcm: return EVP_aes_128_gcm();
    case EspCipher::aes256_gcm: return EVP_aes_256_gcm();
    case EspCipher::chacha20_poly1305: return EVP_chacha20_poly1305();
  }
  return nullptr;
}

void bench(EspCipher cipher) {
  const char* name = esp_cipher_name(cipher);
  std::vector<uint8_t> key(esp_key_material_size(cipher));
  for (size_t i = 0; i < key.size(); i++) key[i] = static_cast<uint8_t>(0x40 + i);
  EspAead aead;
  aead.set_key(cipher, key.data(), key.size());

  std::vector<uint8_t> data(packet_bytes, 0x5A);
  uint8_t aad[12] = {0, 0, 0x10, 0x01, 0, 0, 0, 0, 0, 0, 0, 1};
  uint8_t tag[16];
  uint64_t counter = 0;
  uint8_t iv[8] = {};

  report(name, "seal, keyed once", measure([&] {
           std::memcpy(iv, &++counter, sizeof(counter));
           return aead.seal(iv, aad, 8, data.data(), data.size(), tag);
         }));

  // Open needs packets that verify: seal one, then open it again and again with the same
  // nonce (re-encrypting in between is what would make it cost twice).
  std::vector<uint8_t> sealed(data);
  uint8_t sealed_tag[16];
  const uint8_t fixed_iv[8] = {0, 0, 0, 0, 0, 0, 0, 42};
  aead.seal(fixed_iv, aad, 8, sealed.data(), sealed.size(), sealed_tag);
  std::vector<uint8_t> scratch(sealed.size());
  report(name, "open, keyed once", measure([&] {
           // The copy is part of the cost here (~30 ns for 1400 bytes); the worker decrypts in place.
           std::memcpy(scratch.data(), sealed.data(), sealed.size());
           return aead.open(fixed_iv, aad, 8, scratch.data(), scratch.size(), sealed_tag);
         }));

  // The alternative design: one EVP context per worker, keyed again for each packet. This is
  // the cheapest form of it (no reset, no cipher fetch, just the key schedule and the nonce).
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_CipherInit_ex(ctx, evp(cipher), nullptr, key.data(), nullptr, 1);
  uint8_t nonce[12] = {};
  std::memcpy(nonce, key.data() + esp_cipher_key_size(cipher), 4);
  report(name, "seal, rekeyed/packet", measure([&] {
           ++counter;
           std::memcpy(nonce + 4, &counter, sizeof(counter));
           int n = 0;
           uint8_t none[16];
           return EVP_CipherInit_ex(ctx, nullptr, nullptr, key.data(), nonce, 1) == 1 &&
                  EVP_CipherUpdate(ctx, nullptr, &n, aad, 8) == 1 &&
                  EVP_CipherUpdate(ctx, data.data(), &n, data.data(), static_cast<int>(data.size())) == 1 &&
                  EVP_CipherFinal_ex(ctx, none, &n) == 1 &&
                  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag) == 1;
         }));
  // The cipher alone: one context, EVP_EncryptUpdate over packet after packet, with no nonce,
  // AAD, final or tag in between (what `openssl speed` times for ChaCha20-Poly1305). The
  // difference to "seal, keyed once" is the per-packet cost of an AEAD (nonce setup; for
  // ChaCha20-Poly1305 also the Poly1305 key block; tag) and of OpenSSL 3's EVP plumbing.
  EVP_CipherInit_ex(ctx, nullptr, nullptr, key.data(), nonce, 1);
  report(name, "stream", measure([&] {
           int n = 0;
           return EVP_CipherUpdate(ctx, data.data(), &n, data.data(), static_cast<int>(data.size())) == 1;
         }));
  EVP_CIPHER_CTX_free(ctx);

  // Whole ESP packets. The payload is an IPv4 packet; esp_encode encrypts it in place, so each
  // round starts from a fresh copy, as a worker starts from a fresh packet.
  std::vector<uint8_t> payload(packet_bytes, 0x11);
  payload[0] = 0x45;
  std::vector<uint8_t> buffer(kEspPrefixSize + packet_bytes + kEspMaxTrailerSize);
  uint64_t sequence = 0;
  report(name, "esp_encode", measure([&] {
           std::memcpy(buffer.data() + kEspPrefixSize, payload.data(), payload.size());
           return esp_encode(aead, 0x1001, ++sequence, true, kEspNextHeaderIpv4, buffer.data(), payload.size()) != 0;
         }));

  // Decode needs distinct packets in sequence (the replay window) and destroys them (it decrypts
  // in place), so it runs over a ring of packets encoded beforehand, and only the decoding is
  // timed.
  constexpr size_t kRing = 2048;
  const size_t encoded = esp_encoded_size(packet_bytes);
  std::vector<std::vector<uint8_t>> ring(kRing, std::vector<uint8_t>(encoded));
  ReplayWindow window(true);
  double decode_best = 0, decode_seconds = 0;
  while (decode_seconds < seconds_per_run) {
    for (auto& packet : ring) {
      std::memcpy(packet.data() + kEspPrefixSize, payload.data(), payload.size());
      esp_encode(aead, 0x1001, ++sequence, true, kEspNextHeaderIpv4, packet.data(), payload.size());
    }
    const double start = thread_seconds();
    for (auto& packet : ring) {
      EspDecoded decoded;
      if (esp_decode(aead, window, EspPayload::ip, packet.data(), encoded, &decoded) != EspStatus::ok) {
        std::fprintf(stderr, "bench: esp_decode failed\n");
        std::exit(1);
      }
    }
    const double elapsed = thread_seconds() - start;
    decode_seconds += elapsed;
    const double rate = static_cast<double>(kRing) * static_cast<double>(packet_bytes) / elapsed / 1e6;
    if (rate > decode_best) decode_best = rate;
  }
  report(name, "esp_decode", decode_best);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) seconds_per_run = std::atof(argv[1]);
  if (argc > 2) packet_bytes = static_cast<size_t>(std::atol(argv[2]));
  std::printf("%zu-byte packets, %.1f s per measurement, %s\n", packet_bytes, seconds_per_run,
              OpenSSL_version(OPENSSL_VERSION));
  std::optional<EspCipher> only;
  if (argc > 3 && !(only = parse_esp_cipher(argv[3]))) {
    std::fprintf(stderr, "bench: unknown cipher %s\n", argv[3]);
    return 2;
  }
  for (EspCipher cipher : {EspCipher::aes128_gcm, EspCipher::aes256_gcm, EspCipher::chacha20_poly1305}) {
    if (!only || *only == cipher) bench(cipher);
  }
  return 0;
}
