#include "datapath/inner_policy.h"

#include <algorithm>
#include <cstring>

#include "offload/offload_segment.h"
#include "system/clock.h"
#include "wire/ecn.h"
#include "wire/mss_clamp.h"

namespace ovl {

InnerFrame inspect_inner(uint8_t* frame, uint32_t length, uint32_t link_header) {
  InnerFrame inner{frame, length};
  if (link_header != 0) {
    if (length < kEthernetHeaderSize) return inner;
    const uint16_t type = load_be16(frame + 12);
    if (type != kEtherTypeIpv4 && type != kEtherTypeIpv6) return inner;
  }
  inner.ip = frame + link_header;
  inner.ip_length = length - link_header;
  inner.ip_valid = parse_ip_packet(inner.ip, inner.ip_length, &inner.parsed) == IpParse::ok;
  return inner;
}

InnerPolicy::InnerPolicy(WorkerContext& context, LearnedFdb& fdb)
    : context_(context), fdb_(fdb), local_key_(address_key(context.config.local.get())) {}

bool InnerPolicy::is_loop(const AddressKey& destination) const {
  return context_.table->is_endpoint(destination) || destination == local_key_;
}

// With DF (or IPv6, which routers never fragment) the sender of an oversized packet must learn
// the path MTU. Without DF it is sent anyway and the underlay fragments the outer packet (UDP
// modes; a raw-IP send of it fails with EMSGSIZE and is counted as tooBig there).
bool InnerPolicy::too_big(const InnerFrame& inner, uint32_t packet_length) const {
  const uint32_t limit = context_.config.max_inner_packet;
  if (limit == 0 || packet_length <= limit) return false;
  return inner.ip_valid && inner.parsed.dont_fragment;
}

// The error goes back through the device, rate-limited, as Linux tunnels do (icmp_ndo_send).
// It comes from the packet's destination: it enters the host through the device, and the host
// drops a packet arriving with one of its own addresses as source (a martian), so the device's
// address cannot be used; the PMTU logic does not care who reports.
uint32_t InnerPolicy::build_too_big(const InnerFrame& inner, bool vnet, const uint8_t** out) {
  if (!icmp_budget_.take(monotonic_microseconds())) return 0;
  const uint32_t limit = context_.config.max_inner_packet;
  const uint8_t* source = inner.parsed.destination;
  const uint32_t vnet_length = vnet ? kVirtioNetHeaderSize : 0;
  if (icmp_buffer_.empty()) icmp_buffer_.resize(kVirtioNetHeaderSize + kEthernetHeaderSize + kIcmpv6ErrorMaxSize);
  uint8_t* packet = icmp_buffer_.data() + vnet_length;
  const size_t capacity = icmp_buffer_.size() - vnet_length;
  size_t built;
  if (context_.config.link_header() != 0) {
    built = build_too_big_frame(packet, capacity, inner.frame, inner.length, limit, source, ++icmp_id_);
  } else if (inner.parsed.version == 4) {
    built = build_ipv4_frag_needed(packet, capacity, inner.ip, inner.ip_length,
                                   static_cast<uint16_t>(std::min<uint32_t>(limit, 65535)), source, ++icmp_id_);
  } else {
    built = build_ipv6_packet_too_big(packet, capacity, inner.ip, inner.ip_length, limit, source);
  }
  if (built == 0) return 0;
  // A virtio header of zeros: a plain packet, checksums complete.
  std::memset(icmp_buffer_.data(), 0, vnet_length);
  *out = icmp_buffer_.data();
  return static_cast<uint32_t>(vnet_length + built);
}

Verdict InnerPolicy::accept_ethernet(const InnerFrame& inner, uint32_t slot, const OuterInfo& outer) {
  if (inner.length < kEthernetHeaderSize) return Verdict::drop(kDropMalformed);
  const uint8_t* source = eth_source(inner.frame);
  if (!mac_is_valid_source(source)) return Verdict::drop(kDropMalformed);
  const MacKey source_key = mac_key(source);
  // Our own frames coming back mean a forwarding loop somewhere in the underlay.
  if (source_key == context_.config.device_mac) return Verdict::drop(kDropLoop);
  const Verdict ecn = apply_outer_ecn(inner, outer);
  if (!ecn.ok()) return ecn;
  clamp_mss(inner, false);
  if (context_.config.learning && context_.table->by_static_mac(source_key) == PeerTable::kNone &&
      !fdb_.learn(source_key, slot, context_.now)) {
    context_.count(kFdbFull);
  }
  return Verdict::pass();
}

Verdict InnerPolicy::accept_ip(const InnerFrame& inner, uint16_t ethertype, uint32_t peer, const OuterInfo& outer) {
  const InnerIp& ip = inner.parsed;
  const bool version_matches = (ethertype == kEtherTypeIpv4 && ip.version == 4) ||
                               (ethertype == kEtherTypeIpv6 && ip.version == 6);
  if (!inner.ip_valid || !version_matches) return Verdict::drop(kDropMalformed);
  if (ip.ttl == 0) return Verdict::drop(kDropTtlExpired);
  const PeerTable& table = *context_.table;
  const uint32_t source_peer = ip.version == 4 ? table.by_route_v4(ip.source) : table.by_route_v6(ip.source);
  if (source_peer != peer) return Verdict::drop(kDropSpoofed);
  const Verdict ecn = apply_outer_ecn(inner, outer);
  if (!ecn.ok()) return ecn;
  clamp_mss(inner, false);
  return Verdict::pass();
}

Verdict InnerPolicy::apply_outer_ecn(const InnerFrame& inner, const OuterInfo& outer) {
  if (!outer.ecn_known || !inner.ip_valid) return Verdict::pass();
  const EcnDecap result = ecn_decapsulate(inner.parsed.ecn, outer.ecn);
  if (result.drop) return Verdict::drop(kDropEcn);
  if (result.inner_result != inner.parsed.ecn) ip_set_ecn(inner.ip, result.inner_result);
  return Verdict::pass();
}

void InnerPolicy::clamp_mss(const InnerFrame& inner, bool checksum_partial) {
  const WorkerConfig& config = context_.config;
  if (config.mss_clamp_v4 == 0 || inner.ip == nullptr || inner.ip_length < 1) return;
  const uint16_t limit = (inner.ip[0] >> 4) == 6 ? config.mss_clamp_v6 : config.mss_clamp_v4;
  if (clamp_tcp_mss(inner.ip, inner.ip_length, limit, checksum_partial)) context_.count(kMssClamped);
}

}  // namespace ovl
