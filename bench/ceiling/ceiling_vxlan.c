// ceiling_vxlan: the least work a userspace VXLAN forwarder between a TAP device and a UDP
// socket cannot avoid, and nothing else: the ceiling the bench holds overlayfwd's vxlan mode to.
//
//   ceiling_vxlan TAP LOCAL REMOTE VNI PORT ADDRESS/PREFIX [--mtu 1450] [--threads 1|2]
//                 [--gso-max-segs N|auto] [--no-small-trains]
//   ceiling_vxlan --checksum-selftest
//
// One process per host, run inside the host's network namespace (`ip netns exec NS ...`). It
// creates the TAP device TAP (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, TUNSETVNETHDRSZ 10,
// TUNSETOFFLOAD CSUM | TSO4 | TSO6), gives it ADDRESS/PREFIX and the MTU, sets its gso_max_segs
// (rtnetlink) and brings it up; binds a UDP socket to LOCAL:PORT with UDP_GRO on. Every frame
// from the TAP goes to REMOTE:PORT (point to point: no FDB, no learning, no peers table); every
// datagram from REMOTE (any source port: the kernel's VXLAN device sends from a flow hash) with
// VXLAN flags 0x08 and this VNI goes to the TAP. The UDP source port is PORT.
// IPv4 underlay only.
//
// Per super-frame (a TCP TSO frame of up to 64 KB from the TAP, gso_type TCPV4/TCPV6):
//   - one readv: [virtio_net_hdr][frame];
//   - per segment, a small header block: the VXLAN header and the inner Ethernet, IP and TCP
//     headers (IP total length / payload length, IPv4 ID and header checksum, TCP sequence
//     number and flags fixed), the TCP checksum computed over the segment's payload slice where
//     it lies in the read buffer;
//   - the whole train in one sendmsg with UDP_SEGMENT and the iovec array
//     [hdr1, payload1, hdr2, payload2, ...]: the kernel adds the outer IP and UDP headers and
//     cuts the train into datagrams (over a veth the train crosses as one GSO packet). A train
//     holds at most 65,507 bytes of UDP payload; gso_max_segs on the TAP (auto: what fits one
//     train at this MTU, 44 at 1450) keeps each super-frame to one train.
// Per received datagram train (one recvmmsg slot; UDP_GRO gives the segment size):
//   - each VXLAN segment is checked (flags, VNI); consecutive TCP segments of one flow (same
//     addresses, ports, ACK, window, options; contiguous sequence numbers; only the last one
//     short or with PSH) are written to the TAP in one writev:
//     [virtio_net_hdr (NEEDS_CSUM, gso_type TCPV4/TCPV6, gso_size, csum_start/offset)]
//     [the first segment's headers, IP length, IPv4 header checksum and the TCP pseudo-header
//     checksum fixed for the whole run][payload1][payload2]...
//     The inner TCP checksums are not verified: the outer UDP checksum covers the inner frame
//     on the wire and the kernel checks it.
// Anything else (ARP, ICMP, UDP, a lone TCP segment) is one frame per datagram: read from the
// TAP one by one (NEEDS_CSUM completed), up to 64 sent with one sendmmsg, where each run of
// frames of one length (the last may be shorter: 64-byte UDP, pure ACKs) is one UDP_SEGMENT
// message, as overlayfwd sends them (--no-small-trains: one datagram per message); received in
// recvmmsg batches of up to 64 (a train in one slot) and written to the TAP one writev each.
// No payload byte is copied in userspace: the four kernel copies (TAP read, UDP send, UDP
// receive, TAP write) are the only ones.
//
// Threads: --threads 1 (default) forwards both directions on one thread (poll on both fds,
// drained in turns); --threads 2 gives each direction its own thread. The main thread only
// waits for signals.
//
// Output: "ready {json}" on stdout once the TAP is up and the socket bound; on SIGUSR1 and at
// exit (SIGTERM, SIGINT) one line "stats {json}" with the counters. Errors on stderr; exit 1
// on a failed setup, 2 on bad arguments.
//
// --checksum-selftest checks the checksum against a byte-by-byte reference (random lengths and
// alignments), times it over 1,398-byte slices and 64 KB, prints one JSON line and exits.
//
// Build: cc -O2 -pthread -o ceiling_vxlan ceiling_vxlan.c (bench/ceiling/Makefile, or the bench
// does it on demand). Needs CAP_NET_ADMIN (root) in the namespace.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

// ---- sizes and wire constants ------------------------------------------------------------------

#define VNET_HLEN 10  // struct virtio_net_hdr
#define ETH_HLEN 14
#define VXLAN_HLEN 8
#define OUTER_HLEN 28                // outer IPv4 + UDP, added by the kernel
#define MAX_UDP_PAYLOAD 65507        // one IPv4 datagram: 65535 - 20 - 8
#define MAX_TRAIN 64                 // datagrams per UDP_SEGMENT send (UDP_MAX_SEGMENTS on older kernels)
#define MAX_RUN 64                   // segments per coalesced TAP write
#define BUF_SIZE (65536 + 512)       // one super-frame, or one UDP_GRO train
#define TX_BATCH 64                  // TAP reads per turn; frames per sendmmsg
#define RX_BATCH 64                  // datagrams (trains) per recvmmsg
#define HDR_SLOT 160                 // VXLAN 8 + Ethernet 14 + IP <= 60 + TCP <= 60, rounded up

// virtio_net_hdr (<linux/virtio_net.h>), host byte order (tun's default on little-endian hosts).
#define VNET_F_NEEDS_CSUM 1
#define VNET_GSO_NONE 0
#define VNET_GSO_TCPV4 1
#define VNET_GSO_TCPV6 4
#define VNET_GSO_ECN 0x80

struct vnet_hdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
} __attribute__((packed));

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_CWR 0x80

static void die(const char* what) {
  fprintf(stderr, "ceiling_vxlan: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void usage(void) {
  fprintf(stderr,
          "usage: ceiling_vxlan TAP LOCAL REMOTE VNI PORT ADDRESS/PREFIX [--mtu N] [--threads 1|2] [--gso-max-segs N|auto]\n"
          "                     [--no-small-trains]\n"
          "       ceiling_vxlan --checksum-selftest\n");
  exit(2);
}

static inline uint16_t get16(const uint8_t* p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t get32(const uint8_t* p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static inline void put16(uint8_t* p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void put32(uint8_t* p, uint32_t v) { p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v; }

// ---- the Internet checksum -----------------------------------------------------------------------
//
// The ones' complement sum of the 16-bit words of `buf` in the host's (little-endian) order,
// unfolded: four 64-bit words per step into four 128-bit accumulators (add + adc each, four
// independent chains), folded by end-around carry. Summed in host order, the folded result
// stored back as a host-order u16 is the checksum in network order (RFC 1071, 2.(B)). Valid for
// any alignment; a slice must start at an even offset of what it is summed into.

static inline uint64_t add64(uint64_t a, uint64_t b) {
  a += b;
  return a + (a < b);
}

static uint64_t csum_partial(const void* buf, size_t n) {
  const uint8_t* p = buf;
  unsigned __int128 s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  while (n >= 32) {
    uint64_t a, b, c, d;
    memcpy(&a, p, 8);
    memcpy(&b, p + 8, 8);
    memcpy(&c, p + 16, 8);
    memcpy(&d, p + 24, 8);
    s0 += a;
    s1 += b;
    s2 += c;
    s3 += d;
    p += 32;
    n -= 32;
  }
  while (n >= 8) {
    uint64_t a;
    memcpy(&a, p, 8);
    s0 += a;
    p += 8;
    n -= 8;
  }
  uint64_t tail = 0;  // the last 0-7 bytes, zero-padded (an odd last byte pads as in RFC 1071)
  if (n) memcpy(&tail, p, n);
  uint64_t r = add64((uint64_t)s0, (uint64_t)(s0 >> 64));
  r = add64(r, (uint64_t)s1);
  r = add64(r, (uint64_t)(s1 >> 64));
  r = add64(r, (uint64_t)s2);
  r = add64(r, (uint64_t)(s2 >> 64));
  r = add64(r, (uint64_t)s3);
  r = add64(r, (uint64_t)(s3 >> 64));
  return add64(r, tail);
}

static inline uint16_t csum_fold(uint64_t s) {
  s = (s & 0xffffffffu) + (s >> 32);
  s = (s & 0xffffffffu) + (s >> 32);
  s = (s & 0xffffu) + (s >> 16);
  s = (s & 0xffffu) + (s >> 16);
  return (uint16_t)s;
}

// Stores the host-order folded value at p (network order on the wire).
static inline void store_csum(uint8_t* p, uint16_t folded) { memcpy(p, &folded, 2); }

// The pseudo-header's protocol and length words, in the same host-order sum.
static inline uint64_t pseudo_proto_len(uint8_t proto, uint32_t length) { return (uint64_t)htons(proto) + htons((uint16_t)length) + (uint64_t)htons((uint16_t)(length >> 16)); }

static void ipv4_header_checksum(uint8_t* ip, unsigned ihl) {
  ip[10] = ip[11] = 0;
  store_csum(ip + 10, (uint16_t)~csum_fold(csum_partial(ip, ihl)));
}

// ---- counters ----------------------------------------------------------------------------------

struct tx_stats {  // TAP -> UDP
  uint64_t tap_reads, tap_bytes;
  uint64_t super_frames, super_segments, gso_sends;
  uint64_t single_frames, single_messages, small_trains, small_train_frames, sendmmsg_calls;
  uint64_t drops, send_errors;
};

struct rx_stats {  // UDP -> TAP
  uint64_t recvmmsg_calls, datagrams, gro_trains, segments, bytes;
  uint64_t coalesced_writes, coalesced_segments, single_writes;
  uint64_t drops, wrong_vni, unknown_source, write_errors;
};

#define BUMP(x, n) __atomic_store_n(&(x), (x) + (n), __ATOMIC_RELAXED)
#define LOAD(x) ((unsigned long long)__atomic_load_n(&(x), __ATOMIC_RELAXED))

// ---- configuration and shared state -----------------------------------------------------------

struct config {
  const char* tap_name;
  struct in_addr local, remote, address;
  unsigned prefix;
  uint32_t vni;
  uint16_t port;
  unsigned mtu;
  int threads;
  int gso_max_segs;  // -1: auto
  int small_trains;  // runs of equal-size small frames as UDP_SEGMENT trains
};

static struct config cfg;
static int tap_fd = -1, udp_fd = -1;
static struct sockaddr_in remote_addr;  // where every datagram goes
static uint8_t vxlan_header[VXLAN_HLEN];
static unsigned tx_train_max;  // datagrams per UDP_SEGMENT send at this MTU
static int gso_max_segs_set;   // what the TAP got, or -1 if setting it failed
static struct tx_stats txs;
static struct rx_stats rxs;
static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;
static int first_send_error_printed, first_write_error_printed;

// ---- TAP -> UDP ----------------------------------------------------------------------------------

struct tx {
  uint8_t* buf[TX_BATCH];
  struct vnet_hdr vh[TX_BATCH];
  size_t len[TX_BATCH];
  struct iovec iov[TX_BATCH][2];  // [VXLAN header, frame] per frame, contiguous: a train is a slice
  int pending;                    // frames queued for the next sendmmsg
  struct mmsghdr mm[TX_BATCH];
  char train_control[TX_BATCH][CMSG_SPACE(sizeof(uint16_t))];
  uint8_t hdr[MAX_TRAIN][HDR_SLOT];
  struct iovec train_iov[2 * MAX_TRAIN];
  char control[CMSG_SPACE(sizeof(uint16_t))];
};

static void send_error(int err) {
  BUMP(txs.send_errors, 1);
  if (!first_send_error_printed) {
    first_send_error_printed = 1;
    fprintf(stderr, "ceiling_vxlan: send: %s (counted from now on)\n", strerror(err));
  }
}

static void set_udp_segment(struct msghdr* msg, char* control, size_t control_size, uint16_t segment) {
  memset(control, 0, control_size);
  msg->msg_control = control;
  msg->msg_controllen = control_size;
  struct cmsghdr* c = CMSG_FIRSTHDR(msg);
  c->cmsg_level = SOL_UDP;
  c->cmsg_type = UDP_SEGMENT;
  c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
  memcpy(CMSG_DATA(c), &segment, sizeof segment);
}

// Sends the queued frames, one sendmmsg for all: with small trains on, each run of frames of one
// length (the last may be shorter) is one UDP_SEGMENT message, as overlayfwd sends them;
// otherwise one datagram per message.
static void tx_flush(struct tx* t) {
  if (!t->pending) return;
  int msgs = 0;
  for (int i = 0; i < t->pending;) {
    const size_t len = t->len[i];
    int n = 1;
    if (cfg.small_trains) {
      size_t cap = MAX_UDP_PAYLOAD / (VXLAN_HLEN + len);
      if (cap > MAX_TRAIN) cap = MAX_TRAIN;
      while (i + n < t->pending && (size_t)n < cap && t->len[i + n] <= len && t->len[i + n - 1] == len) n++;
    }
    struct msghdr* m = &t->mm[msgs].msg_hdr;
    *m = (struct msghdr){.msg_name = &remote_addr, .msg_namelen = sizeof remote_addr, .msg_iov = t->iov[i], .msg_iovlen = 2 * (size_t)n};
    if (n > 1) {
      set_udp_segment(m, t->train_control[msgs], sizeof t->train_control[msgs], (uint16_t)(VXLAN_HLEN + len));
      BUMP(txs.small_trains, 1);
      BUMP(txs.small_train_frames, (uint64_t)n);
    }
    msgs++;
    i += n;
  }
  BUMP(txs.single_messages, (uint64_t)msgs);
  int off = 0;
  while (off < msgs) {
    int n = sendmmsg(udp_fd, t->mm + off, (unsigned)(msgs - off), 0);
    BUMP(txs.sendmmsg_calls, 1);
    if (n < 0) {
      if (errno == EINTR) continue;
      send_error(errno);
      n = 1;  // drop the message that failed, try the rest
    }
    off += n;
  }
  t->pending = 0;
}

// Completes a NEEDS_CSUM frame's transport checksum: the field holds the pseudo-header sum.
static int complete_checksum(uint8_t* frame, size_t len, const struct vnet_hdr* vh) {
  size_t start = vh->csum_start, field = start + vh->csum_offset;
  if (start >= len || field + 2 > len) return -1;
  uint16_t c = (uint16_t)~csum_fold(csum_partial(frame + start, len - start));
  if (vh->csum_offset == 6 && c == 0) c = 0xffff;  // UDP: 0 means "no checksum"
  store_csum(frame + field, c);
  return 0;
}

// Cuts a TCP super-frame into segments and sends them as UDP_SEGMENT trains.
static void tx_super_frame(struct tx* t, uint8_t* frame, size_t len, const struct vnet_hdr* vh) {
  const uint8_t gso = vh->gso_type & (uint8_t)~VNET_GSO_ECN;
  const unsigned mss = vh->gso_size;
  const int v6 = gso == VNET_GSO_TCPV6;
  if ((gso != VNET_GSO_TCPV4 && !v6) || mss == 0 || len < ETH_HLEN + 40) goto drop;
  uint8_t* ip = frame + ETH_HLEN;
  unsigned ihl;
  uint64_t addr_sum;
  if (!v6) {
    if (get16(frame + 12) != 0x0800 || (ip[0] >> 4) != 4 || ip[9] != 6) goto drop;
    ihl = (ip[0] & 15u) * 4;
    if (ihl < 20) goto drop;
    addr_sum = csum_partial(ip + 12, 8);
  } else {
    if (get16(frame + 12) != 0x86dd || (ip[0] >> 4) != 6 || ip[6] != 6) goto drop;
    ihl = 40;
    addr_sum = csum_partial(ip + 8, 32);
  }
  const size_t l4 = ETH_HLEN + ihl;
  if (l4 + 20 > len) goto drop;
  const unsigned thl = (frame[l4 + 12] >> 4) * 4u;
  const size_t hl = l4 + thl;
  if (thl < 20 || hl > len || VXLAN_HLEN + hl > HDR_SLOT) goto drop;
  const size_t payload = len - hl;
  const unsigned nseg = payload ? (unsigned)((payload + mss - 1) / mss) : 1;
  const size_t seg_bytes = VXLAN_HLEN + hl + mss;  // UDP payload of a full segment
  unsigned per_train = (unsigned)(MAX_UDP_PAYLOAD / seg_bytes);
  if (per_train > MAX_TRAIN) per_train = MAX_TRAIN;
  if (per_train == 0) goto drop;
  const uint32_t seq0 = get32(frame + l4 + 4);
  const uint16_t id0 = v6 ? 0 : get16(ip + 4);
  const uint8_t flags0 = frame[l4 + 13];

  BUMP(txs.super_frames, 1);
  for (unsigned s = 0; s < nseg; s += per_train) {
    const unsigned k = nseg - s < per_train ? nseg - s : per_train;
    for (unsigned j = 0; j < k; j++) {
      const unsigned i = s + j;
      const size_t off = hl + (size_t)i * mss;
      const size_t plen = payload - (size_t)i * mss < mss ? payload - (size_t)i * mss : mss;
      uint8_t* h = t->hdr[j];
      memcpy(h, vxlan_header, VXLAN_HLEN);
      memcpy(h + VXLAN_HLEN, frame, hl);
      uint8_t* hip = h + VXLAN_HLEN + ETH_HLEN;
      uint8_t* tcp = h + VXLAN_HLEN + l4;
      const uint32_t tcp_len = (uint32_t)(thl + plen);
      if (!v6) {
        put16(hip + 2, (uint16_t)(ihl + tcp_len));
        put16(hip + 4, (uint16_t)(id0 + i));
        ipv4_header_checksum(hip, ihl);
      } else {
        put16(hip + 4, (uint16_t)tcp_len);
      }
      put32(tcp + 4, seq0 + (uint32_t)(i * mss));
      uint8_t fl = flags0;
      if (i != 0) fl &= (uint8_t)~TCP_CWR;
      if (i != nseg - 1) fl &= (uint8_t)~(TCP_FIN | TCP_PSH);
      tcp[13] = fl;
      tcp[16] = tcp[17] = 0;
      uint64_t sum = add64(addr_sum, pseudo_proto_len(6, tcp_len));
      sum = add64(sum, csum_partial(tcp, thl));
      sum = add64(sum, csum_partial(frame + off, plen));
      store_csum(tcp + 16, (uint16_t)~csum_fold(sum));
      t->train_iov[2 * j] = (struct iovec){h, VXLAN_HLEN + hl};
      t->train_iov[2 * j + 1] = (struct iovec){frame + off, plen};
    }
    struct msghdr msg = {.msg_name = &remote_addr, .msg_namelen = sizeof remote_addr, .msg_iov = t->train_iov, .msg_iovlen = 2 * k};
    if (k > 1) set_udp_segment(&msg, t->control, sizeof t->control, (uint16_t)seg_bytes);
    for (;;) {
      if (sendmsg(udp_fd, &msg, 0) >= 0) break;
      if (errno == EINTR) continue;
      send_error(errno);
      break;
    }
    BUMP(txs.gso_sends, 1);
    BUMP(txs.super_segments, k);
  }
  return;
drop:
  BUMP(txs.drops, 1);
}

// Reads up to TX_BATCH frames from the TAP and sends them. Returns the frames read.
static int tx_turn(struct tx* t) {
  int frames = 0;
  while (frames < TX_BATCH) {
    const int slot = t->pending;
    struct iovec r[2] = {{&t->vh[slot], VNET_HLEN}, {t->buf[slot], BUF_SIZE}};
    const ssize_t n = readv(tap_fd, r, 2);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      die("read from the TAP device");
    }
    frames++;
    BUMP(txs.tap_reads, 1);
    BUMP(txs.tap_bytes, (uint64_t)n);
    if (n < VNET_HLEN + ETH_HLEN) {
      BUMP(txs.drops, 1);
      continue;
    }
    const size_t len = (size_t)n - VNET_HLEN;
    const struct vnet_hdr* vh = &t->vh[slot];
    if (vh->gso_type != VNET_GSO_NONE) {
      tx_flush(t);  // keep the order: what was read before goes first
      tx_super_frame(t, t->buf[slot], len, vh);
      continue;
    }
    if ((vh->flags & VNET_F_NEEDS_CSUM) && complete_checksum(t->buf[slot], len, vh) < 0) {
      BUMP(txs.drops, 1);
      continue;
    }
    t->iov[slot][0] = (struct iovec){vxlan_header, VXLAN_HLEN};
    t->iov[slot][1] = (struct iovec){t->buf[slot], len};
    t->len[slot] = len;
    t->pending++;
    BUMP(txs.single_frames, 1);
    if (t->pending == TX_BATCH) tx_flush(t);
  }
  tx_flush(t);
  return frames;
}

// ---- UDP -> TAP ----------------------------------------------------------------------------------

struct run {  // consecutive TCP segments of one flow, to be written as one GSO frame
  unsigned nseg;
  int v6;
  size_t l4, hl;  // offsets in the inner frame: TCP header, payload
  unsigned thl;
  size_t mss, payload;
  uint32_t next_seq;
  int psh;
  const uint8_t* first;  // the first segment's inner frame (written as is when it stays alone)
  size_t first_len;
  uint8_t hdr[HDR_SLOT];  // its headers, fixed up for the run at the flush
  struct vnet_hdr vh;
  struct iovec iov[2 + MAX_RUN];
};

struct rx {
  uint8_t* buf[RX_BATCH];
  struct sockaddr_in from[RX_BATCH];
  struct mmsghdr mm[RX_BATCH];
  struct iovec iov[RX_BATCH];
  char control[RX_BATCH][CMSG_SPACE(sizeof(int))];
  struct run run;
};

static const struct vnet_hdr zero_vnet_hdr;

static void tap_write(struct iovec* iov, int count) {
  for (;;) {
    if (writev(tap_fd, iov, count) >= 0) return;
    if (errno == EINTR) continue;
    BUMP(rxs.write_errors, 1);
    if (!first_write_error_printed) {
      first_write_error_printed = 1;
      fprintf(stderr, "ceiling_vxlan: write to the TAP device: %s (counted from now on)\n", strerror(errno));
    }
    return;
  }
}

static void write_single(const uint8_t* frame, size_t len) {
  struct iovec iov[2] = {{(void*)&zero_vnet_hdr, VNET_HLEN}, {(void*)frame, len}};
  tap_write(iov, 2);
  BUMP(rxs.single_writes, 1);
}

static void run_flush(struct run* r) {
  if (r->nseg == 0) return;
  if (r->nseg == 1) {
    write_single(r->first, r->first_len);
    r->nseg = 0;
    return;
  }
  uint8_t* ip = r->hdr + ETH_HLEN;
  uint8_t* tcp = r->hdr + r->l4;
  const uint32_t tcp_len = (uint32_t)(r->thl + r->payload);
  uint64_t sum;
  if (!r->v6) {
    const unsigned ihl = (unsigned)(r->l4 - ETH_HLEN);
    put16(ip + 2, (uint16_t)(ihl + tcp_len));
    ipv4_header_checksum(ip, ihl);
    sum = csum_partial(ip + 12, 8);
  } else {
    put16(ip + 4, (uint16_t)tcp_len);
    sum = csum_partial(ip + 8, 32);
  }
  if (r->psh) tcp[13] |= TCP_PSH;
  // CHECKSUM_PARTIAL: the field holds the pseudo-header sum (not complemented); the kernel
  // takes the rest as verified.
  store_csum(tcp + 16, csum_fold(add64(sum, pseudo_proto_len(6, tcp_len))));
  r->vh = (struct vnet_hdr){
      .flags = VNET_F_NEEDS_CSUM,
      .gso_type = r->v6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4,
      .hdr_len = (uint16_t)r->hl,
      .gso_size = (uint16_t)r->mss,
      .csum_start = (uint16_t)r->l4,
      .csum_offset = 16,
  };
  r->iov[0] = (struct iovec){&r->vh, VNET_HLEN};
  r->iov[1] = (struct iovec){r->hdr, r->hl};
  tap_write(r->iov, (int)(2 + r->nseg));
  BUMP(rxs.coalesced_writes, 1);
  BUMP(rxs.coalesced_segments, r->nseg);
  r->nseg = 0;
}

// Whether TCP segment `f` continues the run: the same flow and the same headers but for the
// IP length / ID / checksum and the TCP sequence number, PSH and checksum (as Linux GRO asks).
static int run_continues(const struct run* r, const uint8_t* f, int v6, size_t l4, unsigned thl, size_t plen, uint32_t seq) {
  if (r->nseg == 0 || r->v6 != v6 || r->l4 != l4 || r->thl != thl || seq != r->next_seq || plen > r->mss) return 0;
  if (r->nseg >= MAX_RUN || (r->hl - ETH_HLEN) + r->payload + plen > 65535) return 0;
  const uint8_t* a = r->hdr;
  if (memcmp(a, f, ETH_HLEN) != 0) return 0;
  const uint8_t *ia = a + ETH_HLEN, *ib = f + ETH_HLEN;
  if (!v6) {
    // version/IHL, TOS; flags/fragment offset; TTL, protocol; addresses; options
    if (memcmp(ia, ib, 2) != 0 || memcmp(ia + 6, ib + 6, 4) != 0 || memcmp(ia + 12, ib + 12, l4 - ETH_HLEN - 12) != 0) return 0;
  } else {
    // version/class/flow label; next header, hop limit, addresses
    if (memcmp(ia, ib, 4) != 0 || memcmp(ia + 6, ib + 6, 34) != 0) return 0;
  }
  const uint8_t *ta = a + l4, *tb = f + l4;
  // ports; ACK number, data offset; window, urgent pointer, options (flags checked by the caller)
  if (memcmp(ta, tb, 4) != 0 || memcmp(ta + 8, tb + 8, 5) != 0 || memcmp(ta + 14, tb + 14, 2) != 0 || memcmp(ta + 18, tb + 18, thl - 18) != 0) return 0;
  return 1;
}

static void rx_segment(struct run* r, const uint8_t* seg, size_t slen) {
  BUMP(rxs.segments, 1);
  BUMP(rxs.bytes, slen);
  if (slen < VXLAN_HLEN + ETH_HLEN || seg[0] != 0x08 || seg[1] || seg[2] || seg[3] || seg[7]) {
    BUMP(rxs.drops, 1);
    return;
  }
  if (memcmp(seg + 4, vxlan_header + 4, 3) != 0) {
    BUMP(rxs.wrong_vni, 1);
    return;
  }
  const uint8_t* f = seg + VXLAN_HLEN;
  const size_t len = slen - VXLAN_HLEN;
  // A TCP data segment with nothing but ACK (and PSH) set can join a run.
  const uint16_t type = get16(f + 12);
  const uint8_t* ip = f + ETH_HLEN;
  int v6 = 0;
  size_t l4 = 0;
  if (type == 0x0800 && len >= ETH_HLEN + 20 && (ip[0] >> 4) == 4 && ip[9] == 6 && (get16(ip + 6) & 0x3fff) == 0) {
    const unsigned ihl = (ip[0] & 15u) * 4;
    if (ihl >= 20 && get16(ip + 2) == len - ETH_HLEN) l4 = ETH_HLEN + ihl;
  } else if (type == 0x86dd && len >= ETH_HLEN + 40 && (ip[0] >> 4) == 6 && ip[6] == 6 && get16(ip + 4) == len - ETH_HLEN - 40) {
    v6 = 1;
    l4 = ETH_HLEN + 40;
  }
  if (l4 && l4 + 20 <= len) {
    const uint8_t* tcp = f + l4;
    const unsigned thl = (tcp[12] >> 4) * 4u;
    const size_t hl = l4 + thl;
    const uint8_t flags = tcp[13];
    if (thl >= 20 && hl < len && hl <= HDR_SLOT && (flags & ~(TCP_ACK | TCP_PSH)) == 0 && (flags & TCP_ACK)) {
      const size_t plen = len - hl;
      const uint32_t seq = get32(tcp + 4);
      if (!run_continues(r, f, v6, l4, thl, plen, seq)) {
        run_flush(r);
        r->v6 = v6;
        r->l4 = l4;
        r->thl = thl;
        r->hl = hl;
        r->mss = plen;
        r->payload = 0;
        r->psh = 0;
        r->first = f;
        r->first_len = len;
        memcpy(r->hdr, f, hl);
      }
      r->iov[2 + r->nseg] = (struct iovec){(void*)(f + hl), plen};
      r->nseg++;
      r->payload += plen;
      r->next_seq = seq + (uint32_t)plen;
      if (flags & TCP_PSH) r->psh = 1;
      // Only the last segment of a run may be short or carry PSH.
      if ((flags & TCP_PSH) || plen < r->mss) run_flush(r);
      return;
    }
  }
  run_flush(r);
  write_single(f, len);
}

// One recvmmsg batch, every segment of every train handled. Returns the datagrams received.
static int rx_turn(struct rx* x) {
  for (int i = 0; i < RX_BATCH; i++) {
    x->mm[i].msg_hdr.msg_name = &x->from[i];
    x->mm[i].msg_hdr.msg_namelen = sizeof x->from[i];
    x->mm[i].msg_hdr.msg_control = x->control[i];
    x->mm[i].msg_hdr.msg_controllen = sizeof x->control[i];
    x->mm[i].msg_hdr.msg_flags = 0;
  }
  int n;
  for (;;) {
    n = recvmmsg(udp_fd, x->mm, RX_BATCH, MSG_DONTWAIT, NULL);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return 0;
    die("recvmmsg");
  }
  BUMP(rxs.recvmmsg_calls, 1);
  for (int i = 0; i < n; i++) {
    const struct msghdr* m = &x->mm[i].msg_hdr;
    const size_t len = x->mm[i].msg_len;
    BUMP(rxs.datagrams, 1);
    if (m->msg_flags & MSG_TRUNC) {
      BUMP(rxs.drops, 1);
      continue;
    }
    if (x->from[i].sin_addr.s_addr != cfg.remote.s_addr) {  // the one peer
      BUMP(rxs.unknown_source, 1);
      continue;
    }
    size_t seg = len;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR((struct msghdr*)m, c)) {
      if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
        int gso;
        memcpy(&gso, CMSG_DATA(c), sizeof gso);
        if (gso > 0) seg = (size_t)gso;
      }
    }
    if (seg < len) BUMP(rxs.gro_trains, 1);
    for (size_t off = 0; off < len; off += seg) rx_segment(&x->run, x->buf[i] + off, len - off < seg ? len - off : seg);
  }
  run_flush(&x->run);  // before the buffers are reused
  return n;
}

// ---- threads -------------------------------------------------------------------------------------

static void* xmalloc(size_t n) {
  void* p = calloc(1, n);
  if (!p) die("calloc");
  return p;
}

static struct tx* tx_new(void) {
  struct tx* t = xmalloc(sizeof *t);
  for (int i = 0; i < TX_BATCH; i++) t->buf[i] = xmalloc(BUF_SIZE);
  return t;
}

static struct rx* rx_new(void) {
  struct rx* x = xmalloc(sizeof *x);
  for (int i = 0; i < RX_BATCH; i++) {
    x->buf[i] = xmalloc(BUF_SIZE);
    x->iov[i] = (struct iovec){x->buf[i], BUF_SIZE};
    x->mm[i].msg_hdr.msg_iov = &x->iov[i];
    x->mm[i].msg_hdr.msg_iovlen = 1;
  }
  return x;
}

static void wait_readable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  while (poll(&p, 1, -1) < 0 && errno == EINTR) {
  }
}

static void* tx_thread(void* arg) {
  struct tx* t = arg;
  for (;;)
    if (tx_turn(t) == 0) wait_readable(tap_fd);
  return NULL;
}

static void* rx_thread(void* arg) {
  struct rx* x = arg;
  for (;;)
    if (rx_turn(x) == 0) wait_readable(udp_fd);
  return NULL;
}

// Both directions on one thread: a turn of each until neither has anything, then poll both.
static void* both_thread(void* arg) {
  (void)arg;
  struct tx* t = tx_new();
  struct rx* x = rx_new();
  for (;;) {
    int work = 1;
    while (work) {
      work = tx_turn(t);
      work += rx_turn(x);
    }
    struct pollfd p[2] = {{.fd = tap_fd, .events = POLLIN}, {.fd = udp_fd, .events = POLLIN}};
    while (poll(p, 2, -1) < 0 && errno == EINTR) {
    }
  }
  return NULL;
}

// ---- setup ---------------------------------------------------------------------------------------

static int open_tap(const char* name) {
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) die("open /dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) die("TUNSETIFF");
  int hdr = VNET_HLEN;
  if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) die("TUNSETVNETHDRSZ");
  if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)) < 0) die("TUNSETOFFLOAD");
  if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) die("O_NONBLOCK");
  return fd;
}

static void configure_link(const char* name) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) die("socket");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
  ifr.ifr_mtu = (int)cfg.mtu;
  if (ioctl(s, SIOCSIFMTU, &ifr) < 0) die("SIOCSIFMTU");
  struct sockaddr_in* sin = (struct sockaddr_in*)&ifr.ifr_addr;
  memset(&ifr.ifr_addr, 0, sizeof ifr.ifr_addr);
  sin->sin_family = AF_INET;
  sin->sin_addr = cfg.address;
  if (ioctl(s, SIOCSIFADDR, &ifr) < 0) die("SIOCSIFADDR");
  sin->sin_addr.s_addr = cfg.prefix ? htonl(~0u << (32 - cfg.prefix)) : 0;
  if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0) die("SIOCSIFNETMASK");
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) die("SIOCGIFFLAGS");
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) die("SIOCSIFFLAGS");
  close(s);
}

// `ip link set NAME gso_max_segs N` (RTM_NEWLINK with IFLA_GSO_MAX_SEGS). Returns 0 or -errno.
static int set_gso_max_segs(const char* name, uint32_t segs) {
  int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (s < 0) return -errno;
  struct {
    struct nlmsghdr nh;
    struct ifinfomsg ifi;
    struct rtattr rta;
    uint32_t value;
  } req;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_len = sizeof req;
  req.nh.nlmsg_type = RTM_NEWLINK;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  req.nh.nlmsg_seq = 1;
  req.ifi.ifi_family = AF_UNSPEC;
  req.ifi.ifi_index = (int)if_nametoindex(name);
  req.rta.rta_type = IFLA_GSO_MAX_SEGS;
  req.rta.rta_len = RTA_LENGTH(sizeof(uint32_t));
  req.value = segs;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  int err = 0;
  if (sendto(s, &req, sizeof req, 0, (struct sockaddr*)&kernel, sizeof kernel) < 0) {
    err = -errno;
  } else {
    char reply[512];
    ssize_t n = recv(s, reply, sizeof reply, 0);
    if (n < 0) err = -errno;
    else if ((size_t)n >= sizeof(struct nlmsghdr) + sizeof(struct nlmsgerr)) {
      struct nlmsghdr* nh = (struct nlmsghdr*)reply;
      if (nh->nlmsg_type == NLMSG_ERROR) err = ((struct nlmsgerr*)NLMSG_DATA(nh))->error;
    }
  }
  close(s);
  return err;
}

static void set_buffer(int fd, int force, int plain, int bytes) {
  if (setsockopt(fd, SOL_SOCKET, force, &bytes, sizeof bytes) == 0) return;
  setsockopt(fd, SOL_SOCKET, plain, &bytes, sizeof bytes);
}

static int open_udp(int* gro) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, 8 << 20);  // as overlayfwd's UDP sockets
  set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, 4 << 20);
  struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons(cfg.port), .sin_addr = cfg.local};
  if (bind(fd, (struct sockaddr*)&local, sizeof local) < 0) die("bind");
  int on = 1;
  *gro = setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof on) == 0;
  return fd;
}

// ---- output --------------------------------------------------------------------------------------

static void print_stats(const char* event) {
  pthread_mutex_lock(&print_lock);
  printf(
      "stats {\"event\":\"%s\",\"tx\":{\"tapReads\":%llu,\"tapBytes\":%llu,\"superFrames\":%llu,\"superSegments\":%llu,\"gsoSends\":%llu,"
      "\"singleFrames\":%llu,\"singleMessages\":%llu,\"smallTrains\":%llu,\"smallTrainFrames\":%llu,\"sendmmsgCalls\":%llu,\"drops\":%llu,\"sendErrors\":%llu},"
      "\"rx\":{\"recvmmsgCalls\":%llu,\"datagrams\":%llu,\"groTrains\":%llu,\"segments\":%llu,\"bytes\":%llu,\"coalescedWrites\":%llu,"
      "\"coalescedSegments\":%llu,\"singleWrites\":%llu,\"drops\":%llu,\"wrongVni\":%llu,\"unknownSource\":%llu,\"writeErrors\":%llu}}\n",
      event, LOAD(txs.tap_reads), LOAD(txs.tap_bytes), LOAD(txs.super_frames), LOAD(txs.super_segments), LOAD(txs.gso_sends), LOAD(txs.single_frames),
      LOAD(txs.single_messages), LOAD(txs.small_trains), LOAD(txs.small_train_frames), LOAD(txs.sendmmsg_calls), LOAD(txs.drops), LOAD(txs.send_errors), LOAD(rxs.recvmmsg_calls), LOAD(rxs.datagrams), LOAD(rxs.gro_trains),
      LOAD(rxs.segments), LOAD(rxs.bytes), LOAD(rxs.coalesced_writes), LOAD(rxs.coalesced_segments), LOAD(rxs.single_writes), LOAD(rxs.drops),
      LOAD(rxs.wrong_vni), LOAD(rxs.unknown_source), LOAD(rxs.write_errors));
  fflush(stdout);
  pthread_mutex_unlock(&print_lock);
}

// ---- --checksum-selftest --------------------------------------------------------------------------

static uint16_t csum_reference(const uint8_t* p, size_t n) {
  uint64_t s = 0;
  for (size_t i = 0; i + 1 < n; i += 2) s += (uint32_t)p[i] | (uint32_t)p[i + 1] << 8;  // host (LE) order words
  if (n & 1) s += p[n - 1];
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)s;
}

static double seconds_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double csum_rate(const uint8_t* buf, size_t len, double budget) {
  volatile uint64_t sink = 0;
  size_t bytes = 0;
  const double t0 = seconds_now();
  double t;
  do {
    for (int i = 0; i < 256; i++) sink += csum_partial(buf + (i & 7), len);
    bytes += 256 * len;
    t = seconds_now() - t0;
  } while (t < budget);
  (void)sink;
  return (double)bytes / t / 1e9;
}

static int checksum_selftest(void) {
  const size_t size = 65536 + 64;
  uint8_t* buf = xmalloc(size);
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < size; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    buf[i] = (uint8_t)x;
  }
  unsigned checked = 0;
  for (size_t off = 0; off < 16; off++)
    for (size_t len = 0; len < 1600; len += 1 + (len > 200) * 13, checked++)
      if (csum_fold(csum_partial(buf + off, len)) != csum_reference(buf + off, len)) {
        printf("{\"ok\":false,\"offset\":%zu,\"length\":%zu}\n", off, len);
        free(buf);
        return 1;
      }
  for (size_t len = 65536 - 7; len <= 65536; len++, checked++)
    if (csum_fold(csum_partial(buf + 3, len)) != csum_reference(buf + 3, len)) {
      printf("{\"ok\":false,\"offset\":3,\"length\":%zu}\n", len);
      free(buf);
      return 1;
    }
  printf("{\"ok\":true,\"checked\":%u,\"gbytesPerSecond1398\":%.2f,\"gbytesPerSecond65536\":%.2f}\n", checked, csum_rate(buf, 1398, 0.3), csum_rate(buf, 65536, 0.3));
  free(buf);
  return 0;
}

// ---- main ----------------------------------------------------------------------------------------

static struct in_addr parse_addr(const char* s, const char* what) {
  struct in_addr a;
  if (inet_pton(AF_INET, s, &a) != 1) {
    fprintf(stderr, "ceiling_vxlan: %s: not an IPv4 address: %s\n", what, s);
    usage();
  }
  return a;
}

static long parse_num(const char* s, long lo, long hi, const char* what) {
  char* end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < lo || v > hi) {
    fprintf(stderr, "ceiling_vxlan: %s wants %ld..%ld, not %s\n", what, lo, hi, s);
    usage();
  }
  return v;
}

int main(int argc, char** argv) {
  if (argc == 2 && strcmp(argv[1], "--checksum-selftest") == 0) return checksum_selftest();
  if (argc < 7) usage();
  cfg.tap_name = argv[1];
  if (strlen(cfg.tap_name) >= IFNAMSIZ) usage();
  cfg.local = parse_addr(argv[2], "LOCAL");
  cfg.remote = parse_addr(argv[3], "REMOTE");
  cfg.vni = (uint32_t)parse_num(argv[4], 0, 0xffffff, "VNI");
  cfg.port = (uint16_t)parse_num(argv[5], 1, 65535, "PORT");
  char address[64];
  snprintf(address, sizeof address, "%s", argv[6]);
  char* slash = strchr(address, '/');
  if (!slash) usage();
  *slash = 0;
  cfg.address = parse_addr(address, "ADDRESS");
  cfg.prefix = (unsigned)parse_num(slash + 1, 0, 32, "PREFIX");
  cfg.mtu = 1450;
  cfg.threads = 1;
  cfg.gso_max_segs = -1;
  cfg.small_trains = 1;
  for (int i = 7; i < argc; i++) {
    if (strcmp(argv[i], "--no-small-trains") == 0) {
      cfg.small_trains = 0;
      continue;
    }
    if (i + 1 >= argc) usage();
    if (strcmp(argv[i], "--mtu") == 0) cfg.mtu = (unsigned)parse_num(argv[++i], 576, 65000, "--mtu");
    else if (strcmp(argv[i], "--threads") == 0) cfg.threads = (int)parse_num(argv[++i], 1, 2, "--threads");
    else if (strcmp(argv[i], "--gso-max-segs") == 0) {
      ++i;
      cfg.gso_max_segs = strcmp(argv[i], "auto") == 0 ? -1 : (int)parse_num(argv[i], 0, 65535, "--gso-max-segs");
    } else usage();
  }
  vxlan_header[0] = 0x08;
  vxlan_header[4] = (uint8_t)(cfg.vni >> 16);
  vxlan_header[5] = (uint8_t)(cfg.vni >> 8);
  vxlan_header[6] = (uint8_t)cfg.vni;
  // A full inner frame is Ethernet + MTU bytes: that plus VXLAN is the UDP payload of a segment.
  tx_train_max = MAX_UDP_PAYLOAD / (VXLAN_HLEN + ETH_HLEN + cfg.mtu);
  if (tx_train_max > MAX_TRAIN) tx_train_max = MAX_TRAIN;

  // Signals go to the main thread only: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGUSR1);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, NULL);
  signal(SIGPIPE, SIG_IGN);

  tap_fd = open_tap(cfg.tap_name);
  configure_link(cfg.tap_name);
  const uint32_t segs = cfg.gso_max_segs < 0 ? tx_train_max : (uint32_t)cfg.gso_max_segs;
  gso_max_segs_set = -1;
  if (segs > 0) {
    const int err = set_gso_max_segs(cfg.tap_name, segs);
    if (err == 0) gso_max_segs_set = (int)segs;
    else fprintf(stderr, "ceiling_vxlan: setting gso_max_segs %u on %s: %s (super-frames may need two sends)\n", segs, cfg.tap_name, strerror(-err));
  }
  int gro = 0;
  udp_fd = open_udp(&gro);
  remote_addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(cfg.port), .sin_addr = cfg.remote};

  pthread_t threads[2];
  if (cfg.threads == 1) {
    if (pthread_create(&threads[0], NULL, both_thread, NULL)) die("pthread_create");
  } else {
    if (pthread_create(&threads[0], NULL, tx_thread, tx_new()) || pthread_create(&threads[1], NULL, rx_thread, rx_new())) die("pthread_create");
  }
  char local[INET_ADDRSTRLEN], remote[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &cfg.local, local, sizeof local);
  inet_ntop(AF_INET, &cfg.remote, remote, sizeof remote);
  pthread_mutex_lock(&print_lock);
  printf("ready {\"tap\":\"%s\",\"mtu\":%u,\"local\":\"%s\",\"remote\":\"%s\",\"vni\":%u,\"port\":%u,\"threads\":%d,\"udpGro\":%s,"
         "\"gsoMaxSegs\":%d,\"segmentsPerTrainMax\":%u,\"smallTrains\":%s}\n",
         cfg.tap_name, cfg.mtu, local, remote, cfg.vni, cfg.port, cfg.threads, gro ? "true" : "false", gso_max_segs_set, tx_train_max, cfg.small_trains ? "true" : "false");
  fflush(stdout);
  pthread_mutex_unlock(&print_lock);

  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGUSR1) {
      print_stats("snapshot");
      continue;
    }
    print_stats("exit");
    return 0;  // closing the TAP fd at exit deletes the device
  }
}
