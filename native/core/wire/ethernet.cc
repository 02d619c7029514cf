#include "wire/ethernet.h"

#include <cstdio>

namespace ovl {

std::optional<MacKey> parse_mac(const std::string& text) {
  // Exactly six pairs of hex digits joined by colons. (sscanf's %2x took more: a sign, "0x",
  // leading blanks, and a NUL inside the string, so "-1:-1:-1:-1:-1:-1" made a key of more than
  // 48 bits and "02:00:00:00:00:2\0" parsed as ...:02.)
  if (text.size() != 17) return std::nullopt;
  MacKey key = 0;
  for (size_t i = 0; i < text.size(); i++) {
    const char c = text[i];
    if (i % 3 == 2) {
      if (c != ':') return std::nullopt;
      continue;
    }
    unsigned digit;
    if (c >= '0' && c <= '9') digit = static_cast<unsigned>(c - '0');
    else if (c >= 'a' && c <= 'f') digit = static_cast<unsigned>(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') digit = static_cast<unsigned>(c - 'A' + 10);
    else return std::nullopt;
    key = key << 4 | digit;
  }
  return key;
}

std::string format_mac(MacKey key) {
  char text[18];
  std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", unsigned((key >> 40) & 0xff),
                unsigned((key >> 32) & 0xff), unsigned((key >> 24) & 0xff), unsigned((key >> 16) & 0xff),
                unsigned((key >> 8) & 0xff), unsigned(key & 0xff));
  return text;
}

}  // namespace ovl
