# ICMP echo with a raw socket, for machines without iputils ping. Prints ping's summary line
# ("N packets transmitted, M received") and exits 0 when a reply came back, 1 otherwise.
#
#   python3 ping.py DST COUNT INTERVAL_SEC TIMEOUT_SEC SIZE [SRC]
#
# SRC (a local address to send from) may be the empty string.
import os, select, socket, struct, sys, time
dst, count, interval, timeout, size, src = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
if src:
    s.bind((src, 0))
ident = os.getpid() & 0xffff
def csum(b):
    if len(b) % 2: b += b'\0'
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b)); t = (t >> 16) + (t & 0xffff); t += t >> 16
    return ~t & 0xffff
sent, got = {}, set()
def recv_until(end, early):
    while not (early and len(got) == len(sent)):
        r = end - time.time()
        if r <= 0: return
        if not select.select([s], [], [], r)[0]: return
        data, addr = s.recvfrom(65535)
        ihl = (data[0] & 15) * 4
        t, _, _, i, sq = struct.unpack('!BBHHH', data[ihl:ihl + 8])
        if t == 0 and i == ident and addr[0] == dst and sq in sent: got.add(sq)
for seq in range(count):
    payload = bytes(size)
    c = csum(struct.pack('!BBHHH', 8, 0, 0, ident, seq) + payload)
    s.sendto(struct.pack('!BBHHH', 8, 0, c, ident, seq) + payload, (dst, 0))
    sent[seq] = time.time()
    recv_until(time.time() + (interval if seq < count - 1 else 0), False)
recv_until(time.time() + timeout, True)
print('%d packets transmitted, %d received' % (len(sent), len(got)))
sys.exit(0 if got else 1)
