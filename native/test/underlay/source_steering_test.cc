// The data port's steering program against the kernel: a reuseport group of two worker sockets
// and a stranger socket, in a namespace of this test's own (loopback with a few addresses).
// Datagrams from a peer's address reach the workers' sockets, spread over both; datagrams from
// any other address reach the stranger socket only; a new table moves a source at once.
#include "underlay/source_steering.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "system/link_config.h"
#include "system/sys_error.h"
#include "underlay/udp_socket.h"
#include "private_netns.h"
#include "test.h"

using namespace ovl;
using ovl::test::in_private_netns;

namespace {

constexpr uint32_t kWorkers = 2;

SocketAddress at(const std::string& address, uint16_t port = 0) { return *parse_socket_address(address, port); }

// Datagrams from `source` (each from a port of its own, so that they are different flows) to
// `to`; returns how many left.
int send_from(const std::string& source, const SocketAddress& to, int flows) {
  int sent = 0;
  for (int i = 0; i < flows; i++) {
    const SocketAddress from = at(source);
    UniqueFd fd(::socket(from.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (::bind(fd.get(), from.get(), from.length) < 0) throw_errno("bind", source);
    const char payload[] = "steer";
    if (::sendto(fd.get(), payload, sizeof payload, 0, to.get(), to.length) == sizeof payload) sent++;
  }
  return sent;
}

// What each socket of the group holds now (and reads it all).
std::array<int, kWorkers + 1> drain(const std::vector<UniqueFd>& group) {
  std::array<int, kWorkers + 1> held{};
  char buffer[64];
  for (size_t s = 0; s < group.size(); s++) {
    while (::recv(group[s].get(), buffer, sizeof buffer, MSG_DONTWAIT) > 0) held[s]++;
  }
  return held;
}

std::string describe(const std::array<int, kWorkers + 1>& held) {
  return "[" + std::to_string(held[0]) + ", " + std::to_string(held[1]) + ", stranger " + std::to_string(held[2]) + "]";
}

// One family's round: `peer` and `other` are local addresses of the namespace; `twin`, when not
// empty, is an address whose search key (IPv6: the XOR of its words) equals the peer's.
void check_family(const std::string& local, const std::string& peer, const std::string& other, const std::string& twin,
                  std::string& failure) {
  const std::string where = local + ": ";
  uint16_t port = 0;
  {
    // A free port of the namespace's, learnt from a socket bound to any.
    const SocketAddress any = at(local);
    UniqueFd probe(::socket(any.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
    SocketAddress bound;
    bound.length = sizeof bound.storage;
    if (::bind(probe.get(), any.get(), any.length) < 0 || ::getsockname(probe.get(), bound.get(), &bound.length) < 0) {
      throw_errno("bind", local);
    }
    port = bound.port();
  }
  const std::vector<UniqueFd> group = open_listening_sockets(at(local, port), kWorkers, UdpOptions{}, 256 << 10);
  const SocketAddress to = at(local, port);
  const int family = to.family();

  // Only the peer is known: its flows reach both workers and never the stranger socket.
  if (!attach_reuseport_program(group[0].get(), source_steering_program(family, {at(peer)}, kWorkers))) {
    failure += where + "the program was refused; ";
    return;
  }
  int sent = send_from(peer, to, 64);
  auto held = drain(group);
  if (held[0] + held[1] != sent || held[2] != 0 || held[0] == 0 || held[1] == 0) {
    failure += where + "64 flows from the peer landed " + describe(held) + "; ";
  }
  sent = send_from(other, to, 16);
  held = drain(group);
  if (held[2] != sent || held[0] + held[1] != 0) failure += where + "16 from a stranger landed " + describe(held) + "; ";
  if (!twin.empty()) {
    sent = send_from(twin, to, 16);
    held = drain(group);
    if (held[2] != sent || held[0] + held[1] != 0) failure += where + "16 from the peer's key twin landed " + describe(held) + "; ";
  }

  // A new table: the other address is a peer now, and reaches the workers at once.
  attach_reuseport_program(group[2].get(), source_steering_program(family, {at(peer), at(other)}, kWorkers));
  sent = send_from(other, to, 16);
  held = drain(group);
  if (held[0] + held[1] != sent || held[2] != 0) failure += where + "the new peer's 16 landed " + describe(held) + "; ";

  // No peers at all: everything is a stranger's.
  attach_reuseport_program(group[1].get(), source_steering_program(family, {}, kWorkers));
  sent = send_from(peer, to, 16);
  held = drain(group);
  if (held[2] != sent || held[0] + held[1] != 0) failure += where + "with no peers, 16 landed " + describe(held) + "; ";

  // More peers than a program holds: it only spreads, over the workers.
  std::vector<SocketAddress> many;
  for (uint32_t i = 0; i < 4000; i++) {
    SocketAddress a = at(family == AF_INET ? "10.0.0.0" : "fd00:55::");
    if (family == AF_INET) {
      reinterpret_cast<sockaddr_in*>(a.get())->sin_addr.s_addr = htonl(0x0a000000u + i);
    } else {
      reinterpret_cast<sockaddr_in6*>(a.get())->sin6_addr.s6_addr[15] = static_cast<uint8_t>(i);
      reinterpret_cast<sockaddr_in6*>(a.get())->sin6_addr.s6_addr[14] = static_cast<uint8_t>(i >> 8);
    }
    many.push_back(a);
  }
  if (!source_steering_program(family, many, kWorkers).empty()) failure += where + "4000 peers fit in one program; ";

  // Nearly as many as fit (a deep search, the peer somewhere in the middle): where the kernel
  // takes the program (net.core.optmem_max bounds it), the peer and the stranger still land right.
  std::vector<SocketAddress> most(many.begin(), many.begin() + (family == AF_INET ? 800 : 260));
  most.insert(most.begin() + static_cast<long>(most.size() / 3), at(peer));
  const std::vector<sock_filter> deep = source_steering_program(family, most, kWorkers);
  if (deep.empty()) {
    failure += where + std::to_string(most.size()) + " peers do not fit in one program; ";
  } else if (!attach_reuseport_program(group[0].get(), deep)) {
    std::fprintf(stderr, "  (%s the kernel refused %zu instructions for %zu peers: %s)\n", local.c_str(), deep.size(), most.size(),
                 std::strerror(errno));
  } else {
    sent = send_from(peer, to, 32);
    held = drain(group);
    if (held[0] + held[1] != sent || held[2] != 0) failure += where + "among many peers, the peer's 32 landed " + describe(held) + "; ";
    sent = send_from(other, to, 16);
    held = drain(group);
    if (held[2] != sent || held[0] + held[1] != 0) failure += where + "among many peers, 16 from a stranger landed " + describe(held) + "; ";
  }

  attach_reuseport_program(group[0].get(), spreading_program(family, kWorkers));
  sent = send_from(other, to, 32);
  held = drain(group);
  if (held[0] + held[1] != sent || held[2] != 0) failure += where + "spreading only, 32 landed " + describe(held) + "; ";
}

}  // namespace

TEST(source_steering_sends_peers_to_the_workers_and_strangers_to_the_stranger_socket) {
  in_private_netns("the kernel steering check", [&](std::string& failure) {
    const int lo = link_info("lo").ifindex;
    for (const char* address : {"fd00:5::1", "fd00:5::2", "fd00:5::3", "fd00:5:0:2::"}) link_add_address(lo, address, 128);
    // IPv4: all of 127/8 is local. IPv6: fd00:5::2 and fd00:5:0:2:: share the XOR of their
    // words (fd000005 ^ 2), so the search finds the key of both and the whole address decides.
    check_family("127.0.0.1", "127.0.0.2", "127.0.0.3", "", failure);
    check_family("fd00:5::1", "fd00:5::2", "fd00:5::3", "fd00:5:0:2::", failure);
  });
}
