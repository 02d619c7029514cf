// Value parsers for addresses, shared by the schema and by the CLI. Each returns a canonical form
// or an error text that quotes what was given.
import { isIP } from 'node:net';
import type { ResolvedEndpoint } from '../types';
import type { Parsed } from './issues';

/** Canonical text of an IP literal (IPv6 compressed and lower-cased); the family; or an error. */
export function parseIp(text: string): Parsed<{ address: string; family: 4 | 6 }> {
  if (text.includes('%')) return { ok: false, message: `"${text}": zone indexes (%) are not supported` };
  const family = isIP(text);
  if (family === 4) return { ok: true, value: { address: text, family: 4 } };
  if (family === 6) {
    // The WHATWG URL parser canonicalises IPv6 (RFC 5952): lower case, longest zero run compressed.
    const address = new URL(`http://[${text}]/`).hostname.slice(1, -1);
    return { ok: true, value: { address, family: 6 } };
  }
  const hint = /[a-zA-Z]/.test(text) && /^[a-zA-Z0-9.-]+$/.test(text) ? ' (host names are not resolved)' : '';
  return { ok: false, message: `${JSON.stringify(text)} is not an IPv4 or IPv6 address${hint}` };
}

export function isUnspecified(address: string, family: 4 | 6): boolean {
  return family === 4 ? address === '0.0.0.0' : address === '::';
}

export function isMulticast(address: string, family: 4 | 6): boolean {
  if (family === 4) {
    const first = Number(address.split('.')[0]);
    return first >= 224;
  }
  return address.startsWith('ff');
}

/** `addr/len` with the address canonicalised. */
export function parseCidr(text: string): Parsed<{ cidr: string; family: 4 | 6 }> {
  const slash = text.indexOf('/');
  if (slash < 0) {
    return { ok: false, message: `${JSON.stringify(text)} is not a CIDR prefix (expected address/length, e.g. 198.19.0.1/24)` };
  }
  const ip = parseIp(text.slice(0, slash));
  if (!ip.ok) return ip;
  const lenText = text.slice(slash + 1);
  const max = ip.value.family === 4 ? 32 : 128;
  if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText) || Number(lenText) > max) {
    return {
      ok: false,
      message: `${JSON.stringify(text)}: prefix length must be an integer from 0 to ${max} for IPv${ip.value.family}`,
    };
  }
  return { ok: true, value: { cidr: `${ip.value.address}/${Number(lenText)}`, family: ip.value.family } };
}

/**
 * The network a prefix names, host bits cleared: "198.19.0.7/24" → "198.19.0.0/24". Two
 * allowedIps entries with the same network are the same route however they are written.
 */
export function networkOf(cidr: string): string {
  const slash = cidr.indexOf('/');
  const address = cidr.slice(0, slash);
  const length = Number(cidr.slice(slash + 1));
  const ipv6 = address.includes(':');
  // A host route has no host bits to clear (the common case, at 100,000 routes).
  if (length === (ipv6 ? 128 : 32)) return cidr;
  if (!ipv6) {
    const value = address.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
    const mask = length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
    const net = (value & mask) >>> 0;
    return `${[24, 16, 8, 0].map((shift) => (net >>> shift) & 255).join('.')}/${length}`;
  }
  // IPv6 (canonical form from parseIp: hex groups, at most one "::", no embedded IPv4).
  const [head = '', tail = ''] = address.includes('::') ? address.split('::') : [address, ''];
  const headParts = head ? head.split(':') : [];
  const tailParts = tail ? tail.split(':') : [];
  const groups = [...headParts, ...Array<string>(8 - headParts.length - tailParts.length).fill('0'), ...tailParts];
  return `${groups
    .map((g, i) => {
      const keep = Math.max(0, Math.min(16, length - i * 16));
      const mask = keep === 0 ? 0 : (0xffff << (16 - keep)) & 0xffff;
      return (parseInt(g, 16) & mask).toString(16);
    })
    .join(':')}/${length}`;
}

/**
 * A prefix as numbers: its family, its address as 16-bit groups (IPv4: two; IPv6: eight), host
 * bits as given, and its length. Numbers, not one bigint: 100,000 of these are made per change of
 * a large peer set (lib/routes.ts), and bigint arithmetic made that take seconds.
 */
export interface PrefixBits {
  family: 4 | 6;
  groups: number[];
  length: number;
}

/**
 * A canonical CIDR ("10.2.0.7/16", as parseCidr gives) or a bare address (a /32 or /128) as
 * numbers. IPv6 in the canonical form parseIp gives (hex groups, at most one "::", no dotted quad).
 */
export function prefixBits(text: string): PrefixBits {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  if (!address.includes(':')) {
    const [a = 0, b = 0, c = 0, d = 0] = address.split('.').map(Number);
    return { family: 4, groups: [(a << 8) | b, (c << 8) | d], length: slash < 0 ? 32 : Number(text.slice(slash + 1)) };
  }
  const cut = address.indexOf('::');
  const head = cut < 0 ? address : address.slice(0, cut);
  const tail = cut < 0 ? '' : address.slice(cut + 2);
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const groups = new Array<number>(8).fill(0);
  headGroups.forEach((g, i) => (groups[i] = parseInt(g, 16)));
  tailGroups.forEach((g, i) => (groups[8 - tailGroups.length + i] = parseInt(g, 16)));
  return { family: 6, groups, length: slash < 0 ? 128 : Number(text.slice(slash + 1)) };
}

/** The 16-bit mask of group `i` for a prefix of `length` bits. */
function groupMask(length: number, i: number): number {
  const keep = Math.max(0, Math.min(16, length - i * 16));
  return keep === 0 ? 0 : (0xffff << (16 - keep)) & 0xffff;
}

/** True when `outer` holds all of `inner` (same family, no longer, the same leading bits). */
export function prefixContains(outer: PrefixBits, inner: PrefixBits): boolean {
  if (outer.family !== inner.family || outer.length > inner.length) return false;
  for (let i = 0; i < outer.groups.length && i * 16 < outer.length; i++) {
    const mask = groupMask(outer.length, i);
    if ((outer.groups[i]! & mask) !== (inner.groups[i]! & mask)) return false;
  }
  return true;
}

/** True when `p` has no host bits set (it is its own network). */
export function isNetwork(p: PrefixBits): boolean {
  return p.groups.every((g, i) => (g & ~groupMask(p.length, i) & 0xffff) === 0);
}

/** The network of `p`, host bits cleared, in canonical text: "10.2.0.0/16", "fd00:198:20::/64" (RFC 5952). */
export function prefixNetworkText(p: PrefixBits): string {
  const g = p.groups.map((x, i) => x & groupMask(p.length, i));
  if (p.family === 4) return `${g[0]! >> 8}.${g[0]! & 255}.${g[1]! >> 8}.${g[1]! & 255}/${p.length}`;
  // The longest run of two or more zero groups (the first of equal ones) becomes "::".
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLength) {
      best = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  const text = best < 0 ? hex.join(':') : `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLength).join(':')}`;
  return `${text}/${p.length}`;
}

/** A unicast Ethernet address, returned lower-case with colons. */
export function parseMac(text: string): Parsed<string> {
  if (!/^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$/.test(text)) {
    return { ok: false, message: `${JSON.stringify(text)} is not a MAC address (expected aa:bb:cc:dd:ee:ff)` };
  }
  const mac = text.toLowerCase().replace(/-/g, ':');
  if (parseInt(mac.slice(0, 2), 16) & 1) {
    return { ok: false, message: `${mac} is a multicast/broadcast MAC address (must be unicast)` };
  }
  if (mac === '00:00:00:00:00:00') return { ok: false, message: `${mac} is not a usable MAC address` };
  return { ok: true, value: mac };
}

/** Port text in a `host:port` endpoint. */
function parsePortText(text: string): Parsed<number> {
  if (!/^[0-9]{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    return { ok: false, message: `port ${JSON.stringify(text)} must be an integer from 1 to 65535` };
  }
  return { ok: true, value: Number(text) };
}

/** An endpoint as written: the port is filled in later, from encap.port. */
export interface EndpointInput {
  address: string;
  family: 4 | 6;
  port: number | undefined;
}

/** "198.18.0.2", "198.18.0.2:4789", "fd00::2", "[fd00::2]", "[fd00::2]:4789" (port optional). */
export function parseEndpointString(text: string): Parsed<EndpointInput> {
  let host = text;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1] ?? '';
    portText = bracketed[2];
    if (isIP(host) !== 6) return { ok: false, message: `${JSON.stringify(host)} is not an IPv6 address` };
  } else if (isIP(text) === 0) {
    const colon = text.lastIndexOf(':');
    if (colon > 0 && text.indexOf(':') === colon) {
      host = text.slice(0, colon);
      portText = text.slice(colon + 1);
    }
  }
  const ip = parseIp(host);
  if (!ip.ok) return ip;
  let port: number | undefined;
  if (portText !== undefined) {
    const p = parsePortText(portText);
    if (!p.ok) return p;
    port = p.value;
  }
  return { ok: true, value: { address: ip.value.address, family: ip.value.family, port } };
}

export function formatEndpoint(ep: ResolvedEndpoint): string {
  return ep.address.includes(':') ? `[${ep.address}]:${ep.port}` : `${ep.address}:${ep.port}`;
}
