// The one policy for inner packets, both ways: what an inner frame must be to enter the tunnel
// (no routing loop, not too big for the underlay: ICMP back) and to leave it (a valid source,
// a live TTL, anti-spoofing against the sending peer's allowedIps, RFC 6040 ECN), and the TCP
// MSS clamp on both. The inner IP header is parsed once per packet (InnerIp, wire/ip_packet.h)
// and the parse is handed to every check.
#pragma once

#include <cstdint>
#include <vector>

#include "base/verdict.h"
#include "datapath/worker_config.h"
#include "tables/learned_fdb.h"
#include "underlay/link.h"
#include "wire/icmp_too_big.h"
#include "wire/ip_packet.h"

namespace ovl {

// An inner frame as the policy sees it: where its IP packet starts, and that packet parsed.
struct InnerFrame {
  uint8_t* frame;
  uint32_t length;
  uint8_t* ip = nullptr;  // the IP packet after the link header; null when the frame is not IP
  uint32_t ip_length = 0;
  bool ip_valid = false;  // the IP header parsed: `parsed` holds it
  InnerIp parsed;
};

// Looks into a frame from the device or the tunnel once: `link_header` 14 (Ethernet) or 0.
InnerFrame inspect_inner(uint8_t* frame, uint32_t length, uint32_t link_header);

class InnerPolicy {
 public:
  InnerPolicy(WorkerContext& context, LearnedFdb& fdb);

  // ---- into the tunnel ----
  // An inner packet to a tunnel endpoint (or to our own underlay address) would be encapsulated
  // toward the very endpoint its outer packets go to: a routing loop, as Linux tunnels refuse.
  bool is_loop(const AddressKey& destination) const;
  // Whether an inner packet is larger than the underlay carries whole and may not be fragmented
  // (DF, or IPv6): its sender must learn the path MTU. `packet_length`: what will be sent.
  bool too_big(const InnerFrame& inner, uint32_t packet_length) const;
  // The ICMP Fragmentation Needed / Packet Too Big for `inner`, built into the policy's buffer
  // (with a zeroed vnet header in front when `vnet`); rate-limited. Returns its length, 0 when
  // none is sent.
  uint32_t build_too_big(const InnerFrame& inner, bool vnet, const uint8_t** out);

  // The peer slot a learned MAC points at, or LearnedFdb::kNone.
  uint32_t learned_slot(MacKey mac) { return fdb_.lookup(mac, context_.now); }

  // ---- out of the tunnel ----
  // An Ethernet frame from peer `slot`: its source must be a unicast MAC that is not ours; its
  // IP packet gets the outer ECN; its source MAC is learned.
  Verdict accept_ethernet(const InnerFrame& inner, uint32_t slot, const OuterInfo& outer);
  // An IP packet from peer index `peer` for the TUN device: its version must match what the
  // encapsulation said it is, its header must hold together, its TTL must not be spent, and its
  // source must be one the peer may use (allowedIps, longest match: anti-spoofing).
  Verdict accept_ip(const InnerFrame& inner, uint16_t ethertype, uint32_t peer, const OuterInfo& outer);

  // ---- both ----
  // The TCP MSS clamp (off unless configured): only SYNs are touched.
  void clamp_mss(const InnerFrame& inner, bool checksum_partial);

 private:
  // RFC 6040 decapsulation of the outer ECN onto the inner IP packet.
  Verdict apply_outer_ecn(const InnerFrame& inner, const OuterInfo& outer);

  WorkerContext& context_;
  LearnedFdb& fdb_;
  AddressKey local_key_;
  TokenBucket icmp_budget_{kIcmpTooBigPerSecond, kIcmpTooBigBurst};
  uint16_t icmp_id_ = 0;
  std::vector<uint8_t> icmp_buffer_;
};

}  // namespace ovl
