#include "device/tun_tap_device.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "offload/offload_segment.h"
#include "system/sys_error.h"

namespace ovl {

namespace {

// Tells the kernel which offloads we can take. TSO needs CSUM; USO is newer, so it is tried
// first and dropped on EINVAL. Returns false if even checksum offload is refused.
bool set_offloads(int fd, bool* uso) {
  const unsigned base = kTunFCsum | kTunFTso4 | kTunFTso6 | kTunFTsoEcn;
  if (::ioctl(fd, TUNSETOFFLOAD, base | kTunFUso4 | kTunFUso6) == 0) {
    *uso = true;
    return true;
  }
  *uso = false;
  return ::ioctl(fd, TUNSETOFFLOAD, base) == 0;
}

}  // namespace

TunTapDevice TunTapDevice::create(const std::string& name, DeviceLayer layer, int queues, bool offloads) {
  if (name.empty() || name.size() >= IFNAMSIZ) throw InvalidArgument("device name must be 1-15 characters");
  if (if_nametoindex(name.c_str()) != 0) {
    errno = EEXIST;
    throw_errno("ioctl(TUNSETIFF)", "an interface named " + name + " already exists");
  }
  TunTapDevice device;
  for (int q = 0; q < queues; q++) {
    UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
    if (!fd.valid()) throw_errno("open", "/dev/net/tun");
    ifreq request{};
    request.ifr_flags = (layer == DeviceLayer::ip ? IFF_TUN : IFF_TAP) | IFF_NO_PI | IFF_MULTI_QUEUE | (offloads ? IFF_VNET_HDR : 0);
    std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
    if (::ioctl(fd.get(), TUNSETIFF, &request) < 0) throw_errno("ioctl(TUNSETIFF)", name);
    device.name_ = request.ifr_name;
    device.queues_.push_back(std::move(fd));
  }
  // The virtio_net_hdr size defaults to the 10-byte struct virtio_net_hdr, which is what we use.
  if (offloads) {
    if (set_offloads(device.queues_[0].get(), &device.uso_)) {
      device.offloads_ = true;
    } else {
      // Still IFF_VNET_HDR framing on the queues, but with no offload the header is all zeros.
      device.offloads_ = false;
    }
  }
  device.vnet_header_ = offloads;
  return device;
}

}  // namespace ovl
