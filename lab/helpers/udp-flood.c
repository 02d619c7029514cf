// udp-flood: UDP datagrams at full rate from many (spoofed) IPv4 sources, for the flood tests
// (test/netns/floods.test.ts). The payloads are crafted once by the test and read from a file;
// this program only stamps the varying fields and sends, so a flood costs no per-packet work in
// JavaScript or Python.
//
//   udp-flood --dst ADDR --port P --payloads FILE --src ADDR [--sources N] [--sport P]
//             [--random-mac OFFSET] [--seconds S] [--batch N]
//
// FILE holds the payloads back to back, each as a 2-byte big-endian length and the bytes; they
// are sent in turn. Each datagram is a whole IPv4 packet written on an IPPROTO_RAW socket
// (IP_HDRINCL implied): source address --src plus (i mod N) for the i-th packet (N = --sources,
// default 1: thousands of sources need no address configured anywhere), UDP source port --sport
// (default 49152), checksum 0 (allowed over IPv4). With --random-mac, 6 fresh pseudo-random bytes
// (a unicast, locally administered MAC) are written at OFFSET of every payload: an inner source
// MAC never seen before. Sends with blocking sendmmsg batches (default 64) until SIGTERM/SIGINT or
// --seconds (default 600) pass; prints "ready" once the socket is open, and at the end one JSON
// line: {"sent": packets, "seconds": s, "pps": rate, "errors": failed sendmmsg calls}.
//
// Build: cc -O2 -o udp-flood udp-flood.c (the tests do this on demand). Needs CAP_NET_RAW.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 256
#define MAX_PAYLOADS 4096
#define MAX_PAYLOAD 1472

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char* what) {
  fprintf(stderr, "udp-flood: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void usage(void) {
  fprintf(stderr,
          "usage: udp-flood --dst ADDR --port P --payloads FILE --src ADDR [--sources N] [--sport P]\n"
          "                 [--random-mac OFFSET] [--seconds S] [--batch N]\n");
  exit(2);
}

static struct in_addr parse_addr(const char* s) {
  struct in_addr a;
  if (inet_pton(AF_INET, s, &a) != 1) {
    fprintf(stderr, "udp-flood: not an IPv4 address: %s\n", s);
    exit(2);
  }
  return a;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_random(void) {  // xorshift64*
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 0x2545f4914f6cdd1dull;
}

struct packet {
  size_t length;  // IP header + UDP header + payload
  uint8_t bytes[sizeof(struct iphdr) + sizeof(struct udphdr) + MAX_PAYLOAD];
};

int main(int argc, char** argv) {
  const char *dst = NULL, *src = NULL, *file = NULL;
  int port = 0, sport = 49152, batch = 64, mac_offset = -1;
  long sources = 1;
  double seconds = 600;
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    if (i + 1 >= argc) usage();
    const char* v = argv[++i];
    if (!strcmp(a, "--dst")) dst = v;
    else if (!strcmp(a, "--src")) src = v;
    else if (!strcmp(a, "--payloads")) file = v;
    else if (!strcmp(a, "--port")) port = atoi(v);
    else if (!strcmp(a, "--sport")) sport = atoi(v);
    else if (!strcmp(a, "--sources")) sources = atol(v);
    else if (!strcmp(a, "--random-mac")) mac_offset = atoi(v);
    else if (!strcmp(a, "--seconds")) seconds = atof(v);
    else if (!strcmp(a, "--batch")) batch = atoi(v);
    else usage();
  }
  if (!dst || !src || !file || port <= 0 || port > 65535 || sources < 1 || batch < 1 || batch > MAX_BATCH) usage();
  struct in_addr dst_addr = parse_addr(dst), src_addr = parse_addr(src);

  // The payloads, each made into a whole packet once; only the source address (and the MAC)
  // change per send.
  FILE* f = fopen(file, "rb");
  if (!f) die(file);
  static struct packet templates[MAX_PAYLOADS];
  size_t count = 0;
  for (;;) {
    uint8_t len[2];
    if (fread(len, 1, 2, f) != 2) break;
    size_t n = ((size_t)len[0] << 8) | len[1];
    if (count == MAX_PAYLOADS || n > MAX_PAYLOAD) {
      fprintf(stderr, "udp-flood: too many payloads or one longer than %d bytes\n", MAX_PAYLOAD);
      return 2;
    }
    struct packet* p = &templates[count++];
    p->length = sizeof(struct iphdr) + sizeof(struct udphdr) + n;
    if (fread(p->bytes + sizeof(struct iphdr) + sizeof(struct udphdr), 1, n, f) != n) {
      fprintf(stderr, "udp-flood: %s is truncated\n", file);
      return 2;
    }
    if (mac_offset >= 0 && (size_t)mac_offset + 6 > n) {
      fprintf(stderr, "udp-flood: --random-mac %d is beyond a %zu-byte payload\n", mac_offset, n);
      return 2;
    }
    struct iphdr* ip = (struct iphdr*)p->bytes;
    ip->version = 4;
    ip->ihl = 5;
    ip->tot_len = htons((uint16_t)p->length);
    ip->frag_off = htons(IP_DF);
    ip->ttl = 64;
    ip->protocol = IPPROTO_UDP;
    ip->daddr = dst_addr.s_addr;  // id and header checksum: filled in by the kernel
    struct udphdr* udp = (struct udphdr*)(p->bytes + sizeof(struct iphdr));
    udp->source = htons((uint16_t)sport);
    udp->dest = htons((uint16_t)port);
    udp->len = htons((uint16_t)(p->length - sizeof(struct iphdr)));
    udp->check = 0;
  }
  fclose(f);
  if (count == 0) {
    fprintf(stderr, "udp-flood: %s holds no payload\n", file);
    return 2;
  }

  int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
  if (fd < 0) die("socket(AF_INET, SOCK_RAW, IPPROTO_RAW)");
  int sndbuf = 4 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) != 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  rng ^= (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL);

  // One buffer per batch slot: a slot's packet is stamped, then sent from there.
  static struct packet slots[MAX_BATCH];
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[MAX_BATCH];
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr = dst_addr};
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < batch; i++) {
    iov[i].iov_base = slots[i].bytes;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &to;
    msgs[i].msg_hdr.msg_namelen = sizeof to;
  }
  printf("ready\n");
  fflush(stdout);

  const uint32_t base = ntohl(src_addr.s_addr);
  uint64_t sent = 0, errors = 0, next = 0;
  const double t0 = now();
  double t = t0;
  while (!stop && t - t0 < seconds) {
    for (int i = 0; i < batch; i++) {
      const struct packet* tp = &templates[(next + i) % count];
      memcpy(slots[i].bytes, tp->bytes, tp->length);
      iov[i].iov_len = tp->length;
      ((struct iphdr*)slots[i].bytes)->saddr = htonl(base + (uint32_t)((next + i) % (uint64_t)sources));
      if (mac_offset >= 0) {
        uint8_t* mac = slots[i].bytes + sizeof(struct iphdr) + sizeof(struct udphdr) + mac_offset;
        uint64_t r = next_random();
        memcpy(mac, &r, 6);
        mac[0] = (uint8_t)((mac[0] & 0xfc) | 0x02);
      }
    }
    int n = sendmmsg(fd, msgs, (unsigned)batch, 0);
    if (n < 0) {
      if (errno != EINTR) errors++;
      if (errno != EINTR && errno != ENOBUFS && errno != EAGAIN) die("sendmmsg");
    } else {
      sent += (uint64_t)n;
      next += (uint64_t)n;
    }
    t = now();
  }
  const double elapsed = t - t0;
  printf("{\"sent\": %llu, \"seconds\": %.3f, \"pps\": %.0f, \"errors\": %llu}\n", (unsigned long long)sent, elapsed,
         elapsed > 0 ? (double)sent / elapsed : 0.0, (unsigned long long)errors);
  return 0;
}
