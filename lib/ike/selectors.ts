// Traffic selectors (RFC 7296 §2.9, §3.13.1): from the configured prefixes, the responder's
// narrowing, and back to the exact prefixes that the data path installs as allowed IPs.
// Addresses are handled as BigInt ranges so IPv4 and IPv6 take the same path.
import net from 'node:net';
import type { TrafficSelector } from './types';

export const TS_IPV4_ADDR_RANGE = 7;
export const TS_IPV6_ADDR_RANGE = 8;

const ALL_PORTS = { startPort: 0, endPort: 65535 } as const;

interface Range {
  family: 4 | 6;
  start: bigint;
  end: bigint;
}

/** The selector of each prefix ("10.0.0.0/24", "fd00::/64", or an address for a host): any protocol, all ports. */
export function selectorsFromCidrs(cidrs: readonly string[]): TrafficSelector[] {
  return cidrs.map((cidr) => {
    const { family, start, end } = parseCidr(cidr);
    return {
      type: family === 4 ? TS_IPV4_ADDR_RANGE : TS_IPV6_ADDR_RANGE,
      protocol: 0,
      ...ALL_PORTS,
      startAddress: formatAddress(start, family),
      endAddress: formatAddress(end, family),
    };
  });
}

export interface NarrowOptions {
  /**
   * Keep only intersections for any protocol and all ports (default true). The data path
   * filters by address alone, so agreeing to a port- or protocol-restricted SA would let more
   * through than was agreed; such a selector (e.g. the packet that triggered a strongSwan trap
   * policy, RFC 7296 §2.9) is dropped instead, and the others stay.
   */
  wholeAddressRangesOnly?: boolean;
}

/**
 * The responder's narrowing (RFC 7296 §2.9): each proposed selector intersected with each
 * allowed one of the same type (address range, protocol, ports), duplicates removed, in the
 * proposer's order. Empty: nothing acceptable, TS_UNACCEPTABLE.
 */
export function narrow(proposed: readonly TrafficSelector[], allowed: readonly TrafficSelector[], options: NarrowOptions = {}): TrafficSelector[] {
  const wholeOnly = options.wholeAddressRangesOnly !== false;
  const out: TrafficSelector[] = [];
  for (const p of proposed) {
    for (const a of allowed) {
      const ts = intersect(p, a);
      if (!ts) continue;
      if (wholeOnly && !isWholeAddressRange(ts)) continue;
      if (!out.some((x) => sameSelector(x, ts))) out.push(ts);
    }
  }
  return out;
}

/** A selector for any protocol and all ports: just an address range. */
export function isWholeAddressRange(ts: TrafficSelector): boolean {
  return ts.protocol === 0 && ts.startPort === 0 && ts.endPort === 65535;
}

/**
 * The exact prefixes whose union is the address part of the selectors (protocol and ports are
 * not representable as allowed IPs; narrow() keeps only selectors without them). A range that
 * is not one prefix (10.0.0.1-10.0.0.6) becomes the smallest list of prefixes (10.0.0.1/32,
 * 10.0.0.2/31, 10.0.0.4/31, 10.0.0.6/32). Throws on a selector whose addresses do not parse.
 */
export function selectorsToCidrs(selectors: readonly TrafficSelector[]): string[] {
  const out: string[] = [];
  for (const ts of selectors) {
    const r = rangeOf(ts);
    for (const cidr of rangeToCidrs(r)) if (!out.includes(cidr)) out.push(cidr);
  }
  return out;
}

/** Every selector's address range lies within the union of `cidrs` (of its family). */
export function covers(selectors: readonly TrafficSelector[], cidrs: readonly string[]): boolean {
  const ranges = cidrs.map(parseCidr);
  return selectors.every((ts) => {
    const r = rangeOf(ts);
    // Walk up from the start, jumping to the end of any prefix that contains the current address.
    let next = r.start;
    while (next <= r.end) {
      const hit = ranges.find((c) => c.family === r.family && c.start <= next && next <= c.end);
      if (!hit) return false;
      next = hit.end + 1n;
    }
    return true;
  });
}

/** A selector for logs: "10.0.0.0-10.0.0.255" or "10.0.0.0/24", with "[proto/ports]" when restricted. */
export function formatSelector(ts: TrafficSelector): string {
  const cidrs = safeCidrs(ts);
  const addresses = cidrs && cidrs.length === 1 ? cidrs[0]! : `${ts.startAddress}-${ts.endAddress}`;
  if (isWholeAddressRange(ts)) return addresses;
  const ports = ts.startPort === 0 && ts.endPort === 65535 ? '' : ts.startPort === ts.endPort ? `/${ts.startPort}` : `/${ts.startPort}-${ts.endPort}`;
  return `${addresses}[${ts.protocol}${ports}]`;
}

function safeCidrs(ts: TrafficSelector): string[] | undefined {
  try {
    return rangeToCidrs(rangeOf(ts));
  } catch {
    return undefined;
  }
}

function intersect(a: TrafficSelector, b: TrafficSelector): TrafficSelector | null {
  if (a.type !== b.type) return null;
  const ra = rangeOf(a);
  const rb = rangeOf(b);
  const start = ra.start > rb.start ? ra.start : rb.start;
  const end = ra.end < rb.end ? ra.end : rb.end;
  if (start > end) return null;
  // Protocol 0 is any (RFC 7296 §3.13.1); two different specific protocols share nothing.
  if (a.protocol !== 0 && b.protocol !== 0 && a.protocol !== b.protocol) return null;
  const startPort = Math.max(a.startPort, b.startPort);
  const endPort = Math.min(a.endPort, b.endPort);
  if (startPort > endPort) return null;
  return {
    type: a.type,
    protocol: a.protocol !== 0 ? a.protocol : b.protocol,
    startPort,
    endPort,
    startAddress: formatAddress(start, ra.family),
    endAddress: formatAddress(end, ra.family),
  };
}

function sameSelector(a: TrafficSelector, b: TrafficSelector): boolean {
  return (
    a.type === b.type &&
    a.protocol === b.protocol &&
    a.startPort === b.startPort &&
    a.endPort === b.endPort &&
    a.startAddress === b.startAddress &&
    a.endAddress === b.endAddress
  );
}

function rangeOf(ts: TrafficSelector): Range {
  const family = ts.type === TS_IPV4_ADDR_RANGE ? 4 : 6;
  const start = parseAddress(ts.startAddress, family);
  const end = parseAddress(ts.endAddress, family);
  if (start > end) throw new Error(`traffic selector ${ts.startAddress}-${ts.endAddress} ends before it starts`);
  return { family, start, end };
}

function bitsOf(family: 4 | 6): number {
  return family === 4 ? 32 : 128;
}

function parseCidr(cidr: string): Range {
  const [address, prefixText, extra] = cidr.trim().split('/');
  const family = net.isIP(address ?? '');
  if ((family !== 4 && family !== 6) || extra !== undefined) throw new Error(`"${cidr}" is not an address prefix (e.g. 10.0.0.0/24 or fd00::/64)`);
  const bits = bitsOf(family);
  const prefix = prefixText === undefined ? bits : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix >= 0 && prefix <= bits)) throw new Error(`"${cidr}": the prefix length must be 0 to ${bits}`);
  const value = parseAddress(address!, family);
  const hostBits = BigInt(bits - prefix);
  const start = (value >> hostBits) << hostBits;
  if (start !== value) throw new Error(`"${cidr}" has host bits set (the prefix is ${formatAddress(start, family)}/${prefix})`);
  return { family, start, end: start + (1n << hostBits) - 1n };
}

function parseAddress(text: string, family: 4 | 6): bigint {
  // A zone ("fe80::1%eth0") names a link, not an address a selector can carry.
  if (net.isIP(text) !== family || text.includes('%')) throw new Error(`"${text}" is not an IPv${family} address`);
  if (family === 4) return text.split('.').reduce((acc, octet) => (acc << 8n) | BigInt(Number(octet)), 0n);
  // Expand "::" and an embedded IPv4 tail, then read eight 16-bit groups.
  let groups = text;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(groups);
  if (v4) {
    const n = parseAddress(v4[1]!, 4);
    groups = `${groups.slice(0, -v4[1]!.length)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = groups.split('::');
  const headParts = head ? head.split(':') : [];
  const tailParts = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const parts = tail === undefined ? headParts : [...headParts, ...Array<string>(8 - headParts.length - tailParts.length).fill('0'), ...tailParts];
  return parts.reduce((acc, group) => (acc << 16n) | BigInt(parseInt(group, 16)), 0n);
}

/** An IPv4 or IPv6 literal as a number; throws on anything else. */
export function parseAddressLiteral(text: string): { family: 4 | 6; value: bigint } {
  const family = net.isIP(text);
  if (family !== 4 && family !== 6) throw new Error(`"${text}" is not an IP address`);
  return { family, value: parseAddress(text, family) };
}

/** An address literal: dotted IPv4, or IPv6 in the RFC 5952 form, exactly as node:net prints it. */
export function formatAddress(value: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => ((value >> s) & 0xffn).toString()).join('.');
  const groups = [112n, 96n, 80n, 64n, 48n, 32n, 16n, 0n].map((s) => Number((value >> s) & 0xffffn));
  // RFC 5952 §4.2: the longest run of two or more zero groups (the first if tied) becomes "::".
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  // libuv's inet_ntop rule (and so node:net's): IPv4-mapped ::ffff:a.b.c.d and IPv4-compatible
  // ::a.b.c.d (six leading zero groups) end in a dotted quad.
  if (bestStart === 0 && (bestLength === 6 || (bestLength === 5 && groups[5] === 0xffff))) {
    return `::${bestLength === 5 ? 'ffff:' : ''}${formatAddress(value & 0xffffffffn, 4)}`;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

function rangeToCidrs(r: Range): string[] {
  const bits = bitsOf(r.family);
  const out: string[] = [];
  let start = r.start;
  while (start <= r.end) {
    // The largest aligned block at `start` that does not run past the end.
    let hostBits = 0;
    while (hostBits < bits && ((start >> BigInt(hostBits)) & 1n) === 0n && start + (1n << BigInt(hostBits + 1)) - 1n <= r.end) hostBits++;
    out.push(`${formatAddress(start, r.family)}/${bits - hostBits}`);
    start += 1n << BigInt(hostBits);
  }
  return out;
}
