#include "forwarder.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <map>
#include <unordered_map>

#include "wire/ethernet.h"
#include "system/clock.h"
#include "system/link_announce.h"
#include "system/link_config.h"
#include "system/netns.h"
#include "system/privileges.h"
#include "underlay/raw_socket.h"
#include "underlay/source_steering.h"
#include "system/sys_error.h"
#include "underlay/udp_socket.h"
#include "device/uring_writer.h"
#include "tunnel/vxlan_codec.h"
#include "datapath/worker.h"
#include "underlay/link.h"
#include "underlay/udp_link.h"

namespace ovl {

namespace {

// The stranger socket's receive buffer: room for a peer-to-be's IKE exchange, not for a flood
// (what does not fit is dropped in the kernel and counted as unknownPeer).
constexpr int kStrangerReceiveBuffer = 256 << 10;

// Checked before anything is allocated from them.
const ForwarderOptions& validated(const ForwarderOptions& options) {
  if (options.workers < 1 || options.workers > 64) throw InvalidArgument("workers must be 1-64");
  if (options.batch_size < 1 || options.batch_size > 1024) throw InvalidArgument("batchSize must be 1-1024");
  if (options.source_ports < 1 || options.source_ports > 256) throw InvalidArgument("sourcePorts must be 1-256");
  if (options.vni > kVxlanMaxVni) throw InvalidArgument("vni must be at most 16777215");
  if (options.peer_slots < 1) throw InvalidArgument("peerSlots must be positive");
  if (options.ageing_seconds < 1) throw InvalidArgument("ageingSeconds must be positive");
  if (options.peer_slots > (1u << 20)) throw InvalidArgument("peerSlots must be at most 1048576");
  if (options.mtu < 0 || options.mtu > 65535) throw InvalidArgument("mtu must be 0-65535");
  if (options.device_kind == DeviceKind::packet &&
      (options.packet_interface.empty() || options.layer != DeviceLayer::ethernet)) {
    throw InvalidArgument("a packet device needs device.interface and carries Ethernet frames");
  }
  return options;
}

}  // namespace

Forwarder::Forwarder(const ForwarderOptions& options)
    : options_(validated(options)),
      stats_(std::make_shared<StatsBlock>(options_.workers, options_.peer_slots)),
      fdb_(options.fdb_max_entries, options.ageing_seconds),
      tables_(std::make_shared<const PeerTable>(std::vector<PeerSpec>{})),
      control_(SharedStats(stats_->shared_section())) {
  const auto local = parse_socket_address(options.local, options.port);
  if (!local) throw InvalidArgument("underlay.local is not an IP address: " + options.local);

  const TunnelConfig tunnel = tunnel_of(options);
  std::vector<UnderlaySockets> sockets(options.workers);
  int underlay_mtu = 0;
  // Everything that touches a namespace happens here; on any failure the RAII members
  // unwind it, and a TAP device without queue fds disappears, so nothing is left half-made.
  run_in_netns(options.netns, [&] {
    underlay_mtu = mtu_of_interface_with_address(options.local);
    if (options.device_kind == DeviceKind::packet) {
      // Somebody else's interface: attached as it is (MTU, MAC, addresses and state untouched).
      // Tagged frames are filtered out until the workers read with PacketReceiver (vlan_tags).
      packet_ = PacketDevice::open(options.packet_interface, static_cast<int>(options.workers), options.tso,
                                   /*vlan_tags=*/true, options.local);
      offloads_.tso = packet_->vnet_header();
      device_ = DeviceInfo{packet_->name(), packet_->ifindex(), packet_->mac(), packet_->mtu(), underlay_mtu};
    } else {
      int mtu = options.mtu;
      if (mtu == 0) mtu = underlay_mtu - tunnel.overhead(local->family());
      tap_ = TunTapDevice::create(options.device_name, options.layer, static_cast<int>(options.workers), options.tso);
      offloads_.tso = tap_->offloads_enabled();
      const std::string& name = tap_->name();
      if (options.mac && options.layer == DeviceLayer::ethernet) link_set_mac(name, *options.mac);
      link_set_mtu(name, mtu);
      link_set_up(name);
      const LinkInfo info = link_info(name);
      for (const InterfaceAddress& address : options.addresses) {
        link_add_address(info.ifindex, address.address, address.prefix_length);
      }
      device_ = DeviceInfo{name, info.ifindex, info.mac, info.mtu, underlay_mtu};
    }
    if (tunnel.over_udp()) {
      open_udp_sockets(*local, sockets);
    } else {
      open_raw_sockets(*local, tunnel, sockets);
    }
    if (tap_ && offloads_.tso && offloads_.udp_gso) limit_super_frames(tunnel, local->family());
  });

  // Each worker makes its own ring on its own thread; this one only asks whether it can.
  offloads_.uring_writes = options.uring_writes && UringWriter::create(8) != nullptr;

  stop_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd_.valid()) throw_errno("eventfd");

  for (uint32_t w = 0; w < options.workers; w++) drop_rings_.push_back(std::make_unique<DropRing>());
  for (uint32_t w = 0; w < options.workers; w++) {
    WorkerConfig config;
    config.index = w;
    config.tunnel = tunnel;
    config.layer = options.layer;
    config.local = *local;
    config.outer_ttl = options.outer_ttl;
    config.peer_slots = options.peer_slots;
    // The largest inner IP packet that fits the underlay whole.
    const int inner_link = tunnel.carries_ip ? 0 : static_cast<int>(kEthernetHeaderSize);
    const int max_inner = underlay_mtu - (tunnel.overhead(local->family()) - inner_link);
    config.max_inner_packet = max_inner > 0 ? static_cast<uint32_t>(max_inner) : 0;
    if (options.mss_clamp != 0) {
      const int mtu = std::min(device_.mtu, max_inner);
      const int v4 = options.mss_clamp > 0 ? options.mss_clamp : mtu - 40;
      const int v6 = options.mss_clamp > 0 ? options.mss_clamp : mtu - 60;
      config.mss_clamp_v4 = static_cast<uint16_t>(std::clamp(v4, 88, 65495));
      config.mss_clamp_v6 = static_cast<uint16_t>(std::clamp(v6, 88, 65495));
    }
    config.batch_size = options.batch_size;
    config.learning = options.learning;
    config.device_mac = device_.mac;
    config.udp_gso = offloads_.udp_gso;
    config.udp_gro = offloads_.udp_gro;
    config.vnet_header = packet_ ? packet_->vnet_header() : tap_->vnet_header();
    config.uso_writes = tap_ && tap_->vnet_header() && tap_->uso_enabled();
    config.packet_socket = packet_.has_value();
    // Without vnet headers: one MTU plus the link header and up to two tags.
    config.packet_max_frame = packet_ ? static_cast<uint32_t>(device_.mtu) + kEthernetHeaderSize + 8 : 0;
    // Segments of a super-frame are at most one device MTU plus the link header and tags.
    config.max_segment_frame = static_cast<uint32_t>(device_.mtu) + kEthernetHeaderSize + 8 + 64;
    config.busy_poll_us = options.busy_poll_us;
    config.uring_writes = offloads_.uring_writes;
    if (!options.cpu_affinity.empty()) config.cpu = options.cpu_affinity[w % options.cpu_affinity.size()];
    workers_.push_back(std::make_unique<Worker>(config, tables_, fdb_,
                                                WorkerStats(stats_->worker_base(w), options.peer_slots),
                                                drop_rings_[w].get(), packet_ ? packet_->queue_fd(w) : tap_->queue_fd(w), std::move(sockets[w]), stop_fd_.get(),
                                                control_));
  }
  for (auto& worker : workers_) worker->report_failure_to(&failed_);
  // Read by each worker as it drops its privileges on start.
  if (options.identity_switch) expect_identity_switch(true);
  try {
    for (auto& worker : workers_) threads_.emplace_back([w = worker.get()] { w->run(); });
  } catch (...) {
    close();
    throw;
  }
}

// A TSO super-frame of 45 or 46 segments (the kernel's default limit is 65535 bytes) needs two
// UDP_SEGMENT sends when one train holds 44 datagrams (65,000 bytes at MTU 1450): telling the
// device's stack to build super-frames no larger than one train halves the sends for the
// remainder and keeps trains full. Best effort: a kernel that refuses keeps its default.
void Forwarder::limit_super_frames(const TunnelConfig& tunnel, int family) {
  const int outer = (family == AF_INET6 ? 40 : 20) + 8;
  const int datagram = device_.mtu + tunnel.overhead(family) - outer;
  const uint32_t segments = datagrams_per_train(static_cast<uint32_t>(std::max(datagram, 1)));
  if (segments < 2) return;
  try {
    link_set_gso_max_segs(device_.ifindex, segments);
    device_.gso_max_segs = segments;
  } catch (const std::exception&) {
  }
}

TunnelConfig Forwarder::tunnel_of(const ForwarderOptions& options) {
  TunnelConfig tunnel;
  tunnel.mode = options.mode;
  tunnel.vni = options.vni;
  tunnel.gre = options.gre;
  tunnel.carries_ip = options.layer == DeviceLayer::ip;
  tunnel.cipher = options.esp_cipher;
  tunnel.esp_udp = options.esp_udp;
  return tunnel;
}

void Forwarder::open_udp_sockets(const SocketAddress& local, std::vector<UnderlaySockets>& sockets) {
  // UDP GSO needs the checksum that SO_NO_CHECK would suppress (the kernel refuses GSO on
  // such a socket), so with GSO the outer UDP checksum is sent, and offloaded.
  UdpOptions udp;
  udp.send_checksum = options_.udp_checksum || options_.udp_gso;
  std::vector<UniqueFd> listeners = open_listening_sockets(local, options_.workers, udp, kStrangerReceiveBuffer);
  // Until the first peers come, every source is a stranger. A kernel without reuseport programs
  // (before 4.5) would hash a share of every peer's traffic onto the stranger socket, where it
  // is read at a bounded rate: without a program, no stranger socket.
  UniqueFd stranger = std::move(listeners.back());
  listeners.pop_back();
  underlay_family_ = local.family();
  steers_sources_ = attach_reuseport_program(stranger.get(), source_steering_program(local.family(), {}, options_.workers));
  if (!steers_sources_) {
    stranger.reset();  // leaves the group: the kernel hashes over the workers' sockets
    // One worker needs no group: a later socket of the same user must not be let into it.
    if (options_.workers == 1) {
      const int off = 0;
      ::setsockopt(listeners[0].get(), SOL_SOCKET, SO_REUSEPORT, &off, sizeof off);
    }
  }
  for (uint32_t w = 0; w < options_.workers; w++) {
    sockets[w].receivers.push_back(std::move(listeners[w]));
    sockets[w].receiver_protocols.push_back(0);
    // ESP in UDP leaves from the port IKE uses (RFC 3948 §2.1), so that a NAT maps both alike
    // and a peer that checks the source port (RFC 3948 implementations may) accepts it: the
    // worker sends on its own listening socket instead of spreading flows over entropy ports.
    if (tunnel_of(options_).uses_security_associations()) {
      sockets[w].senders.emplace_back(::dup(sockets[w].receivers.back().get()));
      if (sockets[w].senders.back().get() < 0) throw_errno("dup", "an ESP sender socket");
    } else {
      sockets[w].senders = open_entropy_sockets(local, options_.source_ports, udp);
    }
  }
  data_listener_fd_ = sockets[0].receivers[0].get();
  if (stranger.valid()) {
    sockets[0].stranger = sockets[0].receivers.size();
    sockets[0].receivers.push_back(std::move(stranger));
    sockets[0].receiver_protocols.push_back(0);
  }
  offloads_.udp_gso = options_.udp_gso && probe_udp_gso(sockets[0].senders[0].get());
  // All listeners or none: a worker that does not expect coalesced datagrams must not get them.
  offloads_.udp_gro = options_.udp_gro;
  for (auto& worker : sockets) {
    for (const UniqueFd& receiver : worker.receivers) offloads_.udp_gro = offloads_.udp_gro && set_udp_gro(receiver.get(), true);
  }
  if (!offloads_.udp_gro) {
    for (auto& worker : sockets) {
      for (const UniqueFd& receiver : worker.receivers) set_udp_gro(receiver.get(), false);
    }
  }
}

void Forwarder::open_raw_sockets(const SocketAddress& local, const TunnelConfig& tunnel,
                                 std::vector<UnderlaySockets>& sockets) {
  constexpr int kReceiveBuffer = 8 << 20, kSendBuffer = 4 << 20;
  // Every raw socket of a protocol gets every packet of it: one worker receives (raw_socket.h).
  for (uint8_t protocol : tunnel.receive_protocols()) {
    sockets[0].receivers.push_back(open_raw_receiver(local, protocol, kReceiveBuffer));
    sockets[0].receiver_protocols.push_back(protocol);
  }
  for (auto& worker : sockets) worker.senders.push_back(open_raw_sender(local, kSendBuffer));
  // Neither UDP offload applies; segmentation offload of the device still does (we segment).
  offloads_.udp_gso = false;
  offloads_.udp_gro = false;
}

Forwarder::~Forwarder() { close(); }

// An SA keeps its state (sequence counter, replay window) across updates while its SPI and key
// stay; a new SPI or a new key is a new SA. Outbound and inbound SPIs are separate spaces.
std::shared_ptr<EspSaState> Forwarder::sa_state(bool outbound, const EspSaSpec& spec,
                                                std::map<std::pair<bool, uint32_t>, std::shared_ptr<EspSaState>>& next) {
  const EspCipher cipher = spec.cipher.value_or(options_.esp_cipher);
  const bool esn = spec.esn.value_or(options_.esp_esn);
  if (spec.key.size() != esp_key_material_size(cipher)) {
    throw InvalidArgument("SA " + std::to_string(spec.spi) + ": key material must be " +
                          std::to_string(esp_key_material_size(cipher)) + " bytes for " + esp_cipher_name(cipher));
  }
  if (spec.spi == 0) throw InvalidArgument("SPI 0 is reserved");
  const auto id = std::make_pair(outbound, spec.spi);
  auto it = sa_states_.find(id);
  std::shared_ptr<EspSaState> state;
  if (it != sa_states_.end() && it->second->key == spec.key && it->second->cipher == cipher && it->second->esn == esn) {
    state = it->second;
  } else {
    state = std::make_shared<EspSaState>(spec.spi, cipher, spec.key, esn);
  }
  next[id] = state;
  return state;
}

void Forwarder::set_peers(const std::vector<PeerSpec>& specs) {
  for (const PeerSpec& spec : specs) {
    if (spec.slot >= options_.peer_slots) throw InvalidArgument("peer slot out of range");
  }
  std::lock_guard<std::mutex> lock(control_mutex_);
  if (closed_) throw InvalidArgument("forwarder is closed");
  std::vector<PeerSpec> peers = specs;
  std::map<std::pair<bool, uint32_t>, std::shared_ptr<EspSaState>> states;
  if (tunnel_of(options_).uses_security_associations()) {
    for (PeerSpec& spec : peers) {
      // A peer keyed by IKE starts without SAs (its packets count as noSa) and gets its inbound
      // SA one snapshot before its outbound one (make before break).
      spec.sa_out = spec.sa_out_spec ? sa_state(true, *spec.sa_out_spec, states) : nullptr;
      spec.sa_in.clear();
      for (const EspSaSpec& in : spec.sa_in_specs) spec.sa_in.push_back(sa_state(false, in, states));
    }
  }
  auto table = std::make_shared<const PeerTable>(peers);
  // A learned MAC points at a slot; when the slot's peer left or now has another endpoint,
  // the entry would steer traffic to the wrong host.
  std::unordered_map<uint32_t, AddressKey> endpoints;
  for (const Peer& peer : table->peers()) endpoints.emplace(peer.slot, address_key(peer.endpoint.get()));
  std::shared_ptr<const PeerTable> previous = current_;
  fdb_.retain_slots([&](uint32_t slot) {
    auto now = endpoints.find(slot);
    if (now == endpoints.end()) return false;
    if (!previous) return true;
    const uint32_t index = previous->by_slot(slot);
    return index != PeerTable::kNone && address_key(previous->peers()[index].endpoint.get()) == now->second;
  });
  current_ = table;
  sa_states_ = std::move(states);
  // Before the workers see the table: a new peer's first datagrams may still meet the old
  // program (the stranger socket reads them, at its bounded rate), never a worker that does not
  // know the peer yet for long.
  if (steers_sources_) steer_sources(*table);
  tables_.publish(std::move(table));
}

void Forwarder::steer_sources(const PeerTable& table) {
  std::vector<SocketAddress> endpoints;
  endpoints.reserve(table.peers().size());
  for (const Peer& peer : table.peers()) endpoints.push_back(peer.endpoint);
  // More peers than one program holds (BPF_MAXINSNS), or than the kernel takes (up to
  // net.core.optmem_max bytes once translated: 20 KiB before Linux 6.9): the program only spreads,
  // and the workers refuse strangers themselves. If even that is refused (out of memory), the
  // previous program stays: the peers it knows still reach the workers, a new one the stranger
  // socket, until the next table.
  const std::vector<sock_filter> program = source_steering_program(underlay_family_, endpoints, options_.workers);
  if (!program.empty() && attach_reuseport_program(data_listener_fd_, program)) return;
  attach_reuseport_program(data_listener_fd_, spreading_program(underlay_family_, options_.workers));
}

std::vector<EspOutboundStatus> Forwarder::esp_outbound_status() {
  std::lock_guard<std::mutex> lock(control_mutex_);
  std::vector<EspOutboundStatus> out;
  if (!current_) return out;
  for (const Peer& peer : current_->peers()) {
    if (!peer.sa_out) continue;
    const EspSequence& sequence = peer.sa_out->sequence;
    out.push_back({peer.slot, peer.sa_out->spi, sequence.last(), sequence.nearing_limit(), sequence.exhausted()});
  }
  return out;
}

void Forwarder::open_control(std::shared_ptr<ControlSink> sink, uint16_t ike_port) {
  std::lock_guard<std::mutex> lock(control_mutex_);
  if (closed_) throw InvalidArgument("forwarder is closed");
  const TunnelConfig tunnel = tunnel_of(options_);
  if (!tunnel.uses_security_associations()) throw InvalidArgument("a control channel (IKE) is for the esp mode only");
  ControlChannelOptions control;
  control.netns = options_.netns;
  control.local = *parse_socket_address(options_.local, options_.port);
  control.ike_port = ike_port;
  if (tunnel.control_on_data_port()) {
    if (ike_port == options_.port) {
      throw InvalidArgument("ikePort " + std::to_string(ike_port) + " is encap.port, where IKE arrives anyway");
    }
    // A socket of the worker's own group: replies leave from the data-path port, and the
    // duplicate keeps the socket usable for the channel whatever the order of the closes.
    control.data_socket.reset(::fcntl(data_listener_fd_, F_DUPFD_CLOEXEC, 0));
    if (!control.data_socket.valid()) throw_errno("fcntl", "F_DUPFD_CLOEXEC of the data-path socket");
  }
  control_.open(std::move(sink), std::move(control));
}

void Forwarder::send_control(uint16_t local_port, const SocketAddress& to, const uint8_t* data, size_t length) {
  control_.send(local_port, to, data, length);
}

void Forwarder::close_control() { control_.close(); }

std::vector<LearnedEntry> Forwarder::learned_fdb() const { return fdb_.snapshot(monotonic_seconds()); }

DropReadout Forwarder::recent_drops(const std::vector<uint64_t>& since) const {
  DropReadout readout;
  std::vector<DropEntry> entries;
  for (uint32_t w = 0; w < drop_rings_.size(); w++) {
    const DropRing& ring = *drop_rings_[w];
    entries.clear();
    uint64_t missed = 0;
    const uint64_t from = w < since.size() ? since[w] : ring.oldest();
    readout.cursor.push_back(ring.read(from, entries, &missed));
    readout.missed += missed;
    for (const DropEntry& entry : entries) readout.entries.push_back({w, entry});
  }
  return readout;
}

std::vector<AnnounceResult> Forwarder::announce_each(const std::vector<LinkAddress>* given) {
  std::vector<LinkAddress> addresses;
  if (given) addresses = *given;
  std::vector<AnnounceResult> results;
  std::string failure;
  try {
    // The sockets are the namespace's and /proc/sys/net the calling thread's: all made in there.
    run_in_netns(options_.netns, [&] {
      if (!given) {
        for (const LinkAddress& address : link_addresses(device_.ifindex)) {
          if (address.usable()) addresses.push_back(address);
        }
      }
      // Even with nothing to announce yet: the addresses added later go out through it.
      if (!announcer_) announcer_.emplace(device_.name, device_.ifindex, device_.mac);
      if (addresses.empty()) return;
      for (const LinkAddress& address : addresses) results.push_back({address.literal(), address.family, announcer_->announce(address)});
    });
  } catch (const std::exception& error) {
    failure = error.what();
  }
  if (!failure.empty()) {
    results.clear();
    for (const LinkAddress& address : addresses) results.push_back({address.literal(), address.family, failure});
    if (results.empty()) results.push_back({"", 0, failure});  // the addresses could not be read
  }
  SharedStats shared(stats_->shared_section());
  for (const AnnounceResult& result : results) shared.add(result.error.empty() ? kNeighborAnnouncements : kNeighborAnnounceFailures);
  return results;
}

std::vector<AnnounceResult> Forwarder::announce_addresses() {
  std::lock_guard<std::mutex> lock(control_mutex_);
  if (closed_) throw InvalidArgument("forwarder is closed");
  if (!tap_ || options_.layer != DeviceLayer::ethernet) return {};
  return announce_each(nullptr);
}

int Forwarder::watch_addresses() {
  std::lock_guard<std::mutex> lock(control_mutex_);
  if (closed_) throw InvalidArgument("forwarder is closed");
  if (!tap_ || options_.layer != DeviceLayer::ethernet) return -1;
  if (address_watch_) throw InvalidState("the device's addresses are watched already");
  address_watch_.emplace(AddressWatch::open(options_.netns, device_.ifindex));
  return address_watch_->fd();
}

std::vector<AnnounceResult> Forwarder::announce_added_addresses() {
  std::lock_guard<std::mutex> lock(control_mutex_);
  if (closed_ || !address_watch_) return {};
  std::vector<LinkAddress> added;
  try {
    added = address_watch_->take_added();
  } catch (const std::exception& error) {
    SharedStats(stats_->shared_section()).add(kNeighborAnnounceFailures);
    return {AnnounceResult{"", 0, error.what()}};
  }
  if (added.empty()) return {};
  return announce_each(&added);
}

std::vector<RouteResult> Forwarder::apply_routes(RouteOp op, const std::vector<KernelRoute>& routes, uint32_t table,
                                                uint32_t metric) {
  std::lock_guard<std::mutex> lock(control_mutex_);
  if (closed_) throw InvalidArgument("forwarder is closed");
  if (!tap_ || options_.layer != DeviceLayer::ip) throw InvalidArgument("kernel routes are for a tun device");
  std::vector<RouteResult> results;
  const RouteTarget target{device_.ifindex, table, metric};
  run_in_netns(options_.netns, [&] { results = apply_kernel_routes(op, routes, target); });
  return results;
}

void Forwarder::close() {
  std::lock_guard<std::mutex> lock(control_mutex_);
  if (closed_) return;
  closed_ = true;
  // First: once close() returns, nothing is delivered to a control sink any more.
  control_.close();
  address_watch_.reset();
  announcer_.reset();
  if (stop_fd_.valid()) {
    const uint64_t one = 1;
    (void)!::write(stop_fd_.get(), &one, sizeof one);
  }
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  threads_.clear();
  workers_.clear();  // closes the sockets
  tap_.reset();      // closes the queues: the device goes away
  packet_.reset();   // closes the sockets: promiscuous mode ends with them
  stop_fd_.reset();
}

}  // namespace ovl
