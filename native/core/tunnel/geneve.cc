// Geneve (RFC 8926): Ethernet (TAP) or IP (TUN) in UDP behind an 8-byte header; we send no
// options, and drop critical options we cannot honour and OAM packets.
#include "tunnel/geneve_codec.h"
#include "tunnel/implementations.h"

namespace ovl {

namespace {

class GeneveTunnel final : public Tunnel {
 public:
  using Tunnel::Tunnel;

  Verdict encapsulate(PacketBuffer& buffer, uint16_t ethertype, const Peer*) override {
    geneve_encode(buffer.push_front(kGeneveHeaderSize), config_.vni, ethertype);
    return Verdict::pass();
  }

  Verdict decapsulate(uint8_t* packet, uint32_t length, const ReceivedFrom&, Inner* inner) override {
    uint32_t offset = 0;
    uint16_t protocol = kGeneveProtocolEthernet;
    switch (geneve_decode(packet, length, config_.vni, &offset, config_.carries_ip, &protocol)) {
      case GeneveStatus::ok:
        inner->offset = offset;
        inner->length = length - offset;
        inner->ethertype = protocol;
        return Verdict::pass();
      case GeneveStatus::wrong_vni: return Verdict::drop(kDropWrongVni);
      case GeneveStatus::oam: return Verdict::drop(kDropOam);
      case GeneveStatus::unknown_option: return Verdict::drop(kDropUnknownOption);
      case GeneveStatus::malformed:
      case GeneveStatus::wrong_protocol: break;
    }
    return Verdict::drop(kDropMalformed);
  }
};

}  // namespace

std::unique_ptr<Tunnel> make_geneve_tunnel(const TunnelConfig& config) {
  return std::make_unique<GeneveTunnel>(config);
}

}  // namespace ovl
