// pcapng (draft-ietf-opsawg-pcapng) for the drops that `overlayfwd drops --pcap` writes: a
// section header, one interface per kind of capture (the underlay as raw IP, the device as
// Ethernet or raw IP), and an Enhanced Packet Block per dropped packet with the drop's reason,
// peer and worker in its comment (opt_comment). Little-endian, microsecond timestamps (the
// default if_tsresol). Control-plane code: it runs on the records a drop ring held, never per
// forwarded packet.
import net from 'node:net';
import type { DroppedPacket, RecentDrops } from './types';

/** Link types (https://www.tcpdump.org/linktypes.html). */
export const LINKTYPE_ETHERNET = 1;
/** Raw IP: the packet starts with an IPv4 or IPv6 header (its version field says which). */
export const LINKTYPE_RAW = 101;

const BLOCK_SHB = 0x0a0d0d0a;
const BLOCK_IDB = 0x00000001;
const BLOCK_EPB = 0x00000006;
const OPT_ENDOFOPT = 0;
const OPT_COMMENT = 1;
const SHB_USERAPPL = 4;
const IF_NAME = 2;
const IF_DESCRIPTION = 3;

const pad4 = (n: number): number => (n + 3) & ~3;

function option(code: number, value: Buffer): Buffer {
  const out = Buffer.alloc(4 + pad4(value.length));
  out.writeUInt16LE(code, 0);
  out.writeUInt16LE(value.length, 2);
  value.copy(out, 4);
  return out;
}

function options(list: Array<[number, string | undefined]>): Buffer {
  const parts = list.filter(([, v]) => v !== undefined && v !== '').map(([code, v]) => option(code, Buffer.from(v!, 'utf8')));
  if (parts.length === 0) return Buffer.alloc(0);
  return Buffer.concat([...parts, Buffer.alloc(4)]); // opt_endofopt: code 0, length 0
}

function block(type: number, body: Buffer): Buffer {
  const length = 12 + body.length;
  const out = Buffer.alloc(length);
  out.writeUInt32LE(type, 0);
  out.writeUInt32LE(length, 4);
  body.copy(out, 8);
  out.writeUInt32LE(length, length - 4);
  return out;
}

/** Builds a pcapng stream block by block; `write` gets each block as it is made (a file, a buffer). */
export class PcapngWriter {
  private interfaces = 0;

  constructor(
    private readonly write: (bytes: Buffer) => void,
    application = 'overlayfwd',
  ) {
    const head = Buffer.alloc(16);
    head.writeUInt32LE(0x1a2b3c4d, 0); // byte-order magic
    head.writeUInt16LE(1, 4); // major
    head.writeUInt16LE(0, 6); // minor
    head.writeBigInt64LE(-1n, 8); // section length: not given
    this.write(block(BLOCK_SHB, Buffer.concat([head, options([[SHB_USERAPPL, application]])])));
  }

  /** Adds an interface; returns its id for packet(). */
  addInterface(linkType: number, name: string, description?: string, snapLength = 0): number {
    const head = Buffer.alloc(8);
    head.writeUInt16LE(linkType, 0);
    head.writeUInt32LE(snapLength, 4);
    this.write(block(BLOCK_IDB, Buffer.concat([head, options([[IF_NAME, name], [IF_DESCRIPTION, description]])])));
    return this.interfaces++;
  }

  /** One packet: `data` as captured, `originalLength` as it was, `timestampUs` since the epoch. */
  packet(interfaceId: number, timestampUs: number, data: Buffer, originalLength: number, comment?: string): void {
    if (interfaceId < 0 || interfaceId >= this.interfaces) throw new RangeError(`no interface ${interfaceId}`);
    const head = Buffer.alloc(20);
    const ts = BigInt(Math.max(0, Math.round(timestampUs)));
    head.writeUInt32LE(interfaceId, 0);
    head.writeUInt32LE(Number(ts >> 32n), 4);
    head.writeUInt32LE(Number(ts & 0xffffffffn), 8);
    head.writeUInt32LE(data.length, 12);
    head.writeUInt32LE(Math.max(originalLength, data.length), 16);
    const body = Buffer.alloc(pad4(data.length));
    data.copy(body);
    this.write(block(BLOCK_EPB, Buffer.concat([head, body, options([[OPT_COMMENT, comment]])])));
  }
}

// ---- the drops as packets

function checksum(...parts: Buffer[]): number {
  let sum = 0;
  for (const part of parts) {
    for (let i = 0; i + 1 < part.length; i += 2) sum += part.readUInt16BE(i);
    if (part.length % 2 === 1) sum += part[part.length - 1]! << 8;
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function addressBytes(address: string): Buffer {
  if (net.isIPv4(address)) return Buffer.from(address.split('.').map(Number));
  // IPv6: expand "::" and any embedded IPv4 tail.
  let text = address.split('%')[0]!;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    text = `${text.slice(0, v4.index)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g || '0', 16), i * 2));
  return out;
}

/**
 * An underlay-layer drop as the outer IP packet it was: the sockets hand us datagrams without
 * their IP (and UDP) headers, so those are made up from what the record holds: the addresses
 * and ports, the protocol, the lengths (TTL 64, TOS 0; the UDP checksum when every byte was
 * captured, else 0). The payload is the bytes captured.
 */
export function outerPacket(drop: DroppedPacket, local: string): { data: Buffer; originalLength: number } {
  const payload = Buffer.from(drop.data, 'hex');
  if (drop.layer !== 'underlay' || !drop.underlay) return { data: payload, originalLength: drop.length };
  const u = drop.underlay;
  const remote = u.remote;
  const v6 = net.isIPv6(remote) || (remote === '' && net.isIPv6(local));
  const [src, dst] = drop.direction === 'rx' ? [remote, local] : [local, remote];
  const [srcPort, dstPort] = drop.direction === 'rx' ? [u.remotePort, u.localPort] : [u.localPort, u.remotePort];
  const zero = v6 ? '::' : '0.0.0.0';
  const source = addressBytes(src || zero);
  const destination = addressBytes(dst || zero);
  let transport = Buffer.alloc(0);
  if (u.protocol === 17) {
    transport = Buffer.alloc(8);
    transport.writeUInt16BE(srcPort, 0);
    transport.writeUInt16BE(dstPort, 2);
    transport.writeUInt16BE(Math.min(0xffff, 8 + drop.length), 4);
    if (payload.length === drop.length) {
      const pseudo = Buffer.alloc(v6 ? 40 : 12);
      if (v6) {
        source.copy(pseudo, 0);
        destination.copy(pseudo, 16);
        pseudo.writeUInt32BE(8 + drop.length, 32);
        pseudo[39] = 17;
      } else {
        source.copy(pseudo, 0);
        destination.copy(pseudo, 4);
        pseudo[9] = 17;
        pseudo.writeUInt16BE(8 + drop.length, 10);
      }
      const sum = checksum(pseudo, transport, payload);
      transport.writeUInt16BE(sum === 0 ? 0xffff : sum, 6);
    }
  }
  const innerLength = transport.length + drop.length;
  let ip: Buffer;
  if (v6) {
    ip = Buffer.alloc(40);
    ip.writeUInt32BE(0x60000000, 0);
    ip.writeUInt16BE(Math.min(0xffff, innerLength), 4);
    ip[6] = u.protocol;
    ip[7] = 64;
    source.copy(ip, 8);
    destination.copy(ip, 24);
  } else {
    ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(Math.min(0xffff, 20 + innerLength), 2);
    ip.writeUInt16BE(0x4000, 6); // DF
    ip[8] = 64;
    ip[9] = u.protocol;
    source.copy(ip, 12);
    destination.copy(ip, 16);
    ip.writeUInt16BE(checksum(ip), 10);
  }
  return { data: Buffer.concat([ip, transport, payload]), originalLength: ip.length + innerLength };
}

/** What each packet's comment says: reason, direction, peer, worker, record number. */
export function dropComment(drop: DroppedPacket): string {
  const parts = [`reason=${drop.reason}`, `direction=${drop.direction}`, `peer=${drop.peer ?? '-'}`, `worker=${drop.worker}`, `sequence=${drop.sequence}`];
  if (drop.packets !== 1) parts.push(`packets=${drop.packets}`);
  if (drop.underlay && !drop.peer && drop.underlay.remote) parts.push(`remote=${formatEndpoint(drop.underlay.remote, drop.underlay.remotePort)}`);
  return parts.join(' ');
}

export function formatEndpoint(address: string, port: number): string {
  const host = address.includes(':') ? `[${address}]` : address;
  return port ? `${host}:${port}` : host;
}

/**
 * Writes drops as pcapng, interfaces first: 0 "underlay" (raw IP: outer packets, their IP/UDP
 * headers made up by outerPacket), 1 the device (Ethernet on tap and packet devices, raw IP on
 * tun). Drops with no bytes (layer none) are not written; add() says whether it wrote one.
 */
export class DropCapture {
  private readonly writer: PcapngWriter;
  private readonly underlayId: number;
  private readonly deviceId: number;

  constructor(
    write: (bytes: Buffer) => void,
    private readonly info: Pick<RecentDrops, 'name' | 'device' | 'underlay'>,
  ) {
    this.writer = new PcapngWriter(write);
    this.underlayId = this.writer.addInterface(LINKTYPE_RAW, 'underlay', `${info.name}: outer packets (IP and UDP headers reconstructed), local ${info.underlay.local}`);
    this.deviceId = this.writer.addInterface(
      info.device.layer === 'ethernet' ? LINKTYPE_ETHERNET : LINKTYPE_RAW,
      info.device.name,
      `${info.name}: inner frames as the device reads and writes them`,
    );
  }

  add(drop: DroppedPacket): boolean {
    if (drop.layer === 'none') return false;
    const iface = drop.layer === 'device' ? this.deviceId : this.underlayId;
    const { data, originalLength } = outerPacket(drop, this.info.underlay.local);
    this.writer.packet(iface, drop.timestampUs, data, originalLength, dropComment(drop));
    return true;
  }
}
