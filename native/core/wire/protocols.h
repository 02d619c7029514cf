// Protocol numbers, defined once: the IANA IP protocol numbers (IPv4 Protocol / IPv6 Next
// Header) and the EtherTypes (also GRE's and Geneve's protocol type field) the data path uses.
// Codecs name their fields after these instead of repeating the numbers.
#pragma once

#include <cstdint>

namespace ovl {

// IP protocol numbers.
constexpr uint8_t kIpProtocolIcmp = 1;
constexpr uint8_t kIpProtocolIpip = 4;  // IPv4 inside (RFC 2003); also ESP's next header for IPv4
constexpr uint8_t kIpProtocolTcp = 6;
constexpr uint8_t kIpProtocolUdp = 17;
constexpr uint8_t kIpProtocolIpv6 = 41;  // IPv6 inside (RFC 4213)
constexpr uint8_t kIpProtocolGre = 47;
constexpr uint8_t kIpProtocolEsp = 50;
constexpr uint8_t kIpProtocolIcmpv6 = 58;
constexpr uint8_t kIpProtocolNone = 59;  // IPv6 "no next header"; an ESP dummy packet
constexpr uint8_t kIpProtocolSctp = 132;
constexpr uint8_t kIpProtocolUdpLite = 136;
constexpr uint8_t kIpProtocolEthernet = 143;  // Ethernet (RFC 8986): ESP's next header for frames

// EtherTypes.
constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeArp = 0x0806;
constexpr uint16_t kEtherTypeTransparentEthernet = 0x6558;  // "transparent Ethernet bridging"
constexpr uint16_t kEtherTypeVlan = 0x8100;
constexpr uint16_t kEtherTypeIpv6 = 0x86DD;
constexpr uint16_t kEtherTypeQinQ = 0x88A8;

}  // namespace ovl
