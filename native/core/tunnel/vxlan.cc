// VXLAN (RFC 7348): Ethernet in UDP behind an 8-byte header naming the VNI.
#include "tunnel/implementations.h"
#include "tunnel/vxlan_codec.h"

namespace ovl {

namespace {

class VxlanTunnel final : public Tunnel {
 public:
  using Tunnel::Tunnel;

  Verdict encapsulate(PacketBuffer& buffer, uint16_t, const Peer*) override {
    vxlan_encode(buffer.push_front(kVxlanHeaderSize), config_.vni);
    return Verdict::pass();
  }

  Verdict decapsulate(uint8_t* packet, uint32_t length, const ReceivedFrom&, Inner* inner) override {
    switch (vxlan_decode(packet, length, config_.vni)) {
      case VxlanStatus::ok:
        inner->offset = kVxlanHeaderSize;
        inner->length = length - kVxlanHeaderSize;
        inner->ethertype = kEtherTypeTransparentEthernet;
        return Verdict::pass();
      case VxlanStatus::wrong_vni: return Verdict::drop(kDropWrongVni);
      case VxlanStatus::malformed: break;
    }
    return Verdict::drop(kDropMalformed);
  }
};

}  // namespace

std::unique_ptr<Tunnel> make_vxlan_tunnel(const TunnelConfig& config) { return std::make_unique<VxlanTunnel>(config); }

}  // namespace ovl
