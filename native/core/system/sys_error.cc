#include "system/sys_error.h"

#include <cerrno>
#include <cstring>

namespace ovl {

namespace {
std::string describe(const std::string& syscall, int error_number, const std::string& detail) {
  std::string text = syscall + " failed: " + std::strerror(error_number);
  if (!detail.empty()) text += " (" + detail + ")";
  return text;
}
}  // namespace

SystemError::SystemError(std::string syscall, int error_number, const std::string& detail)
    : std::runtime_error(describe(syscall, error_number, detail)),
      syscall_(std::move(syscall)),
      errno_(error_number),
      detail_(detail) {}

void throw_errno(const std::string& syscall, const std::string& detail) {
  throw SystemError(syscall, errno, detail);
}

}  // namespace ovl
