// The ICMP errors an underlay socket hears back (underlay/socket_errors.h), against the kernel on
// loopback: a datagram to a closed port is answered with ICMP port unreachable, which waits on
// the sender's error queue with the destination it quotes; reading it clears the socket's
// pending error, and without reading it that error fails the socket's next send, once. The
// classification of every ICMP type the data path counts, and of those it leaves alone.
#include "underlay/socket_errors.h"

#include <arpa/inet.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "system/unique_fd.h"
#include "loopback_udp.h"
#include "test.h"

using namespace ovl;
using namespace ovl::test;

namespace {

ssize_t send_byte(int fd, uint16_t port) {
  const SocketAddress to = loopback(port);
  const uint8_t byte = 0x42;
  return ::sendto(fd, &byte, 1, 0, to.get(), to.length);
}

bool wait_for_error(int fd) {
  pollfd wait{fd, 0, 0};
  return ::poll(&wait, 1, 2000) == 1 && (wait.revents & POLLERR);
}

sock_extended_err icmp_error(uint8_t origin, uint8_t type, uint8_t code) {
  sock_extended_err error{};
  error.ee_origin = origin;
  error.ee_type = type;
  error.ee_code = code;
  return error;
}

}  // namespace

TEST(socket_errors_classify_what_says_a_datagram_was_lost) {
  Counter reason = kDropMalformed;
  CHECK(classify_underlay_error(icmp_error(SO_EE_ORIGIN_ICMP, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH), &reason));
  CHECK_EQ(reason, kDropUnreachable);
  CHECK(classify_underlay_error(icmp_error(SO_EE_ORIGIN_ICMP, ICMP_DEST_UNREACH, ICMP_HOST_UNREACH), &reason));
  CHECK_EQ(reason, kDropUnreachable);
  CHECK(classify_underlay_error(icmp_error(SO_EE_ORIGIN_ICMP, ICMP_DEST_UNREACH, ICMP_PROT_UNREACH), &reason));
  CHECK_EQ(reason, kDropUnreachable);
  CHECK(classify_underlay_error(icmp_error(SO_EE_ORIGIN_ICMP, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED), &reason));
  CHECK_EQ(reason, kDropTooBig);
  CHECK(classify_underlay_error(icmp_error(SO_EE_ORIGIN_ICMP, ICMP_TIME_EXCEEDED, 0), &reason));
  CHECK_EQ(reason, kDropUnreachable);
  CHECK(classify_underlay_error(icmp_error(SO_EE_ORIGIN_ICMP6, ICMP6_DST_UNREACH, ICMP6_DST_UNREACH_NOPORT), &reason));
  CHECK_EQ(reason, kDropUnreachable);
  CHECK(classify_underlay_error(icmp_error(SO_EE_ORIGIN_ICMP6, ICMP6_PACKET_TOO_BIG, 0), &reason));
  CHECK_EQ(reason, kDropTooBig);
  CHECK(classify_underlay_error(icmp_error(SO_EE_ORIGIN_ICMP6, ICMP6_TIME_EXCEEDED, 0), &reason));
  CHECK_EQ(reason, kDropUnreachable);
  // Not a loss, or already counted where the send call failed.
  CHECK(!classify_underlay_error(icmp_error(SO_EE_ORIGIN_ICMP, ICMP_REDIRECT, 0), &reason));
  CHECK(!classify_underlay_error(icmp_error(SO_EE_ORIGIN_ICMP, ICMP_PARAMETERPROB, 0), &reason));
  CHECK(!classify_underlay_error(icmp_error(SO_EE_ORIGIN_ICMP6, ICMP6_PARAM_PROB, 0), &reason));
  CHECK(!classify_underlay_error(icmp_error(SO_EE_ORIGIN_LOCAL, 0, 0), &reason));
  CHECK(!classify_underlay_error(icmp_error(SO_EE_ORIGIN_ZEROCOPY, 0, 0), &reason));
}

TEST(socket_errors_queue_a_port_unreachable_with_the_destination_it_quotes) {
  UniqueFd sender = bound_udp();
  CHECK(sender.valid());
  enable_error_queue(sender.get(), AF_INET);
  const uint16_t nobody = free_port();
  CHECK_EQ(send_byte(sender.get(), nobody), 1);
  CHECK(wait_for_error(sender.get()));
  UnderlayError errors[4];
  CHECK_EQ(read_error_queue(sender.get(), errors, 4), size_t{1});
  CHECK_EQ(errors[0].reason, kDropUnreachable);
  const auto* destination = reinterpret_cast<const sockaddr_in*>(&errors[0].destination);
  CHECK_EQ(destination->sin_family, AF_INET);
  CHECK_EQ(ntohs(destination->sin_port), nobody);
  CHECK_EQ(ntohl(destination->sin_addr.s_addr), uint32_t{INADDR_LOOPBACK});
  // Read and cleared: nothing left to report, and the next send goes out.
  pollfd wait{sender.get(), 0, 0};
  CHECK_EQ(::poll(&wait, 1, 0), 0);
  UniqueFd listener = bound_udp();
  CHECK_EQ(send_byte(sender.get(), port_of(listener.get())), 1);
  CHECK_EQ(read_error_queue(sender.get(), errors, 4), size_t{0});
}

TEST(socket_errors_left_unread_fail_the_next_send_once) {
  // What the link guards against (link.cc retries such a call): the error of a datagram to one
  // peer returned by the send of a datagram to another.
  UniqueFd sender = bound_udp();
  enable_error_queue(sender.get(), AF_INET);
  CHECK_EQ(send_byte(sender.get(), free_port()), 1);
  CHECK(wait_for_error(sender.get()));
  UniqueFd listener = bound_udp();
  const uint16_t good = port_of(listener.get());
  errno = 0;
  CHECK_EQ(send_byte(sender.get(), good), -1);
  CHECK_EQ(errno, ECONNREFUSED);
  CHECK(is_reported_icmp_error(errno));
  CHECK(has_queued_errors(sender.get()));  // so the errno is the queue's, and worth a retry
  CHECK_EQ(send_byte(sender.get(), good), 1);
  uint8_t byte = 0;
  pollfd wait{listener.get(), POLLIN, 0};
  CHECK_EQ(::poll(&wait, 1, 2000), 1);
  CHECK_EQ(::recv(listener.get(), &byte, 1, 0), 1);
  CHECK_EQ(byte, 0x42);
  // The queued entry is still there to count.
  UnderlayError errors[4];
  CHECK_EQ(read_error_queue(sender.get(), errors, 4), size_t{1});
  CHECK(!has_queued_errors(sender.get()));
}

TEST(socket_errors_a_calls_own_failure_is_not_taken_for_a_queued_one) {
  // EMSGSIZE is also what an ICMP "fragmentation needed" hands back; a datagram larger than UDP
  // can carry fails with it by itself, with nothing queued: no retry would ever succeed.
  UniqueFd sender = bound_udp();
  enable_error_queue(sender.get(), AF_INET);
  UniqueFd listener = bound_udp();
  static uint8_t oversized[70000];
  const SocketAddress to = loopback(port_of(listener.get()));
  errno = 0;
  CHECK_EQ(::sendto(sender.get(), oversized, sizeof oversized, 0, to.get(), to.length), -1);
  CHECK_EQ(errno, EMSGSIZE);
  CHECK(is_reported_icmp_error(errno));
  CHECK(!has_queued_errors(sender.get()));
}

TEST(socket_errors_read_at_most_what_was_asked_and_keep_the_rest) {
  UniqueFd sender = bound_udp();
  enable_error_queue(sender.get(), AF_INET);
  const uint16_t nobody = free_port();
  for (int i = 0; i < 3; i++) {
    // Each send may meet the previous one's pending error first (see above): send again then.
    if (send_byte(sender.get(), nobody) < 0) {
      CHECK(is_reported_icmp_error(errno));
      CHECK_EQ(send_byte(sender.get(), nobody), 1);
    }
  }
  CHECK(wait_for_error(sender.get()));
  UnderlayError errors[2];
  size_t total = read_error_queue(sender.get(), errors, 2);
  CHECK_EQ(total, size_t{2});
  total += read_error_queue(sender.get(), errors, 2);
  // Loopback ICMP is rate-limited per destination only past a burst: all three come back.
  CHECK_EQ(total, size_t{3});
}

TEST(socket_errors_mean_nothing_for_other_errnos) {
  CHECK(is_reported_icmp_error(ECONNREFUSED));
  CHECK(is_reported_icmp_error(EHOSTUNREACH));
  CHECK(!is_reported_icmp_error(EAGAIN));
  CHECK(!is_reported_icmp_error(ENOBUFS));
  CHECK(!is_reported_icmp_error(EBADF));
  CHECK(!is_reported_icmp_error(EINVAL));
}
