#include "system/netns.h"

#include <fcntl.h>
#include <sched.h>

#include "system/sys_error.h"
#include "system/unique_fd.h"

namespace ovl {

void enter_netns(const std::string& netns) {
  const std::string path = netns.find('/') == std::string::npos ? "/run/netns/" + netns : netns;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) throw_errno("open", "network namespace " + path);
  if (::setns(fd.get(), CLONE_NEWNET) < 0) throw_errno("setns", path);
}

}  // namespace ovl
