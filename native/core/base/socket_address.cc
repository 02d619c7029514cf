#include "base/socket_address.h"

#include <arpa/inet.h>
#include <net/if.h>

namespace ovl {

uint16_t SocketAddress::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  return 0;
}

SocketAddress SocketAddress::with_port(uint16_t port) const {
  SocketAddress address = *this;
  if (family() == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&address.storage)->sin_port = htons(port);
  } else if (family() == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&address.storage)->sin6_port = htons(port);
  }
  return address;
}

std::string address_literal(const sockaddr* address) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (address->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, text, sizeof text);
  } else if (address->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr, text, sizeof text);
  }
  return text;
}

std::string SocketAddress::to_string() const {
  if (family() == AF_INET) return address_literal(get()) + ":" + std::to_string(port());
  if (family() == AF_INET6) return "[" + address_literal(get()) + "]:" + std::to_string(port());
  return "?";
}

std::optional<SocketAddress> parse_socket_address(const std::string& address, uint16_t port) {
  SocketAddress result;
  sockaddr_in v4{};
  if (inet_pton(AF_INET, address.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
    std::memcpy(&result.storage, &v4, sizeof v4);
    result.length = sizeof v4;
    return result;
  }
  std::string host = address;
  uint32_t scope = 0;
  if (const auto percent = address.find('%'); percent != std::string::npos) {
    host = address.substr(0, percent);
    scope = if_nametoindex(address.substr(percent + 1).c_str());
    if (scope == 0) return std::nullopt;
  }
  sockaddr_in6 v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(port);
    v6.sin6_scope_id = scope;
    std::memcpy(&result.storage, &v6, sizeof v6);
    result.length = sizeof v6;
    return result;
  }
  return std::nullopt;
}

AddressKey address_key(const sockaddr* address) {
  AddressKey key{};
  if (address->sa_family == AF_INET) {
    key[10] = key[11] = 0xff;
    std::memcpy(key.data() + 12, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, 4);
  } else if (address->sa_family == AF_INET6) {
    std::memcpy(key.data(), &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr, 16);
  }
  return key;
}

}  // namespace ovl
