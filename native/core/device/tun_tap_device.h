// A TAP (Ethernet frames) or TUN (IP packets) device with one file descriptor per queue
// (IFF_MULTI_QUEUE). The device is not
// persistent: it disappears when the last queue fd closes, so a crash leaves nothing behind.
#pragma once

#include <string>
#include <vector>

#include "system/unique_fd.h"

namespace ovl {

enum class DeviceLayer { ethernet, ip };  // TAP, TUN

class TunTapDevice {
 public:
  // Creates device `name` with `queues` queues, non-blocking. Fails with EEXIST if an
  // interface of that name exists (we never attach to somebody else's device).
  // With `offloads`, every read and write carries a virtio_net_hdr and the kernel may hand
  // us TSO/USO super-frames with partial checksums; where the kernel cannot, the device is
  // made without (see offloads_enabled()).
  static TunTapDevice create(const std::string& name, DeviceLayer layer, int queues, bool offloads);

  const std::string& name() const { return name_; }
  bool offloads_enabled() const { return offloads_; }
  // Reads and writes carry a virtio_net_hdr (set when offloads were asked for, even if refused).
  bool vnet_header() const { return vnet_header_; }
  bool uso_enabled() const { return uso_; }
  int queue_fd(size_t queue) const { return queues_[queue].get(); }
  size_t queue_count() const { return queues_.size(); }

 private:
  std::string name_;
  std::vector<UniqueFd> queues_;
  bool offloads_ = false;
  bool uso_ = false;
  bool vnet_header_ = false;
};

}  // namespace ovl
