// Fuzz target: the receive-side parsing of one underlay datagram (VXLAN and Geneve header checks, inner
// Ethernet source checks, flow hashing) must never read out of bounds or misbehave.
#include <cstddef>
#include <cstdint>

#include "wire/ethernet.h"
#include "base/flow_hash.h"
#include "tunnel/geneve_codec.h"
#include "tunnel/vxlan_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint32_t vni = size > 6 ? ovl::vxlan_vni(data) : 42;
  if (ovl::vxlan_decode(data, size, vni) == ovl::VxlanStatus::ok) {
    const uint8_t* inner = data + ovl::kVxlanHeaderSize;
    const size_t inner_length = size - ovl::kVxlanHeaderSize;
    volatile bool valid = ovl::mac_is_valid_source(ovl::eth_source(inner));
    volatile uint64_t key = ovl::mac_key(ovl::eth_destination(inner));
    (void)valid;
    (void)key;
    volatile uint32_t hash = ovl::ethernet_flow_hash(inner, inner_length);
    (void)hash;
  }
  uint32_t inner = 0;
  const uint32_t geneve_vni = size > 6 ? (uint32_t{data[4]} << 16 | uint32_t{data[5]} << 8 | data[6]) : 42;
  if (ovl::geneve_decode(data, size, geneve_vni, &inner) == ovl::GeneveStatus::ok) {
    // On ok the inner Ethernet header lies inside the input.
    volatile uint64_t key = ovl::mac_key(ovl::eth_source(data + inner)) + ovl::ethernet_flow_hash(data + inner, size - inner);
    (void)key;
  }
  volatile uint32_t raw = ovl::ethernet_flow_hash(data, size) ^ ovl::ip_flow_hash(data, size);
  (void)raw;
  return 0;
}
