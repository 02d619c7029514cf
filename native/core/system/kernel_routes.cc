#include "system/kernel_routes.h"

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "system/sys_error.h"
#include "system/unique_fd.h"

namespace ovl {

namespace {

// Requests per datagram: every one is acknowledged in a datagram of its own, and this many
// acknowledgements (with their error messages) fit in the default socket receive buffer.
constexpr size_t kBatch = 64;
constexpr size_t kRequestCapacity = 128;  // one request: 28 + 20 + 3 × 8 = 72 bytes at most
constexpr int kAckTimeoutMs = 10'000;
constexpr int kOverflowTimeoutMs = 200;

bool append_attribute(uint8_t* buffer, size_t capacity, uint16_t type, const void* data, size_t length) {
  auto* message = reinterpret_cast<nlmsghdr*>(buffer);
  const size_t at = NLMSG_ALIGN(message->nlmsg_len);
  if (at + RTA_SPACE(length) > capacity) return false;
  auto* attribute = reinterpret_cast<rtattr*>(buffer + at);
  attribute->rta_type = type;
  attribute->rta_len = static_cast<uint16_t>(RTA_LENGTH(length));
  std::memcpy(RTA_DATA(attribute), data, length);
  message->nlmsg_len = static_cast<uint32_t>(at + RTA_SPACE(length));
  return true;
}

// The extended acknowledgement's message (NLMSGERR_ATTR_MSG), when the kernel sent one.
std::string ack_message(const nlmsghdr* header) {
  if ((header->nlmsg_flags & NLM_F_ACK_TLVS) == 0) return {};
  const auto* error = static_cast<const nlmsgerr*>(NLMSG_DATA(header));
  // Capped: the request's header only; else the whole request is echoed before the TLVs.
  size_t offset = NLMSG_HDRLEN + sizeof(nlmsgerr);
  if ((header->nlmsg_flags & NLM_F_CAPPED) == 0) offset += NLMSG_ALIGN(error->msg.nlmsg_len) - NLMSG_HDRLEN;
  const auto* bytes = reinterpret_cast<const uint8_t*>(header);
  while (offset + NLA_HDRLEN <= header->nlmsg_len) {
    const auto* attribute = reinterpret_cast<const nlattr*>(bytes + offset);
    if (attribute->nla_len < NLA_HDRLEN || offset + attribute->nla_len > header->nlmsg_len) break;
    if ((attribute->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) {
      const char* text = reinterpret_cast<const char*>(bytes + offset + NLA_HDRLEN);
      return std::string(text, strnlen(text, attribute->nla_len - NLA_HDRLEN));
    }
    offset += NLA_ALIGN(attribute->nla_len);
  }
  return {};
}

void set_option(int fd, int level, int option, int value) {
  (void)::setsockopt(fd, level, option, &value, sizeof value);  // best effort: older kernels lack some
}

}  // namespace

std::string KernelRoute::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(family, address, text, sizeof text);
  return std::string(text) + "/" + std::to_string(prefix_length);
}

std::optional<KernelRoute> parse_kernel_route(const std::string& cidr) {
  const size_t slash = cidr.find('/');
  if (slash == std::string::npos || slash + 1 >= cidr.size() || cidr.size() - slash > 4) return std::nullopt;
  KernelRoute route;
  const std::string address = cidr.substr(0, slash);
  if (::inet_pton(AF_INET, address.c_str(), route.address) == 1) {
    route.family = AF_INET;
  } else if (::inet_pton(AF_INET6, address.c_str(), route.address) == 1) {
    route.family = AF_INET6;
  } else {
    return std::nullopt;
  }
  int length = 0;
  for (size_t i = slash + 1; i < cidr.size(); i++) {
    if (cidr[i] < '0' || cidr[i] > '9') return std::nullopt;
    length = length * 10 + (cidr[i] - '0');
  }
  const int bits = route.family == AF_INET ? 32 : 128;
  if (length > bits) return std::nullopt;
  route.prefix_length = static_cast<uint8_t>(length);
  for (int bit = length; bit < bits; bit++) route.address[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  return route;
}

size_t build_route_request(RouteOp op, const KernelRoute& route, const RouteTarget& target, uint32_t seq, uint8_t* buffer,
                           size_t capacity) {
  const size_t base = NLMSG_LENGTH(sizeof(rtmsg));
  if (capacity < base) return 0;
  std::memset(buffer, 0, base);
  auto* message = reinterpret_cast<nlmsghdr*>(buffer);
  message->nlmsg_len = static_cast<uint32_t>(base);
  message->nlmsg_type = op == RouteOp::add ? RTM_NEWROUTE : RTM_DELROUTE;
  message->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (op == RouteOp::add ? NLM_F_CREATE | NLM_F_EXCL : 0);
  message->nlmsg_seq = seq;
  auto* rt = static_cast<rtmsg*>(NLMSG_DATA(message));
  rt->rtm_family = static_cast<uint8_t>(route.family);
  rt->rtm_dst_len = route.prefix_length;
  // Tables above 255 only fit RTA_TABLE; rtm_table then says "see the attribute", as iproute2 does.
  rt->rtm_table = target.table < 256 ? static_cast<uint8_t>(target.table) : static_cast<uint8_t>(RT_TABLE_UNSPEC);
  rt->rtm_protocol = kRouteProtocol;
  // A removal matches any scope; what it names (device, table, metric, protocol) picks the route.
  rt->rtm_scope = op == RouteOp::add ? RT_SCOPE_LINK : RT_SCOPE_NOWHERE;
  rt->rtm_type = RTN_UNICAST;
  const uint32_t ifindex = static_cast<uint32_t>(target.ifindex);
  const bool fits = append_attribute(buffer, capacity, RTA_DST, route.address, route.family == AF_INET ? 4 : 16) &&
                    append_attribute(buffer, capacity, RTA_OIF, &ifindex, 4) &&
                    append_attribute(buffer, capacity, RTA_PRIORITY, &target.metric, 4) &&
                    append_attribute(buffer, capacity, RTA_TABLE, &target.table, 4);
  return fits ? NLMSG_ALIGN(message->nlmsg_len) : 0;
}

size_t parse_route_acks(const uint8_t* data, size_t length, uint32_t first_seq, std::vector<RouteResult>& results,
                        std::vector<bool>& acked) {
  size_t count = 0;
  size_t remaining = length;
  for (auto* header = reinterpret_cast<const nlmsghdr*>(data); NLMSG_OK(header, remaining); header = NLMSG_NEXT(header, remaining)) {
    if (header->nlmsg_type != NLMSG_ERROR || header->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) continue;
    const uint32_t index = header->nlmsg_seq - first_seq;  // wraps to a large value below first_seq
    if (index >= results.size() || acked[index]) continue;
    const auto* error = static_cast<const nlmsgerr*>(NLMSG_DATA(header));
    results[index].error = -error->error;
    results[index].message = error->error == 0 ? std::string() : ack_message(header);
    acked[index] = true;
    count++;
  }
  return count;
}

std::vector<RouteResult> apply_kernel_routes(RouteOp op, const std::vector<KernelRoute>& routes, const RouteTarget& target) {
  if (target.ifindex <= 0) throw InvalidArgument("kernel routes need the device's ifindex");
  if (target.table == 0) throw InvalidArgument("route table 0 is not a table");
  std::vector<RouteResult> results(routes.size());
  if (routes.empty()) return results;
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE));
  if (!fd.valid()) throw_errno("socket", "AF_NETLINK");
  set_option(fd.get(), SOL_NETLINK, NETLINK_CAP_ACK, 1);
  set_option(fd.get(), SOL_NETLINK, NETLINK_EXT_ACK, 1);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  const std::string what = op == RouteOp::add ? "netlink RTM_NEWROUTE" : "netlink RTM_DELROUTE";

  alignas(nlmsghdr) uint8_t request[kBatch * kRequestCapacity];
  alignas(nlmsghdr) static thread_local uint8_t reply[64 * 1024];
  for (size_t first = 0; first < routes.size(); first += kBatch) {
    const size_t count = std::min(kBatch, routes.size() - first);
    size_t used = 0;
    for (size_t i = 0; i < count; i++) {
      const size_t n = build_route_request(op, routes[first + i], target, static_cast<uint32_t>(first + i + 1), request + used,
                                           sizeof request - used);
      if (n == 0) throw InvalidArgument("netlink route request too long");
      used += n;
    }
    for (;;) {
      if (::sendto(fd.get(), request, used, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) >= 0) break;
      if (errno == EINTR) continue;
      throw_errno("sendto", what);
    }
    std::vector<RouteResult> batch(count);
    std::vector<bool> batch_acked(count, false);
    size_t waiting = count;
    bool overflowed = false;
    while (waiting > 0) {
      pollfd wait{fd.get(), POLLIN, 0};
      const int ready = ::poll(&wait, 1, overflowed ? kOverflowTimeoutMs : kAckTimeoutMs);
      if (ready < 0 && errno == EINTR) continue;
      if (ready < 0) throw_errno("poll", what);
      if (ready == 0) {
        // Acknowledgements the kernel dropped (ENOBUFS) will not come: say so for each.
        if (!overflowed) {
          errno = ETIMEDOUT;
          throw_errno("recv", what + " acknowledgements");
        }
        for (size_t i = 0; i < count; i++) {
          if (!batch_acked[i]) batch[i] = RouteResult{ENOBUFS, "acknowledgement lost (netlink socket buffer overflowed)"};
        }
        break;
      }
      const ssize_t n = ::recv(fd.get(), reply, sizeof reply, 0);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        if (errno == ENOBUFS) {
          overflowed = true;
          continue;
        }
        throw_errno("recv", what);
      }
      waiting -= parse_route_acks(reply, static_cast<size_t>(n), static_cast<uint32_t>(first + 1), batch, batch_acked);
    }
    for (size_t i = 0; i < count; i++) results[first + i] = std::move(batch[i]);
  }
  return results;
}

}  // namespace ovl
