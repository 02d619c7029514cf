// The workers end to end, with everything that runs beside them: two forwarders (VXLAN over
// loopback, two workers each) pass Ethernet frames both ways between their TAP devices while the
// test swaps their peer tables and reads their learned FDB, counters and drop rings, as the
// binding does from the JavaScript thread. Inside a network namespace of the test's own, so it
// needs root (CAP_NET_ADMIN, /dev/net/tun); without it the test says so and passes.
//
// Run by core_tests (ASan, UBSan) and by the ThreadSanitizer build (run.sh): what it is for is
// every thread of a forwarder running at once over shared tables, FDB and counters.
#include "forwarder.h"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/socket_address.h"
#include "base/stats_layout.h"
#include "system/link_config.h"
#include "system/unique_fd.h"
#include "private_netns.h"
#include "test.h"
#include "wire/ethernet.h"

using namespace ovl;
using ovl::test::in_private_netns;

namespace {

// IEEE 802 local experimental: nothing else in the namespace sends it.
constexpr uint16_t kTestEtherType = 0x88b5;
constexpr int kFramesEachWay = 3000;

// The station behind each TAP, as a host on that segment would be: b learns a's, so that b's
// frames to it go unicast to a (the FDB across workers), while a floods toward b's, which it
// may not have learned yet.
constexpr MacKey kStationA = 0x02000000aa01;
constexpr MacKey kStationB = 0x02000000bb01;

void put_mac(uint8_t* out, MacKey mac) {
  for (int i = 0; i < 6; i++) out[i] = static_cast<uint8_t>(mac >> (8 * (5 - i)));
}

// A packet socket on the device: what it sends goes into the TAP (to the forwarder's workers),
// and it receives what the workers write out of the TAP.
UniqueFd open_station(int ifindex) {
  UniqueFd fd(::socket(AF_PACKET, SOCK_RAW, htons(kTestEtherType)));
  if (!fd.valid()) return fd;
  sockaddr_ll address{};
  address.sll_family = AF_PACKET;
  address.sll_protocol = htons(kTestEtherType);
  address.sll_ifindex = ifindex;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return UniqueFd();
  timeval timeout{0, 100 * 1000};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  return fd;
}

struct Side {
  std::unique_ptr<Forwarder> forwarder;
  UniqueFd station;
  std::atomic<int> received{0};
  std::atomic<int> misdelivered{0};
};

ForwarderOptions options_for(const std::string& device, const std::string& local) {
  ForwarderOptions options;
  options.device_name = device;
  options.mtu = 1450;
  options.vni = 42;
  options.port = 4789;
  options.local = local;
  options.workers = 2;
  options.peer_slots = 8;
  return options;
}

PeerSpec peer_at(uint32_t slot, const std::string& address) {
  PeerSpec peer;
  peer.slot = slot;
  peer.endpoint = *parse_socket_address(address, 4789);
  return peer;
}

// Numbered frames of 60 to 1256 bytes from `from` to `to`, paced so that the TAP's queue keeps up.
void send_frames(const Side& side, MacKey from, MacKey to, int ifindex, std::atomic<int>& refused) {
  sockaddr_ll address{};
  address.sll_family = AF_PACKET;
  address.sll_protocol = htons(kTestEtherType);
  address.sll_ifindex = ifindex;
  address.sll_halen = 6;
  put_mac(address.sll_addr, to);
  for (int n = 0; n < kFramesEachWay; n++) {
    uint8_t frame[1300] = {};
    const size_t size = 60 + 4 * (n % 300);
    put_mac(frame, to);
    put_mac(frame + 6, from);
    frame[12] = kTestEtherType >> 8;
    frame[13] = kTestEtherType & 0xff;
    std::memcpy(frame + 14, &n, sizeof n);
    if (::sendto(side.station.get(), frame, size, 0, reinterpret_cast<sockaddr*>(&address), sizeof address) < 0) refused++;
    if (n % 8 == 7) std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
}

// Counts the frames the workers write into this side's TAP, until told to stop.
void receive_frames(Side& side, MacKey expected_source, const std::atomic<bool>& stop) {
  uint8_t frame[2048];
  while (!stop.load(std::memory_order_acquire)) {
    sockaddr_ll from{};
    socklen_t length = sizeof from;
    const ssize_t got = ::recvfrom(side.station.get(), frame, sizeof frame, 0, reinterpret_cast<sockaddr*>(&from), &length);
    if (got < 14 || from.sll_pkttype == PACKET_OUTGOING) continue;  // ours, on the way in
    if (mac_key(frame + 6) == expected_source) side.received++;
    else side.misdelivered++;
  }
}

uint64_t total_of(Forwarder& forwarder, Counter counter) {
  const auto stats = forwarder.stats();
  uint64_t sum = 0;
  for (uint32_t w = 0; w < stats->workers(); w++) sum += __atomic_load_n(stats->worker_base(w) + counter, __ATOMIC_RELAXED);
  return sum;
}

}  // namespace

TEST(forwarders_carry_frames_both_ways_while_their_tables_swap_and_are_read) {
  in_private_netns("two forwarders on loopback", [&](std::string& failure) {
    // The forwarders' devices, sockets and workers (which this thread starts) live there.
    // Two underlay addresses (the benchmarking range, as the netns tests use) on loopback.
    const int lo = link_info("lo").ifindex;
    link_add_address(lo, "198.18.0.1", 32);
    link_add_address(lo, "198.18.0.2", 32);
    Side a, b;
    a.forwarder = std::make_unique<Forwarder>(options_for("fwt-a", "198.18.0.1"));
    b.forwarder = std::make_unique<Forwarder>(options_for("fwt-b", "198.18.0.2"));
    a.forwarder->set_peers({peer_at(0, "198.18.0.2")});
    b.forwarder->set_peers({peer_at(0, "198.18.0.1")});
    const int a_index = a.forwarder->device().ifindex, b_index = b.forwarder->device().ifindex;
    a.station = open_station(a_index);
    b.station = open_station(b_index);
    if (!a.station.valid() || !b.station.valid()) throw std::runtime_error(std::string("packet socket: ") + std::strerror(errno));

    std::atomic<bool> stop_receiving{false}, stop_swapping{false};
    std::atomic<int> refused{0}, swaps{0};
    std::thread a_receiver(receive_frames, std::ref(a), kStationB, std::cref(stop_receiving));
    std::thread b_receiver(receive_frames, std::ref(b), kStationA, std::cref(stop_receiving));
    // The JavaScript thread's part: a new table every few milliseconds (b's entry with and
    // without a static MAC, a second peer coming and going), and everything the binding reads.
    std::thread swapper([&] {
      std::vector<uint64_t> cursor;
      for (int i = 0; !stop_swapping.load(std::memory_order_acquire); i++) {
        std::vector<PeerSpec> peers{peer_at(0, "198.18.0.2")};
        if (i % 2 == 1) peers[0].macs.push_back(0x02000000bb99);
        if (i % 3 == 1) peers.push_back(peer_at(1, "198.18.0.3"));
        a.forwarder->set_peers(peers);
        b.forwarder->set_peers({peer_at(0, "198.18.0.1")});
        (void)a.forwarder->learned_fdb();
        (void)b.forwarder->learned_fdb();
        cursor = a.forwarder->recent_drops(cursor).cursor;
        (void)total_of(*b.forwarder, kRxPackets);
        swaps++;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
    // a's frames first, so that b learns station A, then both ways at once.
    std::thread a_sender(send_frames, std::cref(a), kStationA, kStationB, a_index, std::ref(refused));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::thread b_sender(send_frames, std::cref(b), kStationB, kStationA, b_index, std::ref(refused));
    a_sender.join();
    b_sender.join();
    // What is in flight arrives; then the readers and the swapper stop.
    for (int i = 0; i < 40 && (a.received < kFramesEachWay || b.received < kFramesEachWay); i++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    stop_swapping = true;
    swapper.join();
    stop_receiving = true;
    a_receiver.join();
    b_receiver.join();

    bool b_learned_a = false;
    for (const LearnedEntry& entry : b.forwarder->learned_fdb()) b_learned_a |= entry.mac == kStationA && entry.slot == 0;
    const uint64_t a_sent = total_of(*a.forwarder, kTxPackets), b_delivered = total_of(*b.forwarder, kRxPackets);
    const bool failed = a.forwarder->failed() || b.forwarder->failed();
    a.forwarder->close();
    b.forwarder->close();

    std::fprintf(stderr, "  a->b %d, b->a %d of %d frames each way; %d table swaps; a sent %llu, b delivered %llu\n", b.received.load(),
                 a.received.load(), kFramesEachWay, swaps.load(), static_cast<unsigned long long>(a_sent),
                 static_cast<unsigned long long>(b_delivered));
    // Loopback loses nothing and the senders are paced: nearly every frame arrives. The margin
    // is for the TAP queue on a loaded machine, not for a forwarder that drops.
    if (b.received < kFramesEachWay * 9 / 10) failure += "a->b lost frames; ";
    if (a.received < kFramesEachWay * 9 / 10) failure += "b->a lost frames; ";
    if (a.misdelivered != 0 || b.misdelivered != 0) failure += "frames from the wrong station; ";
    if (refused != 0) failure += "the packet socket refused frames; ";
    if (swaps < 10) failure += "too few table swaps under traffic; ";
    if (!b_learned_a) failure += "b did not learn station A behind peer 0; ";
    if (a_sent < static_cast<uint64_t>(b.received.load())) failure += "a's tx counter is behind what b received; ";
    if (b_delivered < static_cast<uint64_t>(b.received.load())) failure += "b's rx counter is behind what it delivered; ";
    if (failed) failure += "a forwarder failed; ";
  }, [] { return ::access("/dev/net/tun", R_OK | W_OK) == 0; });
}
