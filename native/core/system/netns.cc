#include "system/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>

#include "system/sys_error.h"
#include "system/unique_fd.h"

namespace ovl {

void enter_netns(const std::string& netns) {
  const std::string path = netns.find('/') == std::string::npos ? "/run/netns/" + netns : netns;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) throw_errno("open", "network namespace " + path);
  if (::setns(fd.get(), CLONE_NEWNET) < 0) throw_errno("setns", path);
}

std::string read_proc_net(const std::string& netns, const std::string& name, size_t max_bytes) {
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) throw InvalidArgument("not a /proc/net table: " + name);
  }
  std::string text;
  // run_in_netns runs `fn` on the calling thread when netns is "": thread-self is then that
  // thread, in the caller's namespace; /proc/self/net would be the main thread's in any case.
  run_in_netns(netns, [&] {
    const std::string path = "/proc/thread-self/net/" + name;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) throw_errno("open", path);
    char buffer[16384];
    while (text.size() < max_bytes) {
      const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno("read", path);
      if (n == 0) break;
      text.append(buffer, static_cast<size_t>(n));
    }
  });
  if (text.size() > max_bytes) text.resize(max_bytes);
  return text;
}

}  // namespace ovl
