#include "offload/offload_segment.h"

#include <cstring>

#include "wire/checksum.h"
#include "wire/ethernet.h"

// The constants are ours rather than <linux/virtio_net.h>'s: that header does not compile as
// C++ (a member named `class`), and older copies lack VIRTIO_NET_HDR_GSO_UDP_L4. The values are
// fixed by the virtio specification (§5.1.6) and <linux/if_tun.h>.

namespace ovl {

namespace {
// The checksum field (2 bytes at csum_start + csum_offset) must lie inside the frame.
bool checksum_field_inside(const VirtioNetHeader& vnet, size_t length) {
  return vnet.csum_start <= length && vnet.csum_offset <= length - vnet.csum_start &&
         length - vnet.csum_start - vnet.csum_offset >= 2;
}
}  // namespace

bool complete_partial_checksum(const VirtioNetHeader& vnet, uint8_t* frame, size_t length) {
  if (!checksum_field_inside(vnet, length)) return false;
  uint8_t* start = frame + vnet.csum_start;
  // The field already holds the pseudo-header sum, so summing from csum_start to the end
  // (field included) covers pseudo-header, header and payload. The odd-length tail, if
  // any, is the last block, as checksum_add requires.
  const uint16_t sum = checksum_finish(checksum_add(start, length - vnet.csum_start, 0));
  store_be16(start + vnet.csum_offset, sum == 0 ? 0xFFFF : sum);
  return true;
}

namespace {

// The header's 16-bit fields are in host byte order (see offload_segment.h).
inline uint16_t load_host16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline void store_host16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

// gso NONE: copy, and complete a partial checksum the way skb_checksum_help does.
int copy_and_complete(const VirtioNetHeader& vnet, const uint8_t* frame, size_t length, PacketBuffer* out) {
  if ((vnet.flags & kVirtioNetHdrFNeedsCsum) && !checksum_field_inside(vnet, length)) return kSegmentMalformed;
  if (out->capacity < kHeadroom || length > out->capacity - kHeadroom) return kSegmentBufferTooSmall;
  out->reset();
  std::memcpy(out->data(), frame, length);
  out->length = static_cast<uint32_t>(length);
  if (vnet.flags & kVirtioNetHdrFNeedsCsum) complete_partial_checksum(vnet, out->data(), length);
  return 1;
}

bool is_ipv6_extension(uint8_t next_header) {
  switch (next_header) {
    case 0: case 43: case 44: case 50: case 51: case 60: case 135: case 139: case 140: return true;
    default: return false;
  }
}

// Walks IPv4 options (RFC 791): EOL (0) ends the list, NOP (1) is one byte, every other option
// is type, length (>= 2, within the header), data. Returns false on a malformed list. Records a
// loose (0x83) or strict (0x89) source route's last address as the pseudo-header destination.
bool walk_ipv4_options(const uint8_t* ip, size_t header_length, size_t l3, size_t* pseudo_destination) {
  size_t i = kIpv4HeaderSize;
  while (i < header_length) {
    const uint8_t type = ip[i];
    if (type == 0) break;
    if (type == 1) {
      i++;
      continue;
    }
    if (header_length - i < 2) return false;
    const uint8_t option_length = ip[i + 1];
    if (option_length < 2 || option_length > header_length - i) return false;
    if ((type == 0x83 || type == 0x89) && option_length >= 7) {
      *pseudo_destination = l3 + i + option_length - 4;
    }
    i += option_length;
  }
  return true;
}

}  // namespace

int parse_packet_layout(const uint8_t* frame, size_t length, uint32_t link_header_length, uint8_t protocol,
                        PacketLayout* layout) {
  size_t l3 = link_header_length;
  int link_version = 0;  // the IP version the link header announces, if it has a type field
  if (link_header_length == kEthernetHeaderSize) {
    if (length < kEthernetHeaderSize) return kSegmentMalformed;
    size_t type_offset = 12;
    uint16_t ether_type = load_be16(frame + type_offset);
    // Step over an 802.1Q tag (and an outer 802.1ad one): TPID, TCI, then the real type.
    for (int tags = 0; tags < 2 && (ether_type == kEtherTypeVlan || ether_type == kEtherTypeQinQ); tags++) {
      type_offset += 4;
      if (length < type_offset + 2) return kSegmentMalformed;
      ether_type = load_be16(frame + type_offset);
    }
    if (ether_type == kEtherTypeIpv4) {
      link_version = 4;
    } else if (ether_type == kEtherTypeIpv6) {
      link_version = 6;
    } else {
      return kSegmentMalformed;  // segmentation offload is for IP only
    }
    l3 = type_offset + 2;
  }
  if (l3 >= length) return kSegmentMalformed;
  const uint8_t* ip = frame + l3;
  const size_t available = length - l3;
  const int version = ip[0] >> 4;
  if (link_version != 0 && version != link_version) return kSegmentMalformed;

  size_t l4, end, pseudo_destination;
  if (version == 4) {
    if (available < kIpv4HeaderSize) return kSegmentMalformed;
    const size_t header_length = size_t{ip[0] & 0x0Fu} * 4;
    const size_t total_length = load_be16(ip + 2);
    if (header_length < kIpv4HeaderSize || total_length < header_length || total_length > available) {
      return kSegmentMalformed;
    }
    if ((load_be16(ip + 6) & 0x3FFF) != 0) return kSegmentMalformed;  // MF or an offset: a fragment
    if (ip[9] != protocol) return kSegmentMalformed;
    pseudo_destination = l3 + 16;
    if (!walk_ipv4_options(ip, header_length, l3, &pseudo_destination)) return kSegmentMalformed;
    l4 = l3 + header_length;
    end = l3 + total_length;
  } else if (version == 6) {
    if (available < kIpv6HeaderSize) return kSegmentMalformed;
    const size_t payload_length = load_be16(ip + 4);
    // 0 would be a jumbogram (RFC 2675): never within a 64 KB frame.
    if (payload_length == 0 || payload_length > available - kIpv6HeaderSize) return kSegmentMalformed;
    end = l3 + kIpv6HeaderSize + payload_length;
    l4 = l3 + kIpv6HeaderSize;
    uint8_t next_header = ip[6];
    // Hop-by-hop (0) and destination options (60) don't change the pseudo-header; a routing
    // header would (final destination), fragments and IPsec can't be segmented: unsupported.
    for (int headers = 0; next_header == 0 || next_header == 60; headers++) {
      if (headers == 8) return kSegmentUnsupported;
      if (end - l4 < 8) return kSegmentMalformed;
      next_header = frame[l4];
      l4 += (size_t{frame[l4 + 1]} + 1) * 8;
      if (l4 > end) return kSegmentMalformed;
    }
    if (next_header != protocol) return is_ipv6_extension(next_header) ? kSegmentUnsupported : kSegmentMalformed;
    pseudo_destination = l3 + 24;
  } else {
    return kSegmentMalformed;
  }

  size_t payload;
  if (protocol == kIpProtocolTcp) {
    if (end - l4 < kTcpHeaderSize) return kSegmentMalformed;
    const size_t data_offset = size_t{frame[l4 + 12]} / 16 * 4;
    if (data_offset < kTcpHeaderSize || data_offset > end - l4) return kSegmentMalformed;
    payload = l4 + data_offset;
  } else {
    if (end - l4 < kUdpHeaderSize) return kSegmentMalformed;
    payload = l4 + kUdpHeaderSize;
  }
  layout->l3 = l3;
  layout->l4 = l4;
  layout->payload = payload;
  layout->end = end;
  layout->pseudo_destination = pseudo_destination;
  layout->ip_version = version;
  return 0;
}

bool parse_virtio_net_header(const uint8_t* bytes, size_t length, VirtioNetHeader* header) {
  if (length < kVirtioNetHeaderSize) return false;
  header->flags = bytes[0];
  header->gso_type = bytes[1];
  header->hdr_len = load_host16(bytes + 2);
  header->gso_size = load_host16(bytes + 4);
  header->csum_start = load_host16(bytes + 6);
  header->csum_offset = load_host16(bytes + 8);
  return true;
}

void write_virtio_net_header(const VirtioNetHeader& header, uint8_t* bytes) {
  bytes[0] = header.flags;
  bytes[1] = header.gso_type;
  store_host16(bytes + 2, header.hdr_len);
  store_host16(bytes + 4, header.gso_size);
  store_host16(bytes + 6, header.csum_start);
  store_host16(bytes + 8, header.csum_offset);
}

const char* segment_error_name(int error) {
  switch (error) {
    case kSegmentMalformed: return "malformed";
    case kSegmentUnsupported: return "unsupported";
    case kSegmentTooManySegments: return "too many segments";
    case kSegmentBufferTooSmall: return "buffer too small";
    default: return error >= 0 ? "ok" : "unknown";
  }
}

namespace {

// What the segments hold: headers and a copy of their payload piece, or headers only with the
// piece as the buffer's tail.
enum class Payload : uint8_t { copied, referenced };

// segment_super_frame_range, and with `whole` set, segment_super_frame: then a frame needing
// more than out_count buffers is an error before anything is written.
int segment(const VirtioNetHeader& vnet, const uint8_t* frame, size_t length, uint32_t link_header_length,
            size_t first, PacketBuffer* out, size_t out_count, size_t* total, bool whole, Payload payload) {
  const uint8_t gso = vnet.gso_type & static_cast<uint8_t>(~kVirtioNetHdrGsoEcn);
  if (gso == kVirtioNetHdrGsoNone) {
    if (first > 0) {  // the one frame went out in an earlier call
      if (total) *total = 1;
      return 0;
    }
    if (out_count == 0) return kSegmentTooManySegments;
    const int n = copy_and_complete(vnet, frame, length, out);
    if (n > 0 && total) *total = 1;
    return n;
  }

  uint8_t protocol;
  int want_version = 0;  // 0: either
  switch (gso) {
    case kVirtioNetHdrGsoTcpv4: protocol = kIpProtocolTcp; want_version = 4; break;
    case kVirtioNetHdrGsoTcpv6: protocol = kIpProtocolTcp; want_version = 6; break;
    case kVirtioNetHdrGsoUdpL4: protocol = kIpProtocolUdp; break;
    default: return kSegmentUnsupported;  // UFO (3) and anything unknown
  }
  if (vnet.gso_size == 0) return kSegmentMalformed;
  // hdr_len is a hint (kernels have reported it both short and long: it is the linear part of
  // the skb, not necessarily the headers); we only insist that it lies within the frame.
  if (vnet.hdr_len > length) return kSegmentMalformed;

  PacketLayout layout;
  const int parsed = parse_packet_layout(frame, length, link_header_length, protocol, &layout);
  if (parsed != 0) return parsed;
  if (want_version != 0 && layout.ip_version != want_version) return kSegmentMalformed;
  // When the kernel says where the checksum goes, it must agree with our parse: a frame
  // whose offsets disagree with its own headers is not one to guess about.
  if (vnet.flags & kVirtioNetHdrFNeedsCsum) {
    const uint16_t field = protocol == kIpProtocolTcp ? kTcpChecksumOffset : kUdpChecksumOffset;
    if (vnet.csum_start != layout.l4 || vnet.csum_offset != field) return kSegmentMalformed;
  }

  const size_t headers = layout.payload;  // link + IP (+ options/extensions) + L4 header
  const size_t payload_total = layout.end - layout.payload;
  const size_t gso_size = vnet.gso_size;
  const size_t count = payload_total == 0 ? 1 : (payload_total + gso_size - 1) / gso_size;
  if (total) *total = count;
  if (first >= count) return 0;
  if (whole && count > out_count) return kSegmentTooManySegments;
  const size_t end = count - first < out_count ? count : first + out_count;  // segments [first, end)
  if (end == first) return kSegmentTooManySegments;  // out_count == 0
  // Check every output before writing any, so an error leaves the caller's buffers as they were.
  for (size_t i = first; i < end; i++) {
    const size_t piece = i + 1 < count ? gso_size : payload_total - i * gso_size;
    PacketBuffer& segment = out[i - first];
    const size_t held = payload == Payload::copied ? headers + piece : headers;
    if (segment.capacity < kHeadroom || held > segment.capacity - kHeadroom) {
      return kSegmentBufferTooSmall;
    }
  }

  const uint8_t* l3_in = frame + layout.l3;
  const uint16_t first_id = layout.ip_version == 4 ? load_be16(l3_in + 4) : 0;
  const uint32_t first_seq = protocol == kIpProtocolTcp ? load_be32(frame + layout.l4 + 4) : 0;
  const size_t l3_header = layout.l4 - layout.l3;  // IP header incl. options/extension headers
  const size_t l4_header = layout.payload - layout.l4;

  for (size_t i = first; i < end; i++) {
    const size_t piece = i + 1 < count ? gso_size : payload_total - i * gso_size;
    PacketBuffer& segment = out[i - first];
    segment.reset();
    uint8_t* p = segment.data();
    std::memcpy(p, frame, headers);
    const uint8_t* piece_in_frame = frame + layout.payload + i * gso_size;
    if (payload == Payload::copied) {
      std::memcpy(p + headers, piece_in_frame, piece);
      segment.length = static_cast<uint32_t>(headers + piece);
    } else {
      segment.length = static_cast<uint32_t>(headers);
      segment.tail = piece_in_frame;
      segment.tail_length = static_cast<uint32_t>(piece);
    }
    // The L4 sum runs over the header in the segment, then over the piece wherever it is: the
    // header is a whole number of 16-bit words (TCP: of 32-bit words; UDP: 8 bytes), so the
    // piece's words line up and the two sums chain (checksum.h: only the last block may be odd).
    const auto l4_sum = [&](const uint8_t* l4, uint32_t initial) {
      return checksum_add(piece_in_frame, piece, checksum_add(l4, l4_header, initial));
    };

    uint8_t* ip = p + layout.l3;
    uint8_t* l4 = p + layout.l4;
    const size_t l4_length = l4_header + piece;  // <= 65535 - l3_header: bounded by the input's IP length
    uint32_t sum;
    if (layout.ip_version == 4) {
      store_be16(ip + 2, static_cast<uint16_t>(l3_header + l4_length));
      store_be16(ip + 4, static_cast<uint16_t>(first_id + i));
      store_be16(ip + 10, 0);
      store_be16(ip + 10, ipv4_header_checksum(ip, l3_header));
      sum = pseudo_header_sum_ipv4(ip + 12, p + layout.pseudo_destination, protocol,
                                   static_cast<uint32_t>(l4_length));
    } else {
      store_be16(ip + 4, static_cast<uint16_t>(l3_header - kIpv6HeaderSize + l4_length));
      sum = pseudo_header_sum_ipv6(ip + 8, ip + 24, protocol, static_cast<uint32_t>(l4_length));
    }

    if (protocol == kIpProtocolTcp) {
      store_be32(l4 + 4, first_seq + static_cast<uint32_t>(i * gso_size));
      uint8_t flags = l4[13];
      if (i + 1 < count) flags &= static_cast<uint8_t>(~(kTcpFlagFin | kTcpFlagPsh));
      if (i > 0) flags &= static_cast<uint8_t>(~kTcpFlagCwr);
      l4[13] = flags;
      store_be16(l4 + kTcpChecksumOffset, 0);
      store_be16(l4 + kTcpChecksumOffset, checksum_finish(l4_sum(l4, sum)));
    } else {
      store_be16(l4 + 4, static_cast<uint16_t>(l4_length));
      store_be16(l4 + kUdpChecksumOffset, 0);
      const uint16_t check = checksum_finish(l4_sum(l4, sum));
      // A computed 0 is sent as 0xFFFF: 0 means "no checksum" in UDP (RFC 768).
      store_be16(l4 + kUdpChecksumOffset, check == 0 ? 0xFFFF : check);
    }
  }
  return static_cast<int>(end - first);
}

}  // namespace

int segment_super_frame_range(const VirtioNetHeader& vnet, const uint8_t* frame, size_t length,
                              uint32_t link_header_length, size_t first, PacketBuffer* out, size_t out_count,
                              size_t* total) {
  return segment(vnet, frame, length, link_header_length, first, out, out_count, total, false, Payload::copied);
}

int segment_super_frame(const VirtioNetHeader& vnet, const uint8_t* frame, size_t length,
                        uint32_t link_header_length, PacketBuffer* out, size_t out_count) {
  return segment(vnet, frame, length, link_header_length, 0, out, out_count, nullptr, true, Payload::copied);
}

int segment_super_frame_headers(const VirtioNetHeader& vnet, const uint8_t* frame, size_t length,
                                uint32_t link_header_length, size_t first, PacketBuffer* out, size_t out_count,
                                size_t* total) {
  return segment(vnet, frame, length, link_header_length, first, out, out_count, total, false, Payload::referenced);
}

}  // namespace ovl
