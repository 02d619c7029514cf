// The per-mode Tunnel implementations, for make_tunnel (modes.cc) only.
#pragma once

#include <memory>

#include "tunnel/tunnel.h"

namespace ovl {

std::unique_ptr<Tunnel> make_vxlan_tunnel(const TunnelConfig& config);
std::unique_ptr<Tunnel> make_geneve_tunnel(const TunnelConfig& config);
std::unique_ptr<Tunnel> make_gre_tunnel(const TunnelConfig& config, uint32_t peer_slots);  // gre and gre-udp
std::unique_ptr<Tunnel> make_ipip_tunnel(const TunnelConfig& config);
std::unique_ptr<Tunnel> make_esp_tunnel(const TunnelConfig& config, uint32_t copy_frame_size);

}  // namespace ovl
