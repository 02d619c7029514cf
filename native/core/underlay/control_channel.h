// The control channel: IKE datagrams between the underlay and JavaScript, which runs IKE itself
// (lib/ike). Two ways in and out:
//
//   - ESP in UDP: IKE shares port 4500 with ESP behind the non-ESP marker (RFC 3948). Workers
//     find such datagrams in their receive batches (Tunnel::classify) and hand them over with
//     deliver(), marker stripped. Replies leave from that port: sent on a duplicate of a
//     data-path listener with the marker put back in front (one sendmsg with two iovecs; the
//     kernel serializes it with the worker's own sends).
//   - IKE on a port of its own (500): a socket the channel opens inside the forwarder's network
//     namespace, bound to the underlay address, and reads on a thread of its own (poll on the
//     socket and an eventfd that stops it; close() joins it).
//
// What arrives goes to a ControlSink (the addon's: a bounded queue to the JavaScript thread).
// Nothing here blocks a worker: deliver() takes a lock held only around handing one datagram to
// the sink, which never waits. Counters: the workers count what they hand over in their own
// sections; the reader thread and send() count in the shared section (SharedStats).
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/socket_address.h"
#include "base/stats_layout.h"
#include "system/unique_fd.h"

namespace ovl {

// The largest control datagram passed up or sent (the largest UDP payload fits).
constexpr size_t kMaxControlDatagram = 65536;

class ControlSink {
 public:
  virtual ~ControlSink() = default;
  // One datagram of `length` (at most kMaxControlDatagram) bytes that arrived on `local_port`
  // from `source`. Called from workers and the reader thread, one call at a time (the channel
  // serializes them). Must not block; `data` lives for the call only. False when the sink has no
  // room: the datagram is dropped (controlQueueFull).
  virtual bool deliver(uint16_t local_port, const sockaddr* source, const uint8_t* data, size_t length) = 0;
};

struct ControlChannelOptions {
  std::string netns;      // where the IKE socket is opened ('' for the caller's own)
  SocketAddress local;    // the underlay address; its port is the data path's
  uint16_t ike_port = 0;  // 0: no socket of the channel's own
  // ESP in UDP: a duplicate of a data-path listener, to send from local's port. Else invalid.
  UniqueFd data_socket;
};

class ControlChannel {
 public:
  enum class Handoff { delivered, queue_full, closed };

  explicit ControlChannel(SharedStats stats) : stats_(stats) {}
  ~ControlChannel() { close(); }
  ControlChannel(const ControlChannel&) = delete;
  ControlChannel& operator=(const ControlChannel&) = delete;

  // Starts delivering to `sink`, opening the IKE socket when asked (SystemError: socket, bind,
  // eventfd). Once per channel: after close() it stays closed (InvalidState).
  void open(std::shared_ptr<ControlSink> sink, ControlChannelOptions options);
  // Whether control datagrams are taken now; a worker that finds it closed leaves them to the
  // tunnel, as if there were no channel.
  bool is_open() const { return open_.load(std::memory_order_relaxed); }

  // Workers: one control datagram that arrived on the data-path port, marker stripped.
  Handoff deliver(uint16_t local_port, const sockaddr* source, const uint8_t* data, size_t length);

  // Sends one message to `to` from `local_port`: the data-path port (with the non-ESP marker) or
  // the IKE port. Never waits: a full socket buffer is SystemError EAGAIN, as is every failure of
  // the system call. InvalidState when the channel is not open, InvalidArgument when it has no
  // such port or `to` is of another family.
  void send(uint16_t local_port, const SocketAddress& to, const uint8_t* data, size_t length);

  // Stops delivery, joins the reader thread, closes the sockets. Idempotent.
  void close();

 private:
  void close_locked();
  void read_ike();
  void receive_ike(uint8_t* buffer);
  Handoff hand_over(uint16_t local_port, const sockaddr* source, const uint8_t* data, size_t length);

  enum class State { idle, open, closed };

  SharedStats stats_;
  std::mutex state_mutex_;  // open, send, close
  State state_ = State::idle;
  std::atomic<bool> open_{false};
  std::mutex sink_mutex_;  // the sink, and one delivery at a time
  std::shared_ptr<ControlSink> sink_;
  uint16_t data_port_ = 0;
  uint16_t ike_port_ = 0;
  int family_ = AF_UNSPEC;
  UniqueFd data_socket_;
  UniqueFd ike_socket_;
  UniqueFd stop_fd_;
  std::thread reader_;
};

}  // namespace ovl
