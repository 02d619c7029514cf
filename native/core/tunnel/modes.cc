// The table of modes and what a configured tunnel derives from it.
#include <sys/socket.h>

#include "tunnel/esp/esp_codec.h"
#include "tunnel/geneve_codec.h"
#include "tunnel/implementations.h"
#include "tunnel/tunnel.h"
#include "tunnel/vxlan_codec.h"
#include "wire/ethernet.h"

namespace ovl {

namespace {

// Ports: VXLAN 4789 (RFC 7348), Geneve 6081 (RFC 8926), GRE-in-UDP 4754 (RFC 8086), ESP in UDP
// 4500 (RFC 3948).
const std::vector<TunnelModeInfo> kModes = {
    //  mode                name       udp    raw_ip port  ether  ip     header               trailer
    {TunnelMode::vxlan, "vxlan", true, false, 4789, true, false, kVxlanHeaderSize, 0},
    {TunnelMode::geneve, "geneve", true, false, 6081, true, true, kGeneveHeaderSize, 0},
    {TunnelMode::gre_udp, "gre-udp", true, false, 4754, true, true, kGreBaseHeaderSize, 0},
    {TunnelMode::gre, "gre", false, true, 0, true, true, kGreBaseHeaderSize, 0},
    {TunnelMode::ipip, "ipip", false, true, 0, false, true, 0, 0},
    {TunnelMode::esp, "esp", true, true, 4500, true, true, kEspPrefixSize, kEspMaxTrailerSize},
};

}  // namespace

const std::vector<TunnelModeInfo>& tunnel_modes() { return kModes; }

const TunnelModeInfo& tunnel_mode_info(TunnelMode mode) { return kModes[static_cast<size_t>(mode)]; }

const TunnelModeInfo* tunnel_mode_by_name(const std::string& name) {
  for (const TunnelModeInfo& row : kModes) {
    if (name == row.name) return &row;
  }
  return nullptr;
}

bool TunnelConfig::over_udp() const {
  const TunnelModeInfo& mode_info = info();
  return mode_info.udp && (!mode_info.raw_ip || esp_udp);
}

uint32_t TunnelConfig::header_size() const {
  if (mode == TunnelMode::gre || mode == TunnelMode::gre_udp) return gre_header_size(gre);
  return info().header_bytes;
}

int TunnelConfig::overhead(int family) const {
  const int outer_ip = family == AF_INET6 ? 40 : 20;
  const int udp = over_udp() ? 8 : 0;
  const int inner_link = carries_ip ? 0 : static_cast<int>(kEthernetHeaderSize);
  return outer_ip + udp + static_cast<int>(header_size() + trailer_size()) + inner_link;
}

std::vector<uint8_t> TunnelConfig::receive_protocols() const {
  if (over_udp()) return {};
  switch (mode) {
    case TunnelMode::gre: return {kIpProtocolGre};
    case TunnelMode::esp: return {kIpProtocolEsp};
    case TunnelMode::ipip: return {kIpProtocolIpip, kIpProtocolIpv6};
    default: return {};
  }
}

std::unique_ptr<Tunnel> make_tunnel(const TunnelConfig& config, uint32_t peer_slots, uint32_t max_frame) {
  switch (config.mode) {
    case TunnelMode::vxlan: return make_vxlan_tunnel(config);
    case TunnelMode::geneve: return make_geneve_tunnel(config);
    case TunnelMode::gre_udp:
    case TunnelMode::gre: return make_gre_tunnel(config, peer_slots);
    case TunnelMode::ipip: return make_ipip_tunnel(config);
    case TunnelMode::esp: return make_esp_tunnel(config, max_frame);
  }
  return nullptr;
}

}  // namespace ovl
