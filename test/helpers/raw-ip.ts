// Crafted IP packets for the raw-IP modes (GRE = protocol 47, IP-in-IP = 4 and 41), sent from a lab
// namespace through a raw socket (the kernel writes the outer IP header), and builders for the
// inner packets and GRE headers that go inside them.
import type { Host, Lab } from '../../lab';

/** The Internet checksum (RFC 1071). */
export function internetChecksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
  if (b.length % 2) sum += b[b.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function ipv4Bytes(address: string): Buffer {
  return Buffer.from(address.split('.').map(Number));
}

function ipv6Bytes(address: string): Buffer {
  const [head = '', tail = ''] = address.includes('::') ? address.split('::') : [address, ''];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

export interface EchoOptions {
  ttl?: number;
  id?: number;
  seq?: number;
  /** Override the total length field (IPv4) to make the header lie. */
  totalLength?: number;
  tos?: number;
}

/** An IPv4 ICMP echo request with correct checksums. */
export function ipv4Echo(src: string, dst: string, o: EchoOptions = {}): Buffer {
  const icmp = Buffer.alloc(8 + 16, 0x61);
  icmp[0] = 8;
  icmp[1] = 0;
  icmp.writeUInt16BE(0, 2);
  icmp.writeUInt16BE(o.id ?? 0x4f56, 4);
  icmp.writeUInt16BE(o.seq ?? 1, 6);
  icmp.writeUInt16BE(internetChecksum(icmp), 2);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip[1] = o.tos ?? 0;
  ip.writeUInt16BE(o.totalLength ?? 20 + icmp.length, 2);
  ip.writeUInt16BE(0x1234, 4);
  ip.writeUInt16BE(0x4000, 6);
  ip[8] = o.ttl ?? 64;
  ip[9] = 1;
  ipv4Bytes(src).copy(ip, 12);
  ipv4Bytes(dst).copy(ip, 16);
  ip.writeUInt16BE(internetChecksum(ip), 10);
  return Buffer.concat([ip, icmp]);
}

/** An IPv6 ICMPv6 echo request with a correct checksum. */
export function ipv6Echo(src: string, dst: string, o: EchoOptions = {}): Buffer {
  const icmp = Buffer.alloc(8 + 16, 0x62);
  icmp[0] = 128;
  icmp.writeUInt16BE(o.id ?? 0x4f56, 4);
  icmp.writeUInt16BE(o.seq ?? 1, 6);
  const s = ipv6Bytes(src);
  const d = ipv6Bytes(dst);
  const pseudo = Buffer.alloc(40);
  s.copy(pseudo, 0);
  d.copy(pseudo, 16);
  pseudo.writeUInt32BE(icmp.length, 32);
  pseudo[39] = 58;
  icmp.writeUInt16BE(internetChecksum(Buffer.concat([pseudo, icmp])), 2);
  const ip = Buffer.alloc(40);
  ip.writeUInt32BE(0x60000000, 0);
  ip.writeUInt16BE(icmp.length, 4);
  ip[6] = 58;
  ip[7] = o.ttl ?? 64;
  s.copy(ip, 8);
  d.copy(ip, 24);
  return Buffer.concat([ip, icmp]);
}

export interface GreFields {
  protocol: number;
  key?: number;
  /** 'good': the RFC 1071 sum over header and payload; 'bad': that sum with bits flipped. */
  checksum?: 'good' | 'bad';
  sequence?: number;
  version?: number;
  /** Extra bits OR-ed into the first 16 bits (e.g. reserved bit 1 = 0x4000). */
  flags?: number;
}

/** A GRE header (RFC 2784/2890) followed by `payload`. */
export function gre(f: GreFields, payload: Buffer): Buffer {
  let bits = (f.flags ?? 0) | (f.version ?? 0);
  const extra: Buffer[] = [];
  if (f.checksum) {
    bits |= 0x8000;
    extra.push(Buffer.alloc(4));
  }
  if (f.key !== undefined) {
    bits |= 0x2000;
    const k = Buffer.alloc(4);
    k.writeUInt32BE(f.key >>> 0);
    extra.push(k);
  }
  if (f.sequence !== undefined) {
    bits |= 0x1000;
    const q = Buffer.alloc(4);
    q.writeUInt32BE(f.sequence >>> 0);
    extra.push(q);
  }
  const base = Buffer.alloc(4);
  base.writeUInt16BE(bits, 0);
  base.writeUInt16BE(f.protocol, 2);
  const out = Buffer.concat([base, ...extra, payload]);
  if (f.checksum) {
    let sum = internetChecksum(out);
    if (f.checksum === 'bad') sum ^= 0x0101;
    out.writeUInt16BE(sum, 4);
  }
  return out;
}

const PY_RAW = String.raw`
import json, socket, sys, time
spec = json.loads(sys.argv[1])
family = socket.AF_INET6 if ':' in spec['dst'] else socket.AF_INET
socks = {}
sent = 0
for p in spec['packets']:
    key = (p['src'], p['protocol'])
    if key not in socks:
        s = socket.socket(family, socket.SOCK_RAW, p['protocol'])
        s.bind((p['src'], 0))
        socks[key] = s
    for _ in range(p['count']):
        socks[key].sendto(bytes.fromhex(p['hex']), (spec['dst'], 0))
        sent += 1
    time.sleep(0.002)
print(sent, flush=True)
`;

export interface RawPacket {
  /** Outer source address (an address of the sending host). */
  src: string;
  /** IP protocol number of the outer packet. */
  protocol: number;
  /** What follows the outer IP header. */
  payload: Buffer;
  count?: number;
}

/** Sends IP packets of the given protocols from `host` to `dst`; the kernel builds the outer header. */
export async function sendRawPackets(lab: Lab, host: Host, dst: string, packets: RawPacket[]): Promise<number> {
  const spec = JSON.stringify({
    dst,
    packets: packets.map((p) => ({ src: p.src, protocol: p.protocol, hex: p.payload.toString('hex'), count: p.count ?? 1 })),
  });
  const { stdout } = await lab.exec(host, 'python3', ['-c', PY_RAW, spec], { timeoutMs: 60_000 });
  return Number(stdout.trim());
}
