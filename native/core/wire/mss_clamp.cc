#include "wire/mss_clamp.h"

#include "wire/checksum_update.h"
#include "wire/ethernet.h"
#include "wire/ip_packet.h"

namespace ovl {

namespace {

constexpr uint8_t kProtocolTcp = 6;
constexpr size_t kTcpFixed = 20;
constexpr size_t kTcpFlagsOffset = 13;
constexpr uint8_t kFlagSyn = 0x02;
constexpr size_t kTcpChecksumField = 16;
constexpr uint8_t kOptionEnd = 0;
constexpr uint8_t kOptionNop = 1;
constexpr uint8_t kOptionMss = 2;
constexpr uint8_t kOptionMssLength = 4;

// Where the TCP segment is, if this packet is one whose SYN options we may edit: its offset in
// the packet and its length per the IP header (0 when not).
size_t tcp_segment(const uint8_t* packet, size_t length, size_t* segment_length) {
  InnerIp ip;
  if (parse_ip_packet(packet, length, &ip) != IpParse::ok) return 0;
  if (ip.protocol != kProtocolTcp || ip.fragment_offset != 0) return 0;
  *segment_length = ip.total_length - ip.header_length;
  return ip.header_length;
}

// Walks the option list of `options_length` bytes strictly. Returns false when it is malformed;
// otherwise lowers every MSS option above max_mss and carries the change into *checksum.
bool walk_and_clamp(uint8_t* options, size_t options_length, uint16_t max_mss, uint16_t* checksum, bool* changed) {
  // First pass: validate everything, so a malformed list is never half edited.
  for (size_t i = 0; i < options_length;) {
    const uint8_t kind = options[i];
    if (kind == kOptionEnd) break;
    if (kind == kOptionNop) {
      i++;
      continue;
    }
    if (options_length - i < 2) return false;
    const uint8_t option_length = options[i + 1];
    if (option_length < 2 || option_length > options_length - i) return false;
    if (kind == kOptionMss && option_length != kOptionMssLength) return false;
    i += option_length;
  }
  // Second pass: edit.
  for (size_t i = 0; i < options_length;) {
    const uint8_t kind = options[i];
    if (kind == kOptionEnd) break;
    if (kind == kOptionNop) {
      i++;
      continue;
    }
    if (kind == kOptionMss) {
      const uint16_t mss = load_be16(options + i + 2);
      if (mss > max_mss) {
        store_be16(options + i + 2, max_mss);
        // The value sits at TCP offset 20 + i + 2: odd exactly when i is odd.
        *checksum = checksum_replace_value(*checksum, mss, max_mss, (i & 1) != 0);
        *changed = true;
      }
    }
    i += options[i + 1];
  }
  return true;
}

}  // namespace

bool clamp_tcp_mss(uint8_t* ip_packet, size_t length, uint16_t max_mss, bool checksum_partial) {
  size_t segment_length = 0;
  const size_t l4 = tcp_segment(ip_packet, length, &segment_length);
  if (l4 == 0 || segment_length < kTcpFixed) return false;
  uint8_t* tcp = ip_packet + l4;
  if ((tcp[kTcpFlagsOffset] & kFlagSyn) == 0) return false;
  const size_t header_length = size_t{tcp[12]} / 16 * 4;
  if (header_length < kTcpFixed || header_length > segment_length) return false;

  uint16_t checksum = load_be16(tcp + kTcpChecksumField);
  bool changed = false;
  if (!walk_and_clamp(tcp + kTcpFixed, header_length - kTcpFixed, max_mss, &checksum, &changed)) return false;
  if (changed && !checksum_partial) store_be16(tcp + kTcpChecksumField, checksum);
  return changed;
}

}  // namespace ovl
