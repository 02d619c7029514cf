// What shares UDP port 4500 with ESP packets (RFC 3948, UDP encapsulation of ESP):
//
//   - a NAT keepalive (§2.3): one byte 0xFF, sent only to keep a NAT mapping open; the receiver
//     ignores it;
//   - an IKE message (§2.2): the non-ESP marker, four zero bytes where an ESP packet has its SPI
//     (no SA has SPI 0, RFC 4303 §2.1), then the IKE header (28 bytes, RFC 7296 §3.1) and its
//     payloads;
//   - anything else is an ESP packet, for the ESP codec to judge.
//
// Port 500 carries IKE without a marker; nothing here applies to it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "wire/ike.h"

namespace ovl {

enum class EspUdpDatagram {
  esp,        // an ESP packet (or what claims to be one)
  keepalive,  // a NAT keepalive
  ike,        // an IKE message at datagram + kNonEspMarkerSize
  short_ike,  // the non-ESP marker with fewer than kIkeHeaderSize bytes after it: malformed
};

inline EspUdpDatagram esp_udp_classify(const uint8_t* datagram, size_t length) {
  if (length == 1 && datagram[0] == kNatKeepaliveByte) return EspUdpDatagram::keepalive;
  if (length < kNonEspMarkerSize) return EspUdpDatagram::esp;
  if ((datagram[0] | datagram[1] | datagram[2] | datagram[3]) != 0) return EspUdpDatagram::esp;
  return length < kNonEspMarkerSize + kIkeHeaderSize ? EspUdpDatagram::short_ike : EspUdpDatagram::ike;
}

}  // namespace ovl
