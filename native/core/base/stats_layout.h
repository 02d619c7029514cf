// Layout of the counters block that workers fill and TypeScript reads as shared memory.
//
//   block = [worker 0][worker 1]...[worker N-1][shared section]
//   worker = [section 0: totals][section 1: peer slot 0]...[section S: peer slot S-1]
//   section = kSectionSize uint64 counters (indexes below; the tail is room to grow)
//
// Each worker writes only its own part, so a counter has one writer and needs no atomic
// read-modify-write: a relaxed load and store keep the reader from seeing torn values.
// Sections are 512 bytes, so two workers never share a cache line. The shared section at the
// end is for the threads that are not workers (the control channel's reader, the JavaScript
// thread sending control messages or announcing the device's addresses): totals only, written
// with atomic adds (SharedStats), and added to the workers' totals by the reader.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace ovl {

enum Counter : uint32_t {
  kTxPackets,
  kTxBytes,
  kRxPackets,
  kRxBytes,
  kFloodPackets,  // totals: frames flooded; a peer's section: the copies sent toward it
  // The outer packets as they cross the underlay: outer IP header (20 or 40 bytes), UDP header
  // in the UDP modes, overlay header, inner packet and trailer. Sent: what the socket took;
  // received: every datagram of a peer's that reached the tunnel, dropped or not.
  kTxWireBytes,
  kRxWireBytes,
  // Drop reasons. Their names (counter_name) are the keys of `drops` in the public stats.
  kDropMalformed,
  kDropWrongVni,
  kDropUnknownPeer,
  kDropNoRoute,
  kDropTooBig,
  kDropQueueFull,
  kDropDeviceError,
  kDropSocketError,
  kDropLoop,
  kDropUnknownOption,  // Geneve: a critical option we cannot honour
  kDropOam,            // Geneve: a control packet, never forwarded
  kDropWrongKey,       // GRE: key absent, unexpected or different
  kDropBadChecksum,    // GRE: checksum wrong, or missing where required
  kDropSpoofed,        // TUN: inner source outside the sending peer's allowedIps
  kDropTtlExpired,     // TUN: inner TTL / hop limit 0
  kDropEcn,            // RFC 6040: outer CE over an inner packet that is not ECN-capable
  kDropOutOfOrder,     // GRE with sequence numbers: older than the last one accepted (RFC 2890)
  kDropAuthFailed,     // ESP: ICV did not verify
  kDropReplay,         // ESP: seen before, or older than the replay window
  kDropUnknownSpi,     // ESP: no inbound SA with this SPI (SPI 0 included)
  kDropSaExpired,      // ESP: the outbound SA used up its sequence numbers; it must be rekeyed
  kDropNoSa,           // ESP: the peer has no outbound SA (yet): IKE has not negotiated one
  kDropControlQueueFull,  // a control datagram (IKE) found the queue to JavaScript full
  kDropUnreachable,       // sent, and answered by ICMP unreachable / time exceeded (socket_errors.h)
  // Offload use: how many system calls carried several packets.
  kTxGsoSends,        // sendmmsg messages that carried a UDP_SEGMENT train
  kTxGsoSegments,     // datagrams inside those trains
  kRxGroReceives,     // received datagrams that the kernel had coalesced (UDP_GRO)
  kRxGroSegments,     // datagrams inside those
  kTxSuperFrames,     // TSO/USO super-frames read from the device
  kRxCoalescedWrites, // device writes that carried a coalesced super-frame
  kRxCoalescedSegments,
  kOffloadFallbacks,  // an offload the kernel refused at run time and that was turned off
  // Control traffic we generate or header rewrites we make.
  kIcmpTooBigSent,    // ICMP Fragmentation Needed / ICMPv6 Packet Too Big written to the device
  kMssClamped,        // TCP SYNs whose MSS option was lowered
  // What shares the underlay with the tunnel but is no tunnel packet (ESP: RFC 3948, IKE).
  kNatKeepalives,     // NAT keepalives (one byte 0xFF) accepted on the ESP UDP port
  kControlRx,         // control datagrams (IKE) passed up to JavaScript
  kControlTx,         // control datagrams sent for JavaScript
  // What the device says about itself: gratuitous ARPs and unsolicited NAs sent on it.
  kNeighborAnnouncements,
  kNeighborAnnounceFailures,
  // The learned forwarding table at fdb.maxEntries: a new source MAC it did not learn (the frame
  // is still delivered; entries already there stay, as a bridge with a learning limit keeps them).
  kFdbFull,
  kCounterCount,
};

constexpr uint32_t kSectionSize = 64;
static_assert(kCounterCount <= kSectionSize, "section too small");

// Name as TypeScript sees it: "txPackets", ..., "drop.malformed", ...
const char* counter_name(uint32_t counter);

class StatsBlock {
 public:
  StatsBlock(uint32_t workers, uint32_t peer_slots)
      : workers_(workers),
        sections_per_worker_(size_t{peer_slots} + 1),
        size_((size_t{workers} * sections_per_worker_ + kSharedSections) * kSectionSize),
        counters_(new uint64_t[size_]()) {}

  // Sections after the workers' parts: the shared section.
  static constexpr uint32_t kSharedSections = 1;

  uint64_t* data() { return counters_.get(); }
  size_t size() const { return size_; }
  size_t bytes() const { return size_ * sizeof(uint64_t); }
  uint32_t workers() const { return workers_; }
  uint32_t peer_slots() const { return static_cast<uint32_t>(sections_per_worker_ - 1); }
  uint64_t* worker_base(uint32_t worker) {
    return counters_.get() + size_t{worker} * sections_per_worker_ * kSectionSize;
  }
  uint64_t* shared_section() { return counters_.get() + size_t{workers_} * sections_per_worker_ * kSectionSize; }

 private:
  uint32_t workers_;
  size_t sections_per_worker_;
  size_t size_;
  std::unique_ptr<uint64_t[]> counters_;
};

// One worker's single-writer view of its part of the block.
class WorkerStats {
 public:
  static constexpr uint32_t kNoPeer = UINT32_MAX;

  WorkerStats(uint64_t* base, uint32_t peer_slots) : base_(base), peer_slots_(peer_slots) {}

  // Adds to the totals and, when `slot` names a peer, to that peer's section.
  void add(uint32_t slot, Counter counter, uint64_t value = 1) {
    bump(base_ + counter, value);
    add_to_peer(slot, counter, value);
  }

  // Adds to the peer's section only: for a counter whose total counts something else (floods:
  // the totals count frames, a peer the copies it was sent).
  void add_to_peer(uint32_t slot, Counter counter, uint64_t value = 1) {
    if (slot < peer_slots_) bump(base_ + size_t{slot + 1} * kSectionSize + counter, value);
  }

 private:
  static void bump(uint64_t* counter, uint64_t value) {
    __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + value, __ATOMIC_RELAXED);
  }

  uint64_t* base_;
  uint32_t peer_slots_;
};

// The shared section's view for threads that are not workers: any number of writers, so every
// add is atomic. Only control traffic and announcements count here, never a packet of the data path.
class SharedStats {
 public:
  explicit SharedStats(uint64_t* section) : section_(section) {}

  void add(Counter counter, uint64_t value = 1) { __atomic_fetch_add(section_ + counter, value, __ATOMIC_RELAXED); }

 private:
  uint64_t* section_;
};

}  // namespace ovl
