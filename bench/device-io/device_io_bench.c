// device_io_bench: one read()/write() per frame versus io_uring batches on a TAP device.
//
// Must run as root inside a network namespace made for it (run.sh does that): it creates
// the TAP "bio0", gives it 10.99.0.1/24, and a permanent neighbour 10.99.0.2 so that
// nothing ever leaves the namespace and no ARP is needed.
//
//   WRITE path: the measured process writes Ethernet/IPv4/UDP frames 10.99.0.2 -> 10.99.0.1:5000
//     into the TAP for --seconds; a forked drainer process (CPU 1) receives them on a UDP
//     socket with recvmmsg() and counts them (--no-drain: it never reads, the socket overflows).
//   READ path, backlog: a forked sender process (CPU 1) queues 80000 frames on the TAP with
//     sendmmsg() to 10.99.0.2:9 while nobody reads, then the method under test drains them:
//     a saturated reader, as under a flood, that does not share the machine with the sender.
//   READ path, paced: the sender offers 100000 frames/s (bursts of 8) while the method reads
//     for --seconds; the reader sleeps between bursts, as under moderate load.
//
// Every measurement is repeated --reps times with the methods interleaved (rep outer loop)
// so that the methods of one rep run back to back; ratios to the first method are taken
// within a rep, and medians over the reps are printed.
// CPU = getrusage(RUSAGE_SELF) of the measured process (pinned to CPU 0), which includes its
// io_uring kernel threads (io-wq workers, the SQPOLL thread) but not the helper process.
// softirq and machine busy come from /proc/stat (all CPUs, whole machine, 10 ms ticks).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <liburing.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IORING_OP_READ_MULTISHOT
#define IORING_OP_READ_MULTISHOT 49 /* kernel 6.7+, not in liburing 2.3's headers */
#endif

#define TAP_NAME "bio0"
#define TAP_ADDR "10.99.0.1"
#define PEER_ADDR "10.99.0.2"
#define DRAIN_PORT 5000
#define VNET_LEN 10
#define MAX_FRAME 65550 /* what the worker allocates per device buffer */
#define MAX_METHODS 16
#define MAX_REPS 9

static int g_vnet = 1;
static double g_seconds = 0.4;
static int g_reps = 3;
static unsigned g_depth[2] = {32, 64};  // io_uring batch sizes / posted reads compared
static int g_no_drain = 0;              // drainer never reads: frames die at the full socket
static int g_tap = -1;
static uint8_t g_tap_mac[6];
static const uint8_t g_peer_mac[6] = {0x02, 0, 0, 0, 0, 0x02};

// ---- shared with the helper processes ----------------------------------------------------
struct shared {
  atomic_int quit;
  atomic_int send_on;       // sender floods while set
  atomic_int send_payload;  // UDP payload size the sender uses
  atomic_int send_rate;     // frames/s, paced in bursts of 8; 0 = flood
  atomic_ullong delivered;  // datagrams the drainer received
  atomic_ullong sent;       // datagrams the sender handed to the kernel
  atomic_int fill_request;  // backlog mode: send this many frames, then set fill_done
  atomic_int fill_done;
};
static struct shared* g_sh;
static pid_t g_children[2];

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char* what) {
  perror(what);
  if (g_sh) atomic_store(&g_sh->quit, 1);
  exit(1);
}

static void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);  // best effort
}

static void sh(const char* cmd) {
  if (system(cmd) != 0) {
    fprintf(stderr, "command failed: %s\n", cmd);
    exit(1);
  }
}

static void write_file(const char* path, const char* value) {
  FILE* f = fopen(path, "w");
  if (!f) return;
  fputs(value, f);
  fclose(f);
}

// ---- /proc/stat and rusage ----------------------------------------------------------------
struct cpu_sample {
  uint64_t wall_ns;
  uint64_t self_us;       // user+sys of this process (all its threads, io_uring ones too)
  uint64_t softirq_tick;  // whole machine
  uint64_t busy_tick;     // whole machine, all but idle+iowait
};

static void proc_stat(uint64_t* softirq, uint64_t* busy) {
  FILE* f = fopen("/proc/stat", "r");
  unsigned long long v[10] = {0};
  if (f) {
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
               &v[6], &v[7], &v[8], &v[9]) < 8) {
      memset(v, 0, sizeof v);
    }
    fclose(f);
  }
  *softirq = v[6];
  *busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];  // user nice system irq softirq steal
}

static void sample(struct cpu_sample* s) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  s->self_us = (uint64_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_sec * 1000000 +
               ru.ru_stime.tv_usec;
  proc_stat(&s->softirq_tick, &s->busy_tick);
  s->wall_ns = now_ns();
}

struct result {
  uint64_t frames;
  uint64_t errors;
  uint64_t delivered;  // write path: datagrams the drainer got
  double wall_s;
  double self_cpu_s;
  double softirq_s;
  double busy_s;
  int io_workers;  // iou-wrk threads seen at the end: io_uring punted work to a thread pool
};

static void finish(struct result* r, const struct cpu_sample* a, const struct cpu_sample* b) {
  long hz = sysconf(_SC_CLK_TCK);
  r->wall_s = (b->wall_ns - a->wall_ns) / 1e9;
  r->self_cpu_s = (b->self_us - a->self_us) / 1e6;
  r->softirq_s = (double)(b->softirq_tick - a->softirq_tick) / hz;
  r->busy_s = (double)(b->busy_tick - a->busy_tick) / hz;
}

static int count_io_workers(void) {
  DIR* d = opendir("/proc/self/task");
  if (!d) return -1;
  int n = 0;
  struct dirent* e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char path[300], comm[64] = {0};
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    FILE* f = fopen(path, "r");
    if (!f) continue;
    if (fgets(comm, sizeof comm, f) && strncmp(comm, "iou-wrk", 7) == 0) n++;
    fclose(f);
  }
  closedir(d);
  return n;
}

// ---- TAP ----------------------------------------------------------------------------------
static void make_tap(void) {
  // No IPv6 in this namespace: no router solicitations or ND through the TAP during the reads.
  write_file("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
  write_file("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
  g_tap = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (g_tap < 0) die("open /dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (g_vnet ? IFF_VNET_HDR : 0);
  strncpy(ifr.ifr_name, TAP_NAME, IFNAMSIZ - 1);
  if (ioctl(g_tap, TUNSETIFF, &ifr) < 0) die("TUNSETIFF");
  if (g_vnet) {
    // What the worker asks for (USO left out: not needed for these frames).
    unsigned off = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
    if (ioctl(g_tap, TUNSETOFFLOAD, off) < 0) die("TUNSETOFFLOAD");
  }
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, TAP_NAME, IFNAMSIZ - 1);
  if (ioctl(s, SIOCGIFHWADDR, &ifr) < 0) die("SIOCGIFHWADDR");
  memcpy(g_tap_mac, ifr.ifr_hwaddr.sa_data, 6);
  close(s);
  sh("ip link set lo up && ip addr add " TAP_ADDR "/24 dev " TAP_NAME " && ip link set " TAP_NAME
     " txqueuelen 100000 up && ip neigh replace " PEER_ADDR " lladdr 02:00:00:00:00:02 dev " TAP_NAME " nud permanent");
}

static void drain_tap(void) {
  static uint8_t buf[MAX_FRAME];
  while (read(g_tap, buf, sizeof buf) > 0) {
  }
}

// ---- helpers (separate processes, pinned to CPU 1) -----------------------------------------
static void child_common(void) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  close(g_tap);
  pin(1);
}

static pid_t start_drainer(void) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  int big = 8 << 20;
  setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(DRAIN_PORT)};
  inet_pton(AF_INET, TAP_ADDR, &a.sin_addr);
  if (bind(s, (struct sockaddr*)&a, sizeof a) < 0) die("bind drainer");
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid > 0) {
    close(s);
    return pid;
  }
  child_common();
  struct timeval tv = {.tv_sec = 0, .tv_usec = 50000};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  enum { B = 64 };
  static uint8_t bufs[B][2048];
  struct mmsghdr msgs[B];
  struct iovec iov[B];
  while (!atomic_load(&g_sh->quit)) {
    for (int i = 0; i < B; i++) {
      iov[i].iov_base = bufs[i];
      iov[i].iov_len = sizeof bufs[i];
      memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    if (g_no_drain) {  // the socket fills, then the kernel drops: no consumer wakeups at all
      usleep(10000);
      continue;
    }
    int n = recvmmsg(s, msgs, B, MSG_WAITFORONE, NULL);
    if (n > 0) atomic_fetch_add(&g_sh->delivered, (unsigned long long)n);
  }
  _exit(0);
}

static pid_t start_sender(void) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  int big = 8 << 20;
  setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(9)};
  inet_pton(AF_INET, PEER_ADDR, &a.sin_addr);
  if (connect(s, (struct sockaddr*)&a, sizeof a) < 0) die("connect sender");
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid > 0) {
    close(s);
    return pid;
  }
  child_common();
  enum { B = 64 };
  static uint8_t payload[2048];
  struct mmsghdr msgs[B];
  struct iovec iov[B];
  while (!atomic_load(&g_sh->quit)) {
    int fill = atomic_load(&g_sh->fill_request);
    if (fill > 0) {  // queue `fill` frames on the TAP as fast as possible, then report
      size_t len = (size_t)atomic_load(&g_sh->send_payload);
      int done = 0;
      while (done < fill) {
        int burst = fill - done < B ? fill - done : B;
        for (int i = 0; i < burst; i++) {
          iov[i].iov_base = payload;
          iov[i].iov_len = len;
          memset(&msgs[i], 0, sizeof msgs[i]);
          msgs[i].msg_hdr.msg_iov = &iov[i];
          msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int n = sendmmsg(s, msgs, (unsigned)burst, 0);
        if (n > 0) done += n;
        if (n <= 0) done += 1;  // ENOBUFS: counted as sent, shows up in tx_dropped
      }
      atomic_store(&g_sh->fill_request, 0);
      atomic_store(&g_sh->fill_done, 1);
      continue;
    }
    if (!atomic_load(&g_sh->send_on)) {
      usleep(1000);
      continue;
    }
    size_t len = (size_t)atomic_load(&g_sh->send_payload);
    int rate = atomic_load(&g_sh->send_rate);
    int burst = B;
    if (rate > 0) {  // paced: spin until the next burst of 8 is due
      static uint64_t next;
      uint64_t t = now_ns();
      if (next == 0 || t > next + 10000000) next = t;
      while (now_ns() < next) {
      }
      next += 8000000000ull / (uint64_t)rate;
      burst = 8;
    }
    for (int i = 0; i < burst; i++) {
      iov[i].iov_base = payload;
      iov[i].iov_len = len;
      memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = sendmmsg(s, msgs, (unsigned)burst, 0);  // ENOBUFS when the TAP's queue is full: keep going
    if (n > 0) atomic_fetch_add(&g_sh->sent, (unsigned long long)n);
  }
  _exit(0);
}

// ---- frames for the WRITE path -------------------------------------------------------------
static uint16_t ip_checksum(const uint8_t* p, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

// Writes [vnet header] + Ethernet/IPv4/UDP frame of frame_len bytes; returns total length.
static size_t build_frame(uint8_t* out, size_t frame_len) {
  size_t v = g_vnet ? VNET_LEN : 0;
  memset(out, 0, v + frame_len);  // zero vnet header: no GSO, no checksum offload
  uint8_t* f = out + v;
  memcpy(f, g_tap_mac, 6);
  memcpy(f + 6, g_peer_mac, 6);
  f[12] = 0x08;
  f[13] = 0x00;
  uint8_t* ip = f + 14;
  size_t ip_len = frame_len - 14;
  ip[0] = 0x45;
  ip[2] = (uint8_t)(ip_len >> 8);
  ip[3] = (uint8_t)ip_len;
  ip[6] = 0x40;  // DF
  ip[8] = 64;
  ip[9] = 17;
  inet_pton(AF_INET, PEER_ADDR, ip + 12);
  inet_pton(AF_INET, TAP_ADDR, ip + 16);
  uint16_t c = ip_checksum(ip, 20);
  ip[10] = (uint8_t)(c >> 8);
  ip[11] = (uint8_t)c;
  uint8_t* udp = ip + 20;
  size_t udp_len = ip_len - 20;
  udp[0] = 40000 >> 8;
  udp[1] = 40000 & 0xff;
  udp[2] = DRAIN_PORT >> 8;
  udp[3] = DRAIN_PORT & 0xff;
  udp[4] = (uint8_t)(udp_len >> 8);
  udp[5] = (uint8_t)udp_len;
  // UDP checksum 0: none, valid for IPv4.
  return v + frame_len;
}

// ---- io_uring setup -------------------------------------------------------------------------
static int ring_init(struct io_uring* ring, unsigned entries, int sqpoll, const char** mode) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  if (sqpoll) {
    // The poller would inherit our pinning to CPU 0 and fight the submitter for it: put it on
    // CPU 1 (with the helper process), so that the two CPUs are both in use, as SQPOLL implies.
    p.flags = IORING_SETUP_SQPOLL | IORING_SETUP_SQ_AFF;
    p.sq_thread_cpu = 1;
    p.sq_thread_idle = 100;  // ms
    *mode = "SQPOLL, poller on CPU 1";
    int r = io_uring_queue_init_params(entries, ring, &p);
    if (r < 0) *mode = "SQPOLL refused";
    return r;
  }
  // The cheapest mode for a single thread that owns its ring: completions' task work runs
  // only when we wait, never as an interrupting IPI.
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  *mode = "DEFER_TASKRUN";
  if (io_uring_queue_init_params(entries, ring, &p) == 0) return 0;
  memset(&p, 0, sizeof p);
  p.flags = IORING_SETUP_COOP_TASKRUN;
  *mode = "COOP_TASKRUN";
  if (io_uring_queue_init_params(entries, ring, &p) == 0) return 0;
  *mode = "plain";
  return io_uring_queue_init(entries, ring, 0);
}

// ---- WRITE methods ----------------------------------------------------------------------------
static void write_syscall(size_t frame_len, struct result* r) {
  static uint8_t buf[MAX_FRAME];
  size_t len = build_frame(buf, frame_len);
  uint64_t deadline_ns = (uint64_t)(g_seconds * 1e9);
  struct cpu_sample a, b;
  sample(&a);
  uint64_t frames = 0, errors = 0;
  for (;;) {
    for (int i = 0; i < 64; i++) {
      if (write(g_tap, buf, len) == (ssize_t)len)
        frames++;
      else
        errors++;
    }
    if (now_ns() - a.wall_ns >= deadline_ns) break;
  }
  sample(&b);
  finish(r, &a, &b);
  r->frames = frames;
  r->errors = errors;
}

static void write_uring(size_t frame_len, unsigned batch, int sqpoll, struct result* r, const char** mode) {
  static uint8_t buf[MAX_FRAME];
  size_t len = build_frame(buf, frame_len);
  struct io_uring ring;
  if (ring_init(&ring, batch * 2, sqpoll, mode) < 0) {
    memset(r, 0, sizeof *r);
    return;
  }
  if (io_uring_register_files(&ring, &g_tap, 1) < 0) die("register_files");
  uint64_t deadline_ns = (uint64_t)(g_seconds * 1e9);
  struct cpu_sample a, b;
  sample(&a);
  uint64_t frames = 0, errors = 0;
  for (;;) {
    for (unsigned i = 0; i < batch; i++) {
      struct io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      io_uring_prep_write(sqe, 0, buf, (unsigned)len, 0);
      sqe->flags |= IOSQE_FIXED_FILE;
    }
    unsigned outstanding = batch;
    if (sqpoll) {
      io_uring_submit(&ring);  // a syscall only if the poller went to sleep
    } else {
      io_uring_submit_and_wait(&ring, batch);  // one io_uring_enter for the whole batch
    }
    while (outstanding > 0) {
      struct io_uring_cqe* cqes[256];
      unsigned n = io_uring_peek_batch_cqe(&ring, cqes, outstanding);
      if (n == 0) {
        if (!sqpoll) {
          struct io_uring_cqe* c;
          io_uring_wait_cqe(&ring, &c);
        }
        continue;  // SQPOLL: spin on the CQ ring, no system call
      }
      for (unsigned i = 0; i < n; i++) {
        if (cqes[i]->res == (int)len)
          frames++;
        else
          errors++;
      }
      io_uring_cq_advance(&ring, n);
      outstanding -= n;
    }
    if (now_ns() - a.wall_ns >= deadline_ns) break;
  }
  sample(&b);
  finish(r, &a, &b);
  r->frames = frames;
  r->errors = errors;
  r->io_workers = count_io_workers();
  io_uring_queue_exit(&ring);
}

// ---- READ methods -------------------------------------------------------------------------------
// A read run stops when g_target frames were read (backlog mode) or after g_read_seconds.
static uint64_t g_target = UINT64_MAX;
static double g_read_seconds = 0.4;

// The worker's loop: level-triggered epoll on the non-blocking fd, then read() until EAGAIN,
// at most 4 rounds of 64 frames per wakeup.
static void read_epoll(struct result* r) {
  static uint8_t buf[MAX_FRAME];
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = g_tap};
  epoll_ctl(ep, EPOLL_CTL_ADD, g_tap, &ev);
  uint64_t deadline_ns = (uint64_t)(g_read_seconds * 1e9);
  struct cpu_sample a, b;
  sample(&a);
  uint64_t frames = 0, wakeups = 0;
  while (frames < g_target && now_ns() - a.wall_ns < deadline_ns) {
    struct epoll_event out;
    if (epoll_wait(ep, &out, 1, 100) <= 0) continue;
    wakeups++;
    for (int i = 0; i < 4 * 64 && frames < g_target; i++) {
      ssize_t n = read(g_tap, buf, sizeof buf);
      if (n < 0) break;  // EAGAIN: back to epoll
      frames++;
    }
  }
  sample(&b);
  finish(r, &a, &b);
  r->frames = frames;
  r->errors = wakeups;  // reused: epoll wakeups
  close(ep);
}

// `depth` IORING_OP_READ SQEs kept posted, one buffer each; each completion is re-posted.
static void read_uring(unsigned depth, struct result* r, const char** mode) {
  struct io_uring ring;
  if (ring_init(&ring, depth * 2, 0, mode) < 0) {
    memset(r, 0, sizeof *r);
    return;
  }
  if (io_uring_register_files(&ring, &g_tap, 1) < 0) die("register_files");
  uint8_t* bufs = malloc((size_t)depth * MAX_FRAME);
  for (unsigned i = 0; i < depth; i++) {
    struct io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    io_uring_prep_read(sqe, 0, bufs + (size_t)i * MAX_FRAME, MAX_FRAME, 0);
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, i);
  }
  uint64_t deadline_ns = (uint64_t)(g_read_seconds * 1e9);
  struct cpu_sample a, b;
  sample(&a);
  uint64_t frames = 0, errors = 0;
  struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 100000000};
  while (frames < g_target && now_ns() - a.wall_ns < deadline_ns) {
    struct io_uring_cqe* c;
    io_uring_submit_and_wait_timeout(&ring, &c, 1, &ts, NULL);
    struct io_uring_cqe* cqes[512];
    unsigned n = io_uring_peek_batch_cqe(&ring, cqes, 512);
    for (unsigned i = 0; i < n; i++) {
      unsigned idx = (unsigned)io_uring_cqe_get_data64(cqes[i]);
      if (cqes[i]->res > 0)
        frames++;
      else
        errors++;
      struct io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      io_uring_prep_read(sqe, 0, bufs + (size_t)idx * MAX_FRAME, MAX_FRAME, 0);
      sqe->flags |= IOSQE_FIXED_FILE;
      io_uring_sqe_set_data64(sqe, idx);
    }
    io_uring_cq_advance(&ring, n);
  }
  sample(&b);
  finish(r, &a, &b);
  r->frames = frames;
  r->errors = errors;
  r->io_workers = count_io_workers();
  io_uring_queue_exit(&ring);  // cancels the posted reads
  free(bufs);
  drain_tap();
}

// One IORING_OP_READ_MULTISHOT (kernel 6.7+) with a ring of provided buffers: one SQE,
// one CQE per frame, buffers handed back to the kernel in batches.
static void read_multishot(unsigned nbufs, struct result* r, const char** mode) {
  struct io_uring ring;
  if (ring_init(&ring, 64, 0, mode) < 0) {
    memset(r, 0, sizeof *r);
    return;
  }
  if (io_uring_register_files(&ring, &g_tap, 1) < 0) die("register_files");
  size_t ring_bytes = nbufs * sizeof(struct io_uring_buf);
  struct io_uring_buf_ring* br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (br == MAP_FAILED) die("mmap buf ring");
  struct io_uring_buf_reg reg;
  memset(&reg, 0, sizeof reg);
  reg.ring_addr = (uint64_t)(uintptr_t)br;
  reg.ring_entries = nbufs;
  reg.bgid = 1;
  if (io_uring_register_buf_ring(&ring, &reg, 0) < 0) die("register_buf_ring");
  io_uring_buf_ring_init(br);
  uint8_t* bufs = malloc((size_t)nbufs * MAX_FRAME);
  int mask = io_uring_buf_ring_mask(nbufs);
  for (unsigned i = 0; i < nbufs; i++) io_uring_buf_ring_add(br, bufs + (size_t)i * MAX_FRAME, MAX_FRAME, i, mask, i);
  io_uring_buf_ring_advance(br, nbufs);

  struct io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  io_uring_prep_rw(IORING_OP_READ_MULTISHOT, sqe, 0, NULL, 0, 0);
  sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
  sqe->buf_group = 1;
  uint64_t rearms = 0;
  uint64_t deadline_ns = (uint64_t)(g_read_seconds * 1e9);
  struct cpu_sample a, b;
  sample(&a);
  uint64_t frames = 0, errors = 0;
  struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 100000000};
  while (frames < g_target && now_ns() - a.wall_ns < deadline_ns) {
    struct io_uring_cqe* c;
    io_uring_submit_and_wait_timeout(&ring, &c, 1, &ts, NULL);
    struct io_uring_cqe* cqes[512];
    unsigned n = io_uring_peek_batch_cqe(&ring, cqes, 512);
    int returned = 0;
    for (unsigned i = 0; i < n; i++) {
      struct io_uring_cqe* q = cqes[i];
      if (q->res > 0 && (q->flags & IORING_CQE_F_BUFFER)) {
        frames++;
        unsigned bid = q->flags >> IORING_CQE_BUFFER_SHIFT;
        io_uring_buf_ring_add(br, bufs + (size_t)bid * MAX_FRAME, MAX_FRAME, (unsigned short)bid, mask, returned++);
      } else {
        errors++;
        if (q->res == -EINVAL || q->res == -EBADFD || q->res == -EOPNOTSUPP) {
          fprintf(stderr, "multishot read not supported: %s\n", strerror(-q->res));
          *mode = "unsupported";
          frames = 0;
          goto out;
        }
      }
      if (!(q->flags & IORING_CQE_F_MORE)) {  // terminated (e.g. ran out of buffers): re-arm
        rearms++;
        struct io_uring_sqe* s2 = io_uring_get_sqe(&ring);
        io_uring_prep_rw(IORING_OP_READ_MULTISHOT, s2, 0, NULL, 0, 0);
        s2->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
        s2->buf_group = 1;
      }
    }
    io_uring_buf_ring_advance(br, returned);
    io_uring_cq_advance(&ring, n);
  }
out:
  sample(&b);
  finish(r, &a, &b);
  r->frames = frames;
  r->errors = errors;
  r->io_workers = count_io_workers();
  (void)rearms;
  io_uring_queue_exit(&ring);
  munmap(br, ring_bytes);
  free(bufs);
  drain_tap();
}

// ---- driver -------------------------------------------------------------------------------------
struct method {
  const char* name;
  const char* mode;
  struct result runs[MAX_REPS];
};

// Cost of a trivial system call on this machine, for scale.
static double syscall_ns(void) {
  enum { N = 200000 };
  uint64_t t0 = now_ns();
  for (int i = 0; i < N; i++) syscall(SYS_getppid);
  return (double)(now_ns() - t0) / N;
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

static double median(double* v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double minimum(const double* v, int n) {
  double x = v[0];
  for (int i = 1; i < n; i++) x = v[i] < x ? v[i] : x;
  return x;
}

static double maximum(const double* v, int n) {
  double x = v[0];
  for (int i = 1; i < n; i++) x = v[i] > x ? v[i] : x;
  return x;
}

// Prints one table; the first method is the baseline. Ratios are taken within each rep (the
// methods of one rep ran back to back), then the median of those ratios is printed.
static void report(const char* path, size_t frame_len, struct method* m, int count) {
  int write_path = strcmp(path, "WRITE") == 0;
  printf("\n%s path, %zu-byte frames%s (median of %d reps x %.2fs)\n", path, frame_len,
         g_vnet ? " + vnet hdr" : ", no vnet hdr", g_reps, g_seconds);
  printf("| method | frames/s (min-max) | rate vs base | CPU ns/frame (min-max) | CPU vs base | machine busy ns/frame | "
         "softirq ns/frame | %s | io-wq thr |\n",
         write_path ? "delivered" : "epoll wakeups/s | failed CQEs/s");
  printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (int i = 0; i < count; i++) {
    double rate[MAX_REPS], cpu[MAX_REPS], busy[MAX_REPS], soft[MAX_REPS], extra[MAX_REPS];
    double rate_ratio[MAX_REPS], cpu_ratio[MAX_REPS];
    int workers = 0;
    for (int k = 0; k < g_reps; k++) {
      struct result* r = &m[i].runs[k];
      struct result* base = &m[0].runs[k];
      double f = r->frames ? (double)r->frames : 1;
      double bf = base->frames ? (double)base->frames : 1;
      rate[k] = r->frames / (r->wall_s > 0 ? r->wall_s : 1);
      cpu[k] = r->self_cpu_s * 1e9 / f;
      busy[k] = r->busy_s * 1e9 / f;
      soft[k] = r->softirq_s * 1e9 / f;
      double base_rate = base->frames / (base->wall_s > 0 ? base->wall_s : 1);
      double base_cpu = base->self_cpu_s * 1e9 / bf;
      rate_ratio[k] = base_rate > 0 ? rate[k] / base_rate : 0;
      cpu_ratio[k] = base_cpu > 0 ? cpu[k] / base_cpu : 0;
      if (write_path)
        extra[k] = 100.0 * r->delivered / f;
      else
        extra[k] = r->errors / (r->wall_s > 0 ? r->wall_s : 1);
      if (r->io_workers > workers) workers = r->io_workers;
    }
    char extra_s[64];
    if (write_path)
      snprintf(extra_s, sizeof extra_s, "%.1f%%", median(extra, g_reps));
    else
      snprintf(extra_s, sizeof extra_s, "%.0f", median(extra, g_reps));
    printf("| %s [%s] | %.0fk (%.0f-%.0f) | %.2fx | %.0f (%.0f-%.0f) | %.2fx | %.0f | %.0f | %s | %d |\n", m[i].name,
           m[i].mode, median(rate, g_reps) / 1e3, minimum(rate, g_reps) / 1e3, maximum(rate, g_reps) / 1e3,
           median(rate_ratio, g_reps), median(cpu, g_reps), minimum(cpu, g_reps), maximum(cpu, g_reps),
           median(cpu_ratio, g_reps), median(busy, g_reps), median(soft, g_reps), extra_s, workers);
  }
  fflush(stdout);
}

static void bench_write(size_t frame_len) {
  static char n1[48], n2[48], n3[48];
  snprintf(n1, sizeof n1, "io_uring WRITE x%u", g_depth[0]);
  snprintf(n2, sizeof n2, "io_uring WRITE x%u", g_depth[1]);
  snprintf(n3, sizeof n3, "io_uring WRITE x%u SQPOLL", g_depth[1]);
  struct method m[] = {
      {"write() per frame", "syscall", {{0}}},
      {n1, "", {{0}}},
      {n2, "", {{0}}},
      {n3, "", {{0}}},
  };
  int count = (int)(sizeof m / sizeof m[0]);
  for (int k = 0; k < g_reps; k++) {
    for (int i = 0; i < count; i++) {
      struct result* r = &m[i].runs[k];
      unsigned long long before = atomic_load(&g_sh->delivered);
      switch (i) {
        case 0: write_syscall(frame_len, r); break;
        case 1: write_uring(frame_len, g_depth[0], 0, r, &m[i].mode); break;
        case 2: write_uring(frame_len, g_depth[1], 0, r, &m[i].mode); break;
        case 3: write_uring(frame_len, g_depth[1], 1, r, &m[i].mode); break;
      }
      usleep(30000);  // let the drainer catch up before counting
      r->delivered = atomic_load(&g_sh->delivered) - before;
      drain_tap();
    }
  }
  report("WRITE", frame_len, m, count);
}

static uint64_t tx_dropped(void) {
  FILE* f = fopen("/sys/class/net/" TAP_NAME "/statistics/tx_dropped", "r");
  unsigned long long v = 0;
  if (f) {
    if (fscanf(f, "%llu", &v) != 1) v = 0;
    fclose(f);
  }
  return v;
}

#define BACKLOG_FRAMES 80000 /* the TAP's txqueuelen is raised to 100000 to hold them */

static void run_read_method(int i, struct method* m, struct result* r) {
  switch (i) {
    case 0: read_epoll(r); break;
    case 1: read_uring(g_depth[0], r, &m->mode); break;
    case 2: read_uring(g_depth[1], r, &m->mode); break;
    case 3: read_multishot(256, r, &m->mode); break;
  }
}

// rate == 0: backlog mode. The sender queues BACKLOG_FRAMES frames on the TAP while nobody
// reads, then the method under test drains them: the reader is saturated and has the CPU to
// itself, as a worker under a flood would be, without sharing the machine with the sender.
// rate > 0: the sender offers `rate` frames/s (bursts of 8) while the method reads for
// --seconds; the reader sleeps between bursts, as it would under moderate load.
static void bench_read(size_t frame_len, int rate) {
  static char n1[48], n2[48];
  snprintf(n1, sizeof n1, "io_uring READ x%u posted", g_depth[0]);
  snprintf(n2, sizeof n2, "io_uring READ x%u posted", g_depth[1]);
  struct method m[] = {
      {"epoll + read() until EAGAIN", "syscall", {{0}}},
      {n1, "", {{0}}},
      {n2, "", {{0}}},
      {"io_uring READ_MULTISHOT, 256 bufs", "", {{0}}},
  };
  int count = (int)(sizeof m / sizeof m[0]);
  atomic_store(&g_sh->send_payload, (int)(frame_len - 42));
  atomic_store(&g_sh->send_rate, rate);
  drain_tap();
  if (rate > 0) {
    g_target = UINT64_MAX;
    g_read_seconds = g_seconds;
    atomic_store(&g_sh->send_on, 1);
    usleep(50000);
  }
  for (int k = 0; k < g_reps; k++) {
    for (int i = 0; i < count; i++) {
      struct result* r = &m[i].runs[k];
      if (rate == 0) {
        drain_tap();
        uint64_t dropped = tx_dropped();
        atomic_store(&g_sh->fill_done, 0);
        atomic_store(&g_sh->fill_request, BACKLOG_FRAMES);
        uint64_t t0 = now_ns();
        while (!atomic_load(&g_sh->fill_done) && now_ns() - t0 < 10000000000ull) usleep(1000);
        dropped = tx_dropped() - dropped;
        g_target = BACKLOG_FRAMES > dropped ? BACKLOG_FRAMES - dropped : 1;
        g_read_seconds = 5;
      }
      run_read_method(i, &m[i], r);
      r->delivered = g_target;
    }
  }
  atomic_store(&g_sh->send_on, 0);
  usleep(20000);
  drain_tap();
  char title[64];
  if (rate > 0)
    snprintf(title, sizeof title, "READ (offered %d frames/s)", rate);
  else
    snprintf(title, sizeof title, "READ (backlog of %d frames drained)", BACKLOG_FRAMES);
  report(title, frame_len, m, count);
}

// SIGTERM/SIGINT (run.sh's cleanup): end the helpers and reap them, so that nothing is left.
static void on_signal(int sig) {
  (void)sig;
  if (g_sh) atomic_store(&g_sh->quit, 1);
  for (int i = 0; i < 2; i++) {
    if (g_children[i] > 0) {
      kill(g_children[i], SIGKILL);
      waitpid(g_children[i], NULL, 0);
    }
  }
  _exit(130);
}

static void stop_children(void) {
  if (!g_sh) return;
  atomic_store(&g_sh->quit, 1);
  for (int i = 0; i < 2; i++)
    if (g_children[i] > 0) waitpid(g_children[i], NULL, 0);
}

int main(int argc, char** argv) {
  const char* paths = "write,read,paced";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--no-vnet"))
      g_vnet = 0;
    else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
      g_seconds = atof(argv[++i]);
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
      g_reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--paths") && i + 1 < argc)
      paths = argv[++i];
    else if (!strcmp(argv[i], "--depths") && i + 1 < argc &&
             sscanf(argv[i + 1], "%u,%u", &g_depth[0], &g_depth[1]) == 2 && g_depth[0] >= 1 && g_depth[1] >= 1 &&
             g_depth[0] <= 256 && g_depth[1] <= 256)
      i++;
    else if (!strcmp(argv[i], "--no-drain"))
      g_no_drain = 1;
    else {
      fprintf(stderr, "usage: %s [--no-vnet] [--seconds S] [--reps N] [--paths write,read,paced] [--depths A,B] [--no-drain]\n", argv[0]);
      return 2;
    }
  }
  if (g_reps < 1) g_reps = 1;
  if (g_reps > MAX_REPS) g_reps = MAX_REPS;
  setvbuf(stdout, NULL, _IOLBF, 0);
  g_sh = mmap(NULL, sizeof *g_sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (g_sh == MAP_FAILED) die("mmap");
  memset(g_sh, 0, sizeof *g_sh);
  make_tap();
  g_children[0] = start_drainer();
  g_children[1] = start_sender();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  pin(0);
  double la[3] = {0};
  getloadavg(la, 3);
  double sc[3] = {syscall_ns(), syscall_ns(), syscall_ns()};
  printf("trivial syscall (getppid): %.0f ns (median of 3); load average before: %.2f %.2f %.2f\n", median(sc, 3), la[0],
         la[1], la[2]);
  static const size_t sizes[] = {64, 1400};
  for (size_t s = 0; s < 2; s++) {
    if (strstr(paths, "write")) bench_write(sizes[s]);
  }
  for (size_t s = 0; s < 2; s++) {
    if (strstr(paths, "read")) bench_read(sizes[s], 0);
  }
  // Not saturated: CPU per frame when the reader sleeps between bursts.
  if (strstr(paths, "paced")) bench_read(64, 100000);
  stop_children();
  close(g_tap);
  return 0;
}
