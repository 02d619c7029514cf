// The immutable table a worker forwards with: peers, their underlay endpoints, the static MAC
// entries from config (TAP) and the allowedIps routes (TUN). TypeScript compiles it; the Forwarder publishes it and
// workers pick the new one up at their next batch, so an update never stops traffic.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "wire/ethernet.h"
#include "tunnel/esp/esp_sa.h"
#include "tables/route_table.h"
#include "base/socket_address.h"

namespace ovl {

struct Peer {
  uint32_t slot;  // stats section and identity in learned FDB entries
  SocketAddress endpoint;
  std::shared_ptr<EspSaState> sa_out;  // esp: what we send with (null in other modes)
};

struct PeerSpec {
  uint32_t slot;
  SocketAddress endpoint;
  std::vector<MacKey> macs;
  std::vector<RoutePrefix> allowed_ips;  // `peer` of each is ignored: the table sets it
  // esp: as configured (the forwarder turns them into states, reusing those whose SPI and key
  // it already has) ...
  std::optional<EspSaSpec> sa_out_spec;
  std::vector<EspSaSpec> sa_in_specs;
  // ... and resolved: what the table holds.
  std::shared_ptr<EspSaState> sa_out;
  std::vector<std::shared_ptr<EspSaState>> sa_in;  // the current one, and any in their grace period
};

// An inbound SA and the peer (index into peers()) it belongs to.
struct InboundSa {
  uint32_t peer;
  EspSaState* state;
};

class PeerTable {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;
  static_assert(kNone == RouteTable::kNoRoute, "a route miss reads as no peer");

  // Throws InvalidArgument on duplicate slots, endpoints, MACs or prefixes.
  explicit PeerTable(const std::vector<PeerSpec>& specs);

  const std::vector<Peer>& peers() const { return peers_; }
  // Index into peers(), or kNone.
  uint32_t by_source(const sockaddr* source) const {
    auto it = by_address_.find(address_key(source));
    return it == by_address_.end() ? kNone : it->second;
  }
  uint32_t by_static_mac(MacKey mac) const {
    auto it = static_macs_.find(mac);
    return it == static_macs_.end() ? kNone : it->second;
  }
  uint32_t by_slot(uint32_t slot) const {
    auto it = by_slot_.find(slot);
    return it == by_slot_.end() ? kNone : it->second;
  }
  size_t static_mac_count() const { return static_macs_.size(); }
  // Index into peers() of the longest allowedIps prefix holding `address`, or kNone.
  uint32_t by_route_v4(const uint8_t* address) const { return routes_.lookup_v4(address); }
  uint32_t by_route_v6(const uint8_t* address) const { return routes_.lookup_v6(address); }
  const RouteTable& routes() const { return routes_; }
  // The inbound SA with this SPI, or null.
  const InboundSa* by_spi(uint32_t spi) const {
    auto it = by_spi_.find(spi);
    return it == by_spi_.end() ? nullptr : &it->second;
  }
  // Whether `address` (an AddressKey) is a peer's underlay endpoint: an inner packet to it
  // would be encapsulated toward the very tunnel it travels in.
  bool is_endpoint(const AddressKey& address) const { return by_address_.count(address) != 0; }

 private:
  std::vector<Peer> peers_;
  std::unordered_map<AddressKey, uint32_t, AddressKeyHash> by_address_;
  std::unordered_map<MacKey, uint32_t> static_macs_;
  std::unordered_map<uint32_t, uint32_t> by_slot_;
  RouteTable routes_;
  std::unordered_map<uint32_t, InboundSa> by_spi_;
  std::vector<std::shared_ptr<EspSaState>> sa_in_;  // keeps the inbound states alive
};

}  // namespace ovl
