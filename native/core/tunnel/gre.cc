// GRE (RFC 2784, RFC 2890) on IP protocol 47 (gre) or in UDP (gre-udp, RFC 8086): IP packets or
// Ethernet frames (0x6558) behind a 4-byte header with optional checksum, key and sequence
// number words. The key and checksum we send are required on receipt; with sequence numbers,
// older or repeated ones are dropped per peer (serial number arithmetic, so the counter wraps).
#include "tunnel/implementations.h"

namespace ovl {

namespace {

class GreTunnel final : public Tunnel {
 public:
  GreTunnel(const TunnelConfig& config, uint32_t peer_slots) : Tunnel(config), peer_slots_(peer_slots) {
    expect_.key = config.gre.key;
    expect_.checksum_required = config.gre.checksum;
    expect_.payload = config.carries_ip ? GrePayload::ip : GrePayload::ethernet;
  }

  uint8_t outer_protocol(const uint8_t*, uint32_t) const override { return kIpProtocolGre; }

  Verdict encapsulate(PacketBuffer& buffer, uint16_t ethertype, const Peer*) override {
    const uint32_t payload_length = buffer.length;
    const uint32_t header = config_.header_size();
    uint8_t* start = buffer.push_front(header);
    // A checksum covers the payload right behind the header, and its tail (a segment's payload).
    gre_encode(start, config_.gre, ethertype, next_sequence_++, start + header, payload_length, buffer.tail,
               buffer.tail_length);
    return Verdict::pass();
  }

  Verdict decapsulate(uint8_t* packet, uint32_t length, const ReceivedFrom& from, Inner* inner) override {
    GreDecoded decoded;
    switch (gre_decode(packet, length, expect_, &decoded)) {
      case GreStatus::ok: break;
      case GreStatus::bad_checksum:
      case GreStatus::missing_checksum: return Verdict::drop(kDropBadChecksum);
      case GreStatus::wrong_key: return Verdict::drop(kDropWrongKey);
      case GreStatus::malformed:
      case GreStatus::unsupported_protocol: return Verdict::drop(kDropMalformed);
    }
    if (config_.gre.sequence) {
      const Verdict in_order = accept_sequence(decoded, from.slot);
      if (!in_order.ok()) return in_order;
    }
    // The codec guarantees a whole Ethernet header behind the GRE header for Ethernet.
    inner->offset = decoded.header_length;
    inner->length = length - decoded.header_length;
    inner->ethertype = decoded.protocol;
    return Verdict::pass();
  }

 private:
  // RFC 2890 §2.2: a receiver that expects sequence numbers drops a packet without one, and one
  // that is not newer than the last accepted.
  Verdict accept_sequence(const GreDecoded& gre, uint32_t slot) {
    if (!gre.sequence) return Verdict::drop(kDropMalformed);
    if (expected_.empty()) {
      expected_.assign(peer_slots_, 0);
      seen_.assign(peer_slots_, false);
    }
    if (slot >= expected_.size()) return Verdict::pass();
    const uint32_t sequence = *gre.sequence;
    if (seen_[slot] && static_cast<int32_t>(sequence - expected_[slot]) < 0) return Verdict::drop(kDropOutOfOrder);
    seen_[slot] = true;
    expected_[slot] = sequence + 1;
    return Verdict::pass();
  }

  GreExpectation expect_;
  uint32_t peer_slots_;
  uint32_t next_sequence_ = 0;
  // Per peer slot: the next sequence number we accept, and whether that peer has sent any yet.
  std::vector<uint32_t> expected_;
  std::vector<bool> seen_;
};

}  // namespace

std::unique_ptr<Tunnel> make_gre_tunnel(const TunnelConfig& config, uint32_t peer_slots) {
  return std::make_unique<GreTunnel>(config, peer_slots);
}

}  // namespace ovl
