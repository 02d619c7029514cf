// The Traffic Selector payloads TSi and TSr (RFC 7296 §3.13): IPv4 and IPv6 address ranges with
// a protocol and a port range, as text addresses in TrafficSelector. What they mean, and how
// they narrow, is selectors.ts; this is their wire form only.
import { isIPv4, isIPv6, SocketAddress } from 'node:net';
import type { TrafficSelector } from './types';
import { TsType } from './wire';
import { bytesOf, fail, isUint, need, Reason, u16, type Body } from './codec';

// Traffic Selector payloads TSi, TSr (§3.13):
//
//   | Number of TSs |                 RESERVED                      |
//   ~                       <Traffic Selectors>                     ~
//
// Traffic selector (§3.13.1):
//
//                        1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |   TS Type     |IP Protocol ID*|       Selector Length         |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |           Start Port*         |           End Port*           |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   ~                         Starting Address*                     ~
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   ~                         Ending Address*                       ~
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// TS_IPV4_ADDR_RANGE (7) is 16 bytes, TS_IPV6_ADDR_RANGE (8) is 40. Any other type (e.g.
// TS_FC_ADDR_RANGE, RFC 4595; TS_SECLABEL, RFC 9478) is refused: a selector we cannot read is
// one we cannot honour, and narrowing it away would change what the peer asked for. Ports and
// addresses are not ordered here (start > end ports is the OPAQUE encoding, §3.13.1); the
// selector code judges them.
export function decodeTs(type: 'tsi' | 'tsr', critical: boolean, buf: Buffer, start: number, end: number): Body {
  if (end - start < 4) return fail(Reason.tsShort);
  const count = buf[start]!;
  if (count === 0) return fail(Reason.tsEmpty);
  const selectors: TrafficSelector[] = [];
  let off = start + 4;
  while (off < end) {
    if (selectors.length >= count) return fail(Reason.tsCount);
    if (end - off < 4) return fail(Reason.tsTruncated);
    const tsType = buf[off]!;
    const length = buf.readUInt16BE(off + 2);
    if (tsType !== TsType.IPV4_ADDR_RANGE && tsType !== TsType.IPV6_ADDR_RANGE) return fail(Reason.tsType);
    const addressBytes = tsType === TsType.IPV4_ADDR_RANGE ? 4 : 16;
    if (length !== 8 + 2 * addressBytes) return fail(Reason.tsLength);
    if (length > end - off) return fail(Reason.tsOverrun);
    const a = off + 8;
    selectors.push({
      type: tsType,
      protocol: buf[off + 1]!,
      startPort: buf.readUInt16BE(off + 4),
      endPort: buf.readUInt16BE(off + 6),
      startAddress: formatAddress(buf, a, addressBytes),
      endAddress: formatAddress(buf, a + addressBytes, addressBytes),
    });
    off += length;
  }
  if (selectors.length !== count) return fail(Reason.tsCount);
  return { type, critical, selectors };
}

/** Address literal of 4 or 16 bytes: IPv4 dotted; IPv6 the way node:net prints it (libuv). */
function formatAddress(buf: Buffer, off: number, bytes: number): string {
  if (bytes === 4) return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(buf.readUInt16BE(off + i).toString(16));
  return new SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
}

export function encodeTs(selectors: TrafficSelector[]): Buffer {
  need(selectors.length >= 1 && selectors.length <= 255, `TS with ${selectors.length} selectors`);
  return bytesOf(
    [selectors.length, 0, 0, 0],
    ...selectors.map((ts) => {
      need(ts.type === TsType.IPV4_ADDR_RANGE || ts.type === TsType.IPV6_ADDR_RANGE, `traffic selector type ${ts.type}`);
      need(isUint(ts.protocol, 8) && isUint(ts.startPort, 16) && isUint(ts.endPort, 16), 'selector protocol 8 bits, ports 16');
      const family = ts.type === TsType.IPV4_ADDR_RANGE ? 4 : 6;
      const start = addressBytes(ts.startAddress, family);
      const end = addressBytes(ts.endAddress, family);
      return bytesOf([ts.type, ts.protocol], u16(8 + start.length * 2), u16(ts.startPort), u16(ts.endPort), start, end);
    }),
  );
}

/** An address literal as its 4 or 16 bytes (IPv6 in any valid form, IPv4-mapped included). */
export function addressBytes(text: string, family: 4 | 6): Buffer {
  if (family === 4) {
    need(isIPv4(text), `${JSON.stringify(text)} is not an IPv4 address`);
    return Buffer.from(text.split('.').map(Number));
  }
  need(isIPv6(text) && !text.includes('%'), `${JSON.stringify(text)} is not an IPv6 address`);
  // The WHATWG URL parser canonicalises IPv6 (hex groups only, one "::" at most); expand it.
  const canonical = new URL(`http://[${text}]/`).hostname.slice(1, -1);
  const [head = '', tail] = canonical.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  const out = Buffer.alloc(16);
  groups.forEach((group, i) => out.writeUInt16BE(parseInt(group, 16), 2 * i));
  return out;
}
