// IKE (RFC 7296) as the data path sees it: only its size and how UDP port 4500 marks it. The
// messages themselves are TypeScript's (lib/ike); the forwarder passes them up and sends them.
#pragma once

#include <cstdint>

namespace ovl {

// The fixed IKE header (RFC 7296 §3.1): no IKE message is shorter.
constexpr uint32_t kIkeHeaderSize = 28;
// On port 4500 an IKE message follows four zero bytes, the non-ESP marker (RFC 3948 §2.2).
constexpr uint32_t kNonEspMarkerSize = 4;
// A NAT keepalive on port 4500 is this one byte (RFC 3948 §2.3).
constexpr uint8_t kNatKeepaliveByte = 0xff;

}  // namespace ovl
