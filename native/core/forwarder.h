// One overlay instance: the device, the underlay sockets, the workers, the tables and the
// counters. Construction sets everything up (inside a network namespace if asked) and starts
// the workers; close() stops and joins them and closes every fd, after which the device is gone.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/drop_ring.h"
#include "tables/learned_fdb.h"
#include "device/packet_device.h"
#include "tables/peer_table.h"
#include "base/stats_layout.h"
#include "tables/table_publisher.h"
#include "device/tun_tap_device.h"
#include "tunnel/tunnel.h"
#include "system/kernel_routes.h"
#include "system/link_addresses.h"
#include "system/link_announce.h"
#include "system/unique_fd.h"
#include "underlay/control_channel.h"

namespace ovl {

struct InterfaceAddress {
  std::string address;
  int prefix_length;
};

// tap and tun make a device of their own (`layer` says which); packet attaches an existing
// Ethernet interface as it is (see packet_device.h).
enum class DeviceKind { tap, tun, packet };

struct ForwarderOptions {
  std::string netns;
  std::string device_name;
  int mtu = 0;  // 0: underlay interface MTU minus the overhead
  std::vector<InterfaceAddress> addresses;
  std::optional<MacKey> mac;
  DeviceLayer layer = DeviceLayer::ethernet;  // tap or tun
  DeviceKind device_kind = DeviceKind::tap;
  // packet: the interface to attach (device_name, mtu, addresses and mac are not used: it is
  // somebody else's interface, and nothing about it is changed).
  std::string packet_interface;
  TunnelMode mode{};  // the first row of the table of modes: vxlan
  uint32_t vni = 0;
  GreOptions gre;  // gre, gre-udp
  uint8_t outer_ttl = 64;  // raw-IP modes
  EspCipher esp_cipher = EspCipher::aes256_gcm;
  bool esp_udp = true;
  bool esp_esn = true;  // 64-bit extended sequence numbers
  int mss_clamp = 0;       // TCP MSS clamp: 0 off, -1 from the MTU (MTU - 40 / - 60), else this value
  uint16_t port = 4789;
  std::string local;
  uint32_t source_ports = 16;
  bool udp_checksum = false;
  uint32_t workers = 1;
  uint32_t batch_size = 64;
  bool learning = true;
  uint32_t ageing_seconds = 300;
  uint32_t fdb_max_entries = 4096;
  uint32_t peer_slots = 1024;
  // Offloads to use where the kernel has them (each is probed at start).
  uint32_t busy_poll_us = 0;
  std::vector<int> cpu_affinity;  // worker i runs on cpu_affinity[i % size]; empty: unpinned
  bool tso = true;
  bool udp_gso = true;
  bool udp_gro = true;
  bool uring_writes = true;
  // The owner switches the process to another user after setup (system/privileges.h): the
  // workers keep what that switch needs in every thread until it clears it.
  bool identity_switch = false;
};

// What is in use after probing: requested and supported.
struct OffloadState {
  bool tso = false;
  bool udp_gso = false;
  bool udp_gro = false;
  bool uring_writes = false;
};

struct DeviceInfo {
  std::string name;
  int ifindex = 0;
  MacKey mac = 0;
  int mtu = 0;
  int underlay_mtu = 0;  // of the interface holding underlay.local, at start
  // The device's gso_max_segs when we set it (one super-frame = one UDP_SEGMENT train), else 0.
  uint32_t gso_max_segs = 0;
};

// Where an outbound SA's sequence counter stands (esp): TypeScript polls it to raise the
// "rekey soon" event before the counter runs out.
struct EspOutboundStatus {
  uint32_t slot;
  uint32_t spi;
  uint64_t sequence;  // the last number handed out
  bool nearing_limit;
  bool exhausted;     // nothing more is sent with this SA
};

// One address announced on the device (a gratuitous ARP or an unsolicited NA): `error` is what
// failed, empty when the frame was sent.
struct AnnounceResult {
  std::string address;
  int family = 0;  // AF_INET or AF_INET6
  std::string error;
};

// What the workers' drop rings held (base/drop_ring.h), copied out: records oldest first per
// worker, the cursor to read on from, and how many records from the cursor on were lost.
struct DropReadout {
  struct Entry {
    uint32_t worker;
    DropEntry entry;
  };
  std::vector<Entry> entries;
  std::vector<uint64_t> cursor;  // per worker: the record to read next
  uint64_t missed = 0;
};

class Worker;
struct UnderlaySockets;
struct SocketAddress;

class Forwarder {
 public:
  explicit Forwarder(const ForwarderOptions& options);
  ~Forwarder();
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

  const DeviceInfo& device() const { return device_; }
  const OffloadState& offloads() const { return offloads_; }
  // True once a worker lost its device (deleted under us) or its event loop failed.
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  std::shared_ptr<StatsBlock> stats() const { return stats_; }

  // Publishes a new peer table. Learned entries behind peers that left or moved are forgotten.
  void set_peers(const std::vector<PeerSpec>& peers);
  std::vector<LearnedEntry> learned_fdb() const;
  // The drops the workers recorded from `since[w]` on (a worker without an entry: from the
  // oldest its ring holds, nothing counted as missed). Never stops a worker; works after close().
  DropReadout recent_drops(const std::vector<uint64_t>& since) const;
  std::vector<EspOutboundStatus> esp_outbound_status();

  // The control channel (underlay/control_channel.h), esp only: control datagrams of the
  // data-path port (ESP in UDP) and, when ike_port is not 0, of UDP ike_port on the underlay
  // address (opened inside the namespace) go to `sink`. Once per forwarder.
  void open_control(std::shared_ptr<ControlSink> sink, uint16_t ike_port);
  // One control message from local_port (the data-path port or the IKE port); see
  // ControlChannel::send.
  void send_control(uint16_t local_port, const SocketAddress& to, const uint8_t* data, size_t length);
  // Stops delivery and closes the IKE socket; close() does it too.
  void close_control();

  // TAP only (elsewhere nothing, and empty results): announces each address the device has
  // now, IPv4 with a gratuitous ARP and IPv6 (once out of duplicate address detection) with
  // an unsolicited Neighbor Advertisement (system/link_announce.h). The frames leave through
  // the device, so the workers flood them to the peers of the current table: call it once the
  // peers are in. Each frame counts in the shared section (neighborAnnouncements, or
  // neighborAnnounceFailures); a failure is reported, never thrown.
  std::vector<AnnounceResult> announce_addresses();
  // TAP only: follows the addresses of the device from now on (AddressWatch) and returns a
  // descriptor that is readable when they change (or -1 without a TAP device). Once.
  int watch_addresses();
  // When that descriptor was readable: announces the addresses the device gained since.
  std::vector<AnnounceResult> announce_added_addresses();

  // tun only: installs (add) or removes kernel routes of `routes` into the device, in its
  // namespace (system/kernel_routes.h). One result per route; a failed route is a result, not a
  // throw. Throws once closed: the device went, and the kernel took its routes with it.
  std::vector<RouteResult> apply_routes(RouteOp op, const std::vector<KernelRoute>& routes, uint32_t table, uint32_t metric);

  void close();

 private:
  // Announces `given`, or when null the device's usable addresses now; counts each result.
  std::vector<AnnounceResult> announce_each(const std::vector<LinkAddress>* given);
  static TunnelConfig tunnel_of(const ForwarderOptions& options);
  std::shared_ptr<EspSaState> sa_state(bool outbound, const EspSaSpec& spec,
                                       std::map<std::pair<bool, uint32_t>, std::shared_ptr<EspSaState>>& next);
  void open_udp_sockets(const SocketAddress& local, std::vector<UnderlaySockets>& sockets);
  void open_raw_sockets(const SocketAddress& local, const TunnelConfig& tunnel, std::vector<UnderlaySockets>& sockets);
  void limit_super_frames(const TunnelConfig& tunnel, int family);
  // Points the data port's steering program at the peers of `table`.
  void steer_sources(const PeerTable& table);

  ForwarderOptions options_;
  DeviceInfo device_;
  OffloadState offloads_;
  std::shared_ptr<StatsBlock> stats_;
  std::vector<std::unique_ptr<DropRing>> drop_rings_;  // one per worker, before the workers
  LearnedFdb fdb_;
  TablePublisher<PeerTable> tables_;
  std::mutex control_mutex_;  // serializes set_peers and close
  std::shared_ptr<const PeerTable> current_;
  // The SA states the current table holds, by (outbound, SPI): reused while SPI and key stay.
  std::map<std::pair<bool, uint32_t>, std::shared_ptr<EspSaState>> sa_states_;

  // Before the workers, which hold a reference to it; after stats_, whose shared section it counts in.
  ControlChannel control_;
  int data_listener_fd_ = -1;  // UDP modes: worker 0's listener (the worker owns it)
  // UDP modes: the data port's group has a stranger socket and takes a steering program
  // (underlay/source_steering.h), rebuilt by set_peers; false where the kernel refused one.
  bool steers_sources_ = false;
  int underlay_family_ = AF_UNSPEC;

  std::optional<TunTapDevice> tap_;
  std::optional<AddressWatch> address_watch_;
  // Opened at the first announcement (at start) and kept: an AF_PACKET socket needs CAP_NET_RAW,
  // which the process drops after setup, and addresses added later are announced through it.
  std::optional<LinkAnnouncer> announcer_;
  std::optional<PacketDevice> packet_;
  UniqueFd stop_fd_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
  bool closed_ = false;
  std::atomic<bool> failed_{false};
};


}  // namespace ovl
