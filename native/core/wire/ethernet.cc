#include "wire/ethernet.h"

#include <cstdio>

namespace ovl {

std::optional<MacKey> parse_mac(const std::string& text) {
  unsigned int b[6];
  char trailing;
  if (std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
                  &trailing) != 6 ||
      text.size() != 17) {
    return std::nullopt;
  }
  MacKey key = 0;
  for (unsigned int byte : b) key = (key << 8) | byte;
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
