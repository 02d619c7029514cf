#include "wire/neighbor_frames.h"

#include <cstring>

#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "wire/protocols.h"

namespace ovl {

namespace {

constexpr uint16_t kArpHardwareEthernet = 1;
constexpr uint16_t kArpRequest = 1;
constexpr uint8_t kIcmpv6NeighborAdvertisement = 136;
constexpr uint8_t kNdOptionTargetLinkLayer = 2;
constexpr uint8_t kNaRouter = 0x80, kNaOverride = 0x20;  // the flags byte (Solicited 0x40 stays clear)
constexpr uint8_t kNdHopLimit = 255;                     // RFC 4861 §7.1.2: receivers check it
constexpr size_t kIcmpv6NaSize = 24 + 8;                 // header, target, one option

void ethernet_header(uint8_t* out, const uint8_t destination[6], const uint8_t source[6], uint16_t ether_type) {
  std::memcpy(out, destination, 6);
  std::memcpy(out + 6, source, 6);
  store_be16(out + 12, ether_type);
}

}  // namespace

size_t build_gratuitous_arp(uint8_t* out, const uint8_t mac[6], const uint8_t ipv4[4]) {
  static const uint8_t broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  ethernet_header(out, broadcast, mac, kEtherTypeArp);
  uint8_t* arp = out + kEthernetHeaderSize;
  store_be16(arp, kArpHardwareEthernet);
  store_be16(arp + 2, kEtherTypeIpv4);
  arp[4] = 6;  // hardware address length
  arp[5] = 4;  // protocol address length
  store_be16(arp + 6, kArpRequest);
  std::memcpy(arp + 8, mac, 6);   // sender hardware address
  std::memcpy(arp + 14, ipv4, 4); // sender protocol address
  std::memset(arp + 18, 0, 6);    // target hardware address: unknown
  std::memcpy(arp + 24, ipv4, 4); // target protocol address: the same
  return kGratuitousArpFrameSize;
}

size_t build_unsolicited_na(uint8_t* out, const uint8_t mac[6], const uint8_t ipv6[16], bool router) {
  static const uint8_t all_nodes_mac[6] = {0x33, 0x33, 0, 0, 0, 1};
  static const uint8_t all_nodes[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  ethernet_header(out, all_nodes_mac, mac, kEtherTypeIpv6);
  uint8_t* ip = out + kEthernetHeaderSize;
  store_be32(ip, 6u << 28);  // version 6, traffic class 0, flow label 0
  store_be16(ip + 4, static_cast<uint16_t>(kIcmpv6NaSize));
  ip[6] = kIpProtocolIcmpv6;
  ip[7] = kNdHopLimit;
  std::memcpy(ip + 8, ipv6, 16);
  std::memcpy(ip + 24, all_nodes, 16);
  uint8_t* icmp = ip + 40;
  std::memset(icmp, 0, kIcmpv6NaSize);
  icmp[0] = kIcmpv6NeighborAdvertisement;
  icmp[4] = static_cast<uint8_t>(kNaOverride | (router ? kNaRouter : 0));
  std::memcpy(icmp + 8, ipv6, 16);  // target address
  icmp[24] = kNdOptionTargetLinkLayer;
  icmp[25] = 1;  // option length in units of 8 bytes
  std::memcpy(icmp + 26, mac, 6);
  const uint32_t sum = pseudo_header_sum_ipv6(ip + 8, ip + 24, kIpProtocolIcmpv6, kIcmpv6NaSize);
  store_be16(icmp + 2, checksum_finish(checksum_add(icmp, kIcmpv6NaSize, sum)));
  return kUnsolicitedNaFrameSize;
}

}  // namespace ovl
