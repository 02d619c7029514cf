// The state of one IPsec security association as the data path holds it: its SPI and key,
// the outbound sequence counter (shared by every worker sending on it), and the inbound replay
// window (shared by every worker receiving on it: UDP flows of one peer may reach several
// workers). Tables point at SA states; a state outlives a table swap as long as the SPI and key
// stay the same, so a peer update does not restart its counters or reopen its replay window.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "tunnel/esp/esp_aead.h"
#include "tunnel/esp/esp_sequence.h"
#include "tunnel/esp/replay_window.h"

namespace ovl {

struct EspSaState {
  EspSaState(uint32_t spi_, EspCipher cipher_, std::vector<uint8_t> key_, bool esn_ = true)
      : spi(spi_), cipher(cipher_), key(std::move(key_)), esn(esn_), sequence(esn_), window(esn_) {}
  EspSaState(const EspSaState&) = delete;
  EspSaState& operator=(const EspSaState&) = delete;
  ~EspSaState() {
    // Key material does not linger in freed memory.
    volatile uint8_t* bytes = const_cast<uint8_t*>(key.data());
    for (size_t i = 0; i < key.size(); i++) bytes[i] = 0;
  }

  const uint32_t spi;
  const EspCipher cipher;
  const std::vector<uint8_t> key;  // cipher key || 4-byte salt
  // 64-bit extended sequence numbers (the default), or plain 32-bit ones (for peers and tools
  // without ESN): the AAD, the counter limit and the replay window follow it.
  const bool esn;

  // Outbound: sequence numbers that never wrap (esp_sequence.h).
  EspSequence sequence;

  // Inbound: checked before decryption, updated only after the ICV verified.
  std::mutex replay_lock;
  ReplayWindow window;
};

// An SA as configuration gives it (addon → forwarder): the state is made or reused from it.
// Cipher and ESN default to the overlay's (encap.cipher, encap.esn); an SA negotiated by IKEv2
// brings its own, since each Child SA is negotiated on its own and a peer may refuse ESN.
struct EspSaSpec {
  uint32_t spi = 0;
  std::vector<uint8_t> key;
  std::optional<EspCipher> cipher;
  std::optional<bool> esn;
};

}  // namespace ovl
