// A stand-in for libFuzzer's driver, linked into each fuzz target by the ordinary build (any
// compiler): native/test/run.sh replays the seed corpora and regression inputs through it, and
// fuzzes with it when clang's libFuzzer is not installed. It has no coverage feedback, so it
// searches only by mutating the corpus it is given (and by random bytes), but it takes the same
// command line as a libFuzzer binary, so run.sh drives both alike:
//
//   fuzz_x [-runs=N] [-max_total_time=S] [-seed=N] [-max_len=N] [-timeout=S]
//          [-artifact_prefix=P] [-print_final_stats=1] [-help=1] [CORPUS_DIR_OR_FILE ...]
//
// Every input in the named directories (recursively) and files runs first. Given only files, it
// stops there (libFuzzer runs those files and exits). Otherwise it goes on with generated inputs
// until the total reaches -runs or -max_total_time seconds have passed (with neither, until it is
// stopped). An argument that names no file or directory is an error, as is an unknown flag, and a
// run that executed no input at all fails: it tested nothing.
//
// A crash (a sanitizer report, abort, trap) or an input running longer than -timeout seconds
// writes the input to <artifact_prefix>crash-<hash> (timeout-<hash>), as libFuzzer does, so it
// can be replayed (fuzz_x FILE) and kept as a regression (native/test/regressions/<target>/).
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);
// Provided by the sanitizer runtimes (ASan, UBSan): called just before a report kills the process.
extern "C" __attribute__((weak)) void __sanitizer_set_death_callback(void (*callback)(void));

// UBSan (gcc's runtime is apart from ASan's, so its reports skip the death callback) reports by
// abort(), which the SIGABRT handler turns into an artifact; and with a stack.
extern "C" const char* __ubsan_default_options() { return "abort_on_error=1:print_stacktrace=1"; }

namespace {

using Bytes = std::vector<uint8_t>;
using Clock = std::chrono::steady_clock;

struct Options {
  long long runs = -1;           // total inputs to run, corpus included; -1: no limit
  long long max_total_time = 0;  // seconds; 0: no limit
  uint64_t seed = 0;             // 0: from the clock
  size_t max_len = 0;            // 0: the largest corpus input, at least 4096
  long long timeout = 1200;      // seconds one input may take
  std::string artifact_prefix = "./";
  bool print_final_stats = false;
};

const char* program = "fuzz";

// What is running now, for the crash and timeout handlers (which may only read these).
std::atomic<const uint8_t*> current_data{nullptr};
std::atomic<size_t> current_size{0};
std::atomic<const char*> current_file{nullptr};  // a corpus file being replayed, else null
std::atomic<uint64_t> executed{0};
std::atomic<bool> artifact_written{false};
char artifact_prefix[4096] = "./";

void write_all(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = write(fd, p, size);
    if (n <= 0) return;
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void say(const char* text) { write_all(2, text, strlen(text)); }

// Writes the running input to <prefix><kind>-<hash>. Async-signal-safe: no allocation, no stdio.
void write_artifact(const char* kind) {
  if (artifact_written.exchange(true)) return;
  const uint8_t* data = current_data.load();
  const size_t size = current_size.load();
  const char* file = current_file.load();
  say("\n");
  say(program);
  if (file != nullptr) {
    say(": crashed or hung on corpus file ");
    say(file);
    say("\n");
    return;  // it is already a file
  }
  if (data == nullptr && size != 0) return;
  uint64_t hash = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < size; i++) hash = (hash ^ data[i]) * 0x100000001b3ull;
  char path[sizeof artifact_prefix + 64];
  size_t at = 0;
  for (const char* p = artifact_prefix; *p && at < sizeof artifact_prefix; p++) path[at++] = *p;
  for (const char* p = kind; *p; p++) path[at++] = *p;
  path[at++] = '-';
  for (int shift = 60; shift >= 0; shift -= 4) path[at++] = "0123456789abcdef"[(hash >> shift) & 15];
  path[at] = 0;
  const int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    say(": could not write the input to ");
    say(path);
    say("\n");
    return;
  }
  if (size > 0) write_all(fd, data, size);
  close(fd);
  say(": ");
  say(kind);
  say(" input written to ");
  say(path);
  say(" (replay it: ");
  say(program);
  say(" ");
  say(path);
  say(")\n");
}

void on_death() { write_artifact("crash"); }

void on_signal(int signal_number) {
  write_artifact("crash");
  // Die of the same signal, as the process would have without us.
  ::signal(signal_number, SIG_DFL);
  raise(signal_number);
}

void install_crash_handlers() {
  if (__sanitizer_set_death_callback != nullptr) __sanitizer_set_death_callback(on_death);
  // ASan takes SIGSEGV/SIGBUS itself (and calls on_death); abort() and traps come here.
  for (int s : {SIGABRT, SIGILL, SIGFPE, SIGSEGV, SIGBUS}) {
    struct sigaction action;
    std::memset(&action, 0, sizeof action);
    struct sigaction old;
    if (sigaction(s, nullptr, &old) == 0 && old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN) continue;
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    sigaction(s, &action, nullptr);
  }
}

// Stops the process when one input runs longer than `seconds`.
void start_watchdog(long long seconds) {
  std::thread([seconds] {
    uint64_t last = executed.load();
    auto since = Clock::now();
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      const uint64_t now_executed = executed.load();
      if (now_executed != last) {
        last = now_executed;
        since = Clock::now();
      } else if (current_data.load() != nullptr &&
                 Clock::now() - since > std::chrono::seconds(seconds)) {
        char line[160];
        std::snprintf(line, sizeof line, "\n%s: an input ran longer than -timeout=%lld s\n", program, seconds);
        say(line);
        write_artifact("timeout");
        _exit(70);
      }
    }
  }).detach();
}

bool parse_number(const char* text, long long* out) {
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != 0) return false;
  *out = value;
  return true;
}

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "%s: %s\n", program, message.c_str());
  std::fprintf(stderr,
               "usage: %s [-runs=N] [-max_total_time=S] [-seed=N] [-max_len=N] [-timeout=S] [-artifact_prefix=P]\n"
               "       [-print_final_stats=1] [CORPUS_DIR_OR_FILE ...]\n",
               program);
  std::exit(2);
}

bool read_file(const std::string& path, Bytes* out) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  out->clear();
  uint8_t chunk[65536];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0) out->insert(out->end(), chunk, chunk + n);
  const bool ok = !std::ferror(f);
  std::fclose(f);
  return ok;
}

// Regular files under `dir`, recursively, in name order.
void list_files(const std::string& dir, std::vector<std::string>* out) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) usage_error("cannot read directory " + dir + ": " + std::strerror(errno));
  std::vector<std::string> names;
  while (const dirent* entry = readdir(d)) {
    if (std::strcmp(entry->d_name, ".") != 0 && std::strcmp(entry->d_name, "..") != 0) names.push_back(entry->d_name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const std::string path = dir + "/" + name;
    struct stat st;
    if (stat(path.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) list_files(path, out);
    else if (S_ISREG(st.st_mode)) out->push_back(path);
  }
}

// Runs one input from an allocation of exactly its size, so ASan sees any read past its end.
void run_one(const Bytes& input) {
  std::unique_ptr<uint8_t[]> exact(new uint8_t[input.empty() ? 1 : input.size()]);
  if (!input.empty()) std::memcpy(exact.get(), input.data(), input.size());
  current_size.store(input.size());
  current_data.store(exact.get());
  LLVMFuzzerTestOneInput(input.empty() ? nullptr : exact.get(), input.size());
  current_data.store(nullptr);
  executed.fetch_add(1, std::memory_order_relaxed);
}

// ---- input generation ----

class Generator {
 public:
  Generator(uint64_t seed, const std::vector<Bytes>& corpus, size_t max_len)
      : random_(seed), corpus_(corpus), max_len_(max_len) {}

  void next(Bytes* out) {
    if (corpus_.empty() || below(8) == 0) {
      fresh(out);
    } else {
      *out = corpus_[below(corpus_.size())];
    }
    const size_t mutations = 1 + below(below(8) == 0 ? 16 : 4);
    for (size_t i = 0; i < mutations; i++) mutate(out);
    if (out->size() > max_len_) out->resize(max_len_);
  }

 private:
  size_t below(size_t n) { return n <= 1 ? 0 : static_cast<size_t>(random_() % n); }
  uint8_t byte() { return static_cast<uint8_t>(random_()); }

  // Random bytes, sometimes with the headers most targets start with (a VXLAN flags word, an
  // Ethernet header's EtherType, an IPv4 or IPv6 version nibble).
  void fresh(Bytes* out) {
    out->resize(below(below(4) == 0 ? max_len_ + 1 : 200));
    for (auto& b : *out) b = byte();
    if (out->size() > 8 && below(2)) {
      (*out)[0] = 0x08;
      (*out)[1] = (*out)[2] = (*out)[3] = (*out)[7] = 0;
    }
    if (out->size() > 24 && below(2)) {
      (*out)[20] = 0x08;
      (*out)[21] = below(2) ? 0x00 : 0xDD;
      (*out)[22] = below(2) ? 0x45 : 0x60;
    }
  }

  void mutate(Bytes* b) {
    static const uint64_t kInteresting[] = {0, 1, 2, 3, 4, 7, 8, 14, 16, 20, 28, 40, 64, 0x7f, 0x80, 0xff,
                                            0x100, 0x5dc, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff,
                                            0x80000000, 0xffffffff, ~uint64_t{0}};
    const size_t size = b->size();
    switch (below(12)) {
      case 0:  // flip a bit
        if (size) (*b)[below(size)] ^= static_cast<uint8_t>(1u << below(8));
        break;
      case 1:  // a random byte
        if (size) (*b)[below(size)] = byte();
        break;
      case 2: {  // an interesting value, 1, 2, 4 or 8 bytes, either byte order
        const size_t width = size_t{1} << below(4);
        if (size < width) break;
        uint64_t value = kInteresting[below(sizeof kInteresting / sizeof kInteresting[0])];
        if (below(4) == 0) value = size - below(4) * width;  // a length field
        const size_t at = below(size - width + 1);
        const bool big = below(2);
        for (size_t i = 0; i < width; i++) (*b)[at + i] = static_cast<uint8_t>(value >> (8 * (big ? width - 1 - i : i)));
        break;
      }
      case 3: {  // add or subtract a little, 1, 2 or 4 bytes big-endian
        const size_t width = size_t{1} << below(3);
        if (size < width) break;
        const size_t at = below(size - width + 1);
        uint64_t value = 0;
        for (size_t i = 0; i < width; i++) value = value << 8 | (*b)[at + i];
        value += below(2) ? 1 + below(16) : uint64_t(0) - (1 + below(16));
        for (size_t i = 0; i < width; i++) (*b)[at + i] = static_cast<uint8_t>(value >> (8 * (width - 1 - i)));
        break;
      }
      case 4: {  // erase a range
        if (size == 0) break;
        const size_t at = below(size);
        const size_t n = 1 + below(std::min<size_t>(size - at, 16));
        b->erase(b->begin() + static_cast<std::ptrdiff_t>(at), b->begin() + static_cast<std::ptrdiff_t>(at + n));
        break;
      }
      case 5: {  // insert random bytes, or one byte repeated
        const size_t at = below(size + 1);
        const size_t n = 1 + below(below(4) == 0 ? 128 : 8);
        Bytes insert(n);
        const uint8_t fill = byte();
        const bool repeated = below(2);
        for (auto& x : insert) x = repeated ? fill : byte();
        b->insert(b->begin() + static_cast<std::ptrdiff_t>(at), insert.begin(), insert.end());
        break;
      }
      case 6: {  // copy a part over another place
        if (size < 2) break;
        const size_t from = below(size), to = below(size);
        const size_t n = 1 + below(std::min(size - from, size - to));
        std::memmove(b->data() + to, b->data() + from, n);
        break;
      }
      case 7: {  // duplicate a part in place
        if (size == 0) break;
        const size_t from = below(size);
        const size_t n = 1 + below(std::min<size_t>(size - from, 256));
        const Bytes part(b->begin() + static_cast<std::ptrdiff_t>(from), b->begin() + static_cast<std::ptrdiff_t>(from + n));
        b->insert(b->begin() + static_cast<std::ptrdiff_t>(below(size + 1)), part.begin(), part.end());
        break;
      }
      case 8: {  // splice with another corpus input
        if (corpus_.empty()) break;
        const Bytes& other = corpus_[below(corpus_.size())];
        const size_t keep = below(size + 1);
        const size_t from = below(other.size() + 1);
        b->resize(keep);
        b->insert(b->end(), other.begin() + static_cast<std::ptrdiff_t>(from), other.end());
        break;
      }
      case 9:  // truncate
        if (size) b->resize(below(size));
        break;
      case 10: {  // shuffle a few bytes
        if (size < 2) break;
        const size_t at = below(size - 1);
        const size_t n = 2 + below(std::min<size_t>(size - at - 1, 7));
        std::shuffle(b->begin() + static_cast<std::ptrdiff_t>(at), b->begin() + static_cast<std::ptrdiff_t>(at + n), random_);
        break;
      }
      default:  // the last byte (many targets read their selector there) or the first
        if (size) (*b)[below(2) ? size - 1 : 0] = byte();
        break;
    }
  }

  std::mt19937_64 random_;
  const std::vector<Bytes>& corpus_;
  size_t max_len_;
};

}  // namespace

int main(int argc, char** argv) {
  if (const char* slash = std::strrchr(argv[0], '/')) program = slash + 1;
  else program = argv[0];
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);

  Options options;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; i++) {
    const char* arg = argv[i];
    if (arg[0] == '-' && arg[1] != 0) {
      const char* eq = std::strchr(arg, '=');
      if (eq == nullptr) usage_error(std::string("flags take a value (-name=value): ") + arg);
      const std::string name(arg + 1, eq);
      const char* value = eq + 1;
      long long number = 0;
      const bool numeric = parse_number(value, &number);
      if (name == "help") {
        std::printf("%s: the fuzz target with the libFuzzer stand-in driver (native/test/libfuzzer_standin.cc)\n", program);
        return 0;
      } else if (name == "artifact_prefix") {
        options.artifact_prefix = value;
      } else if (!numeric) {
        usage_error("-" + name + " takes a number, not \"" + value + "\"");
      } else if (name == "runs") {
        options.runs = number;
      } else if (name == "max_total_time") {
        options.max_total_time = number;
      } else if (name == "seed") {
        options.seed = static_cast<uint64_t>(number);
      } else if (name == "max_len") {
        options.max_len = static_cast<size_t>(number);
      } else if (name == "timeout") {
        options.timeout = number;
      } else if (name == "print_final_stats") {
        options.print_final_stats = number != 0;
      } else {
        usage_error("unknown flag -" + name);
      }
    } else {
      paths.push_back(arg);
    }
  }
  if (options.runs < -1 || options.max_total_time < 0 || options.timeout < 0) usage_error("negative limit");
  std::snprintf(artifact_prefix, sizeof artifact_prefix, "%s", options.artifact_prefix.c_str());

  // What to replay, and whether to go on fuzzing (a directory, or nothing, was given).
  std::vector<std::string> files;
  bool fuzz = paths.empty();
  for (const std::string& path : paths) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) usage_error("no such corpus directory or input file: " + path);
    if (S_ISDIR(st.st_mode)) {
      list_files(path, &files);
      fuzz = true;
    } else {
      files.push_back(path);
    }
  }

  install_crash_handlers();
  if (options.timeout > 0) start_watchdog(options.timeout);
  const auto start = Clock::now();

  std::vector<Bytes> corpus;
  size_t largest = 0;
  for (const std::string& path : files) {
    Bytes input;
    if (!read_file(path, &input)) usage_error("cannot read " + path + ": " + std::strerror(errno));
    current_file.store(path.c_str());
    run_one(input);
    current_file.store(nullptr);
    largest = std::max(largest, input.size());
    corpus.push_back(std::move(input));
  }
  const uint64_t replayed = executed.load();

  const uint64_t seed = options.seed != 0 ? options.seed
                                          : static_cast<uint64_t>(Clock::now().time_since_epoch().count()) | 1;
  const size_t max_len = options.max_len != 0 ? options.max_len : std::max<size_t>(largest, 4096);
  if (fuzz) {
    Generator generator(seed, corpus, max_len);
    Bytes input;
    const auto deadline = start + std::chrono::seconds(options.max_total_time);
    for (uint64_t i = 0;; i++) {
      if (options.runs >= 0 && executed.load() >= static_cast<uint64_t>(options.runs)) break;
      if (options.max_total_time > 0 && (i & 63) == 0 && Clock::now() >= deadline) break;
      generator.next(&input);
      run_one(input);
    }
  }

  const uint64_t total = executed.load();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double rate = seconds > 0 ? total / seconds : 0;
  if (options.print_final_stats) {
    std::printf("stat::number_of_executed_units: %" PRIu64 "\n", total);
    std::printf("stat::average_exec_per_sec:     %.0f\n", rate);
  }
  if (total == 0) {
    std::printf("%s: no input ran (no corpus files, and -runs=0 or no time): nothing was tested\n", program);
    return 1;
  }
  if (total == replayed) {
    std::printf("%s: %" PRIu64 " inputs (the corpus files) in %.1f s: no crash\n", program, total, seconds);
  } else {
    std::printf("%s: %" PRIu64 " inputs (%" PRIu64 " corpus files, %" PRIu64 " generated, -seed=%" PRIu64
                ") in %.1f s, %.0f/s: no crash\n",
                program, total, replayed, total - replayed, seed, seconds, rate);
  }
  return 0;
}
