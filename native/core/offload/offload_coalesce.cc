#include "offload/offload_coalesce.h"

#include <cstring>

#include "wire/checksum.h"
#include "wire/ethernet.h"

namespace ovl {

namespace {

// A packet is "possibly TCP" when it is IP and neither clearly UDP nor ICMP: used to keep
// order when a TCP-ish packet we could not parse (a fragment, an IPv6 routing header...)
// shows up between segments we are holding.
bool possibly_tcp(const uint8_t* frame, size_t length, uint32_t link_header_length) {
  size_t l3 = link_header_length;
  if (link_header_length == kEthernetHeaderSize) {
    if (length < kEthernetHeaderSize) return false;
    uint16_t ether_type = load_be16(frame + 12);
    size_t type_offset = 12;
    for (int tags = 0; tags < 2 && (ether_type == kEtherTypeVlan || ether_type == kEtherTypeQinQ); tags++) {
      type_offset += 4;
      if (length < type_offset + 2) return false;
      ether_type = load_be16(frame + type_offset);
    }
    if (ether_type != kEtherTypeIpv4 && ether_type != kEtherTypeIpv6) return false;
    l3 = type_offset + 2;
  }
  if (l3 >= length) return false;
  const uint8_t* ip = frame + l3;
  const size_t available = length - l3;
  if ((ip[0] >> 4) == 4) return available < 10 || ip[9] == kIpProtocolTcp;
  if ((ip[0] >> 4) == 6) return available < 7 || (ip[6] != kIpProtocolUdp && ip[6] != 58 /* ICMPv6 */);
  return false;
}

}  // namespace

// An incoming segment, parsed and checked.
struct GroCoalescer::Segment {
  PacketBuffer* buffer;
  const uint8_t* frame;
  PacketLayout layout;
  uint8_t protocol;   // TCP or UDP
  uint32_t ports;
  uint32_t seq;       // TCP only
  uint32_t payload_length;
  uint8_t flags;      // TCP flags byte (UDP: 0)
  bool mergeable;     // could be part of a run (first or later segment)
};

GroCoalescer::GroCoalescer(uint32_t link_header_length) : link_header_length_(link_header_length) {
  items_.reserve(64);
  runs_.reserve(64);
  open_.reserve(64);
}

int32_t GroCoalescer::find_open_run(const Segment& segment) const {
  const uint8_t* frame = segment.frame;
  const size_t l3 = segment.layout.l3;
  const int version = segment.layout.ip_version;
  // Addresses: IPv4 bytes 12..19, IPv6 bytes 8..39 of the IP header.
  const size_t address_offset = version == 4 ? 12 : 8;
  const size_t address_length = version == 4 ? 8 : 32;
  for (const int32_t index : open_) {
    const Run& run = runs_[static_cast<size_t>(index)];
    if (run.ports != segment.ports || run.ip_version != version || run.protocol != segment.protocol) continue;
    const uint8_t* head = items_[run.item].buffer->data();
    if (std::memcmp(head + run.l3 + address_offset, frame + l3 + address_offset, address_length) == 0) {
      return index;
    }
  }
  return -1;
}

void GroCoalescer::close_run(int32_t run) {
  for (size_t i = 0; i < open_.size(); i++) {
    if (open_[i] == run) {
      open_[i] = open_.back();
      open_.pop_back();
      return;
    }
  }
}

bool GroCoalescer::can_append(const Run& run, const Segment& segment) const {
  const uint8_t* head = items_[run.item].buffer->data();
  const uint8_t* frame = segment.frame;
  const PacketLayout& layout = segment.layout;
  // Same shape: link header, IP header and TCP header sizes.
  if (layout.l3 != run.l3 || layout.l4 != run.l4 || layout.payload != run.payload) return false;
  // Link header bytes: MACs, VLAN tags and EtherType.
  if (std::memcmp(head, frame, run.l3) != 0) return false;
  const uint8_t* ip = frame + run.l3;
  const uint8_t* head_ip = head + run.l3;
  if (run.ip_version == 4) {
    // Version/IHL and TOS, then TTL and protocol; the flags/fragment field (DF, nothing else).
    if (std::memcmp(ip, head_ip, 2) != 0 || std::memcmp(ip + 8, head_ip + 8, 2) != 0) return false;
    if (load_be16(ip + 6) != load_be16(head_ip + 6)) return false;
    if (load_be16(ip + 4) != static_cast<uint16_t>(run.last_id + 1)) return false;
  } else {
    // Version, traffic class, flow label; next header and hop limit.
    if (std::memcmp(ip, head_ip, 4) != 0 || std::memcmp(ip + 6, head_ip + 6, 2) != 0) return false;
  }
  if (segment.payload_length > run.gso_size) return false;
  if (run.segments >= kMaxRunSegments) return false;
  if (run.ip_length + segment.payload_length > 0xFFFF) return false;
  // UDP: the addresses, ports and IP fields are all a datagram of a run has to share.
  if (run.protocol == kIpProtocolUdp) return true;
  const uint8_t* tcp = frame + run.l4;
  const uint8_t* head_tcp = head + run.l4;
  if (segment.seq != run.next_seq) return false;
  // Ack number (8..11); data offset (12, same header length already) and window (14..15).
  if (std::memcmp(tcp + 8, head_tcp + 8, 4) != 0 || std::memcmp(tcp + 14, head_tcp + 14, 2) != 0) return false;
  // The urgent pointer (18..19) is meaningless without URG, but segmenting the merged packet
  // would copy the head's into every segment: require it equal so that gives back our input.
  if (std::memcmp(tcp + 18, head_tcp + 18, 2) != 0) return false;
  // Options, byte for byte (timestamps must match: a new TSval starts a new run).
  const size_t options = run.payload - run.l4 - kTcpHeaderSize;
  return std::memcmp(tcp + kTcpHeaderSize, head_tcp + kTcpHeaderSize, options) == 0;
}

void GroCoalescer::append(Run& run, const Segment& segment) {
  slices_.push_back(Slice{static_cast<uint32_t>(&run - runs_.data()), segment.frame + segment.layout.payload,
                          segment.payload_length});
  run.ip_length += segment.payload_length;
  run.next_seq += segment.payload_length;
  run.last_id = static_cast<uint16_t>(run.last_id + 1);
  run.segments++;
  run.psh = (segment.flags & kTcpFlagPsh) != 0;
}

void GroCoalescer::start_run(const Segment& segment) {
  Run run;
  run.item = static_cast<uint32_t>(items_.size());
  run.protocol = segment.protocol;
  run.ports = segment.ports;
  run.ip_version = segment.layout.ip_version;
  run.l3 = static_cast<uint32_t>(segment.layout.l3);
  run.l4 = static_cast<uint32_t>(segment.layout.l4);
  run.payload = static_cast<uint32_t>(segment.layout.payload);
  run.ip_length = static_cast<uint32_t>(segment.layout.end - segment.layout.l3);
  run.next_seq = segment.seq + segment.payload_length;
  run.gso_size = static_cast<uint16_t>(segment.payload_length);
  run.last_id = run.ip_version == 4 ? load_be16(segment.frame + segment.layout.l3 + 4) : 0;
  run.segments = 1;
  run.psh = (segment.flags & kTcpFlagPsh) != 0;
  VirtioNetHeader vnet;
  vnet.flags = kVirtioNetHdrFDataValid;
  items_.push_back({segment.buffer, vnet, static_cast<int32_t>(runs_.size())});
  runs_.push_back(run);
  if (!run.psh) open_.push_back(static_cast<int32_t>(runs_.size() - 1));
}

void GroCoalescer::pass_through(PacketBuffer* buffer, uint8_t flags) {
  VirtioNetHeader vnet;
  vnet.flags = flags;
  items_.push_back({buffer, vnet, -1});
}

void GroCoalescer::add(PacketBuffer* buffer) {
  const uint8_t* frame = buffer->data();
  const size_t length = buffer->length;
  Segment segment;
  segment.buffer = buffer;
  segment.frame = frame;
  segment.protocol = kIpProtocolTcp;
  if (parse_packet_layout(frame, length, link_header_length_, kIpProtocolTcp, &segment.layout) != 0) {
    segment.protocol = kIpProtocolUdp;
    if (!coalesce_udp_ || parse_packet_layout(frame, length, link_header_length_, kIpProtocolUdp, &segment.layout) != 0) {
      // Not TCP (or UDP) we understand. If it might belong to a TCP flow we hold, hold nothing
      // past it. (A UDP flow's datagrams may be reordered by the network anyway.)
      if (possibly_tcp(frame, length, link_header_length_)) open_.clear();
      pass_through(buffer, 0);
      return;
    }
  }
  const bool tcp_segment = segment.protocol == kIpProtocolTcp;
  const PacketLayout& layout = segment.layout;
  const uint8_t* ip = frame + layout.l3;
  const uint8_t* l4 = frame + layout.l4;
  segment.ports = load_be32(l4);
  segment.seq = tcp_segment ? load_be32(l4 + 4) : 0;
  segment.flags = tcp_segment ? l4[13] : 0;
  segment.payload_length = static_cast<uint32_t>(layout.end - layout.payload);
  const int32_t open = find_open_run(segment);

  // Verify before anything else: a corrupted segment goes to the kernel untouched, to be
  // dropped and counted there; merging it would launder the corruption into a valid checksum.
  bool valid = true;
  const size_t ip_header = layout.l4 - layout.l3;
  const uint32_t l4_length = static_cast<uint32_t>(layout.end - layout.l4);
  uint32_t pseudo;
  if (layout.ip_version == 4) {
    valid = checksum_fold(checksum_add(ip, ip_header, 0)) == 0xFFFF;
    pseudo = pseudo_header_sum_ipv4(ip + 12, frame + layout.pseudo_destination, segment.protocol, l4_length);
  } else {
    pseudo = pseudo_header_sum_ipv6(ip + 8, ip + 24, segment.protocol, l4_length);
  }
  // A UDP datagram sent without a checksum (0, IPv4 only) has none to verify, and merged it
  // would come out with one: it passes through as it is.
  const bool checksummed = tcp_segment || load_be16(l4 + kUdpChecksumOffset) != 0;
  valid = valid && checksummed &&
          (trust_checksums_ || checksum_fold(checksum_add(l4, l4_length, pseudo)) == 0xFFFF);
  if (!valid) {
    if (open >= 0) close_run(open);
    pass_through(buffer, 0);
    return;
  }

  const bool plain_ip = layout.ip_version == 4
                            ? ip_header == kIpv4HeaderSize && (load_be16(ip + 6) & 0x4000) != 0  // DF
                            : ip_header == kIpv6HeaderSize;
  const uint8_t flags = segment.flags;
  segment.mergeable = plain_ip && layout.end == length && segment.payload_length > 0 &&
                      (!tcp_segment || (flags & ~kTcpFlagPsh) == kTcpFlagAck);
  if (!segment.mergeable) {
    if (open >= 0) close_run(open);
    pass_through(buffer, kVirtioNetHdrFDataValid);
    return;
  }
  if (open >= 0) {
    Run& run = runs_[static_cast<size_t>(open)];
    if (can_append(run, segment)) {
      append(run, segment);
      // PSH, or a short segment (only the last may be short), ends the run.
      if (run.psh || segment.payload_length < run.gso_size) close_run(open);
      return;
    }
    close_run(open);
  }
  start_run(segment);
}

size_t GroCoalescer::finish(std::vector<CoalescedFrame>& out) {
  // The slices grouped by run (counting sort: they arrived interleaved across flows), so that
  // each output's payloads are one span of payloads_.
  run_first_payload_.assign(runs_.size() + 1, 0);
  for (const Slice& slice : slices_) run_first_payload_[slice.run + 1]++;
  for (size_t r = 0; r < runs_.size(); r++) run_first_payload_[r + 1] += run_first_payload_[r];
  payloads_.resize(slices_.size());
  {
    std::vector<uint32_t>& next = run_first_payload_;  // advanced while filling, then restored
    for (const Slice& slice : slices_) payloads_[next[slice.run]++] = iovec{const_cast<uint8_t*>(slice.data), slice.length};
    for (size_t r = runs_.size(); r > 0; r--) next[r] = next[r - 1];
    next[0] = 0;
  }
  for (Item& item : items_) {
    if (item.run >= 0 && runs_[static_cast<size_t>(item.run)].segments > 1) {
      const Run& run = runs_[static_cast<size_t>(item.run)];
      const bool tcp = run.protocol == kIpProtocolTcp;
      uint8_t* frame = item.buffer->data();
      uint8_t* ip = frame + run.l3;
      uint8_t* l4 = frame + run.l4;
      const uint32_t l4_length = run.ip_length - (run.l4 - run.l3);
      uint32_t pseudo;
      if (run.ip_version == 4) {
        store_be16(ip + 2, static_cast<uint16_t>(run.ip_length));
        store_be16(ip + 10, 0);
        store_be16(ip + 10, ipv4_header_checksum(ip, kIpv4HeaderSize));
        pseudo = pseudo_header_sum_ipv4(ip + 12, ip + 16, run.protocol, l4_length);
      } else {
        store_be16(ip + 4, static_cast<uint16_t>(run.ip_length - kIpv6HeaderSize));
        pseudo = pseudo_header_sum_ipv6(ip + 8, ip + 24, run.protocol, l4_length);
      }
      if (tcp && run.psh) l4[13] |= kTcpFlagPsh;
      if (!tcp) store_be16(l4 + 4, static_cast<uint16_t>(l4_length));  // the UDP length
      // NEEDS_CSUM: the field holds the pseudo-header sum, folded but not complemented; the
      // kernel (or the NIC) sums from csum_start to the end over it and stores the complement.
      const uint16_t field = tcp ? kTcpChecksumOffset : kUdpChecksumOffset;
      store_be16(l4 + field, checksum_fold(pseudo));
      VirtioNetHeader& vnet = item.vnet;
      vnet.flags = kVirtioNetHdrFNeedsCsum;
      vnet.gso_type = !tcp ? kVirtioNetHdrGsoUdpL4 : run.ip_version == 4 ? kVirtioNetHdrGsoTcpv4 : kVirtioNetHdrGsoTcpv6;
      vnet.hdr_len = static_cast<uint16_t>(run.payload);
      vnet.gso_size = run.gso_size;
      vnet.csum_start = static_cast<uint16_t>(run.l4);
      vnet.csum_offset = field;
      const uint32_t first = run_first_payload_[static_cast<size_t>(item.run)];
      out.push_back({item.buffer, item.vnet, payloads_.data() + first, run.segments - 1});
      continue;
    }
    out.push_back({item.buffer, item.vnet});
  }
  const size_t count = items_.size();
  items_.clear();
  runs_.clear();
  open_.clear();
  slices_.clear();
  return count;
}

}  // namespace ovl
