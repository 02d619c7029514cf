// IP-in-IP (RFC 2003, RFC 4213): the inner IP packet right behind the outer header; the outer
// protocol number (4 or 41) says which IP version is inside. No header of its own, so nothing
// to validate before the inner checks.
#include "tunnel/implementations.h"

namespace ovl {

namespace {

class IpipTunnel final : public Tunnel {
 public:
  using Tunnel::Tunnel;

  uint8_t outer_protocol(const uint8_t* packet, uint32_t length) const override {
    return length > 0 && (packet[0] >> 4) == 6 ? kIpProtocolIpv6 : kIpProtocolIpip;
  }

  Verdict encapsulate(PacketBuffer&, uint16_t, const Peer*) override { return Verdict::pass(); }

  Verdict decapsulate(uint8_t*, uint32_t length, const ReceivedFrom& from, Inner* inner) override {
    inner->offset = 0;
    inner->length = length;
    inner->ethertype = from.outer_protocol == kIpProtocolIpv6 ? kEtherTypeIpv6 : kEtherTypeIpv4;
    return Verdict::pass();
  }
};

}  // namespace

std::unique_ptr<Tunnel> make_ipip_tunnel(const TunnelConfig& config) { return std::make_unique<IpipTunnel>(config); }

}  // namespace ovl
