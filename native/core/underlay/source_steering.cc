#include "underlay/source_steering.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <map>

namespace ovl {

namespace {

// Offsets from the IP header (SKF_NET_OFF): the reuseport program's own data starts after the
// UDP header. Without IPv4 options or IPv6 extension headers, which tunnel peers do not send:
// a datagram with them still lands on some worker, only on another one.
constexpr uint32_t kIpv4Source = 12;
constexpr uint32_t kIpv4Ports = 20;
constexpr uint32_t kIpv6Source = 8;
constexpr uint32_t kIpv6Ports = 40;
constexpr uint32_t kSpreadMultiplier = 0x9e3779b1;  // Fibonacci hashing: spreads the low bits

uint32_t net(uint32_t offset) { return static_cast<uint32_t>(SKF_NET_OFF) + offset; }

// Instructions with forward jumps to labels, resolved at the end (a classic BPF program only
// jumps forward; `ja` takes a 32-bit offset where a conditional jump's are 8 bits).
class Emitter {
 public:
  using Label = size_t;
  Label label() {
    targets_.push_back(0);
    return targets_.size() - 1;
  }
  void bind(Label label) { targets_[label] = code_.size(); }
  void op(uint16_t code, uint32_t k = 0) { code_.push_back(sock_filter{code, 0, 0, k}); }
  void test(uint16_t code, uint32_t k, uint8_t if_true, uint8_t if_false) {
    code_.push_back(sock_filter{code, if_true, if_false, k});
  }
  void jump(Label to) {
    fixups_.emplace_back(code_.size(), to);
    op(BPF_JMP | BPF_JA);
  }
  size_t size() const { return code_.size(); }
  std::vector<sock_filter> finish() {
    for (const auto& [at, to] : fixups_) code_[at].k = static_cast<uint32_t>(targets_[to] - at - 1);
    return std::move(code_);
  }

 private:
  std::vector<sock_filter> code_;
  std::vector<size_t> targets_;
  std::vector<std::pair<size_t, Label>> fixups_;
};

struct Ipv6Words {
  uint32_t w[4];
};

Ipv6Words words_of(const in6_addr& address) {
  Ipv6Words words;
  for (int i = 0; i < 4; i++) {
    std::memcpy(&words.w[i], address.s6_addr + 4 * i, 4);
    words.w[i] = ntohl(words.w[i]);
  }
  return words;
}

// The search key as the program computes it into A: the IPv4 source, or the XOR of the IPv6
// source's words.
uint32_t key_of(const SocketAddress& address) {
  if (address.family() == AF_INET) return ntohl(reinterpret_cast<const sockaddr_in*>(address.get())->sin_addr.s_addr);
  const Ipv6Words words = words_of(reinterpret_cast<const sockaddr_in6*>(address.get())->sin6_addr);
  return words.w[0] ^ words.w[1] ^ words.w[2] ^ words.w[3];
}

struct Builder {
  Emitter code;
  Emitter::Label spread = code.label();
  Emitter::Label stranger = code.label();
  std::vector<uint32_t> keys;
  std::vector<Emitter::Label> hits;

  // A binary search over keys[lo, hi): equal goes to the key's hit, none to the stranger.
  void search(size_t lo, size_t hi) {
    if (lo == hi) return code.jump(stranger);
    const size_t middle = lo + (hi - lo) / 2;
    code.test(BPF_JMP | BPF_JEQ | BPF_K, keys[middle], 0, 1);
    code.jump(hits[middle]);
    const Emitter::Label right = code.label();
    code.test(BPF_JMP | BPF_JGT | BPF_K, keys[middle], 0, 1);
    code.jump(right);
    search(lo, middle);
    code.bind(right);
    search(middle + 1, hi);
  }
};

std::vector<sock_filter> build(int family, const std::vector<SocketAddress>& peers, uint32_t workers, bool steer) {
  const bool v6 = family == AF_INET6;
  Builder b;
  // A = the key.
  if (!v6) {
    b.code.op(BPF_LD | BPF_W | BPF_ABS, net(kIpv4Source));
  } else {
    b.code.op(BPF_LD | BPF_W | BPF_ABS, net(kIpv6Source));
    for (uint32_t i = 1; i < 4; i++) {
      b.code.op(BPF_MISC | BPF_TAX);
      b.code.op(BPF_LD | BPF_W | BPF_ABS, net(kIpv6Source + 4 * i));
      b.code.op(BPF_ALU | BPF_XOR | BPF_X);
    }
    b.code.op(BPF_ST, 0);  // M[0]: the key, for the spreading below
  }
  // The peers by key; IPv6 keys may collide, and each hit compares whole addresses.
  std::map<uint32_t, std::vector<Ipv6Words>> by_key;
  if (steer) {
    for (const SocketAddress& peer : peers) {
      if (peer.family() != family) continue;
      auto& same = by_key[key_of(peer)];
      if (v6) same.push_back(words_of(reinterpret_cast<const sockaddr_in6*>(peer.get())->sin6_addr));
    }
    for (const auto& entry : by_key) {
      b.keys.push_back(entry.first);
      b.hits.push_back(v6 ? b.code.label() : b.spread);
    }
    b.search(0, b.keys.size());
  } else {
    b.code.jump(b.spread);
  }
  // IPv6 hits: each candidate's four words (9 instructions a candidate), then the stranger.
  if (v6) {
    size_t k = 0;
    for (const auto& entry : by_key) {
      b.code.bind(b.hits[k++]);
      for (const Ipv6Words& candidate : entry.second) {
        for (uint32_t i = 0; i < 4; i++) {
          b.code.op(BPF_LD | BPF_W | BPF_ABS, net(kIpv6Source + 4 * i));
          // Not equal: past the rest of this candidate (7 - 2i instructions on) to the next one.
          b.code.test(BPF_JMP | BPF_JEQ | BPF_K, candidate.w[i], 0, static_cast<uint8_t>(7 - 2 * i));
        }
        b.code.jump(b.spread);
      }
      b.code.jump(b.stranger);
    }
  }
  b.code.bind(b.stranger);
  b.code.op(BPF_RET | BPF_K, workers);
  // A peer's datagram: to a worker, by a hash of its addresses and ports (one flow, one
  // worker). Last, as the hits jump here and a classic BPF program jumps forward only.
  b.code.bind(b.spread);
  if (workers <= 1) {
    b.code.op(BPF_RET | BPF_K, 0);
  } else {
    b.code.op(BPF_LD | BPF_W | BPF_ABS, net(v6 ? kIpv6Ports : kIpv4Ports));
    b.code.op(BPF_MISC | BPF_TAX);
    if (v6) {
      b.code.op(BPF_LD | BPF_MEM, 0);
    } else {
      b.code.op(BPF_LD | BPF_W | BPF_ABS, net(kIpv4Source));
    }
    b.code.op(BPF_ALU | BPF_XOR | BPF_X);
    b.code.op(BPF_ALU | BPF_MUL | BPF_K, kSpreadMultiplier);
    b.code.op(BPF_ALU | BPF_RSH | BPF_K, 16);
    b.code.op(BPF_ALU | BPF_MOD | BPF_K, workers);
    b.code.op(BPF_RET | BPF_A);
  }
  return b.code.finish();
}

}  // namespace

std::vector<sock_filter> source_steering_program(int family, const std::vector<SocketAddress>& peers, uint32_t workers) {
  std::vector<sock_filter> program = build(family, peers, workers, true);
  if (program.size() > BPF_MAXINSNS) program.clear();
  return program;
}

std::vector<sock_filter> spreading_program(int family, uint32_t workers) { return build(family, {}, workers, false); }

bool attach_reuseport_program(int fd, const std::vector<sock_filter>& program) {
  sock_fprog fprog{static_cast<unsigned short>(program.size()), const_cast<sock_filter*>(program.data())};
  return ::setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fprog, sizeof fprog) == 0;
}

}  // namespace ovl
