#include "system/privileges.h"

#include <dirent.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <mutex>

#include "system/sys_error.h"

namespace ovl {

namespace {

constexpr CapabilityMask kSetIds = capability_bit(CAP_SETUID) | capability_bit(CAP_SETGID);

std::atomic<bool> identity_switch_expected{false};

// What a thread keeps when it drops everything it can.
CapabilityMask dropped_thread_keeps() { return identity_switch_expected.load() ? kSetIds : 0; }

// capget/capset on the calling thread (pid 0), version 3: two 32-bit words per set.
struct CapabilitySets {
  CapabilityMask effective, permitted, inheritable;
};

int get_capabilities(CapabilitySets& sets) noexcept {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (::syscall(SYS_capget, &header, data) < 0) return errno;
  auto join = [&](uint32_t low, uint32_t high) { return CapabilityMask{low} | CapabilityMask{high} << 32; };
  sets.effective = join(data[0].effective, data[1].effective);
  sets.permitted = join(data[0].permitted, data[1].permitted);
  sets.inheritable = join(data[0].inheritable, data[1].inheritable);
  return 0;
}

int set_capabilities(const CapabilitySets& sets) noexcept {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  data[0] = {static_cast<uint32_t>(sets.effective), static_cast<uint32_t>(sets.permitted), static_cast<uint32_t>(sets.inheritable)};
  data[1] = {static_cast<uint32_t>(sets.effective >> 32), static_cast<uint32_t>(sets.permitted >> 32),
             static_cast<uint32_t>(sets.inheritable >> 32)};
  return ::syscall(SYS_capset, &header, data) < 0 ? errno : 0;
}

// The calling thread, as restrict_thread says, with the bounding set cut to `bounding`; only
// system calls, so a signal handler may call it. Returns 0 or the errno of the call that failed
// and where.
int restrict_calling_thread(CapabilityMask keep, CapabilityMask bounding, int last_cap, const char** failed) noexcept {
  CapabilitySets sets{};
  if (int e = get_capabilities(sets)) return *failed = "capget", e;
  // The bounding set first: dropping from it needs CAP_SETPCAP, which goes right after.
  if (sets.effective & capability_bit(CAP_SETPCAP)) {
    for (int cap = 0; cap <= last_cap; cap++) {
      if ((bounding & capability_bit(cap)) || ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 1) continue;
      if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) return *failed = "prctl(PR_CAPBSET_DROP)", errno;
    }
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
    return *failed = "prctl(PR_CAP_AMBIENT_CLEAR_ALL)", errno;
  }
  const CapabilitySets next{sets.permitted & keep, sets.permitted & keep, 0};
  if (int e = set_capabilities(next)) return *failed = "capset", e;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return *failed = "prctl(PR_SET_NO_NEW_PRIVS)", errno;
  return 0;
}

// restrict_other_threads: the request the handler reads, and the answers it counts. Static:
// a signal delivered late (a thread that unblocked it later) finds it still valid, and applies
// the same restriction again, which is harmless.
struct ThreadRequest {
  std::atomic<CapabilityMask> keep{0};
  std::atomic<int> last_cap{0};
  std::atomic<int> answered{0};
  std::atomic<int> failed{0};
};
ThreadRequest request;
std::mutex request_mutex;

void on_restrict_signal(int) {
  const int saved = errno;
  const char* failed = nullptr;
  if (restrict_calling_thread(request.keep.load(), 0, request.last_cap.load(), &failed) != 0) request.failed.fetch_add(1);
  request.answered.fetch_add(1);
  errno = saved;
}

// A real-time signal nothing in Node uses; glibc keeps the first two for itself (SIGRTMIN
// accounts for them).
int restrict_signal() { return SIGRTMIN + 4; }

CapabilityMask hex_mask(const std::string& text) { return std::strtoull(text.c_str(), nullptr, 16); }

// Parses "Name:\tvalue" lines of a status file.
bool read_thread(pid_t tid, ThreadPrivileges& out) {
  const std::string dir = "/proc/self/task/" + std::to_string(tid);
  std::ifstream status(dir + "/status");
  if (!status) return false;
  out.tid = tid;
  std::ifstream comm(dir + "/comm");
  std::getline(comm, out.name);
  const CapabilityMask signal_bit = CapabilityMask{1} << (restrict_signal() - 1);
  std::string line;
  while (std::getline(status, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, colon);
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    if (key == "CapEff") out.effective = hex_mask(value);
    else if (key == "CapPrm") out.permitted = hex_mask(value);
    else if (key == "CapInh") out.inheritable = hex_mask(value);
    else if (key == "CapBnd") out.bounding = hex_mask(value);
    else if (key == "CapAmb") out.ambient = hex_mask(value);
    else if (key == "NoNewPrivs") out.no_new_privs = value == "1";
    else if (key == "Uid") out.uid = static_cast<uid_t>(std::strtoul(value.c_str(), nullptr, 10));
    else if (key == "Gid") out.gid = static_cast<gid_t>(std::strtoul(value.c_str(), nullptr, 10));
    else if (key == "SigBlk") out.blocks_signal = (hex_mask(value) & signal_bit) != 0;
  }
  return true;
}

std::vector<pid_t> thread_ids() {
  std::vector<pid_t> tids;
  DIR* dir = ::opendir("/proc/self/task");
  if (dir == nullptr) throw_errno("opendir", "/proc/self/task");
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] >= '0' && entry->d_name[0] <= '9') tids.push_back(static_cast<pid_t>(std::atoi(entry->d_name)));
  }
  ::closedir(dir);
  return tids;
}

// A name, or all digits for a number (as the config gives it).
bool is_number(const std::string& text) {
  return !text.empty() && text.size() <= 10 && text.find_first_not_of("0123456789") == std::string::npos;
}

std::vector<char> lookup_buffer(int which) {
  const long size = ::sysconf(which);
  return std::vector<char>(size > 0 ? static_cast<size_t>(size) : 16384);
}

}  // namespace

std::vector<ThreadPrivileges> process_threads() {
  std::vector<ThreadPrivileges> threads;
  for (pid_t tid : thread_ids()) {
    ThreadPrivileges thread;
    if (read_thread(tid, thread)) threads.push_back(thread);  // else it ended meanwhile
  }
  return threads;
}

int last_capability() {
  std::ifstream file("/proc/sys/kernel/cap_last_cap");
  int last = CAP_LAST_CAP;
  if (!(file >> last) || last < 0 || last > 63) last = CAP_LAST_CAP;
  return last;
}

void expect_identity_switch(bool expected) { identity_switch_expected.store(expected); }

void drop_worker_privileges() noexcept {
  const char* failed = nullptr;
  (void)restrict_calling_thread(dropped_thread_keeps(), 0, last_capability(), &failed);
}

void restrict_thread(CapabilityMask keep) {
  const char* failed = "";
  if (int e = restrict_calling_thread(keep, keep, last_capability(), &failed)) {
    errno = e;
    throw_errno(failed, "dropping the capabilities of the main thread");
  }
}

std::vector<pid_t> restrict_other_threads(bool identity_switch_follows) {
  std::lock_guard<std::mutex> lock(request_mutex);
  const int signal = restrict_signal();
  struct sigaction action{}, previous{};
  if (::sigaction(signal, nullptr, &previous) < 0) throw_errno("sigaction", "SIGRTMIN+4");
  if (previous.sa_handler != SIG_DFL && previous.sa_handler != on_restrict_signal) {
    errno = EBUSY;
    throw_errno("sigaction", "SIGRTMIN+4 has a handler already: the other threads cannot be asked to drop their capabilities");
  }
  request.keep.store(identity_switch_follows ? kSetIds : 0);
  request.last_cap.store(last_capability());
  request.answered.store(0);
  request.failed.store(0);
  // SA_RESTART: the system call a thread was in goes on after the handler.
  action.sa_handler = on_restrict_signal;
  action.sa_flags = SA_RESTART;
  sigfillset(&action.sa_mask);
  if (::sigaction(signal, &action, nullptr) < 0) throw_errno("sigaction", "SIGRTMIN+4");
  // The handler stays: a signal still pending somewhere would otherwise end the process.
  const pid_t self = static_cast<pid_t>(::syscall(SYS_gettid));
  const pid_t pid = ::getpid();
  const CapabilityMask keep = request.keep.load();
  auto dropped = [&](const ThreadPrivileges& t) { return (t.permitted & ~keep) == 0 && t.no_new_privs; };
  std::vector<pid_t> unreached;
  int sent = 0;
  for (const ThreadPrivileges& thread : process_threads()) {
    if (thread.tid == self) continue;
    // A thread that blocks the signal and dropped by itself (a worker) needs nothing.
    if (thread.blocks_signal) {
      if (!dropped(thread)) unreached.push_back(thread.tid);
      continue;
    }
    if (::syscall(SYS_tgkill, pid, thread.tid, signal) == 0) sent++;
    else if (errno != ESRCH) unreached.push_back(thread.tid);
  }
  // A handler runs as soon as its thread is scheduled; a second is plenty on a loaded machine.
  for (int waited = 0; request.answered.load() < sent && waited < 1000; waited++) {
    const timespec millisecond{0, 1000000};
    ::nanosleep(&millisecond, nullptr);
  }
  if (request.answered.load() < sent || request.failed.load() > 0) {
    // Which ones: those whose sets are still wider than asked.
    for (const ThreadPrivileges& thread : process_threads()) {
      if (thread.tid != self && !thread.blocks_signal && !dropped(thread)) unreached.push_back(thread.tid);
    }
  }
  return unreached;
}

void switch_identity(const Identity& identity, CapabilityMask keep) {
  // glibc aborts the process when a set*id call succeeds in one thread and fails in another.
  for (const ThreadPrivileges& thread : process_threads()) {
    if ((thread.effective & kSetIds) == kSetIds) continue;
    throw InvalidState("thread " + std::to_string(thread.tid) + " (" + thread.name +
                       ") lacks CAP_SETUID or CAP_SETGID: the process cannot switch to user " + std::to_string(identity.uid));
  }
  const int last_cap = last_capability();
  // The bounding set while CAP_SETPCAP is still effective; the ids change in every thread.
  CapabilitySets sets{};
  if (int e = get_capabilities(sets)) {
    errno = e;
    throw_errno("capget");
  }
  if (sets.effective & capability_bit(CAP_SETPCAP)) {
    for (int cap = 0; cap <= last_cap; cap++) {
      if ((keep & capability_bit(cap)) || ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 1) continue;
      if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) throw_errno("prctl(PR_CAPBSET_DROP)");
    }
  }
  // This thread keeps its permitted set through the uid change; every other one loses it.
  if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) throw_errno("prctl(PR_SET_KEEPCAPS)");
  const gid_t groups[1] = {identity.gid};
  if (::setgroups(1, groups) < 0) throw_errno("setgroups", "group " + std::to_string(identity.gid));
  if (::setresgid(identity.gid, identity.gid, identity.gid) < 0) throw_errno("setresgid", "group " + std::to_string(identity.gid));
  if (::setresuid(identity.uid, identity.uid, identity.uid) < 0) throw_errno("setresuid", "user " + std::to_string(identity.uid));
  if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) throw_errno("prctl(PR_SET_KEEPCAPS)");
  // The uid change emptied the effective set: raise what is kept, drop the rest for good.
  const char* failed = "";
  if (int e = restrict_calling_thread(keep, keep, last_cap, &failed)) {
    errno = e;
    throw_errno(failed, "keeping the capabilities of the main thread after the switch to user " + std::to_string(identity.uid));
  }
}

std::optional<UserRecord> find_user(const std::string& name_or_id) {
  std::vector<char> buffer = lookup_buffer(_SC_GETPW_R_SIZE_MAX);
  passwd entry{};
  passwd* found = nullptr;
  for (;;) {
    const int e = is_number(name_or_id)
                      ? ::getpwuid_r(static_cast<uid_t>(std::strtoul(name_or_id.c_str(), nullptr, 10)), &entry, buffer.data(), buffer.size(), &found)
                      : ::getpwnam_r(name_or_id.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (e == ERANGE && buffer.size() < (1u << 20)) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    // Not found is 0 with no entry (or, from some NSS modules, ENOENT).
    if (e != 0 && e != ENOENT) {
      errno = e;
      throw_errno("getpwnam_r", "user " + name_or_id);
    }
    if (found == nullptr) return std::nullopt;
    return UserRecord{entry.pw_uid, entry.pw_gid, entry.pw_name};
  }
}

std::optional<GroupRecord> find_group(const std::string& name_or_id) {
  std::vector<char> buffer = lookup_buffer(_SC_GETGR_R_SIZE_MAX);
  group entry{};
  group* found = nullptr;
  for (;;) {
    const int e = is_number(name_or_id)
                      ? ::getgrgid_r(static_cast<gid_t>(std::strtoul(name_or_id.c_str(), nullptr, 10)), &entry, buffer.data(), buffer.size(), &found)
                      : ::getgrnam_r(name_or_id.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (e == ERANGE && buffer.size() < (1u << 20)) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (e != 0 && e != ENOENT) {
      errno = e;
      throw_errno("getgrnam_r", "group " + name_or_id);
    }
    if (found == nullptr) return std::nullopt;
    return GroupRecord{entry.gr_gid, entry.gr_name};
  }
}

}  // namespace ovl
