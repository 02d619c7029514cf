// Kernel route requests byte by byte (RTM_NEWROUTE / RTM_DELROUTE, IPv4 and IPv6), the parsing of
// the kernel's acknowledgements, and, where the process may make a network namespace of its own
// (root), a round trip against the kernel there: add, add again (EEXIST with the kernel's
// message), remove, remove again (ESRCH), in batches larger than one datagram. The caller's own
// namespace is never touched.
#include "system/kernel_routes.h"

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cerrno>
#include <cstring>

#include "system/link_config.h"
#include "private_netns.h"
#include "test.h"

using namespace ovl;
using ovl::test::in_private_netns;

namespace {

struct Attribute {
  uint16_t type;
  std::vector<uint8_t> data;
};

std::vector<Attribute> attributes_of(const uint8_t* message) {
  const auto* header = reinterpret_cast<const nlmsghdr*>(message);
  std::vector<Attribute> out;
  const auto* rt = static_cast<const rtmsg*>(NLMSG_DATA(header));
  int length = static_cast<int>(RTM_PAYLOAD(header));
  for (const rtattr* a = RTM_RTA(rt); RTA_OK(a, length); a = RTA_NEXT(a, length)) {
    const auto* data = static_cast<const uint8_t*>(RTA_DATA(a));
    out.push_back({a->rta_type, std::vector<uint8_t>(data, data + RTA_PAYLOAD(a))});
  }
  return out;
}

uint32_t u32_of(const Attribute& a) {
  uint32_t value = 0;
  if (a.data.size() == 4) std::memcpy(&value, a.data.data(), 4);
  return value;
}

KernelRoute route_of(const char* cidr) {
  const auto route = parse_kernel_route(cidr);
  CHECK(route.has_value());
  return route.value_or(KernelRoute{});
}

// An NLMSG_ERROR acknowledgement of request `seq`, capped, with an error message TLV when given.
void append_ack(std::vector<uint8_t>& out, uint32_t seq, int error, const char* text) {
  const size_t tlv = text ? NLA_ALIGN(NLA_HDRLEN + std::strlen(text) + 1) : 0;
  const size_t length = NLMSG_LENGTH(sizeof(nlmsgerr)) + tlv;
  const size_t at = out.size();
  out.resize(at + NLMSG_ALIGN(length), 0);
  auto* header = reinterpret_cast<nlmsghdr*>(out.data() + at);
  header->nlmsg_len = static_cast<uint32_t>(length);
  header->nlmsg_type = NLMSG_ERROR;
  header->nlmsg_flags = NLM_F_CAPPED | (text ? NLM_F_ACK_TLVS : 0);
  header->nlmsg_seq = seq;
  auto* err = static_cast<nlmsgerr*>(NLMSG_DATA(header));
  err->error = -error;
  err->msg.nlmsg_len = 60;  // the request's header, as echoed (capped: no payload follows)
  err->msg.nlmsg_type = RTM_NEWROUTE;
  err->msg.nlmsg_seq = seq;
  if (text) {
    auto* a = reinterpret_cast<nlattr*>(out.data() + at + NLMSG_LENGTH(sizeof(nlmsgerr)));
    a->nla_type = NLMSGERR_ATTR_MSG;
    a->nla_len = static_cast<uint16_t>(NLA_HDRLEN + std::strlen(text) + 1);
    std::memcpy(reinterpret_cast<uint8_t*>(a) + NLA_HDRLEN, text, std::strlen(text) + 1);
  }
}

}  // namespace

TEST(kernel_route_parse_clears_host_bits) {
  CHECK(route_of("10.2.0.7/16").to_string() == "10.2.0.0/16");
  CHECK(route_of("10.2.0.7/32").to_string() == "10.2.0.7/32");
  CHECK(route_of("0.0.0.0/0").to_string() == "0.0.0.0/0");
  CHECK(route_of("198.19.3.255/23").to_string() == "198.19.2.0/23");
  CHECK(route_of("fd00:198:19::2/128").to_string() == "fd00:198:19::2/128");
  CHECK(route_of("fd00:198:19:ff::1/56").to_string() == "fd00:198:19::/56");
  CHECK(route_of("fd00::1/0").to_string() == "::/0");
  CHECK(route_of("10.2.0.0/16").family == AF_INET);
  CHECK(route_of("fd00::/8").family == AF_INET6);
  CHECK(!parse_kernel_route("10.2.0.0"));
  CHECK(!parse_kernel_route("10.2.0.0/33"));
  CHECK(!parse_kernel_route("fd00::/129"));
  CHECK(!parse_kernel_route("10.2.0.0/"));
  CHECK(!parse_kernel_route("10.2.0.0/1a"));
  CHECK(!parse_kernel_route("host/24"));
}

TEST(kernel_route_add_request_ipv4_main_table) {
  alignas(nlmsghdr) uint8_t buffer[256];
  const size_t n = build_route_request(RouteOp::add, route_of("10.2.0.0/16"), RouteTarget{7, 254, 50}, 42, buffer, sizeof buffer);
  // header 16 + rtmsg 12, then RTA_DST (4 + 4), RTA_OIF, RTA_PRIORITY and RTA_TABLE (4 + 4 each)
  CHECK_EQ(n, size_t{28 + 8 + 8 + 8 + 8});
  const auto* header = reinterpret_cast<const nlmsghdr*>(buffer);
  CHECK_EQ(header->nlmsg_len, uint32_t{60});
  CHECK_EQ(header->nlmsg_type, uint16_t{RTM_NEWROUTE});
  CHECK_EQ(header->nlmsg_flags, uint16_t{NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL});
  CHECK_EQ(header->nlmsg_seq, uint32_t{42});
  const auto* rt = static_cast<const rtmsg*>(NLMSG_DATA(header));
  CHECK_EQ(rt->rtm_family, uint8_t{AF_INET});
  CHECK_EQ(rt->rtm_dst_len, uint8_t{16});
  CHECK_EQ(rt->rtm_src_len, uint8_t{0});
  CHECK_EQ(rt->rtm_tos, uint8_t{0});
  CHECK_EQ(rt->rtm_table, uint8_t{RT_TABLE_MAIN});
  CHECK_EQ(rt->rtm_protocol, uint8_t{kRouteProtocol});
  CHECK_EQ(rt->rtm_scope, uint8_t{RT_SCOPE_LINK});
  CHECK_EQ(rt->rtm_type, uint8_t{RTN_UNICAST});
  CHECK_EQ(rt->rtm_flags, 0u);
  const auto attributes = attributes_of(buffer);
  CHECK_EQ(attributes.size(), size_t{4});
  if (attributes.size() != 4) return;
  CHECK_EQ(attributes[0].type, uint16_t{RTA_DST});
  CHECK(attributes[0].data == (std::vector<uint8_t>{10, 2, 0, 0}));
  CHECK_EQ(attributes[1].type, uint16_t{RTA_OIF});
  CHECK_EQ(u32_of(attributes[1]), uint32_t{7});
  CHECK_EQ(attributes[2].type, uint16_t{RTA_PRIORITY});
  CHECK_EQ(u32_of(attributes[2]), uint32_t{50});
  CHECK_EQ(attributes[3].type, uint16_t{RTA_TABLE});
  CHECK_EQ(u32_of(attributes[3]), uint32_t{254});
}

TEST(kernel_route_remove_request_ipv6_large_table) {
  alignas(nlmsghdr) uint8_t buffer[256];
  const size_t n =
      build_route_request(RouteOp::remove, route_of("fd00:198:20::1/64"), RouteTarget{3, 1000, 0}, 9, buffer, sizeof buffer);
  CHECK_EQ(n, size_t{28 + 20 + 8 + 8 + 8});
  const auto* header = reinterpret_cast<const nlmsghdr*>(buffer);
  CHECK_EQ(header->nlmsg_type, uint16_t{RTM_DELROUTE});
  // No NLM_F_CREATE / NLM_F_EXCL on a removal: they would mean nothing, and some kernels refuse them.
  CHECK_EQ(header->nlmsg_flags, uint16_t{NLM_F_REQUEST | NLM_F_ACK});
  const auto* rt = static_cast<const rtmsg*>(NLMSG_DATA(header));
  CHECK_EQ(rt->rtm_family, uint8_t{AF_INET6});
  CHECK_EQ(rt->rtm_dst_len, uint8_t{64});
  // Table 1000 does not fit rtm_table: RT_TABLE_UNSPEC there, and RTA_TABLE says which.
  CHECK_EQ(rt->rtm_table, uint8_t{RT_TABLE_UNSPEC});
  CHECK_EQ(rt->rtm_protocol, uint8_t{kRouteProtocol});
  CHECK_EQ(rt->rtm_scope, uint8_t{RT_SCOPE_NOWHERE});
  const auto attributes = attributes_of(buffer);
  CHECK_EQ(attributes.size(), size_t{4});
  if (attributes.size() != 4) return;
  CHECK_EQ(attributes[0].type, uint16_t{RTA_DST});
  uint8_t network[16];
  ::inet_pton(AF_INET6, "fd00:198:20::", network);
  CHECK(attributes[0].data == std::vector<uint8_t>(network, network + 16));
  CHECK_EQ(u32_of(attributes[1]), uint32_t{3});
  CHECK_EQ(u32_of(attributes[2]), uint32_t{0});
  CHECK_EQ(u32_of(attributes[3]), uint32_t{1000});
}

TEST(kernel_route_request_that_does_not_fit_is_not_written_past_the_end) {
  alignas(nlmsghdr) uint8_t buffer[128];
  std::memset(buffer, 0xAA, sizeof buffer);
  CHECK_EQ(build_route_request(RouteOp::add, route_of("fd00::/8"), RouteTarget{1, 254, 0}, 1, buffer, 60), size_t{0});
  for (size_t i = 60; i < sizeof buffer; i++) CHECK_EQ(buffer[i], uint8_t{0xAA});
  CHECK_EQ(build_route_request(RouteOp::add, route_of("fd00::/8"), RouteTarget{1, 254, 0}, 1, buffer, 10), size_t{0});
}

TEST(kernel_route_acks_set_results_by_sequence_number) {
  std::vector<uint8_t> datagram;
  append_ack(datagram, 12, 0, nullptr);
  append_ack(datagram, 11, EEXIST, "File exists (route of the same prefix and metric)");
  append_ack(datagram, 99, EINVAL, "not ours");  // another request's: ignored
  append_ack(datagram, 13, EACCES, "IPv6 is disabled on nexthop device");
  std::vector<RouteResult> results(3);
  std::vector<bool> acked(3, false);
  CHECK_EQ(parse_route_acks(datagram.data(), datagram.size(), 11, results, acked), size_t{3});
  CHECK(acked[0] && acked[1] && acked[2]);
  CHECK_EQ(results[0].error, EEXIST);
  CHECK(results[0].message == "File exists (route of the same prefix and metric)");
  CHECK_EQ(results[1].error, 0);
  CHECK(results[1].message.empty());
  CHECK_EQ(results[2].error, EACCES);
  CHECK(results[2].message == "IPv6 is disabled on nexthop device");
  // A repeated acknowledgement, and a sequence number below the batch, change nothing.
  std::vector<uint8_t> again;
  append_ack(again, 11, 0, nullptr);
  append_ack(again, 10, 0, nullptr);
  CHECK_EQ(parse_route_acks(again.data(), again.size(), 11, results, acked), size_t{0});
  CHECK_EQ(results[0].error, EEXIST);
  // Truncated: nothing is read past the end.
  std::vector<RouteResult> fresh(3);
  std::vector<bool> none(3, false);
  CHECK_EQ(parse_route_acks(datagram.data(), 10, 11, fresh, none), size_t{0});
}

TEST(kernel_routes_round_trip_in_a_namespace_of_its_own) {
  in_private_netns("the kernel round trip", [&](std::string& failure) {
    const int lo = link_info("lo").ifindex;
    std::vector<KernelRoute> routes;
    for (int i = 0; i < 150; i++) routes.push_back(route_of(("10.2." + std::to_string(i) + ".0/24").c_str()));
    routes.push_back(route_of("fd00:198:20::/64"));
    const RouteTarget target{lo, 1000, 77};
    for (const RouteResult& r : apply_kernel_routes(RouteOp::add, routes, target)) {
      if (r.error != 0) failure += "add: " + std::string(std::strerror(r.error)) + " " + r.message + "; ";
    }
    const auto twice = apply_kernel_routes(RouteOp::add, {routes[3], routes.back()}, target);
    if (twice.size() != 2 || twice[0].error != EEXIST || twice[1].error != EEXIST) failure += "second add is not EEXIST; ";
    // Same prefix, another metric: another route, which a removal of ours must not take.
    const auto other = apply_kernel_routes(RouteOp::add, {routes[3]}, RouteTarget{lo, 1000, 78});
    if (other.size() != 1 || other[0].error != 0) failure += "add with another metric failed; ";
    for (const RouteResult& r : apply_kernel_routes(RouteOp::remove, routes, target)) {
      if (r.error != 0) failure += "remove: " + std::string(std::strerror(r.error)) + "; ";
    }
    const auto gone = apply_kernel_routes(RouteOp::remove, {routes[0], routes.back()}, target);
    if (gone.size() != 2 || gone[0].error != ESRCH || gone[1].error != ESRCH) failure += "second remove is not ESRCH; ";
    const auto kept = apply_kernel_routes(RouteOp::remove, {routes[3]}, RouteTarget{lo, 1000, 78});
    if (kept.size() != 1 || kept[0].error != 0) failure += "the other metric's route was not left in place; ";
  });
}
