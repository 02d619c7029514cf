#include "tap_device.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "sys_error.h"

namespace ovl {

TapDevice TapDevice::create(const std::string& name, int queues) {
  if (name.empty() || name.size() >= IFNAMSIZ) throw InvalidArgument("device name must be 1-15 characters");
  if (if_nametoindex(name.c_str()) != 0) {
    errno = EEXIST;
    throw_errno("ioctl(TUNSETIFF)", "an interface named " + name + " already exists");
  }
  TapDevice device;
  for (int q = 0; q < queues; q++) {
    UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
    if (!fd.valid()) throw_errno("open", "/dev/net/tun");
    ifreq request{};
    request.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE;
    std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
    if (::ioctl(fd.get(), TUNSETIFF, &request) < 0) throw_errno("ioctl(TUNSETIFF)", name);
    device.name_ = request.ifr_name;
    device.queues_.push_back(std::move(fd));
  }
  return device;
}

}  // namespace ovl
