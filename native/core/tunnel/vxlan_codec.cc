#include "tunnel/vxlan_codec.h"

#include "wire/ethernet.h"

namespace ovl {

void vxlan_encode(uint8_t* header, uint32_t vni) {
  header[0] = kVxlanFlagVniValid;
  header[1] = header[2] = header[3] = 0;
  header[4] = static_cast<uint8_t>(vni >> 16);
  header[5] = static_cast<uint8_t>(vni >> 8);
  header[6] = static_cast<uint8_t>(vni);
  header[7] = 0;
}

VxlanStatus vxlan_decode(const uint8_t* packet, size_t length, uint32_t expected_vni) {
  // An inner frame must at least hold its Ethernet header (the kernel's pskb_may_pull(ETH_HLEN)).
  if (length < kVxlanHeaderSize + kEthernetHeaderSize) return VxlanStatus::malformed;
  // First word: flags byte exactly I, 24 reserved bits zero. Last byte: reserved, zero.
  if (packet[0] != kVxlanFlagVniValid || packet[1] != 0 || packet[2] != 0 || packet[3] != 0 ||
      packet[7] != 0) {
    return VxlanStatus::malformed;
  }
  if (vxlan_vni(packet) != expected_vni) return VxlanStatus::wrong_vni;
  return VxlanStatus::ok;
}

}  // namespace ovl
