// The resolve step: a raw config (or one peer entry) through stage 1 (schema.ts) and stage 2
// (rules.ts) to the ResolvedConfig of lib/types.ts, with every default filled in. Every problem
// is reported with the path of the field it concerns (`peers[1].endpoint: ...`), and all problems
// found are reported at once.
import type { EncapType, EspCipher, PublicPeer, ResolvedConfig, ResolvedPeer } from '../types';
import { parseIp } from './addresses';
import { defaultNodeName, defaultSocketPath, defaultWorkers } from './defaults';
import type { ConfigIssue } from './errors';
import { collectIssues, defaultMessage, fail } from './issues';
import { DEFAULT_PORTS, ENCAP_TYPES, usesUdp } from './modes';
import { checkConfig, checkUnique, resolvePeer, type PeerContext, type PlacedPeer } from './rules';
import { ikeSchema, publicIke } from './ike';
import { CIPHER_TEXT, ESP_CIPHERS, ESP_REKEY_GRACE_DEFAULT_SECONDS } from './sa';
import { knownKeysAt, limitsSchema, peerSchema, ROUTE_TABLE_MAIN, rootSchema, type PeerParsed, type RootParsed } from './schema';

function parseOnePeer(input: unknown, at: string, issues: ConfigIssue[]): PeerParsed | undefined {
  const r = peerSchema.safeParse(input, { error: defaultMessage });
  if (r.success) return r.data;
  collectIssues(r.error, knownKeysAt, issues, at);
  return undefined;
}

/**
 * What the peers are checked against. When the root is broken, they are still checked against
 * the mode and cipher as written, so that their own problems show in the same report.
 */
function peerContextOf(input: object, root: RootParsed | undefined): PeerContext {
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
  if (root) ctx.deviceAddresses = root.device.addresses.map((a) => a.cidr);
  const ikeDefaults = root ? root.ike : ikeSchema.safeParse((input as { ike?: unknown }).ike ?? undefined).data;
  if (ikeDefaults) ctx.ikeDefaults = ikeDefaults;
  return ctx;
}

/** Validates a raw config object (as read from YAML/JSON) and fills in every default. Throws ConfigError. */
export function parseConfig(input: unknown): ResolvedConfig {
  const issues: ConfigIssue[] = [];
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    const got = input === null ? 'null' : Array.isArray(input) ? 'a list' : typeof input;
    fail([{ path: '(config)', message: `must be a mapping (key: value), got ${got}` }]);
  }
  const r = rootSchema.safeParse(input, { error: defaultMessage });
  if (!r.success) collectIssues(r.error, knownKeysAt, issues);
  const root: RootParsed | undefined = r.success ? r.data : undefined;

  // Peers: validated even when other sections are broken, against whatever is known. But first
  // their number: over limits.maxPeers, not one is validated (that could take long), and the
  // limit is the one problem reported about them.
  const rawPeers = (input as { peers?: unknown }).peers;
  const peerInputs = Array.isArray(rawPeers) ? rawPeers : [];
  const maxPeers = root?.limits.maxPeers ?? limitsSchema.safeParse((input as { limits?: unknown }).limits ?? {}).data?.maxPeers ?? limitsSchema.parse({}).maxPeers;
  if (peerInputs.length > maxPeers) {
    fail([...issues, { path: 'peers', message: `${peerInputs.length} peers exceed limits.maxPeers (${maxPeers}); none of them was validated` }]);
  }
  const ctx = peerContextOf(input, root);
  const placed: PlacedPeer[] = [];
  const peerIssues: ConfigIssue[] = [];
  peerInputs.forEach((p, i) => {
    const at = `peers[${i}]`;
    const parsed = parseOnePeer(p, at, peerIssues);
    if (parsed) placed.push({ peer: resolvePeer(parsed, ctx, at, peerIssues), at });
  });
  checkUnique([], placed, peerIssues);
  // The overlay's cipher keys the manual SAs; IKE negotiates its own per Child SA.
  if (ctx.encapType === 'esp' && ctx.cipher === undefined && (placed.some((p) => p.peer.sa) || (!ctx.ikeDefaults && !peerInputs.some((p) => (p as { ike?: unknown } | null)?.ike)))) {
    const rawCipher = (input as { encap?: { cipher?: unknown } }).encap?.cipher;
    if (rawCipher === undefined) peerIssues.unshift({ path: 'encap.cipher', message: `required for esp (${CIPHER_TEXT})` });
  }
  // Report peers in order (a stable sort keeps each entry's issues in the order found).
  const indexOf = (i: ConfigIssue) => Number(/^peers\[(\d+)\]/.exec(i.path)?.[1] ?? -1);
  issues.push(...peerIssues.sort((a, b) => indexOf(a) - indexOf(b)));

  if (!root || issues.length > 0) fail(issues);
  checkConfig(root, issues);
  if (issues.length > 0) fail(issues);

  return {
    name: root.name,
    netns: root.netns ?? null,
    device: {
      type: root.device.type,
      name: root.device.name ?? root.device.interface ?? root.name,
      mtu: root.device.mtu ?? null,
      addresses: root.device.addresses.map((a) => a.cidr),
      mac: root.device.mac ?? null,
      ...(root.device.type === 'packet' ? { interface: root.device.interface } : {}),
      ...(root.device.type === 'tun'
        ? { routes: root.device.routes ?? 'auto', routeTable: root.device.routeTable ?? ROUTE_TABLE_MAIN, routeMetric: root.device.routeMetric ?? 0 }
        : {}),
    },
    encap: root.encap,
    ...(root.ike ? { ike: root.ike } : {}),
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
    ...(root.metrics ? { metrics: { listen: root.metrics.listen } } : {}),
    ...(root.user !== undefined ? { user: root.user } : {}),
    ...(root.group !== undefined ? { group: root.group } : {}),
    ...(root.registry
      ? {
          registry: {
            etcd: {
              endpoints: [...root.registry.etcd.endpoints],
              prefix: root.registry.etcd.prefix,
              ttlSeconds: root.registry.etcd.ttlSeconds,
              tls: root.registry.etcd.tls
                ? { ca: root.registry.etcd.tls.ca, cert: root.registry.etcd.tls.cert ?? null, key: root.registry.etcd.tls.key ?? null }
                : null,
              username: root.registry.etcd.username ?? null,
              password: root.registry.etcd.password ?? null,
            },
            network: root.registry.network?.cidr ?? null,
            subnetLength: root.registry.subnetLength ?? null,
          },
          node: {
            name: root.node?.name ?? defaultNodeName(),
            endpoint: root.node?.endpoint ?? root.underlay.local.address,
            subnet: root.node?.subnet ?? 'auto',
          },
        }
      : {}),
  };
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
    ctx.deviceAddresses = config.device.addresses;
    if (config.ike) ctx.ikeDefaults = config.ike;
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

/** A peer as it may be shown: SPIs without keys, IKE without its pre-shared key. */
export function publicPeer(peer: ResolvedPeer): PublicPeer {
  const { sa, ike, ...rest } = peer;
  if (ike) return { ...rest, ike: publicIke(ike) };
  if (!sa) return { ...rest };
  return { ...rest, sa: { out: { spi: sa.out.spi }, in: sa.in.map((x) => ({ spi: x.spi })) } };
}
