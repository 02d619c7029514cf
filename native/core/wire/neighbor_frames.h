// "This address is here now": the frames a host sends when one of its addresses comes up or
// moves to another link-layer address, so that its neighbours update their caches at once
// instead of after their entries time out.
//
// IPv4: a gratuitous ARP (RFC 5227 §3 "ARP Announcement", RFC 826): an ARP request to the
// broadcast address whose sender and target protocol addresses are both the announced one, the
// target hardware address zero. A request rather than a reply, as Linux (arp_notify) and
// arping -U send it: every implementation updates an existing cache entry from it.
//
// IPv6: an unsolicited Neighbor Advertisement (RFC 4861 §7.2.6) to all-nodes ff02::1
// (33:33:00:00:00:01), from the announced address, hop limit 255, Solicited clear, Override
// set, with the Target Link-Layer Address option; Router as the caller says (the interface's
// forwarding setting, as Linux's ndisc_send_unsol_na does: a wrong Router flag would make
// peers drop us from their default routers, RFC 4861 §7.2.5).
//
// Both are written whole (Ethernet header included) at `out`, which must hold the size below;
// they return that size. No padding to 60 bytes: the kernel's own ARP frames are 42 bytes too
// until a NIC pads them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ovl {

constexpr size_t kGratuitousArpFrameSize = 14 + 28;
constexpr size_t kUnsolicitedNaFrameSize = 14 + 40 + 24 + 8;

size_t build_gratuitous_arp(uint8_t* out, const uint8_t mac[6], const uint8_t ipv4[4]);
size_t build_unsolicited_na(uint8_t* out, const uint8_t mac[6], const uint8_t ipv6[16], bool router);

}  // namespace ovl
