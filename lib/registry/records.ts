// What the registry keeps in etcd, and how each value is read back. Everything read is
// validated: a record that does not parse, or says something impossible, is skipped with a
// reason and never reaches the peer table. Nothing secret is ever written.
//
//   PREFIX/config                   the network: { network, subnetLength, encap }
//   PREFIX/subnets/10.100.7.0-24    a host's lease: { name, endpoint, mac? } under the host's etcd lease
import { isIP } from 'node:net';
import { z } from 'zod';
import { contains, parseIpv4Network, subnetFromKey, type Ipv4Network } from './subnets';

/** Larger values are refused unread (a record is a few hundred bytes). */
export const MAX_RECORD_BYTES = 4096;

const NAME_RE = /^[a-zA-Z0-9_.-]{1,64}$/;
const MAC_RE = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

export const networkRecordSchema = z.strictObject({
  network: z.string(),
  subnetLength: z.number().int().min(1).max(30),
  // The encapsulation every host must run: its type and the fields that must agree.
  encap: z.strictObject({
    type: z.string(),
    vni: z.number().int().optional(),
    port: z.number().int().optional(),
    key: z.number().int().nullable().optional(),
  }),
});
export type NetworkRecord = z.output<typeof networkRecordSchema>;

export const nodeRecordSchema = z.strictObject({
  name: z.string().regex(NAME_RE),
  endpoint: z.string().max(64).refine((s) => isIP(s) !== 0, 'not an IPv4 or IPv6 address'),
  mac: z.string().regex(MAC_RE).optional(),
  /** esp: the IKE identity the host proves (never a secret), as ike.id takes it. */
  ikeId: z.string().min(1).max(512).optional(),
});
export type NodeRecordBody = z.output<typeof nodeRecordSchema>;

/** A host as the registry knows it. */
export interface NodeRecord extends NodeRecordBody {
  subnet: string;
  key: string;
  /** The etcd lease the record lives under, and the revisions it was created and last written at. */
  lease: string;
  createRevision: string;
  modRevision: string;
}

export type Read<T> = { ok: true; value: T } | { ok: false; reason: string };

function parseJson(bytes: Buffer): Read<unknown> {
  if (bytes.length > MAX_RECORD_BYTES) return { ok: false, reason: `value of ${bytes.length} bytes (at most ${MAX_RECORD_BYTES})` };
  try {
    return { ok: true, value: JSON.parse(bytes.toString('utf8')) };
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
}

export function readNetworkRecord(bytes: Buffer): Read<{ record: NetworkRecord; network: Ipv4Network }> {
  const json = parseJson(bytes);
  if (!json.ok) return json;
  const r = networkRecordSchema.safeParse(json.value);
  if (!r.success) return { ok: false, reason: `not a network record: ${r.error.issues[0]?.message ?? 'invalid'}` };
  const network = parseIpv4Network(r.data.network);
  if (!network) return { ok: false, reason: `network ${JSON.stringify(r.data.network)} is not an IPv4 CIDR` };
  if (r.data.subnetLength < network.length) return { ok: false, reason: 'subnetLength is shorter than the network' };
  return { ok: true, value: { record: r.data, network } };
}

/** A subnet record read back from `key` (below PREFIX/subnets/), checked against the network. */
export function readNodeRecord(
  subnetKeyText: string,
  bytes: Buffer,
  network: Ipv4Network,
  subnetLength: number,
  meta: { lease: string; createRevision: string; modRevision: string },
): Read<NodeRecord> {
  const subnet = subnetFromKey(subnetKeyText);
  if (!subnet) return { ok: false, reason: `key ${JSON.stringify(subnetKeyText)} names no subnet` };
  if (subnet.length !== subnetLength || !contains(network, subnet)) {
    return { ok: false, reason: `subnet ${subnetKeyText} is not a /${subnetLength} of the network` };
  }
  const json = parseJson(bytes);
  if (!json.ok) return json;
  const r = nodeRecordSchema.safeParse(json.value);
  if (!r.success) {
    const issue = r.error.issues[0];
    return { ok: false, reason: `not a node record: ${issue ? `${issue.path.join('.') || '(value)'}: ${issue.message}` : 'invalid'}` };
  }
  return { ok: true, value: { ...r.data, subnet: subnetKeyText.replace('-', '/'), key: subnetKeyText, ...meta } };
}
