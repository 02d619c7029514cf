// Runs setup inside a named network namespace. setns(CLONE_NEWNET) affects only the calling
// thread, so setup runs on a short-lived thread that enters the namespace; the devices and
// sockets it creates stay bound to that namespace after the thread ends.
#pragma once

#include <cstddef>
#include <exception>
#include <string>
#include <thread>

namespace ovl {

// Enters `netns` on the calling thread: a name under /run/netns, or a path (/proc/PID/ns/net).
void enter_netns(const std::string& netns);

// The text of /proc/thread-self/net/`name` (udp, udp6, raw, ...) as a thread inside `netns`
// ("" for the caller's) sees it: the namespace's own socket tables. At most `max_bytes`.
std::string read_proc_net(const std::string& netns, const std::string& name, size_t max_bytes);

template <typename Fn>
void run_in_netns(const std::string& netns, Fn&& fn) {
  if (netns.empty()) {
    fn();
    return;
  }
  std::exception_ptr failure;
  std::thread thread([&] {
    try {
      enter_netns(netns);
      fn();
    } catch (...) {
      failure = std::current_exception();
    }
  });
  thread.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace ovl
