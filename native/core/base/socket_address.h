// Underlay socket addresses: parsing, and a compact key for looking up a peer by source.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

namespace ovl {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  int family() const { return storage.ss_family; }
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
  uint16_t port() const;
  SocketAddress with_port(uint16_t port) const;
  std::string to_string() const;  // address:port, [IPv6]:port
};

// The address alone as a literal ("198.18.0.1", "fd00::1"); "?" for another family.
std::string address_literal(const sockaddr* address);

// Parses an IPv4 or IPv6 literal (IPv6 may carry a %scope) with a port.
std::optional<SocketAddress> parse_socket_address(const std::string& address, uint16_t port);

// 16 bytes: IPv6 as is, IPv4 as ::ffff:a.b.c.d. Ports are not part of a peer's identity:
// a VXLAN sender picks its source port per flow.
using AddressKey = std::array<uint8_t, 16>;

AddressKey address_key(const sockaddr* address);

struct AddressKeyHash {
  size_t operator()(const AddressKey& key) const {
    uint64_t a, b;
    std::memcpy(&a, key.data(), 8);
    std::memcpy(&b, key.data() + 8, 8);
    return static_cast<size_t>((a ^ (b * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull >> 17);
  }
};

}  // namespace ovl
