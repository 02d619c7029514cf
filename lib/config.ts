// Configuration schema: validation (zod) and defaults. Produces the ResolvedConfig of lib/types.ts.
// Every problem is reported with the path of the field it concerns (`peers[1].endpoint: ...`),
// and all problems found are reported at once.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isIP } from 'node:net';
import { z } from 'zod';
import YAML from 'yaml';
import type { DeviceType, EncapType, ResolvedConfig, ResolvedEndpoint, ResolvedPeer } from './types';

export interface ConfigIssue {
  /** Field path with dots and [i], e.g. `peers[1].endpoint`; `(file)` / `(config)` for the whole input. */
  path: string;
  message: string;
}

export class ConfigError extends Error {
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[]) {
    super(issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/** True for a ConfigError, also one that crossed a module-instance boundary. */
export function isConfigError(err: unknown): err is ConfigError {
  return (
    err instanceof ConfigError ||
    (err instanceof Error && err.name === 'ConfigError' && Array.isArray((err as { issues?: unknown }).issues))
  );
}

// ---------------------------------------------------------------------------------------------
// Constants

export const DEVICE_TYPES = ['tap', 'tun', 'packet'] as const satisfies readonly DeviceType[];
export const ENCAP_TYPES = ['vxlan', 'geneve', 'gre', 'gre-udp', 'ipip', 'esp'] as const satisfies readonly EncapType[];
export const SUPPORTED_DEVICE_TYPES: readonly DeviceType[] = ['tap', 'tun', 'packet'];
export const SUPPORTED_ENCAP_TYPES: readonly EncapType[] = ['vxlan', 'geneve', 'gre', 'gre-udp', 'ipip'];

/** Default UDP port per encapsulation; null for the IP-protocol modes (no port). */
export const DEFAULT_PORTS: Record<EncapType, number | null> = {
  vxlan: 4789,
  geneve: 6081,
  gre: null,
  'gre-udp': 4754,
  ipip: null,
  esp: 4500,
};

/** Workers poll this long after their last packet before sleeping (see worker.cc). */
export const BUSY_POLL_DEFAULT_US = 0;

const VNI_MODES: readonly EncapType[] = ['vxlan', 'geneve'];
const GRE_MODES: readonly EncapType[] = ['gre', 'gre-udp'];
const MAX_VNI = 0xffffff;
/** sizeof(sockaddr_un.sun_path) - 1 */
const MAX_SOCKET_PATH_BYTES = 107;

/** Directory holding the control sockets; `OVERLAYFWD_RUN_DIR` overrides /run/overlayfwd. */
export function runDir(): string {
  return process.env.OVERLAYFWD_RUN_DIR || '/run/overlayfwd';
}

export function defaultSocketPath(name: string): string {
  return path.join(runDir(), `${name}.sock`);
}

function defaultWorkers(): number {
  const cpus = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.min(64, Math.max(1, cpus));
}

// ---------------------------------------------------------------------------------------------
// Value parsers shared by the schema and by the CLI (each returns a canonical form or an error text)

type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

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

function isUnspecified(address: string, family: 4 | 6): boolean {
  return family === 4 ? address === '0.0.0.0' : address === '::';
}

function isMulticast(address: string, family: 4 | 6): boolean {
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

interface EndpointInput {
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

// ---------------------------------------------------------------------------------------------
// Schema (stage 1: each field on its own)

type IssueLike = { input?: unknown };
/** Error text for a field: "required" when absent, else `message`. */
const err = (message: string) => ({
  error: (iss: IssueLike) => (iss.input === undefined ? 'required' : message),
});

function intRange(min: number, max: number) {
  const message = `must be an integer from ${min} to ${max}`;
  return z.number(err(message)).int(message).min(min, message).max(max, message);
}

const nullToUndefined = (v: unknown) => (v === null ? undefined : v);

const NAME_RE = /^[a-zA-Z0-9_.-]{1,15}$/;
const NAME_TEXT = 'must be 1 to 15 characters from a-z A-Z 0-9 _ . - (it is also a network interface name)';
const ifName = z
  .string(err(NAME_TEXT))
  .regex(NAME_RE, NAME_TEXT)
  .refine((s) => s !== '.' && s !== '..', NAME_TEXT);

const PEER_NAME_RE = /^[a-zA-Z0-9_.-]{1,64}$/;
const PEER_NAME_TEXT = 'must be 1 to 64 characters from a-z A-Z 0-9 _ . -';
const peerName = z
  .string(err(PEER_NAME_TEXT))
  .regex(PEER_NAME_RE, PEER_NAME_TEXT)
  .refine((s) => s !== '__proto__', `"__proto__" is reserved`);

const INTERFACE_TEXT = 'must be the name of an existing network interface (1 to 15 characters from a-z A-Z 0-9 _ . -)';
const interfaceName = z
  .string(err(INTERFACE_TEXT))
  .regex(NAME_RE, INTERFACE_TEXT)
  .refine((s) => s !== '.' && s !== '..', INTERFACE_TEXT);

const NETNS_TEXT = 'must be a network namespace name (1 to 64 characters from a-z A-Z 0-9 _ . -)';
const netnsName = z
  .string(err(NETNS_TEXT))
  .regex(/^[a-zA-Z0-9_.-]{1,64}$/, NETNS_TEXT)
  .refine((s) => s !== '.' && s !== '..', NETNS_TEXT);

/** A string checked and canonicalised by `parse`. */
function parsedString<T>(expect: string, parse: (s: string) => Parsed<T>) {
  return z.string(err(`must be a string (${expect})`)).transform((s, ctx): T => {
    const r = parse(s);
    if (r.ok) return r.value;
    ctx.issues.push({ code: 'custom', message: r.message, input: s });
    return z.NEVER;
  });
}

const ipAddress = parsedString('an IPv4 or IPv6 address', parseIp);
const cidr = parsedString('a CIDR prefix such as 198.19.0.1/24', parseCidr);
const mac = parsedString('a MAC address such as 02:00:00:00:00:01', parseMac);

function list<T extends z.ZodType>(item: T, what: string) {
  return z.array(item, err(`must be a list of ${what}`));
}

function section<T extends z.ZodRawShape>(shape: T) {
  return z.strictObject(shape, err('must be a mapping (key: value)'));
}

const deviceSchema = section({
  type: z
    .enum(DEVICE_TYPES, {
      error: (iss: IssueLike) => `${JSON.stringify(iss.input)} is not a device type (one of: ${DEVICE_TYPES.join(', ')})`,
    })
    .refine((t) => SUPPORTED_DEVICE_TYPES.includes(t), {
      error: (iss: IssueLike) =>
        `"${String(iss.input)}" is not supported yet (supported: ${SUPPORTED_DEVICE_TYPES.join(', ')})`,
    })
    .default('tap'),
  name: ifName.optional(),
  mtu: z.preprocess(
    (v) => (v === null || v === 'auto' ? undefined : v),
    intRange(576, 65535).optional(),
  ),
  addresses: list(cidr, 'CIDR prefixes').default([]),
  mac: z.preprocess(nullToUndefined, mac.optional()),
  /** packet: the existing Ethernet interface to put on the overlay (a NIC or a veth port). */
  interface: interfaceName.optional(),
});

const encapSchema = section({
  type: z
    .enum(ENCAP_TYPES, {
      error: (iss: IssueLike) =>
        `${JSON.stringify(iss.input)} is not an encapsulation type (one of: ${ENCAP_TYPES.join(', ')})`,
    })
    .refine((t) => SUPPORTED_ENCAP_TYPES.includes(t), {
      error: (iss: IssueLike) =>
        `"${String(iss.input)}" is not supported yet (supported: ${SUPPORTED_ENCAP_TYPES.join(', ')})`,
    })
    .default('vxlan'),
  vni: intRange(0, MAX_VNI).optional(),
  port: intRange(1, 65535).optional(),
  key: z.preprocess(nullToUndefined, intRange(0, 0xffffffff).optional()),
  checksum: z.boolean(err('must be true or false')).optional(),
  sequence: z.boolean(err('must be true or false')).optional(),
}).superRefine((e, ctx) => {
  // `checksum: false` is every mode's default, so only a GRE option actually asked for is an error.
  if (!GRE_MODES.includes(e.type) && e.key !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['key'], message: `not used by ${e.type} (GRE modes only)` });
  }
  if (!GRE_MODES.includes(e.type) && e.checksum === true) {
    ctx.addIssue({ code: 'custom', path: ['checksum'], message: `not used by ${e.type} (GRE modes only)` });
  }
  if (!GRE_MODES.includes(e.type) && e.sequence === true) {
    ctx.addIssue({ code: 'custom', path: ['sequence'], message: `not used by ${e.type} (GRE modes only)` });
  }
  if (VNI_MODES.includes(e.type) && e.vni === undefined) {
    ctx.addIssue({ code: 'custom', path: ['vni'], message: `required for ${e.type}` });
  }
  if (!VNI_MODES.includes(e.type) && e.vni !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['vni'], message: `not used by ${e.type}` });
  }
  if (DEFAULT_PORTS[e.type] === null && e.port !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['port'], message: `not used by ${e.type} (an IP protocol, no UDP port)` });
  }
});

const underlaySchema = section({
  local: ipAddress.refine((ip) => !isUnspecified(ip.address, ip.family) && !isMulticast(ip.address, ip.family), {
    message: 'must be a unicast address of this host (not unspecified or multicast)',
  }),
  sourcePorts: intRange(1, 256).default(16),
  udpChecksum: z.boolean(err('must be true or false')).default(false),
});

const fdbSchema = section({
  learning: z.boolean(err('must be true or false')).default(true),
  ageingSeconds: intRange(1, 86400).default(300),
  maxEntries: intRange(16, 1_000_000).default(4096),
});

const offloadsSchema = section({
  tso: z.boolean(err('must be true or false')).default(true),
  udpGso: z.boolean(err('must be true or false')).default(true),
  udpGro: z.boolean(err('must be true or false')).default(true),
  uringWrites: z.boolean(err('must be true or false')).default(true),
});

const limitsSchema = section({
  maxPeers: intRange(1, 65536).default(1024),
});

const controlSchema = section({
  socket: z
    .string(err('must be a string (a Unix socket path)'))
    .min(1, 'must not be empty')
    .refine((s) => Buffer.byteLength(s) <= MAX_SOCKET_PATH_BYTES, {
      message: `too long for a Unix socket path (at most ${MAX_SOCKET_PATH_BYTES} bytes)`,
    })
    .refine((s) => !s.includes('\0'), { message: 'must not contain NUL' })
    .optional(),
});

const ENDPOINT_TEXT = 'must be an address with optional port ("198.18.0.2", "198.18.0.2:4789", "[fd00::2]:4789") or {address, port}';

const endpointSchema = z.unknown().transform((v, ctx): EndpointInput => {
  const fail = (message: string, at: PropertyKey[] = []) => {
    ctx.issues.push({ code: 'custom', message, input: v, path: at });
    return z.NEVER;
  };
  if (v === undefined || v === null) return fail('required');
  if (typeof v === 'string') {
    const r = parseEndpointString(v);
    return r.ok ? r.value : fail(r.message);
  }
  if (typeof v !== 'object' || Array.isArray(v)) return fail(ENDPOINT_TEXT);
  const obj = v as Record<string, unknown>;
  let ok = true;
  for (const key of Object.keys(obj)) {
    if (key !== 'address' && key !== 'port') {
      fail(unknownKeyMessage(key, ['address', 'port']), [key]);
      ok = false;
    }
  }
  let ip: { address: string; family: 4 | 6 } | undefined;
  if (typeof obj.address !== 'string') {
    fail(obj.address === undefined ? 'required' : 'must be a string (an IPv4 or IPv6 address)', ['address']);
  } else {
    const r = parseIp(obj.address);
    if (r.ok) ip = r.value;
    else fail(r.message, ['address']);
  }
  let port: number | undefined;
  if (obj.port !== undefined) {
    if (typeof obj.port === 'number' && Number.isInteger(obj.port) && obj.port >= 1 && obj.port <= 65535) {
      port = obj.port;
    } else {
      fail('must be an integer from 1 to 65535', ['port']);
      ok = false;
    }
  }
  if (!ok || !ip) return z.NEVER;
  return { address: ip.address, family: ip.family, port };
});

const peerSchema = section({
  name: peerName,
  endpoint: endpointSchema,
  allowedIps: list(cidr, 'CIDR prefixes').default([]),
  macs: list(mac, 'MAC addresses').default([]),
});

const rootSchema = section({
  name: ifName,
  netns: z.preprocess(nullToUndefined, netnsName.optional()),
  device: deviceSchema.prefault({}),
  encap: encapSchema.prefault({}),
  underlay: underlaySchema,
  workers: intRange(1, 64).optional(),
  cpuAffinity: list(intRange(0, 4095), 'CPU numbers').default([]),
  busyPollMicroseconds: intRange(0, 10000).default(BUSY_POLL_DEFAULT_US),
  // TCP MSS clamp on SYNs both ways: off (default), auto (from the MTU) or a value.
  mssClamp: z.preprocess(
    (v) => (v === null || v === 'off' || v === false ? undefined : v),
    z
      .custom<'auto' | number>((v) => v === 'auto' || (Number.isInteger(v) && (v as number) >= 88 && (v as number) <= 65495), {
        message: "must be 'off', 'auto' or an integer from 88 to 65495",
      })
      .optional(),
  ),
  batchSize: intRange(1, 1024).default(64),
  fdb: fdbSchema.prefault({}),
  offloads: offloadsSchema.prefault({}),
  limits: limitsSchema.prefault({}),
  // Entries are validated one by one (below) so that one bad peer doesn't hide the others' problems.
  peers: z.preprocess(nullToUndefined, list(z.unknown(), 'peers').optional()),
  control: controlSchema.prefault({}),
});

const KNOWN_KEYS: Record<string, string[]> = {
  '': Object.keys(rootSchema.shape),
  device: Object.keys(deviceSchema.shape),
  encap: Object.keys(encapSchema.shape),
  underlay: Object.keys(underlaySchema.shape),
  fdb: Object.keys(fdbSchema.shape),
  offloads: Object.keys(offloadsSchema.shape),
  limits: Object.keys(limitsSchema.shape),
  control: Object.keys(controlSchema.shape),
  peer: Object.keys(peerSchema.shape),
};

type RootParsed = z.output<typeof rootSchema>;
type PeerParsed = z.output<typeof peerSchema>;

// ---------------------------------------------------------------------------------------------
// Issue formatting

type PathItem = PropertyKey;

export function formatPath(items: readonly PathItem[], prefix = ''): string {
  let out = prefix;
  for (const item of items) {
    if (typeof item === 'number') out += `[${item}]`;
    else out += out === '' ? String(item) : `.${String(item)}`;
  }
  return out;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

function unknownKeyMessage(key: string, known: readonly string[]): string {
  const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, '');
  const guess =
    known.find((k) => norm(k) === norm(key)) ??
    known.find((k) => editDistance(k.toLowerCase(), key.toLowerCase()) <= 2);
  return guess ? `unknown key (did you mean "${guess}"?)` : `unknown key (known: ${known.join(', ')})`;
}

function knownKeysAt(items: readonly PathItem[], prefix: string): string[] {
  if (prefix !== '' || items.some((i) => typeof i === 'number')) return KNOWN_KEYS.peer ?? [];
  return KNOWN_KEYS[items.map(String).join('.')] ?? [];
}

function collectIssues(error: z.ZodError, out: ConfigIssue[], prefix = ''): void {
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeysAt(issue.path, prefix);
      for (const key of issue.keys) {
        out.push({ path: formatPath([...issue.path, key], prefix), message: unknownKeyMessage(key, known) });
      }
      continue;
    }
    out.push({ path: formatPath(issue.path, prefix) || '(config)', message: issue.message });
  }
}

/** Generic messages for issues without a field-specific one. */
function defaultMessage(iss: { code?: string; input?: unknown; expected?: unknown }): string | undefined {
  if (iss.code === 'invalid_type') {
    if (iss.input === undefined) return 'required';
    const got = iss.input === null ? 'null' : Array.isArray(iss.input) ? 'a list' : typeof iss.input;
    const expected = iss.expected === 'object' ? 'a mapping (key: value)' : `a ${String(iss.expected)}`;
    return `must be ${expected}, got ${got}`;
  }
  return undefined;
}

function dedupe(issues: ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const k = `${i.path}\n${i.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------
// Stage 2: defaults that depend on other fields, and rules across fields

interface PeerContext {
  /** Default endpoint port (encap.port); 0 for the IP-protocol modes. */
  port: number;
  /** The mode (a port on the endpoint of an IP-protocol mode is an error). */
  encapType?: EncapType;
  /** tun routes by allowedIps; tap forwards by MAC. */
  deviceType?: DeviceType;
  /** underlay.local, canonical; omitted when unknown (invalid). */
  local?: { address: string; family: 4 | 6 };
  deviceMac?: string | null;
}

function resolvePeer(p: PeerParsed, ctx: PeerContext, at: string, issues: ConfigIssue[]): ResolvedPeer {
  const ep = p.endpoint;
  if (ctx.local) {
    if (ep.family !== ctx.local.family) {
      issues.push({
        path: `${at}.endpoint`,
        message: `${ep.address} is IPv${ep.family} but underlay.local ${ctx.local.address} is IPv${ctx.local.family}`,
      });
    } else if (ep.address === ctx.local.address) {
      issues.push({ path: `${at}.endpoint`, message: `${ep.address} is underlay.local itself` });
    }
  }
  if (isUnspecified(ep.address, ep.family) || isMulticast(ep.address, ep.family)) {
    issues.push({ path: `${at}.endpoint`, message: `${ep.address} is not a unicast address` });
  }
  if (ctx.encapType && DEFAULT_PORTS[ctx.encapType] === null && ep.port !== undefined) {
    issues.push({ path: `${at}.endpoint`, message: `${ctx.encapType} has no UDP port (an IP protocol); give the address alone` });
  }
  if (ctx.deviceType === 'tun' && p.macs.length > 0) {
    issues.push({ path: `${at}.macs`, message: 'used only with device.type tap (a tun device routes by allowedIps)' });
  }
  for (const [field, values] of [
    ['allowedIps', p.allowedIps.map((c) => networkOf(c.cidr))],
    ['macs', p.macs],
  ] as const) {
    values.forEach((v, i) => {
      const first = values.indexOf(v);
      if (first !== i) issues.push({ path: `${at}.${field}[${i}]`, message: `${v} is listed twice (also ${field}[${first}])` });
    });
  }
  p.macs.forEach((m, i) => {
    if (ctx.deviceMac && m === ctx.deviceMac) {
      issues.push({ path: `${at}.macs[${i}]`, message: `${m} is the device's own MAC (device.mac)` });
    }
  });
  return {
    name: p.name,
    endpoint: { address: ep.address, port: ep.port ?? ctx.port },
    allowedIps: p.allowedIps.map((c) => c.cidr),
    macs: [...p.macs],
  };
}

interface PlacedPeer {
  peer: ResolvedPeer;
  /** Path of the entry, e.g. `peers[2]`, or a description for an existing peer. */
  at: string;
}

const placedNetworks = new WeakMap<PlacedPeer, string[]>();

/** The networks of a peer's allowedIps, computed once per placed peer. */
function networksOf(p: PlacedPeer): string[] {
  let nets = placedNetworks.get(p);
  if (!nets) {
    nets = p.peer.allowedIps.map(networkOf);
    placedNetworks.set(p, nets);
  }
  return nets;
}

/** Uniqueness of names, endpoints, MACs and routes of `added` against `existing` and each other. */
function checkUnique(existing: PlacedPeer[], added: PlacedPeer[], issues: ConfigIssue[]): void {
  const names = new Map<string, PlacedPeer>();
  const endpoints = new Map<string, PlacedPeer>();
  const macs = new Map<string, PlacedPeer>();
  const routes = new Map<string, PlacedPeer>();
  const describe = (p: PlacedPeer) => `peer "${p.peer.name}"${p.at ? ` (${p.at})` : ''}`;
  const remember = (p: PlacedPeer) => {
    if (!names.has(p.peer.name)) names.set(p.peer.name, p);
    const ep = formatEndpoint(p.peer.endpoint);
    if (!endpoints.has(ep)) endpoints.set(ep, p);
    for (const m of p.peer.macs) if (!macs.has(m)) macs.set(m, p);
    for (const net of networksOf(p)) if (!routes.has(net)) routes.set(net, p);
  };
  existing.forEach(remember);
  for (const p of added) {
    const sameName = names.get(p.peer.name);
    if (sameName) {
      const where = sameName.at ? `also ${sameName.at}` : 'a peer of that name exists';
      issues.push({ path: `${p.at}.name`, message: `duplicate peer name "${p.peer.name}" (${where})` });
    }
    const ep = formatEndpoint(p.peer.endpoint);
    const sameEp = endpoints.get(ep);
    if (sameEp) issues.push({ path: `${p.at}.endpoint`, message: `${ep} is already the endpoint of ${describe(sameEp)}` });
    p.peer.macs.forEach((m, i) => {
      const owner = macs.get(m);
      if (owner && owner !== p) issues.push({ path: `${p.at}.macs[${i}]`, message: `${m} is already assigned to ${describe(owner)}` });
    });
    networksOf(p).forEach((net, i) => {
      const owner = routes.get(net);
      if (owner && owner !== p) issues.push({ path: `${p.at}.allowedIps[${i}]`, message: `${net} is already routed to ${describe(owner)}` });
    });
    remember(p);
  }
}

function parseOnePeer(input: unknown, at: string, issues: ConfigIssue[]): PeerParsed | undefined {
  const r = peerSchema.safeParse(input, { error: defaultMessage });
  if (r.success) return r.data;
  collectIssues(r.error, issues, at);
  return undefined;
}

function fail(issues: ConfigIssue[]): never {
  throw new ConfigError(dedupe(issues));
}

// ---------------------------------------------------------------------------------------------
// Public API

/** Validates a raw config object (as read from YAML/JSON) and fills in every default. Throws ConfigError. */
export function parseConfig(input: unknown): ResolvedConfig {
  const issues: ConfigIssue[] = [];
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    const got = input === null ? 'null' : Array.isArray(input) ? 'a list' : typeof input;
    fail([{ path: '(config)', message: `must be a mapping (key: value), got ${got}` }]);
  }
  const r = rootSchema.safeParse(input, { error: defaultMessage });
  if (!r.success) collectIssues(r.error, issues);
  const root: RootParsed | undefined = r.success ? r.data : undefined;

  // Peers: validated even when other sections are broken, against whatever is known.
  const rawPeers = (input as { peers?: unknown }).peers;
  const peerInputs = Array.isArray(rawPeers) ? rawPeers : [];
  const encapType = root?.encap.type ?? 'vxlan';
  const port = root?.encap.port ?? DEFAULT_PORTS[encapType] ?? 0;
  const ctx: PeerContext = { port, deviceMac: root?.device.mac ?? null, encapType, deviceType: root?.device.type };
  if (root) ctx.local = root.underlay.local;
  const placed: PlacedPeer[] = [];
  const peerIssues: ConfigIssue[] = [];
  peerInputs.forEach((p, i) => {
    const at = `peers[${i}]`;
    const parsed = parseOnePeer(p, at, peerIssues);
    if (parsed) placed.push({ peer: resolvePeer(parsed, ctx, at, peerIssues), at });
  });
  checkUnique([], placed, peerIssues);
  // Report peers in order (a stable sort keeps each entry's issues in the order found).
  const indexOf = (i: ConfigIssue) => Number(/^peers\[(\d+)\]/.exec(i.path)?.[1] ?? -1);
  issues.push(...peerIssues.sort((a, b) => indexOf(a) - indexOf(b)));

  if (!root || issues.length > 0) fail(issues);

  if (peerInputs.length > root.limits.maxPeers) {
    issues.push({ path: 'peers', message: `${peerInputs.length} peers exceed limits.maxPeers (${root.limits.maxPeers})` });
  }
  // What the device carries must be what the encapsulation carries.
  if (root.encap.type === 'vxlan' && root.device.type === 'tun') {
    issues.push({ path: 'encap.type', message: 'vxlan carries Ethernet frames: it needs device.type tap' });
  }
  if (root.encap.type === 'ipip' && root.device.type === 'tap') {
    issues.push({ path: 'encap.type', message: 'ipip carries IP packets: it needs device.type tun' });
  }
  checkPacketDevice(root, issues);
  // RFC 2890 receivers drop a packet older than the last one seen: every packet of the tunnel must
  // leave in sequence order, which several workers sending at once cannot promise.
  if (root.encap.sequence === true && (root.workers ?? defaultWorkers()) > 1) {
    issues.push({ path: 'encap.sequence', message: 'needs workers: 1 (several workers would send sequence numbers out of order)' });
  }
  if (root.device.type === 'tun' && root.device.mac !== undefined) {
    issues.push({ path: 'device.mac', message: 'a tun device has no MAC address' });
  }
  const addresses = root.device.addresses.map((a) => a.cidr);
  addresses.forEach((a, i) => {
    const first = addresses.indexOf(a);
    if (first !== i) issues.push({ path: `device.addresses[${i}]`, message: `${a} is listed twice (also device.addresses[${first}])` });
  });
  if (issues.length > 0) fail(issues);

  return {
    name: root.name,
    netns: root.netns ?? null,
    device: {
      type: root.device.type,
      name: root.device.name ?? root.device.interface ?? root.name,
      mtu: root.device.mtu ?? null,
      addresses,
      mac: root.device.mac ?? null,
      ...(root.device.type === 'packet' ? { interface: root.device.interface } : {}),
    },
    encap: {
      type: root.encap.type,
      vni: root.encap.vni ?? 0,
      port,
      key: root.encap.key ?? null,
      checksum: root.encap.checksum ?? false,
      sequence: root.encap.sequence ?? false,
    },
    underlay: {
      local: root.underlay.local.address,
      sourcePorts: root.underlay.sourcePorts,
      udpChecksum: root.underlay.udpChecksum,
    },
    workers: root.workers ?? defaultWorkers(),
    cpuAffinity: [...root.cpuAffinity],
    busyPollMicroseconds: root.busyPollMicroseconds,
    mssClamp: root.mssClamp ?? 'off',
    batchSize: root.batchSize,
    fdb: { ...root.fdb },
    offloads: { ...root.offloads },
    limits: { ...root.limits },
    peers: placed.map((p) => p.peer),
    control: { socket: root.control.socket ?? defaultSocketPath(root.name) },
  };
}

/**
 * device.type packet attaches an existing interface as it is: it needs device.interface, and
 * nothing that would change the interface (name, mtu, addresses, mac) may be given; it bridges
 * Ethernet frames, so the mode must carry them. device.interface means nothing to tap and tun.
 */
function checkPacketDevice(root: RootParsed, issues: ConfigIssue[]): void {
  const device = root.device;
  if (device.type !== 'packet') {
    if (device.interface !== undefined) {
      issues.push({ path: 'device.interface', message: `used only with device.type packet (a ${device.type} device is created by overlayfwd)` });
    }
    return;
  }
  if (device.interface === undefined) {
    issues.push({ path: 'device.interface', message: 'required for device.type packet (the existing interface to attach, e.g. eth1)' });
  }
  const untouched = 'overlayfwd attaches the interface as it is and never changes it';
  // The resolved config names the device after the interface: that much is allowed back in.
  if (device.name !== undefined && device.name !== device.interface) {
    issues.push({ path: 'device.name', message: `not used by device.type packet: the device is device.interface itself (${untouched})` });
  }
  if (device.mtu !== undefined) {
    issues.push({ path: 'device.mtu', message: `not used by device.type packet: the interface keeps its own MTU (${untouched})` });
  }
  if (device.addresses.length > 0) {
    issues.push({ path: 'device.addresses', message: `not used by device.type packet: no addresses are assigned (${untouched})` });
  }
  if (device.mac !== undefined) {
    issues.push({ path: 'device.mac', message: `not used by device.type packet: the interface keeps its own MAC (${untouched})` });
  }
  if (root.encap.type === 'ipip') {
    issues.push({ path: 'encap.type', message: 'ipip carries IP packets: device.type packet bridges Ethernet frames (use vxlan, geneve, gre or gre-udp)' });
  }
}

/**
 * Validates one peer entry (same shape as an item of `peers:`), with paths prefixed by `at`.
 * With `config`, the endpoint port defaults to `config.encap.port` (else 4789), the endpoint's
 * family is checked against underlay.local, and name, endpoint and MACs must not clash with
 * `existing` (default: `config.peers`), whose count must stay below limits.maxPeers.
 */
export function parsePeer(
  input: unknown,
  at = 'peer',
  config?: ResolvedConfig,
  existing?: readonly ResolvedPeer[],
): ResolvedPeer {
  const issues: ConfigIssue[] = [];
  const parsed = parseOnePeer(input, at, issues);
  if (!parsed) fail(issues);
  const ctx: PeerContext = { port: config?.encap.port ?? DEFAULT_PORTS.vxlan ?? 4789 };
  if (config) {
    ctx.encapType = config.encap.type;
    ctx.deviceType = config.device.type;
    const local = parseIp(config.underlay.local);
    if (local.ok) ctx.local = local.value;
    ctx.deviceMac = config.device.mac;
  }
  const peer = resolvePeer(parsed, ctx, at, issues);
  const others = existing ?? config?.peers ?? [];
  checkUnique(
    others.map((p) => ({ peer: p, at: '' })),
    [{ peer, at }],
    issues,
  );
  if (config && others.length + 1 > config.limits.maxPeers) {
    issues.push({ path: at, message: `limits.maxPeers (${config.limits.maxPeers}) reached` });
  }
  if (issues.length > 0) fail(issues);
  return peer;
}

/** The encap section with only what its mode takes (the resolved one fills every field). */
export function encapInput(encap: ResolvedConfig['encap']): Record<string, unknown> {
  const input: Record<string, unknown> = { type: encap.type };
  if (encap.type === 'vxlan' || encap.type === 'geneve') input['vni'] = encap.vni;
  if (DEFAULT_PORTS[encap.type] !== null) input['port'] = encap.port;
  if (encap.type === 'gre' || encap.type === 'gre-udp') {
    if (encap.key !== null) input['key'] = encap.key;
    input['checksum'] = encap.checksum;
    input['sequence'] = encap.sequence;
  }
  return input;
}

/** Reads a YAML (or JSON, a subset of YAML) file and parses it. Throws ConfigError. */
export function loadConfigFile(file: string): ResolvedConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (e as Error).message;
    throw new ConfigError([{ path: '(file)', message: `cannot read ${file}: ${why}` }]);
  }
  const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => ({ path: '(file)', message: `${file}: ${(e.message.split('\n')[0] ?? e.message).replace(/:$/, '')}` })),
    );
  }
  const data: unknown = doc.toJS({ maxAliasCount: 100 });
  if (data === null || data === undefined) {
    throw new ConfigError([{ path: '(file)', message: `${file} is empty` }]);
  }
  return parseConfig(data);
}

/** Encapsulation overhead in bytes (outer IP + UDP + encapsulation header + inner Ethernet where carried). */
/** GRE header bytes we send: 4, plus 4 each for the checksum, the key and the sequence number. */
function greHeader(config: ResolvedConfig): number {
  return 4 + (config.encap.checksum ? 4 : 0) + (config.encap.key !== null ? 4 : 0) + (config.encap.sequence ? 4 : 0);
}

export function overheadFor(config: ResolvedConfig): number {
  const outer = isIP(config.underlay.local) === 6 ? 40 : 20;
  const l2 = config.device.type !== 'tun' ? 14 : 0;
  switch (config.encap.type) {
    case 'vxlan':
      return outer + 8 + 8 + 14;
    case 'geneve':
      return outer + 8 + 8 + l2;
    case 'gre':
      return outer + greHeader(config) + l2;
    case 'gre-udp':
      return outer + 8 + greHeader(config) + l2;
    case 'ipip':
      return outer;
    case 'esp':
      throw new Error('the overhead of esp depends on the cipher suite and padding; not supported yet');
  }
}
