// Kernel routes into a device over rtnetlink (RTM_NEWROUTE / RTM_DELROUTE, IPv4 and IPv6): what
// a TUN overlay installs so that the host sends the peers' prefixes into the device, as wg-quick
// does for allowed IPs. Every route is `PREFIX dev DEVICE proto 79 scope link table T metric M`;
// the protocol marks it as overlayfwd's, and a removal names it (device, table, metric and
// protocol), so it never takes away a route somebody else added for the same prefix.
//
// apply_kernel_routes acts in the calling thread's network namespace (see netns.h to enter one).
// The request building and the acknowledgement parsing are separate functions, so the unit tests
// check the messages byte by byte without a kernel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ovl {

// rtm_protocol of every route overlayfwd installs (`ip route show proto 79` lists them). Not one
// of the numbers in the kernel's rtnetlink.h or iproute2's rt_protos.
constexpr uint8_t kRouteProtocol = 79;

struct KernelRoute {
  int family = 0;            // AF_INET or AF_INET6
  uint8_t address[16] = {};  // the network, host bits cleared; IPv4 in the first 4 bytes
  uint8_t prefix_length = 0;

  std::string to_string() const;  // "10.2.0.0/16"
};

// "10.2.0.7/16" → 10.2.0.0/16 (host bits cleared, as the kernel wants a network); nullopt when
// it is not an IPv4 or IPv6 prefix.
std::optional<KernelRoute> parse_kernel_route(const std::string& cidr);

struct RouteTarget {
  int ifindex = 0;
  uint32_t table = 254;  // RT_TABLE_MAIN
  uint32_t metric = 0;   // RTA_PRIORITY; IPv6 stores 0 as 1024 (what `ip -6 route add` gives)
};

enum class RouteOp { add, remove };

// One request, `add` with NLM_F_CREATE | NLM_F_EXCL (a route of the same prefix, table and metric
// that exists already is EEXIST, never replaced), each with NLM_F_ACK. Written at `buffer`;
// returns its length (NLMSG_ALIGNed), or 0 when it does not fit in `capacity`.
size_t build_route_request(RouteOp op, const KernelRoute& route, const RouteTarget& target, uint32_t seq, uint8_t* buffer,
                           size_t capacity);

// The outcome of one request: 0 or the errno the kernel answered, and its extended
// acknowledgement message when it gave one ("IPv6 is disabled on nexthop device").
struct RouteResult {
  int error = 0;
  std::string message;
};

// Reads the acknowledgements in `data` (one datagram from the socket): each NLMSG_ERROR whose
// sequence number is in [first_seq, first_seq + results.size()) sets its result and its `acked`
// flag. Returns how many it set; anything else in the datagram is skipped.
size_t parse_route_acks(const uint8_t* data, size_t length, uint32_t first_seq, std::vector<RouteResult>& results,
                        std::vector<bool>& acked);

// Sends the requests in batches over one rtnetlink socket and waits for every acknowledgement.
// One result per route, in order. Throws SystemError only when the socket itself fails.
std::vector<RouteResult> apply_kernel_routes(RouteOp op, const std::vector<KernelRoute>& routes, const RouteTarget& target);

}  // namespace ovl
