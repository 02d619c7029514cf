// Errors raised while setting up the data path. A SystemError names the system call and
// carries errno, so the binding can shape it like Node's own system errors.
#pragma once

#include <stdexcept>
#include <string>

namespace ovl {

class SystemError : public std::runtime_error {
 public:
  SystemError(std::string syscall, int error_number, const std::string& detail);

  const std::string& syscall() const { return syscall_; }
  int error_number() const { return errno_; }
  const std::string& detail() const { return detail_; }

 private:
  std::string syscall_;
  int errno_;
  std::string detail_;
};

// Throws SystemError for the current errno.
[[noreturn]] void throw_errno(const std::string& syscall, const std::string& detail = "");

// Bad options reaching the core (TypeScript validates first; this is the last line).
class InvalidArgument : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// A call that does not fit the object's state (a control channel opened twice, or used while
// closed). The binding shapes it like Node's ERR_INVALID_STATE.
class InvalidState : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

}  // namespace ovl
