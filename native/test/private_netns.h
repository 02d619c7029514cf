// For the tests that need the kernel's network stack to themselves: a thread of their own in a
// fresh network namespace, loopback up. unshare(CLONE_NEWNET) moves only the calling thread: the
// process and its other tests stay where they are, and the namespace goes with the thread.
#pragma once

#include <sched.h>

#include <cstdio>
#include <exception>
#include <functional>
#include <string>
#include <thread>

#include "system/link_config.h"
#include "test.h"

namespace ovl::test {

// Runs `body` there; what it adds to `failure`, or throws, fails the test. Without permission
// to make a namespace, or when `usable` (asked inside it) says it lacks what the test needs,
// says that `what` was skipped.
inline void in_private_netns(const char* what, const std::function<void(std::string& failure)>& body,
                             const std::function<bool()>& usable = nullptr) {
  bool skipped = false;
  std::string failure;
  std::thread thread([&] {
    if (::unshare(CLONE_NEWNET) != 0 || (usable && !usable())) {
      skipped = true;
      return;
    }
    try {
      link_set_up("lo");
      body(failure);
    } catch (const std::exception& e) {
      failure += e.what();
    }
  });
  thread.join();
  if (skipped) {
    std::fprintf(stderr, "  (skipped %s: no permission to make a network namespace, or it lacks what the test needs)\n", what);
    return;
  }
  if (!failure.empty()) std::fprintf(stderr, "  %s\n", failure.c_str());
  CHECK(failure.empty());
}

}  // namespace ovl::test
