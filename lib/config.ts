// Configuration schema: validation (zod) and defaults. Produces the ResolvedConfig of lib/types.ts.
// Every problem is reported with the path of the field it concerns (`peers[1].endpoint: ...`),
// and all problems found are reported at once.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isIP } from 'node:net';
import { z } from 'zod';
import YAML from 'yaml';
import type {
  DeviceType,
  EncapType,
  EspCipher,
  PeerSecurityAssociations,
  PublicPeer,
  ResolvedConfig,
  ResolvedEndpoint,
  ResolvedPeer,
  SecurityAssociation,
} from './types';

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
export const SUPPORTED_ENCAP_TYPES: readonly EncapType[] = ['vxlan', 'geneve', 'gre', 'gre-udp', 'ipip', 'esp'];
export const ESP_CIPHERS = ['aes-128-gcm', 'aes-256-gcm', 'chacha20-poly1305'] as const satisfies readonly EspCipher[];
/** Bytes of the cipher key proper; an SA's key is this followed by a 4-byte salt (RFC 4106 §8.1, RFC 7634 §2). */
export const ESP_CIPHER_KEY_BYTES: Record<EspCipher, number> = { 'aes-128-gcm': 16, 'aes-256-gcm': 32, 'chacha20-poly1305': 32 };
export const ESP_SALT_BYTES = 4;
/** Default grace period of a replaced inbound SA after a rekey (esp.rekeyGraceSeconds). */
export const ESP_REKEY_GRACE_DEFAULT_SECONDS = 30;
/** Inbound SAs a peer may hold at once: the newest and those still in a rekey's grace period. */
export const ESP_MAX_INBOUND_SAS = 4;

/** Bytes of an SA key (cipher key + salt) for `cipher`. */
export function espKeyBytes(cipher: EspCipher): number {
  return ESP_CIPHER_KEY_BYTES[cipher] + ESP_SALT_BYTES;
}

/** True when the mode rides UDP (has a port); false for the IP-protocol modes and ESP with udp: false. */
export function usesUdp(encap: { type: EncapType; udp?: boolean | undefined }): boolean {
  if (encap.type === 'esp') return encap.udp !== false;
  return DEFAULT_PORTS[encap.type] !== null;
}

/** How a mode without a port is described in messages. */
function ipProtocolName(encap: { type: EncapType; udp?: boolean | undefined }): string {
  return encap.type === 'esp' ? 'esp with udp: false has no UDP port (IP protocol 50)' : `${encap.type} has no UDP port (an IP protocol)`;
}

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
const CIPHER_TEXT = `one of: ${ESP_CIPHERS.join(', ')}`;
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
  cipher: z
    .enum(ESP_CIPHERS, {
      error: (iss: IssueLike) =>
        iss.input === undefined ? 'required' : `${JSON.stringify(iss.input)} is not an ESP cipher (${CIPHER_TEXT})`,
    })
    .optional(),
  udp: z.boolean(err('must be true or false')).optional(),
  esn: z.boolean(err('must be true or false')).optional(),
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
  if (e.type === 'esp') {
    if (e.cipher === undefined) ctx.addIssue({ code: 'custom', path: ['cipher'], message: `required for esp (${CIPHER_TEXT})` });
    if (e.udp === false && e.port !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['port'], message: 'not used by esp with udp: false (IP protocol 50, no UDP port)' });
    }
  } else {
    if (e.cipher !== undefined) ctx.addIssue({ code: 'custom', path: ['cipher'], message: `not used by ${e.type} (esp only)` });
    if (e.udp !== undefined) ctx.addIssue({ code: 'custom', path: ['udp'], message: `not used by ${e.type} (esp only)` });
    if (e.esn !== undefined) ctx.addIssue({ code: 'custom', path: ['esn'], message: `not used by ${e.type} (esp only)` });
  }
});

const espSchema = section({
  rekeyGraceSeconds: intRange(1, 3600).default(ESP_REKEY_GRACE_DEFAULT_SECONDS),
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

// ---- ESP security associations. A key is a secret: no message here ever quotes one, nor any
// value given where a key or an SPI belongs (a key pasted into the wrong field stays unprinted).

const SPI_TEXT = 'must be an integer from 1 to 4294967295, or a hex string such as "0x1001"';

/** An SPI: an integer from 1 to 0xFFFFFFFF, or the same as a hex ("0x1001") or decimal string. */
export function parseSpi(v: unknown): Parsed<number> {
  let n: number | undefined;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string' && /^0[xX][0-9a-fA-F]{1,8}$/.test(v)) n = parseInt(v.slice(2), 16);
  else if (typeof v === 'string' && /^[0-9]{1,10}$/.test(v)) n = Number(v);
  if (n === 0) return { ok: false, message: `SPI 0 is reserved (RFC 4303 §2.1): ${SPI_TEXT}` };
  if (n === undefined || !Number.isInteger(n) || n < 1 || n > 0xffffffff) return { ok: false, message: SPI_TEXT };
  return { ok: true, value: n };
}

/** An SPI as shown in messages and listings: 0x00001001. */
export function formatSpi(spi: number): string {
  return `0x${spi.toString(16).padStart(8, '0')}`;
}

/** What an SA key must be, for messages: "a hex string of 20 bytes (40 hex digits: ...)". */
function keyShape(cipher: EspCipher | undefined): string {
  if (!cipher) return 'a hex string (the cipher key followed by a 4-byte salt)';
  const bytes = espKeyBytes(cipher);
  return `a hex string of ${bytes} bytes (${bytes * 2} hex digits: the ${ESP_CIPHER_KEY_BYTES[cipher]}-byte ${cipher} key followed by a ${ESP_SALT_BYTES}-byte salt)`;
}

/**
 * An SA key for `cipher` (undefined: any whole number of bytes), in canonical form: lower-case
 * hex without "0x". The messages say what is expected and never include the value.
 */
export function parseSaKey(v: unknown, cipher: EspCipher | undefined): Parsed<string> {
  const shape = keyShape(cipher);
  if (typeof v !== 'string') return { ok: false, message: `must be ${shape}, quoted in YAML` };
  const hex = /^0[xX]/.test(v) ? v.slice(2) : v;
  if (!/^[0-9a-fA-F]*$/.test(hex)) return { ok: false, message: `must be ${shape}; it holds characters that are not hex digits` };
  if (cipher && hex.length !== 2 * espKeyBytes(cipher)) return { ok: false, message: `must be ${shape}; got ${hex.length} hex digits` };
  if (hex.length === 0 || hex.length % 2 !== 0) return { ok: false, message: `must be ${shape}; got ${hex.length} hex digits` };
  if (/^0*$/.test(hex)) return { ok: false, message: 'must not be all zeros' };
  return { ok: true, value: hex.toLowerCase() };
}

/** An SA as read in stage 1: the SPI checked, the key still as given (its length depends on encap.cipher). */
interface SaInput {
  spi: number;
  key: unknown;
}

interface PeerSaInput {
  out: SaInput;
  in: SaInput[];
  /** `in` was written as a list (paths then say sa.in[i]). */
  inIsList: boolean;
}

type Report = (message: string, path: PropertyKey[]) => void;

function saMapping(x: unknown, path: PropertyKey[], known: readonly string[], report: Report): Record<string, unknown> | undefined {
  if (x === undefined || x === null) {
    report('required', path);
    return undefined;
  }
  if (typeof x !== 'object' || Array.isArray(x)) {
    report(`must be a mapping with ${known.join(' and ')}`, path);
    return undefined;
  }
  // Unknown keys are reported; the known ones are still read, so that their problems show too.
  for (const k of Object.keys(x)) {
    if (!known.includes(k)) report(unknownKeyMessage(k, known), [...path, k]);
  }
  return x as Record<string, unknown>;
}

/** One SA `{ spi, key }`; with `cipher`, the key is checked (and canonicalised) too. */
function readSa(x: unknown, path: PropertyKey[], report: Report, cipher?: EspCipher | null): SaInput | undefined {
  const m = saMapping(x, path, ['spi', 'key'], report);
  if (!m) return undefined;
  let ok = true;
  let spi = 0;
  if (m.spi === undefined) {
    report('required', [...path, 'spi']);
    ok = false;
  } else {
    const r = parseSpi(m.spi);
    if (r.ok) spi = r.value;
    else {
      report(r.message, [...path, 'spi']);
      ok = false;
    }
  }
  let key: unknown = m.key;
  if (m.key === undefined) {
    report('required', [...path, 'key']);
    ok = false;
  } else if (cipher !== null) {
    const r = parseSaKey(m.key, cipher);
    if (r.ok) key = r.value;
    else {
      report(r.message, [...path, 'key']);
      ok = false;
    }
  } else if (typeof m.key !== 'string') {
    report(`must be ${keyShape(undefined)}, quoted in YAML`, [...path, 'key']);
    ok = false;
  }
  return ok ? { spi, key } : undefined;
}

/** `sa: { out: {spi, key}, in: {spi, key} | [{spi, key}, ...] }`, keys checked in stage 2. */
function readPeerSa(v: unknown, report: Report): PeerSaInput | undefined {
  const top = saMapping(v, [], ['out', 'in'], report);
  if (!top) return undefined;
  const out = readSa(top.out, ['out'], report, null);
  const inIsList = Array.isArray(top.in);
  let ins: Array<SaInput | undefined>;
  if (Array.isArray(top.in)) {
    ins = top.in.map((x, i) => readSa(x, ['in', i], report, null));
    if (top.in.length === 0) {
      report('must not be empty (one SA, or a list of them, newest first)', ['in']);
      return undefined;
    }
    if (top.in.length > ESP_MAX_INBOUND_SAS) {
      report(`at most ${ESP_MAX_INBOUND_SAS} inbound SAs (the newest first, then those still in a rekey's grace period)`, ['in']);
      return undefined;
    }
  } else {
    ins = [readSa(top.in, ['in'], report, null)];
  }
  if (!out || ins.some((x) => x === undefined)) return undefined;
  return { out, in: ins as SaInput[], inIsList };
}

const saSchema = z.unknown().transform((v, ctx): PeerSaInput => {
  let failed = false;
  const sa = readPeerSa(v, (message, path) => {
    failed = true;
    // `input` is never shown; keep the secret out of the issue altogether.
    ctx.issues.push({ code: 'custom', message, input: null, path });
  });
  return failed || !sa ? z.NEVER : sa;
});

const peerSchema = section({
  name: peerName,
  endpoint: endpointSchema,
  allowedIps: list(cidr, 'CIDR prefixes').default([]),
  macs: list(mac, 'MAC addresses').default([]),
  /** esp: the peer's security associations. */
  sa: z.preprocess(nullToUndefined, saSchema.optional()),
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
  esp: z.preprocess(nullToUndefined, espSchema.optional()),
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
  esp: Object.keys(espSchema.shape),
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
  /** The mode (a port on the endpoint of an IP-protocol mode is an error); undefined when unknown. */
  encapType?: EncapType;
  /** esp: the cipher (SA keys are checked against its key length); undefined when unknown. */
  cipher?: EspCipher;
  /** esp: encap.udp (false: IP protocol 50, endpoints without a port). */
  udp?: boolean;
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
  if (ctx.encapType && !usesUdp({ type: ctx.encapType, udp: ctx.udp }) && ep.port !== undefined) {
    issues.push({ path: `${at}.endpoint`, message: `${ipProtocolName({ type: ctx.encapType, udp: ctx.udp })}; give the address alone` });
  }
  let sa: PeerSecurityAssociations | undefined;
  if (ctx.encapType === 'esp' && p.sa === undefined) {
    issues.push({
      path: `${at}.sa`,
      message: 'required for esp: { out: { spi, key }, in: { spi, key } } (the SA we send with, and the one the peer sends with)',
    });
  } else if (ctx.encapType !== undefined && ctx.encapType !== 'esp' && p.sa !== undefined) {
    issues.push({ path: `${at}.sa`, message: `used only with encap.type esp (${ctx.encapType} is not encrypted)` });
  } else if (p.sa !== undefined) {
    sa = resolveSa(p.sa, ctx.cipher, at, issues);
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
    ...(sa ? { sa } : {}),
  };
}

/** Whether a resolved peer's `in` was written as a list: error paths then say sa.in[i]. */
const inWrittenAsList = new WeakMap<PeerSecurityAssociations, boolean>();

/** Path of an SA under `prefix` (`peers[0].sa`): `.out`, `.in`, or `.in[i]` when `in` is a list. */
function saPath(prefix: string, sa: PeerSecurityAssociations, which: 'out' | number): string {
  if (which === 'out') return `${prefix}.out`;
  const list = inWrittenAsList.get(sa) ?? sa.in.length > 1;
  return list ? `${prefix}.in[${which}]` : `${prefix}.in`;
}

/** Stage 2 of `sa`: keys checked against the cipher; no inbound SPI twice within the peer. */
function resolveSa(input: PeerSaInput, cipher: EspCipher | undefined, at: string, issues: ConfigIssue[]): PeerSecurityAssociations | undefined {
  let ok = true;
  const key = (sa: SaInput, path: string): string => {
    const r = parseSaKey(sa.key, cipher);
    if (r.ok) return r.value;
    issues.push({ path: `${path}.key`, message: r.message });
    ok = false;
    return '';
  };
  const inPath = (i: number) => (input.inIsList ? `${at}.sa.in[${i}]` : `${at}.sa.in`);
  const out = { spi: input.out.spi, key: key(input.out, `${at}.sa.out`) };
  const ins = input.in.map((sa, i) => ({ spi: sa.spi, key: key(sa, inPath(i)) }));
  ins.forEach((sa, i) => {
    const first = ins.findIndex((o) => o.spi === sa.spi);
    if (first !== i) {
      issues.push({ path: `${inPath(i)}.spi`, message: `SPI ${formatSpi(sa.spi)} is listed twice (also sa.in[${first}])` });
      ok = false;
    }
  });
  if (!ok) return undefined;
  const sa: PeerSecurityAssociations = { out, in: ins };
  inWrittenAsList.set(sa, input.inIsList);
  return sa;
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
  // ESP: inbound SPIs pick the SA (and so the peer) of a received packet; a cipher key used by
  // two SAs would repeat nonces (both count sequence numbers, the IVs, from 1).
  const inboundSpis = new Map<number, PlacedPeer>();
  const keys = new Map<string, { p: PlacedPeer; path: string }>();
  const describe = (p: PlacedPeer) => `peer "${p.peer.name}"${p.at ? ` (${p.at})` : ''}`;
  const saEntries = (p: PlacedPeer): Array<{ sa: { spi: number; key: string }; path: string; inbound: boolean }> => {
    const sa = p.peer.sa;
    if (!sa) return [];
    const prefix = p.at ? `${p.at}.sa` : `peer "${p.peer.name}" sa`;
    return [
      { sa: sa.out, path: saPath(prefix, sa, 'out'), inbound: false },
      ...sa.in.map((x, i) => ({ sa: x, path: saPath(prefix, sa, i), inbound: true })),
    ];
  };
  /** The cipher key proper (the salt cut off): what must never serve two SAs. */
  const cipherKey = (key: string) => key.slice(0, -2 * ESP_SALT_BYTES);
  const rememberSa = (p: PlacedPeer, e: ReturnType<typeof saEntries>[number]) => {
    if (e.inbound && !inboundSpis.has(e.sa.spi)) inboundSpis.set(e.sa.spi, p);
    if (!keys.has(cipherKey(e.sa.key))) keys.set(cipherKey(e.sa.key), { p, path: e.path });
  };
  const remember = (p: PlacedPeer) => {
    if (!names.has(p.peer.name)) names.set(p.peer.name, p);
    const ep = formatEndpoint(p.peer.endpoint);
    if (!endpoints.has(ep)) endpoints.set(ep, p);
    for (const m of p.peer.macs) if (!macs.has(m)) macs.set(m, p);
    for (const net of networksOf(p)) if (!routes.has(net)) routes.set(net, p);
  };
  existing.forEach((p) => {
    remember(p);
    for (const e of saEntries(p)) rememberSa(p, e);
  });
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
    for (const e of saEntries(p)) {
      const spiOwner = e.inbound ? inboundSpis.get(e.sa.spi) : undefined;
      if (spiOwner && spiOwner !== p) {
        issues.push({
          path: `${e.path}.spi`,
          message: `SPI ${formatSpi(e.sa.spi)} is already an inbound SPI of ${describe(spiOwner)} (inbound SPIs must be unique: the SPI tells whose packet it is)`,
        });
      }
      const keyOwner = keys.get(cipherKey(e.sa.key));
      if (keyOwner) {
        issues.push({
          path: `${e.path}.key`,
          message: `the same key as ${keyOwner.path}.key: every SA needs a key of its own (a shared key would repeat nonces)`,
        });
      }
      rememberSa(p, e);
    }
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
  // When the root is broken, peers are still checked against the mode and cipher as written.
  const rawEncap = (input as { encap?: unknown }).encap;
  const rawField = (k: string): unknown => (rawEncap !== null && typeof rawEncap === 'object' ? (rawEncap as Record<string, unknown>)[k] : undefined);
  const rawType = rawField('type');
  const encapType: EncapType | undefined =
    root?.encap.type ?? (rawType === undefined ? 'vxlan' : ENCAP_TYPES.find((t) => t === rawType));
  const rawCipher = rawField('cipher');
  const cipher: EspCipher | undefined = root?.encap.cipher ?? ESP_CIPHERS.find((c) => c === rawCipher);
  const rawUdp = rawField('udp');
  const udp: boolean | undefined = root?.encap.udp ?? (typeof rawUdp === 'boolean' ? rawUdp : undefined);
  const port =
    root?.encap.port ?? (encapType !== undefined && usesUdp({ type: encapType, udp }) ? DEFAULT_PORTS[encapType] : null) ?? 0;
  const ctx: PeerContext = { port, deviceMac: root?.device.mac ?? null, deviceType: root?.device.type };
  if (encapType !== undefined) ctx.encapType = encapType;
  if (cipher !== undefined) ctx.cipher = cipher;
  if (udp !== undefined) ctx.udp = udp;
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
  if (root.esp !== undefined && root.encap.type !== 'esp') {
    issues.push({ path: 'esp', message: `used only with encap.type esp (this config runs ${root.encap.type})` });
  }
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
      ...(root.encap.type === 'esp' ? { cipher: root.encap.cipher!, udp: root.encap.udp ?? true, esn: root.encap.esn ?? true } : {}),
    },
    ...(root.encap.type === 'esp' ? { esp: { rekeyGraceSeconds: root.esp?.rekeyGraceSeconds ?? ESP_REKEY_GRACE_DEFAULT_SECONDS } } : {}),
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
  if (root.encap.type === 'esp') {
    issues.push({ path: 'encap.type', message: 'esp on device.type packet is not supported yet (use device.type tap or tun)' });
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
    if (config.encap.cipher !== undefined) ctx.cipher = config.encap.cipher;
    if (config.encap.udp !== undefined) ctx.udp = config.encap.udp;
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

/** New SAs for a peer (overlay.peers.rekey): either or both directions. */
export interface SaChange {
  in?: SecurityAssociation;
  out?: SecurityAssociation;
}

/**
 * Validates a rekey of the peer `name` of `config`: `{ in?, out? }`, each `{ spi, key }`, at
 * least one, with paths under `at` (`rekey.in.key`, ...). SPIs and key lengths as in the config;
 * and what makes a new SA new: an inbound SPI that no inbound SA of any peer has (this peer's
 * current and retiring ones included), an outbound SPI other than the current one, and keys no
 * SA in use has. Throws ConfigError; the messages never include a key.
 */
export function parseRekey(input: unknown, config: ResolvedConfig, name: string, at = 'rekey'): SaChange {
  const issues: ConfigIssue[] = [];
  const report: Report = (message, p) => issues.push({ path: formatPath(p, at), message });
  if (config.encap.type !== 'esp' || !config.encap.cipher) fail([{ path: at, message: `needs encap.type esp (this overlay runs ${config.encap.type})` }]);
  const peer = config.peers.find((p) => p.name === name);
  if (!peer?.sa) fail([{ path: at, message: `no peer named ${JSON.stringify(name)}` }]);
  const top = saMapping(input, [], ['in', 'out'], report);
  if (!top) fail(issues);
  if (top.in === undefined && top.out === undefined) fail([{ path: at, message: 'needs in, out or both (each { spi, key })' }, ...issues]);
  const change: SaChange = {};
  for (const dir of ['in', 'out'] as const) {
    if (top[dir] === undefined) continue;
    const sa = readSa(top[dir], [dir], report, config.encap.cipher);
    if (sa) change[dir] = { spi: sa.spi, key: sa.key as string };
  }
  if (issues.length > 0) fail(issues);
  const current = peer.sa;
  if (change.in) {
    const owner = config.peers.find((p) => p.sa?.in.some((x) => x.spi === change.in!.spi));
    if (owner) {
      const whose = owner === peer ? 'this peer (a new SA needs a new SPI)' : `peer "${owner.name}"`;
      issues.push({ path: `${at}.in.spi`, message: `SPI ${formatSpi(change.in.spi)} is already an inbound SPI of ${whose}` });
    }
    if (current.in.length + 1 > ESP_MAX_INBOUND_SAS) {
      issues.push({
        path: `${at}.in`,
        message: `the peer already holds ${current.in.length} inbound SAs, ${current.in.length - 1} of them in a rekey's grace period (at most ${ESP_MAX_INBOUND_SAS}); wait for them to retire`,
      });
    }
  }
  if (change.out && change.out.spi === current.out.spi) {
    issues.push({ path: `${at}.out.spi`, message: `SPI ${formatSpi(change.out.spi)} is the current outbound SPI (a new SA needs a new SPI)` });
  }
  const cipherKey = (key: string) => key.slice(0, -2 * ESP_SALT_BYTES);
  const inUse = new Map<string, string>();
  for (const p of config.peers) {
    if (!p.sa) continue;
    inUse.set(cipherKey(p.sa.out.key), `peer "${p.name}" sa.out`);
    p.sa.in.forEach((x, i) => inUse.set(cipherKey(x.key), `peer "${p.name}" sa.in[${i}]`));
  }
  if (change.in && change.out && cipherKey(change.in.key) === cipherKey(change.out.key)) {
    issues.push({ path: `${at}.out.key`, message: `the same key as ${at}.in.key: every SA needs a key of its own (a shared key would repeat nonces)` });
  }
  for (const dir of ['in', 'out'] as const) {
    const sa = change[dir];
    const owner = sa && inUse.get(cipherKey(sa.key));
    if (owner) issues.push({ path: `${at}.${dir}.key`, message: `the same key as an SA in use (${owner}): every SA needs a key of its own (a shared key would repeat nonces)` });
  }
  if (issues.length > 0) fail(issues);
  return change;
}

/** A peer as it may be shown: SPIs without keys. */
export function publicPeer(peer: ResolvedPeer): PublicPeer {
  const { sa, ...rest } = peer;
  if (!sa) return { ...rest };
  return { ...rest, sa: { out: { spi: sa.out.spi }, in: sa.in.map((x) => ({ spi: x.spi })) } };
}

/** The encap section with only what its mode takes (the resolved one fills every field). */
export function encapInput(encap: ResolvedConfig['encap']): Record<string, unknown> {
  const input: Record<string, unknown> = { type: encap.type };
  if (encap.type === 'vxlan' || encap.type === 'geneve') input['vni'] = encap.vni;
  if (usesUdp(encap)) input['port'] = encap.port;
  if (encap.type === 'esp') {
    input['cipher'] = encap.cipher;
    input['udp'] = encap.udp ?? true;
    input['esn'] = encap.esn ?? true;
  }
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
      // SPI, sequence number and IV (16), then at most 3 bytes of padding, pad length, next
      // header and the 16-byte ICV (21): the most a packet can grow.
      return outer + (config.encap.udp === false ? 0 : 8) + 16 + 21 + l2;
  }
}
