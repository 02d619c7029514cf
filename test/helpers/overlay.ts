// Helpers to run overlayfwd forwarders in-process inside lab namespaces, and to read counters.
import path from 'node:path';
import type { Host, Lab } from '../../lab';
import type { Overlay } from '../../lib/overlay';
import type { Counters, OverlayStats } from '../../lib/types';
import { DROP_REASONS } from '../../lib/types';
import { diffCounters } from '../../lib/stats';

export type OverlayClass = typeof Overlay;

/** Loads lib/overlay lazily, so a suite that is skipped never touches the addon. */
export async function loadOverlay(): Promise<OverlayClass> {
  return (await import('../../lib/overlay')).Overlay;
}

export interface PeerSpec {
  name: string;
  endpoint: string;
  macs?: string[];
}

export interface ForwarderSpec {
  host: Host;
  /** Overlay address with prefix, e.g. '198.19.0.1/24'. */
  address: string;
  peers: PeerSpec[];
  workers?: number;
  vni?: number;
  /** Instance and device name (default 'ovl0'). */
  name?: string;
  /** Extra top-level config keys merged in (shallow). */
  extra?: Record<string, unknown>;
}

/** The raw (YAML-shaped) config for a forwarder in `spec.host`'s namespace. */
export function forwarderConfig(lab: Lab, spec: ForwarderSpec): Record<string, unknown> {
  const name = spec.name ?? 'ovl0';
  return {
    name,
    netns: spec.host.ns,
    device: { type: 'tap', name, addresses: [spec.address] },
    encap: { type: 'vxlan', vni: spec.vni ?? 42 },
    underlay: { local: spec.host.underlay },
    workers: spec.workers ?? 1,
    peers: spec.peers.map((p) => ({ name: p.name, endpoint: p.endpoint, macs: p.macs ?? [] })),
    control: { socket: path.join(lab.tmpdir(), `${spec.host.label}-${name}.sock`) },
    ...spec.extra,
  };
}

/** Creates a forwarder and registers its close() with the lab (runs before the namespaces go). */
export async function startForwarder(lab: Lab, spec: ForwarderSpec): Promise<Overlay> {
  const OverlayCls = await loadOverlay();
  const ov = await OverlayCls.create(forwarderConfig(lab, spec));
  lab.onDestroy(() => ov.close());
  return ov;
}

/** after − before, counter by counter. */
export const delta = diffCounters;

export function peerCounters(stats: OverlayStats, name: string): Counters {
  const c = stats.peers[name];
  if (!c) throw new Error(`stats have no peer ${name}: ${Object.keys(stats.peers).join(', ')}`);
  return c;
}

/** Sum of all drop counters. */
export function totalDrops(c: Counters): number {
  return DROP_REASONS.reduce((s, r) => s + (c.drops[r] ?? 0), 0);
}

/** Asserts the shape of OverlayStats (used for both overlay.stats() and `overlayfwd stats --json`). */
export function checkCountersShape(c: unknown, where: string): void {
  const o = c as Record<string, unknown>;
  for (const k of ['txPackets', 'txBytes', 'rxPackets', 'rxBytes', 'floodPackets']) {
    if (typeof o?.[k] !== 'number' || !Number.isFinite(o[k]) || (o[k] as number) < 0) throw new Error(`${where}.${k} is not a non-negative number: ${JSON.stringify(o?.[k])}`);
  }
  const drops = o.drops as Record<string, unknown> | undefined;
  if (!drops || typeof drops !== 'object') throw new Error(`${where}.drops missing`);
  for (const r of ['malformed', 'wrongVni', 'unknownPeer', 'noRoute', 'tooBig', 'queueFull']) {
    if (typeof drops[r] !== 'number') throw new Error(`${where}.drops.${r} is not a number: ${JSON.stringify(drops[r])}`);
  }
}
