// What shares UDP port 4500 with ESP (RFC 3948): NAT keepalives, IKE behind the non-ESP marker,
// marked datagrams too short for an IKE header, and ESP packets, at the edges of each length.
#include "tunnel/esp/esp_udp_encap.h"

#include <cstdint>
#include <vector>

#include "test.h"

using namespace ovl;

namespace {

using Bytes = std::vector<uint8_t>;

EspUdpDatagram classify(const Bytes& datagram) { return esp_udp_classify(datagram.data(), datagram.size()); }

// The non-ESP marker followed by `after` bytes (an IKE header starts with the initiator's SPI).
Bytes marked(size_t after) {
  Bytes datagram(kNonEspMarkerSize + after, 0x11);
  for (uint32_t i = 0; i < kNonEspMarkerSize; i++) datagram[i] = 0;
  return datagram;
}

}  // namespace

TEST(esp_udp_nat_keepalive_is_one_byte_0xff) {
  CHECK(classify({0xff}) == EspUdpDatagram::keepalive);
  // Anything else that short is no keepalive: the ESP codec refuses it as malformed.
  CHECK(classify({0xfe}) == EspUdpDatagram::esp);
  CHECK(classify({0x00}) == EspUdpDatagram::esp);
  CHECK(classify({0xff, 0xff}) == EspUdpDatagram::esp);
  CHECK(classify({}) == EspUdpDatagram::esp);
}

TEST(esp_udp_ike_follows_the_non_esp_marker) {
  CHECK(classify(marked(kIkeHeaderSize)) == EspUdpDatagram::ike);
  CHECK(classify(marked(kIkeHeaderSize + 1)) == EspUdpDatagram::ike);
  CHECK(classify(marked(65000)) == EspUdpDatagram::ike);
  // An IKE header with a zero initiator SPI is still IKE: only the marker decides.
  CHECK(classify(Bytes(kNonEspMarkerSize + kIkeHeaderSize, 0)) == EspUdpDatagram::ike);
}

TEST(esp_udp_marked_datagram_shorter_than_an_ike_header_is_short) {
  CHECK(classify(marked(kIkeHeaderSize - 1)) == EspUdpDatagram::short_ike);
  CHECK(classify(marked(1)) == EspUdpDatagram::short_ike);
  CHECK(classify(marked(0)) == EspUdpDatagram::short_ike);  // the marker alone
  // Shorter than the marker: no marker at all.
  CHECK(classify({0, 0, 0}) == EspUdpDatagram::esp);
}

TEST(esp_udp_any_nonzero_spi_byte_is_esp) {
  for (uint32_t i = 0; i < kNonEspMarkerSize; i++) {
    Bytes datagram = marked(kIkeHeaderSize + 40);
    datagram[i] = 0x01;
    CHECK(classify(datagram) == EspUdpDatagram::esp);
  }
  Bytes esp(60, 0);
  esp[3] = 0x01;  // SPI 1, a short ESP packet is still the codec's to refuse
  CHECK(classify(esp) == EspUdpDatagram::esp);
  CHECK(classify({0, 0, 0x10, 0x01}) == EspUdpDatagram::esp);
}
