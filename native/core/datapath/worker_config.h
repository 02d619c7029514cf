// What a worker is told at start, and the state both of its directions share.
#pragma once

#include <cstdint>

#include "base/drop_ring.h"
#include "base/socket_address.h"
#include "base/stats_layout.h"
#include "base/verdict.h"
#include "device/tun_tap_device.h"
#include "tables/peer_table.h"
#include "tunnel/tunnel.h"
#include "wire/ethernet.h"

namespace ovl {

struct WorkerConfig {
  uint32_t index = 0;
  TunnelConfig tunnel;
  DeviceLayer layer = DeviceLayer::ethernet;  // what the device reads and writes
  SocketAddress local;       // underlay address: the outer source of raw-IP modes
  uint8_t outer_ttl = 64;    // raw-IP modes (RFC 2003 §3.1: a sensible default, not the inner's)
  // The largest inner IP packet the underlay carries in one piece (underlay MTU minus overhead);
  // a bigger one with DF gets ICMP Fragmentation Needed / Packet Too Big back. 0: no check.
  uint32_t max_inner_packet = 0;
  uint32_t peer_slots = 0;    // per-slot receive state (GRE sequence numbers)
  uint16_t mss_clamp_v4 = 0;  // clamp TCP SYN MSS options to this (0: off)
  uint16_t mss_clamp_v6 = 0;
  uint32_t batch_size = 64;
  bool learning = true;
  MacKey device_mac = 0;
  bool udp_gso = false;  // send trains of same-size datagrams with UDP_SEGMENT
  bool udp_gro = false;  // the listening socket has UDP_GRO on
  bool vnet_header = false;  // device reads and writes carry a virtio_net_hdr (TSO/GRO)
  bool uso_writes = false;   // the device takes USO super-frames (merged UDP datagrams)
  bool uring_writes = false;  // batch device writes through io_uring where the kernel allows
  bool packet_socket = false;  // the device fd is an AF_PACKET socket (packet_device.h)
  uint32_t packet_max_frame = 0;  // packet socket without vnet headers: larger frames are super-frames, dropped
  uint32_t max_segment_frame = 2048;  // largest wire frame a TSO segment may be (device MTU based)
  int cpu = -1;              // pin the thread to this CPU; -1: let the scheduler place it
  uint32_t busy_poll_us = 0; // keep polling this long after the last packet before sleeping

  uint32_t link_header() const { return layer == DeviceLayer::ip ? 0 : kEthernetHeaderSize; }
};

// Batches handled per direction per wakeup, so that a flood in one direction cannot starve the
// other.
constexpr int kRoundsPerWakeup = 4;

// What the worker's directions share: the table of this batch, the clock, the counters, the
// ring of recent drops.
struct WorkerContext {
  WorkerContext(const WorkerConfig& config_, WorkerStats stats_, DropRing* drops_ = nullptr)
      : config(config_), stats(stats_), drops(drops_) {}

  const WorkerConfig& config;
  WorkerStats stats;
  DropRing* drops;  // null: drops are counted only
  const PeerTable* table = nullptr;
  uint32_t now = 0;  // monotonic seconds, read once per wakeup

  // The one drop exit: every packet the data path drops is counted here, under its reason,
  // on its peer's slot (WorkerStats::kNoPeer when it has none), and recorded in the ring with
  // what `sample` says about it (its first bytes, where they were, the underlay address).
  void drop(uint32_t slot, Counter reason, const DropSample& sample, uint64_t packets = 1) {
    stats.add(slot, reason, packets);
    if (drops != nullptr) drops->record(sample, slot, reason, packets);
  }
  void drop(uint32_t slot, Verdict verdict, const DropSample& sample, uint64_t packets = 1) {
    drop(slot, verdict.reason(), sample, packets);
  }
  void count(Counter counter, uint64_t value = 1) { stats.add(WorkerStats::kNoPeer, counter, value); }
  void count(uint32_t slot, Counter counter, uint64_t value = 1) { stats.add(slot, counter, value); }
};

}  // namespace ovl
