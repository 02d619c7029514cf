// The control channel on loopback, in the test's own namespace: the IKE socket's reader passes
// datagrams up with their sender and port and counts what it cannot pass (too short for IKE, the
// sink full); send() puts the non-ESP marker in front on the data-path socket and nothing on the
// IKE socket; deliver() from a worker reaches the sink until close(); the channel opens once; a
// port somebody holds fails at bind. The workers' side (Tunnel::classify in the receive path) is
// exercised against real traffic in test/netns/control-channel.test.ts.
#include "underlay/control_channel.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/stats_layout.h"
#include "system/sys_error.h"
#include "system/unique_fd.h"
#include "loopback_udp.h"
#include "test.h"

using namespace ovl;
using namespace ovl::test;

namespace {

using Bytes = std::vector<uint8_t>;

struct Received {
  uint16_t local_port;
  std::string source;
  uint16_t source_port;
  Bytes data;
};

class FakeSink final : public ControlSink {
 public:
  explicit FakeSink(size_t capacity) : capacity_(capacity) {}

  bool deliver(uint16_t local_port, const sockaddr* source, const uint8_t* data, size_t length) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (received_.size() >= capacity_) return false;
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(source);
    received_.push_back({local_port, address_literal(source), ntohs(v4->sin_port), Bytes(data, data + length)});
    return true;
  }
  std::vector<Received> received() {
    std::lock_guard<std::mutex> lock(mutex_);
    return received_;
  }

 private:
  std::mutex mutex_;
  size_t capacity_;
  std::vector<Received> received_;
};

void send_to(int fd, uint16_t port, const Bytes& data) {
  const SocketAddress to = loopback(port);
  ::sendto(fd, data.data(), data.size(), 0, to.get(), to.length);
}

// One datagram on `fd` within a second: its bytes and the sender's port (empty bytes: none).
Bytes receive_from(int fd, uint16_t* source_port) {
  pollfd ready{fd, POLLIN, 0};
  if (::poll(&ready, 1, 1000) != 1) return {};
  Bytes buffer(70000);
  sockaddr_in source{};
  socklen_t length = sizeof source;
  const ssize_t n = ::recvfrom(fd, buffer.data(), buffer.size(), 0, reinterpret_cast<sockaddr*>(&source), &length);
  buffer.resize(n < 0 ? 0 : static_cast<size_t>(n));
  *source_port = ntohs(source.sin_port);
  return buffer;
}

template <typename Fn>
bool eventually(Fn&& done) {
  for (int i = 0; i < 200; i++) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done();
}

Bytes ike_message(size_t length, uint8_t fill) { return Bytes(length, fill); }

struct Setup {
  StatsBlock block{1, 1};
  ControlChannel channel{SharedStats(block.shared_section())};
  std::shared_ptr<FakeSink> sink;
  UniqueFd data = bound_udp();  // stands in for a worker's listener
  uint16_t data_port = port_of(data.get());
  uint16_t ike_port = free_port();

  explicit Setup(size_t capacity = 100) : sink(std::make_shared<FakeSink>(capacity)) {
    ControlChannelOptions options;
    options.local = loopback(data_port);
    options.ike_port = ike_port;
    options.data_socket.reset(::dup(data.get()));
    channel.open(sink, std::move(options));
  }
  uint64_t shared(Counter counter) { return __atomic_load_n(block.shared_section() + counter, __ATOMIC_RELAXED); }
};

}  // namespace

TEST(control_channel_passes_ike_port_datagrams_up_with_their_sender) {
  Setup s;
  UniqueFd peer = bound_udp();
  const Bytes message = ike_message(28, 0x5a), larger = ike_message(3000, 0x33);
  send_to(peer.get(), s.ike_port, message);
  send_to(peer.get(), s.ike_port, larger);
  CHECK(eventually([&] { return s.sink->received().size() == 2; }));
  const auto got = s.sink->received();
  CHECK_EQ(got.size(), size_t{2});
  if (got.size() == 2) {
    CHECK_EQ(got[0].local_port, s.ike_port);
    CHECK(got[0].source == "127.0.0.1");
    CHECK_EQ(got[0].source_port, port_of(peer.get()));
    CHECK(got[0].data == message);
    CHECK(got[1].data == larger);
  }
  CHECK_EQ(s.shared(kControlRx), 2u);
}

TEST(control_channel_counts_what_cannot_be_ike_and_a_full_sink) {
  Setup s(/*capacity=*/1);
  UniqueFd peer = bound_udp();
  send_to(peer.get(), s.ike_port, ike_message(27, 1));  // shorter than the IKE header
  send_to(peer.get(), s.ike_port, ike_message(28, 2));
  send_to(peer.get(), s.ike_port, ike_message(28, 3));  // the sink holds one
  CHECK(eventually([&] { return s.shared(kDropControlQueueFull) == 1; }));
  CHECK_EQ(s.shared(kDropMalformed), 1u);
  CHECK_EQ(s.shared(kControlRx), 1u);
  const auto got = s.sink->received();
  CHECK_EQ(got.size(), size_t{1});
  if (!got.empty()) CHECK_EQ(got[0].data[0], 2);
}

TEST(control_channel_sends_with_the_marker_on_the_data_port_only) {
  Setup s;
  UniqueFd peer = bound_udp();
  const uint16_t peer_port = port_of(peer.get());
  const Bytes message = ike_message(40, 0x77);
  s.channel.send(s.data_port, loopback(peer_port), message.data(), message.size());
  uint16_t from = 0;
  Bytes got = receive_from(peer.get(), &from);
  CHECK_EQ(from, s.data_port);
  CHECK_EQ(got.size(), message.size() + 4);
  if (got.size() == message.size() + 4) {
    CHECK(got[0] == 0 && got[1] == 0 && got[2] == 0 && got[3] == 0);
    CHECK(Bytes(got.begin() + 4, got.end()) == message);
  }
  s.channel.send(s.ike_port, loopback(peer_port), message.data(), message.size());
  got = receive_from(peer.get(), &from);
  CHECK_EQ(from, s.ike_port);
  CHECK(got == message);
  CHECK_EQ(s.shared(kControlTx), 2u);
  // No socket on another port, nor for another family; nothing counted.
  CHECK_THROWS(s.channel.send(static_cast<uint16_t>(s.ike_port + 1), loopback(peer_port), message.data(), message.size()));
  CHECK_THROWS(s.channel.send(s.ike_port, *parse_socket_address("::1", peer_port), message.data(), message.size()));
  CHECK_EQ(s.shared(kControlTx), 2u);
}

TEST(control_channel_delivers_for_workers_until_closed_and_opens_once) {
  Setup s;
  const SocketAddress source = *parse_socket_address("198.18.0.2", 4500);
  const Bytes message = ike_message(28, 9);
  CHECK(s.channel.is_open());
  CHECK(s.channel.deliver(s.data_port, source.get(), message.data(), message.size()) == ControlChannel::Handoff::delivered);
  const auto got = s.sink->received();
  CHECK_EQ(got.size(), size_t{1});
  if (!got.empty()) {
    CHECK(got[0].source == "198.18.0.2");
    CHECK_EQ(got[0].source_port, 4500);
  }
  s.channel.close();
  CHECK(!s.channel.is_open());
  CHECK(s.channel.deliver(s.data_port, source.get(), message.data(), message.size()) == ControlChannel::Handoff::closed);
  CHECK_THROWS(s.channel.send(s.data_port, source, message.data(), message.size()));
  s.channel.close();  // idempotent
  ControlChannelOptions again;
  again.local = loopback(s.data_port);
  CHECK_THROWS(s.channel.open(s.sink, std::move(again)));
  // The IKE port is free again.
  UniqueFd rebound = bound_udp(s.ike_port);
  CHECK(rebound.valid());
}

TEST(control_channel_open_fails_at_bind_when_the_port_is_held) {
  UniqueFd holder = bound_udp();  // without SO_REUSEADDR
  StatsBlock block(1, 1);
  ControlChannel channel{SharedStats(block.shared_section())};
  ControlChannelOptions options;
  options.local = loopback(0);
  options.ike_port = port_of(holder.get());
  int error = 0;
  std::string syscall;
  try {
    channel.open(std::make_shared<FakeSink>(1), std::move(options));
  } catch (const SystemError& failure) {
    error = failure.error_number();
    syscall = failure.syscall();
  }
  CHECK_EQ(error, EADDRINUSE);
  CHECK(syscall == "bind");
  CHECK(!channel.is_open());
  // A failed open leaves it openable.
  ControlChannelOptions other;
  other.local = loopback(0);
  other.ike_port = free_port();
  channel.open(std::make_shared<FakeSink>(1), std::move(other));
  CHECK(channel.is_open());
}
