// raw_blast: the bare cost of moving full-size raw IP packets across a veth pair, batched the
// way overlayfwd's raw-IP modes (gre, ipip) move them, with none of the overlay around it (no
// TUN device, no TCP, no encapsulation): the ceiling the bench compares those modes to.
//
//   raw_blast recv --proto P --local ADDR [--idle-ms 1000] [--max-seconds 120] [--batch 64]
//   raw_blast send --proto P --local ADDR --remote ADDR --size BYTES --seconds S [--batch 64]
//
// recv: a raw IPv4 socket for protocol P (SOCK_RAW, P), bound to ADDR, SO_RCVBUF 8 MiB (as
// overlayfwd's raw receiver), recvmmsg in batches (MSG_WAITFORONE). Prints "ready" once bound,
// then, once packets stopped for --idle-ms after the first one (or --max-seconds passed), one
// JSON line: packets and IP bytes received, and the rate between the first and the last packet.
//
// send: an IPPROTO_RAW socket (IP_HDRINCL implied, SO_SNDBUF 4 MiB, as overlayfwd's raw sender)
// sending packets of exactly BYTES bytes (IPv4 header included: DF, TTL 64, protocol P; the
// kernel fills in the ID and the header checksum) to ADDR with blocking sendmmsg batches for S
// seconds. For P = 47 the payload starts with a plain GRE header (protocol 0x0800), for P = 4
// with an IPv4 header, so a capture reads like the real modes; the receiver counts bytes only.
// Prints one JSON line: packets sent and the send rate.
//
// Build: cc -O2 -o raw_blast raw_blast.c (the bench does this on demand). Needs CAP_NET_RAW.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 1024
#define MAX_SIZE 65535

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char* what) {
  fprintf(stderr, "raw_blast: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void usage(void) {
  fprintf(stderr,
          "usage: raw_blast recv --proto P --local ADDR [--idle-ms MS] [--max-seconds S] [--batch N]\n"
          "       raw_blast send --proto P --local ADDR --remote ADDR --size BYTES --seconds S [--batch N]\n");
  exit(2);
}

static void set_buffer(int fd, int force, int plain, int bytes) {
  if (setsockopt(fd, SOL_SOCKET, force, &bytes, sizeof bytes) == 0) return;
  setsockopt(fd, SOL_SOCKET, plain, &bytes, sizeof bytes);
}

static struct in_addr parse_addr(const char* s) {
  struct in_addr a;
  if (inet_pton(AF_INET, s, &a) != 1) {
    fprintf(stderr, "raw_blast: not an IPv4 address: %s\n", s);
    exit(2);
  }
  return a;
}

static int do_recv(int proto, struct in_addr local, int idle_ms, double max_seconds, int batch) {
  int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, proto);
  if (fd < 0) die("socket(SOCK_RAW)");
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr = local};
  if (bind(fd, (struct sockaddr*)&sin, sizeof sin) < 0) die("bind");
  set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, 8 << 20);
  // Drops at the socket (receive buffer full) arrive as a counter in a control message.
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
  struct timeval tv = {.tv_sec = 0, .tv_usec = 50 * 1000};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) die("setsockopt(SO_RCVTIMEO)");

  static char bufs[MAX_BATCH][2048];
  static char ctl[MAX_BATCH][64];
  static struct iovec iov[MAX_BATCH];
  static struct mmsghdr msgs[MAX_BATCH];
  for (int i = 0; i < batch; i++) {
    iov[i].iov_base = bufs[i];
    iov[i].iov_len = sizeof bufs[i];
  }
  printf("ready\n");
  fflush(stdout);

  uint64_t packets = 0, bytes = 0, batches = 0;
  uint32_t overflow_first = 0, overflow_last = 0;
  int have_overflow = 0;
  const double start = now();
  double first = 0, last = 0;
  for (;;) {
    for (int i = 0; i < batch; i++) {
      memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_control = ctl[i];
      msgs[i].msg_hdr.msg_controllen = sizeof ctl[i];
    }
    int n = recvmmsg(fd, msgs, (unsigned)batch, MSG_WAITFORONE, NULL);
    const double t = now();
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) die("recvmmsg");
    } else if (n > 0) {
      if (packets == 0) first = t;
      last = t;
      batches++;
      for (int i = 0; i < n; i++) {
        packets++;
        bytes += msgs[i].msg_len;
        for (struct cmsghdr* c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
          if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
            uint32_t v;
            memcpy(&v, CMSG_DATA(c), sizeof v);
            if (!have_overflow) overflow_first = v;
            overflow_last = v;
            have_overflow = 1;
          }
        }
      }
    }
    if (packets > 0 && (t - last) * 1000.0 >= idle_ms) break;
    if (t - start >= max_seconds) break;
  }
  const double seconds = last - first;
  const double pps = seconds > 0 ? (double)(packets - 1) / seconds : 0;
  const double mean = packets ? (double)bytes / (double)packets : 0;
  printf(
      "{\"role\":\"recv\",\"proto\":%d,\"batch\":%d,\"packets\":%llu,\"bytes\":%llu,\"batches\":%llu,"
      "\"seconds\":%.6f,\"pps\":%.1f,\"gbps\":%.6f,\"meanBytes\":%.1f,\"socketDrops\":%u}\n",
      proto, batch, (unsigned long long)packets, (unsigned long long)bytes, (unsigned long long)batches, seconds, pps,
      pps * mean * 8 / 1e9, mean, overflow_last - overflow_first);
  fflush(stdout);
  close(fd);
  return packets > 0 ? 0 : 1;
}

static int do_send(int proto, struct in_addr local, struct in_addr remote, int size, double seconds, int batch) {
  if (size < 40 || size > MAX_SIZE) {
    fprintf(stderr, "raw_blast: --size must be 40..%d\n", MAX_SIZE);
    return 2;
  }
  int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (fd < 0) die("socket(IPPROTO_RAW)");
  set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, 4 << 20);

  // One packet image (the kernel fills in the ID and checksum of each copy), sent `batch` times per call.
  static unsigned char pkt[MAX_SIZE];
  memset(pkt, 0, (size_t)size);
  struct iphdr* ip = (struct iphdr*)pkt;
  ip->version = 4;
  ip->ihl = 5;
  ip->tot_len = htons((uint16_t)size);
  ip->frag_off = htons(IP_DF);
  ip->ttl = 64;
  ip->protocol = (uint8_t)proto;
  ip->saddr = local.s_addr;
  ip->daddr = remote.s_addr;
  if (proto == IPPROTO_GRE) {
    pkt[22] = 0x08;  // GRE: no flags, version 0, protocol 0x0800
  } else if (proto == IPPROTO_IPIP) {
    struct iphdr* inner = (struct iphdr*)(pkt + 20);
    inner->version = 4;
    inner->ihl = 5;
    inner->tot_len = htons((uint16_t)(size - 20));
    inner->ttl = 64;
    inner->protocol = IPPROTO_UDP;
  }
  struct sockaddr_in dst = {.sin_family = AF_INET, .sin_addr = remote};
  static struct iovec iov[MAX_BATCH];
  static struct mmsghdr msgs[MAX_BATCH];
  for (int i = 0; i < batch; i++) {
    iov[i].iov_base = pkt;
    iov[i].iov_len = (size_t)size;
    memset(&msgs[i], 0, sizeof msgs[i]);
    msgs[i].msg_hdr.msg_name = &dst;
    msgs[i].msg_hdr.msg_namelen = sizeof dst;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  uint64_t sent = 0, calls = 0, errors = 0;
  const double start = now();
  double t = start;
  while (t - start < seconds) {
    int n = sendmmsg(fd, msgs, (unsigned)batch, 0);
    if (n < 0) {
      if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR) die("sendmmsg");
      errors++;
    } else {
      sent += (uint64_t)n;
    }
    calls++;
    t = now();
  }
  const double elapsed = t - start;
  printf(
      "{\"role\":\"send\",\"proto\":%d,\"batch\":%d,\"size\":%d,\"packets\":%llu,\"calls\":%llu,\"errors\":%llu,"
      "\"seconds\":%.6f,\"pps\":%.1f,\"gbps\":%.6f}\n",
      proto, batch, size, (unsigned long long)sent, (unsigned long long)calls, (unsigned long long)errors, elapsed,
      elapsed > 0 ? (double)sent / elapsed : 0, elapsed > 0 ? (double)sent * size * 8 / elapsed / 1e9 : 0);
  fflush(stdout);
  close(fd);
  return sent > 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  if (argc < 2) usage();
  const char* role = argv[1];
  int proto = -1, size = 0, batch = 64, idle_ms = 1000;
  double seconds = 0, max_seconds = 120;
  const char *local = NULL, *remote = NULL;
  for (int i = 2; i < argc; i++) {
    const char* a = argv[i];
    if (i + 1 >= argc) usage();
    const char* v = argv[++i];
    if (!strcmp(a, "--proto")) proto = atoi(v);
    else if (!strcmp(a, "--local")) local = v;
    else if (!strcmp(a, "--remote")) remote = v;
    else if (!strcmp(a, "--size")) size = atoi(v);
    else if (!strcmp(a, "--seconds")) seconds = atof(v);
    else if (!strcmp(a, "--max-seconds")) max_seconds = atof(v);
    else if (!strcmp(a, "--idle-ms")) idle_ms = atoi(v);
    else if (!strcmp(a, "--batch")) batch = atoi(v);
    else usage();
  }
  if (proto < 1 || proto > 255 || !local || batch < 1 || batch > MAX_BATCH) usage();
  if (!strcmp(role, "recv")) return do_recv(proto, parse_addr(local), idle_ms, max_seconds, batch);
  if (!strcmp(role, "send")) {
    if (!remote || seconds <= 0) usage();
    return do_send(proto, parse_addr(local), parse_addr(remote), size, seconds, batch);
  }
  usage();
  return 2;
}
