// The registry sections: `registry:` (the etcd cluster that holds the overlay's hosts) and `node:`
// (how this host registers there). With them, peers come from the registry: each host holds a
// subnet lease of the network's range and learns every other host from a watch (lib/registry).
import { z } from 'zod';
import { parseCidr, parseIp } from './addresses';
import { err, intRange, list, nullToUndefined, peerName, section } from './fields';
import { REDACTED, REDACTED_MESSAGE } from './secrets';

export const REGISTRY_TTL_DEFAULT_SECONDS = 10;
export const REGISTRY_PREFIX_DEFAULT = '/overlayfwd';

const ENDPOINT_URL_TEXT = 'must be an etcd client URL such as http://127.0.0.1:2379 or https://etcd1:2379';
const etcdEndpoint = z.string(err(ENDPOINT_URL_TEXT)).refine((s) => {
  try {
    const url = new URL(s);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '' && url.pathname === '/';
  } catch {
    return false;
  }
}, ENDPOINT_URL_TEXT);

const PREFIX_TEXT = 'must be a key prefix starting with / (letters, digits and / _ . -), such as /overlayfwd';
const prefix = z
  .string(err(PREFIX_TEXT))
  .regex(/^\/[a-zA-Z0-9_./-]{0,200}$/, PREFIX_TEXT)
  .transform((s) => s.replace(/\/+$/, '') || '/');

const filePath = z.string(err('must be a file path')).min(1, 'must not be empty');

const tlsSchema = section({ ca: filePath, cert: filePath.optional(), key: filePath.optional() });

const etcdSchema = section({
  endpoints: list(etcdEndpoint, 'etcd client URLs').min(1, 'must list at least one etcd client URL'),
  prefix: prefix.default(REGISTRY_PREFIX_DEFAULT),
  ttlSeconds: intRange(2, 3600).default(REGISTRY_TTL_DEFAULT_SECONDS),
  tls: z.preprocess(nullToUndefined, tlsSchema.optional()),
  username: z.string(err('must be a string')).min(1, 'must not be empty').optional(),
  password: z.string(err('must be a string')).refine((v) => v !== REDACTED, REDACTED_MESSAGE).optional(),
});

const NETWORK_TEXT = 'must be an IPv4 or IPv6 network such as 10.100.0.0/16';
const network = z.string(err(NETWORK_TEXT)).transform((s, ctx) => {
  const r = parseCidr(s);
  if (!r.ok) {
    ctx.issues.push({ code: 'custom', message: r.message, input: s });
    return z.NEVER;
  }
  return r.value;
});

export const registrySchema = section({
  etcd: etcdSchema,
  // The network's settings, written to etcd by the first host when it holds none yet (or by
  // `overlayfwd registry init`); every host then follows what etcd holds.
  network: z.preprocess(nullToUndefined, network.optional()),
  subnetLength: z.preprocess(nullToUndefined, intRange(1, 128).optional()),
});

const SUBNET_TEXT = "must be 'auto' or a CIDR subnet of the registry's network, such as 10.100.7.0/24";
export const nodeSchema = section({
  name: z.preprocess(nullToUndefined, peerName.optional()),
  endpoint: z.preprocess(
    nullToUndefined,
    z
      .string(err('must be an IPv4 or IPv6 address'))
      .transform((s, ctx) => {
        const r = parseIp(s);
        if (!r.ok) {
          ctx.issues.push({ code: 'custom', message: r.message, input: s });
          return z.NEVER;
        }
        return r.value.address;
      })
      .optional(),
  ),
  subnet: z
    .string(err(SUBNET_TEXT))
    .transform((s, ctx) => {
      if (s === 'auto') return 'auto' as const;
      const r = parseCidr(s);
      if (!r.ok) {
        ctx.issues.push({ code: 'custom', message: SUBNET_TEXT, input: s });
        return z.NEVER;
      }
      return r.value.cidr;
    })
    .default('auto'),
});

export type RegistryParsed = z.output<typeof registrySchema>;
export type NodeParsed = z.output<typeof nodeSchema>;
export const REGISTRY_KEYS = Object.keys(registrySchema.shape);
export const ETCD_KEYS = Object.keys(etcdSchema.shape);
export const NODE_KEYS = Object.keys(nodeSchema.shape);

interface RegistryRoot {
  registry?: RegistryParsed | undefined;
  node?: NodeParsed | undefined;
  device: { type: string; addresses: readonly unknown[] };
  encap: { type: string };
  ike?: unknown;
  underlay: { local: { family: 4 | 6 } };
}

interface Issue {
  path: string;
  message: string;
}

/** Cross-field rules of registry mode. */
export function checkRegistry(root: RegistryRoot, issues: Issue[]): void {
  const { registry, node } = root;
  if (!registry) {
    if (node !== undefined) issues.push({ path: 'node', message: 'used only with registry (peers from etcd)' });
    return;
  }
  if (root.device.type === 'packet') {
    issues.push({ path: 'registry', message: 'a packet device bridges an existing segment: the registry needs device.type tap or tun' });
  }
  // The registry holds no keys: every host's SAs are negotiated by IKE, with the top-level ike
  // (one CA and a certificate per host, or one PSK in every host's own config).
  if (root.encap.type === 'esp' && !root.ike) {
    issues.push({ path: 'registry', message: 'esp with a registry needs a top-level ike (auth: certificate with one CA, or psk): the registry holds no keys' });
  }
  if (root.device.addresses.length > 0) {
    issues.push({ path: 'device.addresses', message: "not used with a registry: the device's address comes from the node's subnet" });
  }
  if ((registry.network === undefined) !== (registry.subnetLength === undefined)) {
    issues.push({ path: registry.network === undefined ? 'registry.network' : 'registry.subnetLength', message: 'registry.network and registry.subnetLength go together' });
  }
  if (registry.network) {
    const [, length] = registry.network.cidr.split('/');
    if (registry.network.family !== 4) {
      issues.push({ path: 'registry.network', message: 'only IPv4 networks are supported by the registry so far' });
    } else if (registry.subnetLength !== undefined && (registry.subnetLength < Number(length) || registry.subnetLength > 30)) {
      issues.push({ path: 'registry.subnetLength', message: `must be from ${length} (the network's length) to 30` });
    }
  }
  if (node?.endpoint !== undefined && (node.endpoint.includes(':') ? 6 : 4) !== root.underlay.local.family) {
    issues.push({ path: 'node.endpoint', message: 'must be of the same address family as underlay.local' });
  }
}

interface ResolvedRegistryLike {
  etcd: { endpoints: string[]; prefix: string; ttlSeconds: number; tls: { ca: string; cert: string | null; key: string | null } | null; username: string | null; password: string | null };
  network: string | null;
  subnetLength: number | null;
}

/** A resolved registry section back in input form (it parses to the same section). */
export function registryInput(registry: ResolvedRegistryLike): Record<string, unknown> {
  const { etcd, network, subnetLength } = registry;
  const etcdInput: Record<string, unknown> = { endpoints: [...etcd.endpoints], prefix: etcd.prefix, ttlSeconds: etcd.ttlSeconds };
  if (etcd.tls) etcdInput['tls'] = Object.fromEntries(Object.entries(etcd.tls).filter(([, v]) => v !== null));
  if (etcd.username !== null) etcdInput['username'] = etcd.username;
  if (etcd.password !== null) etcdInput['password'] = etcd.password;
  return { etcd: etcdInput, ...(network !== null ? { network, subnetLength } : {}) };
}
