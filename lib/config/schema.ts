// Stage 1 of validation: each field on its own, section by section. Every field problem is
// reported at once, with the path of its field; rules across fields are stage 2 (rules.ts).
import { z } from 'zod';
import { IKE_KEYS, optionalIke } from './ike';
import { isMulticast, isUnspecified, parseEndpointString, parseIp, type EndpointInput } from './addresses';
import { BUSY_POLL_DEFAULT_US } from './defaults';
import { ENCAP_KEYS, encapSchema } from './encap';
import { account, cidr, err, ifName, interfaceName, intRange, ipAddress, list, mac, netnsName, nullToUndefined, peerName, section, trueOrFalse } from './fields';
import { unknownKeyMessage } from './issues';
import { DEVICE_TYPES } from './modes';
import { METRICS_KEYS, metricsSchema } from './metrics';
import { ETCD_KEYS, ETCD_TLS_KEYS, NODE_KEYS, REGISTRY_KEYS, nodeSchema, registrySchema } from './registry';
import { ESP_REKEY_GRACE_DEFAULT_SECONDS, saSchema } from './sa';

export const ROUTE_MODES = ['auto', 'off'] as const;
/** RT_TABLE_MAIN, where `ip route add` puts a route when no table is named. */
export const ROUTE_TABLE_MAIN = 254;

const ROUTE_TABLE_TEXT = 'must be main or a table number from 1 to 4294967295, not 255 (local, the kernel\'s own)';
const routeTable = z
  .number(err(ROUTE_TABLE_TEXT))
  .int(ROUTE_TABLE_TEXT)
  .min(1, ROUTE_TABLE_TEXT)
  .max(4294967295, ROUTE_TABLE_TEXT)
  .refine((t) => t !== 255, ROUTE_TABLE_TEXT);

/** sizeof(sockaddr_un.sun_path) - 1 */
const MAX_SOCKET_PATH_BYTES = 107;

const deviceSchema = section({
  type: z
    .enum(DEVICE_TYPES, {
      error: (iss) => `${JSON.stringify(iss.input)} is not a device type (one of: ${DEVICE_TYPES.join(', ')})`,
    })
    .default('tap'),
  /** The interface to create (default: the instance name); one that exists already is an error. */
  name: ifName.optional(),
  mtu: z.preprocess(
    (v) => (v === null || v === 'auto' ? undefined : v),
    intRange(576, 65535).optional(),
  ),
  addresses: list(cidr, 'CIDR prefixes').default([]),
  /**
   * tap: the device's MAC. Default: derived from the machine ID, the instance and device names
   * and underlay.local (lib/device-mac.ts), the same at every start; random without a machine ID.
   */
  mac: z.preprocess(nullToUndefined, mac.optional()),
  /** packet: the existing Ethernet interface to put on the overlay (a NIC or a veth port). */
  interface: interfaceName.optional(),
  /**
   * tun: kernel routes into the device for every peer's allowedIps outside the device's own
   * prefixes, following the peers (lib/routes.ts); off: none (the host routes by itself).
   */
  routes: z.preprocess(
    nullToUndefined,
    z.enum(ROUTE_MODES, { error: (iss) => (iss.input === undefined ? 'required' : `${JSON.stringify(iss.input)} must be auto or off`) }).optional(),
  ),
  /** tun: the kernel routing table those routes go in (default main, 254). */
  routeTable: z.preprocess((v) => (v === null ? undefined : v === 'main' ? ROUTE_TABLE_MAIN : v), routeTable.optional()),
  /** tun: their metric (RTA_PRIORITY; default 0, which IPv6 stores as 1024). */
  routeMetric: z.preprocess(nullToUndefined, intRange(0, 4294967295).optional()),
});

export const espSchema = section({
  /** After a rekey, the replaced inbound SA stays valid this long (make-before-break). */
  rekeyGraceSeconds: intRange(1, 3600).default(ESP_REKEY_GRACE_DEFAULT_SECONDS),
});

const underlaySchema = section({
  local: ipAddress.refine((ip) => !isUnspecified(ip.address, ip.family) && !isMulticast(ip.address, ip.family), {
    message: 'must be a unicast address of this host (not unspecified or multicast)',
  }),
  sourcePorts: intRange(1, 256).default(16),
  udpChecksum: trueOrFalse().default(false),
});

export const fdbSchema = section({
  learning: trueOrFalse().default(true),
  ageingSeconds: intRange(1, 86400).default(300),
  maxEntries: intRange(16, 1_000_000).default(4096),
});

export const offloadsSchema = section({
  /** TAP with virtio-net headers: TSO/USO super-frames read, coalesced super-frames written. */
  tso: trueOrFalse().default(true),
  /** Send trains of same-size datagrams in one UDP_SEGMENT system call. */
  udpGso: trueOrFalse().default(true),
  /** Receive coalesced datagrams with UDP_GRO. */
  udpGro: trueOrFalse().default(true),
  /** Write a batch of frames to the device in one io_uring submission instead of one write() each. */
  uringWrites: trueOrFalse().default(true),
});

export const limitsSchema = section({
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

/** A peer's endpoint as text, or as `{ address, port }`. */
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

export const peerSchema = section({
  name: peerName,
  endpoint: endpointSchema,
  allowedIps: list(cidr, 'CIDR prefixes').default([]),
  macs: list(mac, 'MAC addresses').default([]),
  /** esp: the peer's security associations, keyed by hand. */
  sa: z.preprocess(nullToUndefined, saSchema.optional()),
  /** esp: IKEv2 negotiates the SAs (overrides the top-level ike field by field). */
  ike: optionalIke,
});

export const rootSchema = section({
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
  // esp: IKEv2 for every peer without manual SAs (each peer's own ike overrides these).
  ike: optionalIke,
  // Entries are validated one by one (resolve.ts) so that one bad peer doesn't hide the others' problems.
  peers: z.preprocess(nullToUndefined, list(z.unknown(), 'peers').optional()),
  control: controlSchema.prefault({}),
  // Registry mode: peers come from etcd (registry.ts).
  registry: z.preprocess(nullToUndefined, registrySchema.optional()),
  node: z.preprocess(nullToUndefined, nodeSchema.optional()),
  // Prometheus /metrics and /healthz, served by `overlayfwd up` (metrics.ts); off when absent.
  metrics: z.preprocess(nullToUndefined, metricsSchema.optional()),
  // `overlayfwd up` switches to them after setup (lib/privileges.ts); looked up on this host then.
  user: z.preprocess(nullToUndefined, account('user').optional()),
  group: z.preprocess(nullToUndefined, account('group').optional()),
});

export type RootParsed = z.output<typeof rootSchema>;
export type PeerParsed = z.output<typeof peerSchema>;

/** The keys each mapping takes, by its path: what an unknown key is compared with. */
export const KNOWN_KEYS: Record<string, readonly string[]> = {
  '': Object.keys(rootSchema.shape),
  device: Object.keys(deviceSchema.shape),
  encap: ENCAP_KEYS,
  underlay: Object.keys(underlaySchema.shape),
  fdb: Object.keys(fdbSchema.shape),
  offloads: Object.keys(offloadsSchema.shape),
  limits: Object.keys(limitsSchema.shape),
  esp: Object.keys(espSchema.shape),
  ike: IKE_KEYS,
  control: Object.keys(controlSchema.shape),
  peer: Object.keys(peerSchema.shape),
  registry: REGISTRY_KEYS,
  'registry.etcd': ETCD_KEYS,
  'registry.etcd.tls': ETCD_TLS_KEYS,
  node: NODE_KEYS,
  metrics: METRICS_KEYS,
};

/** The keys of the mapping at `items`; a peer's own when its issues are reported under a prefix or a list index. */
export function knownKeysAt(items: readonly PropertyKey[], prefix: string): readonly string[] {
  if (prefix !== '' || items.some((i) => typeof i === 'number')) return items[items.length - 1] === 'ike' ? IKE_KEYS : (KNOWN_KEYS.peer ?? []);
  return KNOWN_KEYS[items.map(String).join('.')] ?? [];
}
