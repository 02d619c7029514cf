// IPsec ESP in tunnel mode (RFC 4303), in UDP 4500 (RFC 3948) or on IP protocol 50: IP packets
// (next header 4/41, TUN) or Ethernet frames (143, TAP) sealed with the peer's outbound SA.
// Receipt goes through esp_decode (esp/esp_codec.h), in the order that keeps forgeries cheap
// and harmless: the SA by SPI, the replay window checked before anything is decrypted, the ICV,
// and only then the window moved; padding and next header last.
//
// Per worker it keeps one keyed cipher context per SA in use (keying once per SA instead of per
// packet saves ~20%), and the copies of flooded frames, since each peer's copy is sealed under
// that peer's key.
#include <cstring>
#include <unordered_map>

#include "tunnel/esp/esp_codec.h"
#include "tunnel/esp/esp_sa.h"
#include "tunnel/esp/esp_udp_encap.h"
#include "tunnel/implementations.h"

namespace ovl {

namespace {

// Copies of flooded frames in flight at a time.
constexpr size_t kFloodCopies = 64;

class EspTunnel final : public Tunnel {
 public:
  EspTunnel(const TunnelConfig& config, uint32_t copy_frame_size)
      : Tunnel(config),
        payload_(config.carries_ip ? EspPayload::ip : EspPayload::ethernet),
        copies_(config.carries_ip ? 0 : kFloodCopies, copy_frame_size + kEspMaxTrailerSize) {}

  void table_changed(const PeerTable& table) override {
    table_ = &table;
    // SA states of the old table may be gone (and their addresses reused): key afresh.
    aeads_.clear();
  }

  bool per_peer() const override { return true; }
  bool authenticates_payload() const override { return true; }
  uint8_t outer_protocol(const uint8_t*, uint32_t) const override { return kIpProtocolEsp; }

  Verdict encapsulate(PacketBuffer& buffer, uint16_t ethertype, const Peer* peer) override {
    if (peer == nullptr) return Verdict::drop(kDropNoRoute);
    const EspSaState* sa = peer->sa_out.get();
    // A peer keyed by IKE has no outbound SA until the first exchange completes.
    if (sa == nullptr) return Verdict::drop(kDropNoSa);
    uint64_t sequence;
    // A counter that reached its limit never wraps: nothing more is sent under this key.
    if (!const_cast<EspSaState*>(sa)->sequence.next(&sequence)) return Verdict::drop(kDropSaExpired);
    const uint32_t inner_length = buffer.wire_length();
    // The prefix goes into the headroom; a segment's payload (its tail) is encrypted into the
    // buffer behind its headers, and the trailer behind that.
    if (buffer.offset < kEspPrefixSize || buffer.tailroom() < inner_length + kEspMaxTrailerSize) {
      return Verdict::drop(kDropTooBig);
    }
    const uint8_t next_header = ethertype == kEtherTypeIpv4   ? kEspNextHeaderIpv4
                                : ethertype == kEtherTypeIpv6 ? kEspNextHeaderIpv6
                                                              : kEspNextHeaderEthernet;
    uint8_t* packet = buffer.push_front(kEspPrefixSize);
    const size_t sealed = esp_encode_gather(aead_for(*sa), sa->spi, sequence, sa->esn, next_header, packet,
                                            buffer.length - kEspPrefixSize, buffer.tail, buffer.tail_length);
    if (sealed == 0) {
      buffer.pull_front(kEspPrefixSize);
      return Verdict::drop(kDropMalformed);
    }
    buffer.length = static_cast<uint32_t>(sealed);
    buffer.tail = nullptr;  // it is in the buffer now, encrypted
    buffer.tail_length = 0;
    return Verdict::pass();
  }

  PacketBuffer* copy_for_peer(const PacketBuffer& frame, Verdict* verdict) override {
    *verdict = Verdict::pass();
    if (copies_used_ == copies_.size()) return nullptr;
    PacketBuffer& copy = copies_[copies_used_++];
    copy.reset();
    if (frame.wire_length() + kEspMaxTrailerSize > copy.tailroom()) {
      *verdict = Verdict::drop(kDropTooBig);
      return nullptr;
    }
    // The copy keeps the frame's tail where it is: sealing reads it from there.
    std::memcpy(copy.data(), frame.data(), frame.length);
    copy.length = frame.length;
    copy.tail = frame.tail;
    copy.tail_length = frame.tail_length;
    return &copy;
  }
  void release_copies() override { copies_used_ = 0; }

  // In UDP, port 4500 also carries IKE behind the non-ESP marker and NAT keepalives (RFC 3948).
  PortTraffic classify(const uint8_t* datagram, uint32_t length, uint32_t* control_offset) const override {
    if (!config_.esp_udp) return PortTraffic::tunnel;
    switch (esp_udp_classify(datagram, length)) {
      case EspUdpDatagram::esp: return PortTraffic::tunnel;
      case EspUdpDatagram::keepalive: return PortTraffic::keepalive;
      case EspUdpDatagram::short_ike: return PortTraffic::short_control;
      case EspUdpDatagram::ike: break;
    }
    *control_offset = kNonEspMarkerSize;
    return PortTraffic::control;
  }

  Verdict decapsulate(uint8_t* packet, uint32_t length, const ReceivedFrom& from, Inner* inner) override {
    uint32_t spi = 0, wire_sequence = 0;
    const EspStatus header = esp_parse_header(packet, length, &spi, &wire_sequence);
    // SPI 0 is the RFC 3948 non-ESP marker, never an SA: IKE that no control channel took.
    if (header == EspStatus::spi_zero) return Verdict::drop(kDropUnknownSpi);
    if (header != EspStatus::ok) return Verdict::drop(kDropMalformed);
    const InboundSa* inbound = table_ ? table_->by_spi(spi) : nullptr;
    // An SA belongs to one peer: another peer's SPI from this address is as unknown as any.
    if (inbound == nullptr || inbound->peer != from.peer) return Verdict::drop(kDropUnknownSpi);
    EspSaState& sa = *inbound->state;
    EspDecoded decoded;
    switch (esp_decode(aead_for(sa), sa.window, payload_, packet, length, &decoded, &sa.replay_lock)) {
      case EspStatus::ok: break;
      case EspStatus::replay: return Verdict::drop(kDropReplay);
      case EspStatus::auth_failed: return Verdict::drop(kDropAuthFailed);
      case EspStatus::spi_zero: return Verdict::drop(kDropUnknownSpi);
      // Next header 59 (a dummy packet) and anything this device does not carry are dropped.
      case EspStatus::malformed:
      case EspStatus::dummy:
      case EspStatus::unsupported_next_header: return Verdict::drop(kDropMalformed);
    }
    inner->offset = decoded.payload_offset;
    inner->length = decoded.payload_length;
    inner->ethertype = decoded.next_header == kEspNextHeaderIpv6   ? kEtherTypeIpv6
                       : decoded.next_header == kEspNextHeaderIpv4 ? kEtherTypeIpv4
                                                                   : kEtherTypeTransparentEthernet;
    return Verdict::pass();
  }

 private:
  EspAead& aead_for(const EspSaState& sa) {
    auto it = aeads_.find(&sa);
    if (it != aeads_.end()) return it->second;
    EspAead& aead = aeads_[&sa];
    aead.set_key(sa.cipher, sa.key.data(), sa.key.size());
    return aead;
  }

  const EspPayload payload_;
  const PeerTable* table_ = nullptr;
  std::unordered_map<const EspSaState*, EspAead> aeads_;
  BufferPool copies_;
  size_t copies_used_ = 0;
};

}  // namespace

std::unique_ptr<Tunnel> make_esp_tunnel(const TunnelConfig& config, uint32_t copy_frame_size) {
  return std::make_unique<EspTunnel>(config, copy_frame_size);
}

}  // namespace ovl
