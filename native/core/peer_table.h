// The immutable table a worker forwards with: peers, their underlay endpoints, and the
// static MAC entries from config. TypeScript compiles it; the Forwarder publishes it and
// workers pick the new one up at their next batch, so an update never stops traffic.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "ethernet.h"
#include "socket_address.h"

namespace ovl {

struct Peer {
  uint32_t slot;  // stats section and identity in learned FDB entries
  SocketAddress endpoint;
};

struct PeerSpec {
  uint32_t slot;
  SocketAddress endpoint;
  std::vector<MacKey> macs;
};

class PeerTable {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  // Throws InvalidArgument on duplicate slots, endpoints or MACs.
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

 private:
  std::vector<Peer> peers_;
  std::unordered_map<AddressKey, uint32_t, AddressKeyHash> by_address_;
  std::unordered_map<MacKey, uint32_t> static_macs_;
  std::unordered_map<uint32_t, uint32_t> by_slot_;
};

}  // namespace ovl
