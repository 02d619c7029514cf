// A TAP device with one file descriptor per queue (IFF_MULTI_QUEUE). The device is not
// persistent: it disappears when the last queue fd closes, so a crash leaves nothing behind.
#pragma once

#include <string>
#include <vector>

#include "unique_fd.h"

namespace ovl {

class TapDevice {
 public:
  // Creates device `name` with `queues` queues, non-blocking. Fails with EEXIST if an
  // interface of that name exists (we never attach to somebody else's device).
  static TapDevice create(const std::string& name, int queues);

  const std::string& name() const { return name_; }
  int queue_fd(size_t queue) const { return queues_[queue].get(); }
  size_t queue_count() const { return queues_.size(); }

 private:
  std::string name_;
  std::vector<UniqueFd> queues_;
};

}  // namespace ovl
