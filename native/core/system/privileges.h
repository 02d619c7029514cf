// Least privilege after setup: capabilities and the user the process runs as.
//
// Linux keeps capabilities, the bounding set and no_new_privs per thread: capset(2) and prctl(2)
// change the calling thread only. So each thread has to drop its own:
//   - a data-path worker calls drop_worker_privileges() as it starts, once its device queue and
//     sockets are open, and parses hostile packets holding nothing;
//   - the main thread calls drop_privileges() after setup, keeping what later table swaps need;
//     it also asks every other thread that lets a signal in to drop everything
//     (restrict_other_threads: Node's V8 platform and libuv threads).
// The control channel's IKE reader drops as a worker does when it starts. A thread that blocks
// every signal cannot be asked (Node's SIGUSR1 watcher): only the uid change reaches it, because glibc runs setresuid(2) in
// every thread, and the kernel clears the permitted, effective and ambient sets of a thread
// whose uids all leave 0 unless it set PR_SET_KEEPCAPS. glibc aborts the process when that
// call succeeds in one thread and fails in another, so a thread that drops before a user switch
// keeps CAP_SETUID and CAP_SETGID for it (expect_identity_switch), and the switch clears them.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ovl {

// Capabilities as a bit mask: bit N is capability N (CAP_NET_ADMIN is 12).
using CapabilityMask = uint64_t;

constexpr CapabilityMask capability_bit(int capability) { return CapabilityMask{1} << capability; }

// One thread's credentials as /proc/PID/task/TID/status shows them.
struct ThreadPrivileges {
  pid_t tid = 0;
  std::string name;
  CapabilityMask effective = 0, permitted = 0, inheritable = 0, bounding = 0, ambient = 0;
  bool no_new_privs = false;
  uid_t uid = 0;
  gid_t gid = 0;
  // The thread blocks the signal restrict_other_threads asks with.
  bool blocks_signal = false;
};

// The threads of this process, read from /proc/self/task. Throws SystemError.
std::vector<ThreadPrivileges> process_threads();

// The highest capability the kernel knows (/proc/sys/kernel/cap_last_cap).
int last_capability();

// From now on, threads that drop (drop_worker_privileges, restrict_other_threads) keep
// CAP_SETUID and CAP_SETGID, which the coming switch_identity needs in every thread and clears.
void expect_identity_switch(bool expected);

// The calling data-path worker: bounding set emptied (when it holds CAP_SETPCAP), permitted,
// effective, inheritable and ambient sets emptied (but for an expected identity switch), and
// no_new_privs set. Best effort: never throws (a thread that cannot drop keeps what it has,
// which process_threads() shows).
void drop_worker_privileges() noexcept;

// The calling thread: the bounding set cut to `keep` (when it holds CAP_SETPCAP), permitted and
// effective cut to `keep` (what it has of them), inheritable and ambient emptied, no_new_privs
// set. Throws SystemError.
void restrict_thread(CapabilityMask keep);

// Every other thread that does not block the signal drops as a worker does, from a signal
// handler: an empty bounding set, no capabilities (or only CAP_SETUID and CAP_SETGID when
// `identity_switch_follows`, which the switch then clears), no_new_privs; waits for
// them. Returns the threads that hold more than that and blocked the signal or did not answer
// (a worker, which dropped by itself, is not among them). Throws SystemError when the signal
// cannot be used.
std::vector<pid_t> restrict_other_threads(bool identity_switch_follows);

struct Identity {
  uid_t uid;
  gid_t gid;
};

// Switches every thread to `identity` (supplementary groups: only its gid; real, effective and
// saved ids alike) and keeps `keep` in the calling thread's permitted and effective sets.
// Every thread must hold CAP_SETUID and CAP_SETGID (see expect_identity_switch): else it
// throws InvalidState before changing anything. Throws SystemError.
void switch_identity(const Identity& identity, CapabilityMask keep);

// A user or group by name or by number, through NSS (getpwnam_r / getgrnam_r, so LDAP and
// systemd-userdb users count): nullopt when there is none. Throws SystemError on a lookup error.
struct UserRecord {
  uid_t uid;
  gid_t gid;  // the primary group
  std::string name;
};
struct GroupRecord {
  gid_t gid;
  std::string name;
};
std::optional<UserRecord> find_user(const std::string& name_or_id);
std::optional<GroupRecord> find_group(const std::string& name_or_id);

}  // namespace ovl
