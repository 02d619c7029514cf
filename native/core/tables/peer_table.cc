#include "tables/peer_table.h"

#include "system/sys_error.h"

namespace ovl {

namespace {

// Every peer's prefixes, labelled with the peer's index in the table.
std::vector<RoutePrefix> routes_of(const std::vector<PeerSpec>& specs) {
  size_t count = 0;
  for (const PeerSpec& spec : specs) count += spec.allowed_ips.size();
  std::vector<RoutePrefix> routes;
  routes.reserve(count);
  for (size_t index = 0; index < specs.size(); index++) {
    for (RoutePrefix prefix : specs[index].allowed_ips) {
      prefix.peer = static_cast<uint32_t>(index);
      routes.push_back(prefix);
    }
  }
  return routes;
}

}  // namespace

PeerTable::PeerTable(const std::vector<PeerSpec>& specs) : routes_(routes_of(specs)) {
  peers_.reserve(specs.size());
  for (const PeerSpec& spec : specs) {
    const auto index = static_cast<uint32_t>(peers_.size());
    if (!by_slot_.emplace(spec.slot, index).second) {
      throw InvalidArgument("duplicate peer slot " + std::to_string(spec.slot));
    }
    if (!by_address_.emplace(address_key(spec.endpoint.get()), index).second) {
      throw InvalidArgument("duplicate peer endpoint " + spec.endpoint.to_string());
    }
    for (MacKey mac : spec.macs) {
      if (!static_macs_.emplace(mac, index).second) {
        throw InvalidArgument("MAC " + format_mac(mac) + " is given to two peers");
      }
    }
    for (const auto& sa : spec.sa_in) {
      if (!by_spi_.emplace(sa->spi, InboundSa{index, sa.get()}).second) {
        throw InvalidArgument("inbound SPI " + std::to_string(sa->spi) + " is given twice");
      }
      sa_in_.push_back(sa);
    }
    peers_.push_back(Peer{spec.slot, spec.endpoint, spec.sa_out});
  }
}

}  // namespace ovl
