#include "underlay/socket_errors.h"

#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

namespace ovl {

void enable_error_queue(int fd, int family) {
  const int on = 1;
  if (family == AF_INET6) {
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &on, sizeof on);
  } else {
    ::setsockopt(fd, IPPROTO_IP, IP_RECVERR, &on, sizeof on);
  }
}

bool classify_underlay_error(const sock_extended_err& error, Counter* reason) {
  if (error.ee_origin == SO_EE_ORIGIN_ICMP) {
    if (error.ee_type == ICMP_DEST_UNREACH) {
      *reason = error.ee_code == ICMP_FRAG_NEEDED ? kDropTooBig : kDropUnreachable;
      return true;
    }
    if (error.ee_type == ICMP_TIME_EXCEEDED) {
      *reason = kDropUnreachable;
      return true;
    }
    // Source quench, redirect and parameter problems do not say the datagram was lost for good.
    return false;
  }
  if (error.ee_origin == SO_EE_ORIGIN_ICMP6) {
    if (error.ee_type == ICMP6_PACKET_TOO_BIG) {
      *reason = kDropTooBig;
      return true;
    }
    if (error.ee_type == ICMP6_DST_UNREACH || error.ee_type == ICMP6_TIME_EXCEEDED) {
      *reason = kDropUnreachable;
      return true;
    }
    return false;
  }
  // SO_EE_ORIGIN_LOCAL (EMSGSIZE past the known path MTU) came back from the send call itself,
  // which counted it; zero-copy and timestamp notifications are not errors.
  return false;
}

size_t read_error_queue(int fd, UnderlayError* out, size_t max) {
  size_t n = 0;
  while (n < max) {
    sockaddr_storage destination{};
    // Only the control messages matter; the quoted datagram is cut off (MSG_TRUNC). The kernel
    // puts the quoted packet's TOS / traffic class first (IP_RECVTOS / IPV6_RECVTCLASS are on),
    // then the error and the address of whoever sent the ICMP.
    alignas(cmsghdr) uint8_t control[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(sock_extended_err) + sizeof(sockaddr_in6))];
    msghdr message{};
    message.msg_name = &destination;
    message.msg_namelen = sizeof destination;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    if (::recvmsg(fd, &message, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
      if (errno == EINTR) continue;
      break;  // EAGAIN: the queue is empty
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&message); c; c = CMSG_NXTHDR(&message, c)) {
      const bool v4 = c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR;
      const bool v6 = c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR;
      if (!v4 && !v6) continue;
      sock_extended_err error;
      std::memcpy(&error, CMSG_DATA(c), sizeof error);
      Counter reason;
      if (!classify_underlay_error(error, &reason)) continue;
      out[n].destination = destination;
      out[n].reason = reason;
      n++;
      break;
    }
  }
  // Reading the queue leaves the socket's pending error set (it would fail the next call and keep
  // EPOLLERR raised): SO_ERROR takes it.
  int pending = 0;
  socklen_t length = sizeof pending;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &pending, &length);
  return n;
}

bool is_reported_icmp_error(int error) {
  switch (error) {
    case ECONNREFUSED:  // port or protocol unreachable
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EHOSTDOWN:
    case ENONET:
    case EPROTO:
    case ENOPROTOOPT:
    case EACCES:        // administratively prohibited
    case EOPNOTSUPP:    // source route failed
    case EMSGSIZE:      // fragmentation needed with DF set
      return true;
    default:
      return false;
  }
}

bool has_queued_errors(int fd) {
  pollfd watched{fd, 0, 0};  // POLLERR is reported whatever is asked for
  return ::poll(&watched, 1, 0) == 1 && (watched.revents & POLLERR) != 0;
}

}  // namespace ovl
