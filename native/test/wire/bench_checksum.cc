// Throughput of the Internet checksum per implementation (wire/checksum.h), and of the offload
// work that runs it on every TCP byte the data path moves: cutting a 64 KB TSO super-frame into
// segments (a checksum per segment) and coalescing them back (each segment's checksum
// verified). Figures are 10^9 bytes per second of this thread's CPU time, the best of 10 slices
// (a shared machine's least disturbed slice, as bench_esp_aead does).
//
//   checksum_add    one call over a buffer of each size, the start 64-byte aligned, or at
//                   offsets cycling through 0..63 ("any alignment")
//   serial (before) the add-with-carry loop checksum_add had before it had implementations
//                   (one 64-bit accumulator whose every add waits for the previous carry),
//                   kept here as the baseline
//   segment         segment_super_frame: a TAP frame (Ethernet, IPv4, TCP with timestamps,
//                   63,712 payload bytes) into 44 segments of MSS 1448, copy included
//   segment+coalesce the same, then the 44 segments through a GroCoalescer back into one frame
//
// Usage: bench_checksum [seconds per measurement, default 0.5] [sizes..., default 64 1500 9000 65536]
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "base/packet_buffer.h"
#include "offload/offload_coalesce.h"
#include "offload/offload_segment.h"
#include "wire/checksum.h"
#include "wire/ethernet.h"

using namespace ovl;

namespace {

double seconds_per_run = 0.5;
constexpr int kSlices = 10;

double thread_seconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// Runs `body` (one unit of `bytes` bytes) for about seconds_per_run of CPU time in kSlices
// slices; returns the best slice's rate in 10^9 bytes per second.
template <typename Body>
double measure(size_t bytes, Body body) {
  const int batch = bytes >= 65536 ? 16 : bytes >= 8192 ? 128 : 2048;
  for (int i = 0; i < batch * 4; i++) body();  // warm up: caches, clock
  double best = 0;
  for (int slice = 0; slice < kSlices; slice++) {
    uint64_t units = 0;
    const double start = thread_seconds();
    double now;
    do {
      for (int i = 0; i < batch; i++) body();
      units += batch;
      now = thread_seconds();
    } while (now - start < seconds_per_run / kSlices);
    const double rate = static_cast<double>(units) * static_cast<double>(bytes) / (now - start) / 1e9;
    if (rate > best) best = rate;
  }
  return best;
}

// The checksum_add of before (native/core/wire/checksum.cc up to this bench's commit).
inline uint64_t serial_add_with_carry(uint64_t sum, uint64_t word) {
  sum += word;
  return sum + (sum < word);
}
uint32_t serial_checksum_add(const uint8_t* data, size_t length, uint32_t initial) {
  uint64_t sum = 0;
  while (length >= 32) {
    uint64_t w[4];
    std::memcpy(w, data, 32);
    sum = serial_add_with_carry(sum, w[0]);
    sum = serial_add_with_carry(sum, w[1]);
    sum = serial_add_with_carry(sum, w[2]);
    sum = serial_add_with_carry(sum, w[3]);
    data += 32;
    length -= 32;
  }
  while (length >= 8) {
    uint64_t w;
    std::memcpy(&w, data, 8);
    sum = serial_add_with_carry(sum, w);
    data += 8;
    length -= 8;
  }
  if (length > 0) {
    uint64_t w = 0;
    std::memcpy(&w, data, length);
    sum = serial_add_with_carry(sum, w);
  }
  sum = (sum & 0xFFFFFFFFu) + (sum >> 32);
  sum = (sum & 0xFFFFFFFFu) + (sum >> 32);
  uint16_t folded = checksum_fold(static_cast<uint32_t>(sum));
  folded = static_cast<uint16_t>(folded << 8 | folded >> 8);
  return checksum_combine(initial, folded);
}

// A TAP super-frame as the kernel hands it over with TSO: NEEDS_CSUM, the TCP checksum field
// seeded with the pseudo-header sum.
struct SuperFrame {
  std::vector<uint8_t> frame;
  VirtioNetHeader vnet;
};

SuperFrame make_super_frame() {
  constexpr size_t kMss = 1448, kSegments = 44, kL3 = 14, kL4 = kL3 + 20, kTcpHeader = 32;
  constexpr size_t kPayload = kMss * kSegments;
  SuperFrame s;
  std::vector<uint8_t>& f = s.frame;
  f.assign(kL4 + kTcpHeader + kPayload, 0);
  const uint8_t macs[12] = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01};
  std::memcpy(f.data(), macs, 12);
  store_be16(&f[12], kEtherTypeIpv4);
  uint8_t* ip = &f[kL3];
  ip[0] = 0x45;
  store_be16(ip + 2, static_cast<uint16_t>(20 + kTcpHeader + kPayload));
  store_be16(ip + 4, 0x1234);
  store_be16(ip + 6, 0x4000);  // DF
  ip[8] = 64;
  ip[9] = 6;
  const uint8_t addresses[8] = {198, 19, 0, 1, 198, 19, 0, 2};
  std::memcpy(ip + 12, addresses, 8);
  store_be16(ip + 10, ipv4_header_checksum(ip, 20));
  uint8_t* tcp = &f[kL4];
  store_be16(tcp, 40000);
  store_be16(tcp + 2, 5201);
  store_be32(tcp + 4, 1000);
  store_be32(tcp + 8, 0x0A0B0C0D);
  tcp[12] = kTcpHeader / 4 << 4;
  tcp[13] = 0x10;  // ACK
  store_be16(tcp + 14, 0x0200);
  const uint8_t timestamps[12] = {1, 1, 8, 10, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
  std::memcpy(tcp + 20, timestamps, 12);
  std::mt19937 random(5);
  for (size_t i = kL4 + kTcpHeader; i < f.size(); i++) f[i] = static_cast<uint8_t>(random());
  store_be16(tcp + 16, checksum_fold(pseudo_header_sum_ipv4(ip + 12, ip + 16, 6, kTcpHeader + kPayload)));
  s.vnet.flags = kVirtioNetHdrFNeedsCsum;
  s.vnet.gso_type = kVirtioNetHdrGsoTcpv4;
  s.vnet.hdr_len = kL4 + kTcpHeader;
  s.vnet.gso_size = kMss;
  s.vnet.csum_start = kL4;
  s.vnet.csum_offset = 16;
  return s;
}

volatile uint32_t sink;

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) seconds_per_run = std::atof(argv[1]);
  std::vector<size_t> sizes;
  for (int i = 2; i < argc; i++) sizes.push_back(std::strtoul(argv[i], nullptr, 10));
  if (sizes.empty()) sizes = {64, 1500, 9000, 65536};

  std::printf("checksum_add, 10^9 bytes per second of CPU time (GB/s), best of %d slices of %.2f s\n", kSlices,
              seconds_per_run / kSlices);
  const ChecksumImplementation chosen = checksum_implementation();
  std::printf("checksum_add chose %s (OVERLAYFWD_CHECKSUM=%s)\n", checksum_implementation_name(chosen),
              std::getenv("OVERLAYFWD_CHECKSUM") ? std::getenv("OVERLAYFWD_CHECKSUM") : "");
  size_t largest = 0;
  for (size_t size : sizes) largest = size > largest ? size : largest;
  std::vector<uint8_t> memory(largest + 64 + 64);
  std::mt19937 random(1);
  for (auto& b : memory) b = static_cast<uint8_t>(random());
  uint8_t* const aligned = memory.data() + (64 - reinterpret_cast<uintptr_t>(memory.data()) % 64) % 64;

  struct Row {
    const char* name;
    bool supported;
    ChecksumImplementation implementation;
    bool serial;
  };
  std::vector<Row> rows = {{"serial (before)", true, ChecksumImplementation::scalar, true}};
  for (ChecksumImplementation implementation : kChecksumImplementations) {
    rows.push_back({checksum_implementation_name(implementation), checksum_implementation_supported(implementation),
                    implementation, false});
  }
  for (int any_alignment = 0; any_alignment < 2; any_alignment++) {
    std::printf("\n%-16s", any_alignment ? "any alignment" : "64-byte aligned");
    for (size_t size : sizes) std::printf(" %8zu B", size);
    std::printf("\n");
    for (const Row& row : rows) {
      std::printf("%-16s", row.name);
      if (!row.supported) {
        std::printf(" not supported by this CPU\n");
        continue;
      }
      // Through checksum_add itself, as the data path calls it (one indirect call).
      if (!row.serial) checksum_use_implementation(row.implementation);
      for (size_t size : sizes) {
        size_t offset = 0;
        const double rate = measure(size, [&] {
          const uint8_t* data = aligned + offset;
          if (any_alignment) offset = (offset + 1) & 63;
          sink = row.serial ? serial_checksum_add(data, size, sink) : checksum_add(data, size, sink);
        });
        std::printf(" %10.1f", rate);
      }
      std::printf("\n");
    }
  }

  // The offload paths, through checksum_add too.
  const SuperFrame super = make_super_frame();
  BufferPool pool(64, kMaxPacket);
  std::vector<CoalescedFrame> merged;
  GroCoalescer coalescer(14);
  std::printf("\noffload, 10^9 frame bytes per second (GB/s; x8 for Gbit/s) of a %zu-byte super-frame\n",
              super.frame.size());
  std::printf("%-16s %12s %18s\n", "", "segment", "segment+coalesce");
  for (ChecksumImplementation implementation : kChecksumImplementations) {
    if (!checksum_use_implementation(implementation)) continue;
    int segments = 0;
    auto segment = [&] {
      segments = segment_super_frame(super.vnet, super.frame.data(), super.frame.size(), 14, &pool[0], pool.size());
      if (segments <= 1) {
        std::fprintf(stderr, "bench: segment_super_frame returned %d\n", segments);
        std::exit(1);
      }
    };
    const double segment_rate = measure(super.frame.size(), segment);
    const double round_trip_rate = measure(super.frame.size(), [&] {
      segment();
      for (int i = 0; i < segments; i++) coalescer.add(&pool[static_cast<size_t>(i)]);
      merged.clear();
      if (coalescer.finish(merged) != 1 || merged[0].buffer->length != super.frame.size()) {
        std::fprintf(stderr, "bench: the segments did not coalesce back into one frame\n");
        std::exit(1);
      }
    });
    std::printf("%-16s %12.1f %18.1f\n", checksum_implementation_name(implementation), segment_rate, round_trip_rate);
  }
  checksum_use_implementation(chosen);
  return 0;
}
