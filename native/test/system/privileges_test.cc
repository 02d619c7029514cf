// Dropping in one thread leaves the others as they were (capabilities are per thread), and the
// listing from /proc/self/task shows each. Needs root for the capability cases (the test runner
// runs as root in CI); a thread of its own drops, so the runner keeps what it has.
#include "system/privileges.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "test.h"

using namespace ovl;

namespace {

ThreadPrivileges thread_named(pid_t tid) {
  for (const ThreadPrivileges& t : process_threads()) {
    if (t.tid == tid) return t;
  }
  return {};
}

}  // namespace

TEST(process_threads_lists_the_calling_thread) {
  const pid_t self = static_cast<pid_t>(::syscall(SYS_gettid));
  const ThreadPrivileges me = thread_named(self);
  CHECK_EQ(me.tid, self);
  CHECK_EQ(me.uid, ::getuid());
  CHECK(last_capability() >= CAP_AUDIT_READ);
}

TEST(a_worker_drop_changes_its_own_thread_only) {
  if (::geteuid() != 0) return;  // nothing to drop
  const pid_t self = static_cast<pid_t>(::syscall(SYS_gettid));
  const CapabilityMask before = thread_named(self).effective;
  std::atomic<pid_t> tid{0};
  std::atomic<bool> dropped{false}, checked{false};
  std::thread worker([&] {
    tid = static_cast<pid_t>(::syscall(SYS_gettid));
    drop_worker_privileges();
    dropped = true;
    while (!checked) std::this_thread::yield();
  });
  while (!dropped) std::this_thread::yield();
  const ThreadPrivileges w = thread_named(tid);
  CHECK_EQ(w.effective, CapabilityMask{0});
  CHECK_EQ(w.permitted, CapabilityMask{0});
  CHECK_EQ(w.bounding, CapabilityMask{0});
  CHECK_EQ(w.ambient, CapabilityMask{0});
  CHECK(w.no_new_privs);
  // The caller is untouched.
  CHECK_EQ(thread_named(self).effective, before);
  CHECK(before & capability_bit(CAP_NET_ADMIN));
  checked = true;
  worker.join();
}

TEST(restrict_thread_keeps_what_it_is_given) {
  if (::geteuid() != 0) return;
  std::thread t([] {
    restrict_thread(capability_bit(CAP_NET_ADMIN));
    const ThreadPrivileges me = thread_named(static_cast<pid_t>(::syscall(SYS_gettid)));
    CHECK_EQ(me.effective, capability_bit(CAP_NET_ADMIN));
    CHECK_EQ(me.permitted, capability_bit(CAP_NET_ADMIN));
    CHECK_EQ(me.bounding, capability_bit(CAP_NET_ADMIN));
    CHECK(me.no_new_privs);
  });
  t.join();
}

TEST(find_user_and_group_by_name_and_number) {
  const auto root = find_user("root");
  CHECK(root.has_value() && root->uid == 0 && root->gid == 0);
  const auto by_id = find_user("0");
  CHECK(by_id.has_value() && by_id->name == "root");
  CHECK(!find_user("no-such-user-here").has_value());
  const auto group = find_group("root");
  CHECK(group.has_value() && group->gid == 0);
  CHECK(find_group("0").has_value());
  CHECK(!find_group("no-such-group-here").has_value());
}
