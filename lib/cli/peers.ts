// overlayfwd peers list|add|remove, and overlayfwd fdb: peer and forwarding tables of a running instance.
import { formatEndpoint, formatSpi } from '../config';
import { controlRequest } from '../control';
import type { IkeStatus } from '../ike/keying';
import type { PeerInfo } from '../types';
import { sourceName } from '../config/load';
import { EXIT_FAILURE, EXIT_OK, reportError, requireSocket, resolveSocket, table, type InstanceOptions } from './common';
import { readSaFile } from './sa-file';

/** An endpoint as shown: address:port, or the address alone in the IP-protocol modes (port 0). */
function showEndpoint(ep: { address: string; port: number }): string {
  return ep.port === 0 ? ep.address : formatEndpoint(ep);
}

/** A peer's IKE state as `swanctl --list-sas` would sum it up: the IKE SA, then its Child SA. */
function ikeText(s: IkeStatus): string {
  const parts = [s.state + (s.role ? ` (${s.role})` : '')];
  if (s.spis) parts.push(`ike ${s.spis.initiator}_i ${s.spis.responder}_r`);
  if (s.ageSeconds !== undefined) parts.push(`${s.ageSeconds}s`);
  if (s.child) parts.push(`child ${s.child.cipher}${s.child.esn ? ' esn' : ''}${s.child.dhGroup ? ` pfs ${s.child.dhGroup}` : ''}, ${s.child.ageSeconds}s`);
  if (s.state !== 'established' && s.lastError) parts.push(`last error: ${s.lastError}`);
  return parts.join(', ');
}

function spisText(p: PeerInfo): string {
  if (p.ikeSa?.child) return `out ${formatSpi(p.ikeSa.child.outboundSpi)} in ${formatSpi(p.ikeSa.child.inboundSpi)}`;
  if (!p.sa) return '-';
  const ins = p.sa.in.map((x) => `${formatSpi(x.spi)}${x.retiresInSeconds !== undefined ? ` (retires in ${x.retiresInSeconds}s)` : ''}`);
  return `out ${formatSpi(p.sa.out.spi)} in ${ins.join(', ')}`;
}

/** What the instance's device carries, from its running config; null (show every column) when it cannot say. */
async function deviceLayer(socket: string): Promise<'ethernet' | 'ip' | null> {
  try {
    const config = await controlRequest(socket, { cmd: 'showconf' });
    const type = (config['device'] as { type?: string } | undefined)?.type;
    return type === 'tun' ? 'ip' : type === 'tap' || type === 'packet' ? 'ethernet' : null;
  } catch {
    return null;
  }
}

export interface ListOptions extends InstanceOptions {
  json?: boolean;
}

export async function runPeersList(opts: ListOptions): Promise<number> {
  try {
    const socket = await resolveSocket(opts);
    const peers = await controlRequest(socket, { cmd: 'peers.list' });
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(peers, null, 2)}\n`);
    } else if (peers.length === 0) {
      process.stdout.write('no peers\n');
    } else {
      // Only the columns the device type has: a TAP forwards by MAC, a TUN routes by prefix.
      const layer = await deviceLayer(socket);
      const esp = peers.some((p) => p.sa || p.ikeSa);
      const ike = peers.some((p) => p.ikeSa);
      const columns: Array<[string, (p: PeerInfo) => string]> = [
        ['NAME', (p) => p.name],
        ['ENDPOINT', (p) => showEndpoint(p.endpoint)],
        ...(layer !== 'ip'
          ? ([
              ['STATIC MACS', (p) => p.macs.join(',') || '-'],
              ['LEARNED', (p) => String(p.learnedMacs)],
            ] as Array<[string, (p: PeerInfo) => string]>)
          : []),
        ...(layer !== 'ethernet' ? ([['ALLOWED IPS', (p) => p.allowedIps.join(',') || '-']] as Array<[string, (p: PeerInfo) => string]>) : []),
        // ESP: SPIs only (keys are never listed); an inbound SA in a rekey's grace period shows its time left.
        ...(esp ? ([['SPIS', spisText]] as Array<[string, (p: PeerInfo) => string]>) : []),
        ...(ike ? ([['IKE', (p) => (p.ikeSa ? ikeText(p.ikeSa) : '-')]] as Array<[string, (p: PeerInfo) => string]>) : []),
      ];
      const body = peers.map((p) => columns.map(([, cell]) => cell(p)));
      const leftAligned = new Set(columns.flatMap(([h], i) => (h === 'LEARNED' ? [] : [i])));
      process.stdout.write(`${table(columns.map(([h]) => h), body, leftAligned)}\n`);
    }
    return EXIT_OK;
  } catch (err) {
    return reportError(err);
  }
}

export interface AddOptions extends InstanceOptions {
  name: string;
  endpoint: string;
  mac?: string[];
  allowedIp?: string[];
  /** esp: a file with the peer's manual SAs, `{ out: { spi, key }, in: { spi, key } }` ("-": stdin). */
  saFile?: string;
  json?: boolean;
}

/** peers add: changes the instance, so it must be named (-n NAME or -s SOCKET). */
export async function runPeersAdd(opts: AddOptions): Promise<number> {
  const peer: Record<string, unknown> = { name: opts.name, endpoint: opts.endpoint };
  if (opts.mac?.length) peer.macs = opts.mac;
  if (opts.allowedIp?.length) peer.allowedIps = opts.allowedIp;
  let socket: string;
  try {
    socket = await requireSocket(opts, 'peers add');
    if (opts.saFile !== undefined) peer.sa = await readSaFile(opts.saFile);
  } catch (err) {
    return reportError(err, `invalid SA file ${sourceName(opts.saFile ?? '-')}`);
  }
  try {
    // The request carries the keys (over the root-only socket); the answer has SPIs only.
    const added = await controlRequest(socket, { cmd: 'peers.add', peer });
    if (opts.json) process.stdout.write(`${JSON.stringify(added, null, 2)}\n`);
    else process.stdout.write(`added peer ${added.name} at ${showEndpoint(added.endpoint)}${added.sa ? `, SAs out ${formatSpi(added.sa.out.spi)} in ${added.sa.in.map((x) => formatSpi(x.spi)).join(', ')}` : ''}\n`);
    return EXIT_OK;
  } catch (err) {
    return reportError(err, `invalid peer ${opts.name}`);
  }
}

/** peers remove: changes the instance, so it must be named (-n NAME or -s SOCKET). */
export async function runPeersRemove(opts: InstanceOptions & { name: string; json?: boolean }): Promise<number> {
  try {
    const socket = await requireSocket(opts, 'peers remove');
    const { removed } = await controlRequest(socket, { cmd: 'peers.remove', name: opts.name });
    if (!removed) {
      process.stderr.write(`overlayfwd: no peer named ${JSON.stringify(opts.name)}\n`);
      return EXIT_FAILURE;
    }
    process.stdout.write(opts.json ? `${JSON.stringify({ name: opts.name, removed: true }, null, 2)}\n` : `removed peer ${opts.name}\n`);
    return EXIT_OK;
  } catch (err) {
    return reportError(err);
  }
}

export async function runFdb(opts: ListOptions): Promise<number> {
  try {
    const entries = await controlRequest(await resolveSocket(opts), { cmd: 'fdb' });
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
    } else if (entries.length === 0) {
      process.stdout.write('no forwarding entries\n');
    } else {
      const body = entries.map((e) => [e.mac, e.peer, e.static ? 'static' : 'learned', e.static ? '-' : `${e.ageSeconds}s`]);
      process.stdout.write(`${table(['MAC', 'PEER', 'TYPE', 'AGE'], body, new Set([0, 1, 2]))}\n`);
    }
    return EXIT_OK;
  } catch (err) {
    return reportError(err);
  }
}
