// Fuzz target: the text the addon hands the core (config values TypeScript has validated, but the
// core must not trust): parse_socket_address (base/socket_address.h), parse_mac (wire/ethernet.h)
// and parse_route_prefix (tables/route_table.h), each against a strict reference.
//
// - parse_mac must accept exactly six colon-separated pairs of hex digits (what the config's
//   MACs are), and format_mac must give the same text back in lower case.
// - parse_socket_address must accept what inet_pton accepts (IPv4, else IPv6 without a %scope;
//   a scope names an interface, which only a real one has), keep the port, and its literal must
//   parse back to the same address key.
// - parse_route_prefix must accept an address with an optional /length of at most 3 digits,
//   within the family's bits.
//
// Input: the text (up to 64 bytes); the last two bytes also give the port.
#include <arpa/inet.h>

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "base/socket_address.h"
#include "tables/route_table.h"
#include "wire/ethernet.h"

namespace {

using namespace ovl;

void require(bool condition, const char* what, const std::string& text) {
  if (!condition) {
    std::fprintf(stderr, "fuzz_address_text: %s: \"", what);
    for (unsigned char c : text) std::fprintf(stderr, std::isprint(c) ? "%c" : "\\x%02x", c);
    std::fprintf(stderr, "\"\n");
    std::abort();
  }
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "hh:hh:hh:hh:hh:hh", nothing else.
bool reference_mac(const std::string& text, MacKey* key) {
  if (text.size() != 17) return false;
  MacKey k = 0;
  for (size_t i = 0; i < 6; i++) {
    const int high = hex(text[3 * i]), low = hex(text[3 * i + 1]);
    if (high < 0 || low < 0 || (i < 5 && text[3 * i + 2] != ':')) return false;
    k = k << 8 | static_cast<MacKey>(high << 4 | low);
  }
  *key = k;
  return true;
}

void check_mac(const std::string& text) {
  MacKey expected = 0;
  const bool valid = reference_mac(text, &expected);
  const auto parsed = parse_mac(text);
  require(parsed.has_value() == valid, valid ? "parse_mac refused a MAC" : "parse_mac accepted what is not a MAC", text);
  if (!parsed) return;
  require(*parsed == expected, "parse_mac: wrong value", text);
  std::string lower(text);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  require(format_mac(*parsed) == lower, "format_mac does not give the text back", text);
}

void check_socket_address(const std::string& text, uint16_t port) {
  const auto parsed = parse_socket_address(text, port);
  uint8_t buffer[16];
  const bool v4 = inet_pton(AF_INET, text.c_str(), buffer) == 1;
  const bool v6 = !v4 && text.find('%') == std::string::npos && inet_pton(AF_INET6, text.c_str(), buffer) == 1;
  if (text.find('%') != std::string::npos && !v4) {
    // A scope: only an interface of this host makes it valid; whatever it is, it is IPv6.
    if (parsed) require(parsed->family() == AF_INET6, "a scoped address that is not IPv6", text);
    return;
  }
  require(parsed.has_value() == (v4 || v6), parsed ? "accepted what inet_pton does not" : "refused an address", text);
  if (!parsed) return;
  require(parsed->family() == (v4 ? AF_INET : AF_INET6) && parsed->port() == port, "family or port", text);
  const AddressKey key = address_key(parsed->get());
  if (v4) {
    require(key[10] == 0xff && key[11] == 0xff && std::memcmp(key.data() + 12, buffer, 4) == 0, "IPv4 key", text);
  } else {
    require(std::memcmp(key.data(), buffer, 16) == 0, "IPv6 key", text);
  }
  // Its literal parses back to the same address, and to_string carries both.
  const std::string literal = address_literal(parsed->get());
  const auto again = parse_socket_address(literal, port);
  require(again.has_value() && address_key(again->get()) == key, "the literal does not parse back", text);
  const std::string full = parsed->to_string();
  require(full == (v4 ? literal : "[" + literal + "]") + ":" + std::to_string(port), "to_string", text);
  require(parsed->with_port(static_cast<uint16_t>(port + 1)).port() == static_cast<uint16_t>(port + 1), "with_port", text);
}

void check_prefix(const std::string& text) {
  const auto parsed = parse_route_prefix(text, 7);
  const size_t slash = text.find('/');
  const std::string address = text.substr(0, slash);
  uint8_t buffer[16];
  const bool has_nul = text.find('\0') != std::string::npos;
  const bool v4 = !has_nul && inet_pton(AF_INET, address.c_str(), buffer) == 1;
  const bool v6 = !has_nul && !v4 && inet_pton(AF_INET6, address.c_str(), buffer) == 1;
  bool valid = v4 || v6;
  unsigned length = v4 ? 32 : 128;
  if (valid && slash != std::string::npos) {
    const std::string digits = text.substr(slash + 1);
    valid = !digits.empty() && digits.size() <= 3;
    length = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') valid = false;
      else length = length * 10 + static_cast<unsigned>(c - '0');
    }
    if (length > (v4 ? 32u : 128u)) valid = false;
  }
  require(parsed.has_value() == valid, parsed ? "parse_route_prefix accepted a non-prefix" : "refused a prefix", text);
  if (!parsed) return;
  require(parsed->ipv6 == v6 && parsed->length == length && parsed->peer == 7, "prefix fields", text);
  require(std::memcmp(parsed->address.data(), buffer, v4 ? 4 : 16) == 0, "prefix address", text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size < 64 ? size : 64);
  const uint16_t port = size >= 2 ? static_cast<uint16_t>(data[size - 2] << 8 | data[size - 1]) : 4789;
  check_mac(text);
  // The C string APIs stop at a NUL, which config text cannot hold; the addon passes std::string.
  const std::string c_text = text.substr(0, text.find('\0'));
  check_socket_address(c_text, port);
  check_prefix(text);
  return 0;
}
