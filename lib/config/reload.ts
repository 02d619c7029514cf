// What a reload may change in a running instance, and what needs a restart.
//
// A reload makes the config file the running config again. The peer table (peers, their
// endpoints, allowed IPs, MACs and SAs) and the settings that only shape the peers (esp:, the
// top-level ike: defaults) are applied live, through the same snapshot swap as `peers add`.
// Everything the data path was built from at start (the device, the encapsulation, the
// underlay sockets, the workers, the tables' sizes, the control socket, the registry) is fixed
// for the life of the process: a file that changes one of them is refused whole, naming each
// field, and the running table stays as it is.
import type { ResolvedConfig, ResolvedPeer } from '../types';
import type { ConfigIssue } from './errors';

/** The fields fixed at start, each with the words a refusal uses. */
const FIXED_AT_START: ReadonlyArray<[keyof ResolvedConfig, string]> = [
  ['name', 'the instance name'],
  ['netns', 'the network namespace'],
  ['device', 'the device'],
  ['encap', 'the encapsulation'],
  ['underlay', 'the underlay address and sockets'],
  ['workers', 'the number of workers'],
  ['cpuAffinity', 'the CPU pinning of the workers'],
  ['busyPollMicroseconds', "the workers' busy polling"],
  ['mssClamp', 'the MSS clamp'],
  ['batchSize', 'the batch size'],
  ['fdb', 'the forwarding table settings'],
  ['offloads', 'the offloads'],
  ['limits', 'the table limits'],
  ['control', 'the control socket'],
  ['registry', 'the registry'],
  ['node', "this host's registry entry"],
  ['metrics', 'the metrics listener'],
  ['user', 'the user the instance runs as'],
  ['group', 'the group the instance runs as'],
];

export interface PeerChanges {
  added: string[];
  removed: string[];
  /** Peers in both whose settings (endpoint, allowed IPs, MACs, SAs, IKE) differ. */
  changed: string[];
}

export interface ReloadPlan {
  /** One issue per field that needs a restart; a plan with any is refused. */
  restartNeeded: ConfigIssue[];
  peers: PeerChanges;
  /** Live settings other than peers that differ (esp, ike). */
  settings: string[];
}

/** Stable text of a value for comparing (key order as the parser makes it, which is fixed). */
function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/** The leaf paths under `at` where `a` and `b` differ, for a message that names the field. */
function differingPaths(a: unknown, b: unknown, at: string): string[] {
  const isRecord = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);
  if (!isRecord(a) || !isRecord(b)) return same(a, b) ? [] : [at];
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  return keys.flatMap((k) => differingPaths(a[k], b[k], `${at}.${k}`));
}

/** Compares the peer sets by name. */
export function peerChanges(running: readonly ResolvedPeer[], next: readonly ResolvedPeer[]): PeerChanges {
  const before = new Map(running.map((p) => [p.name, p]));
  const after = new Map(next.map((p) => [p.name, p]));
  return {
    added: next.filter((p) => !before.has(p.name)).map((p) => p.name),
    removed: running.filter((p) => !after.has(p.name)).map((p) => p.name),
    changed: next.filter((p) => before.has(p.name) && !same(before.get(p.name), p)).map((p) => p.name),
  };
}

/** What reloading `next` over `running` would do; `ikePort` gives each config's IKE port (null: no IKE). */
export function planReload(running: ResolvedConfig, next: ResolvedConfig, ikePort: (c: ResolvedConfig) => number | null): ReloadPlan {
  const restartNeeded: ConfigIssue[] = [];
  for (const [field, what] of FIXED_AT_START) {
    if (same(running[field], next[field])) continue;
    const paths = differingPaths(running[field], next[field], field);
    restartNeeded.push({
      path: paths.length === 1 ? paths[0]! : field,
      message: `${what} cannot change while the instance runs; restart it to apply this (the running config stays)`,
    });
  }
  // The IKE sockets are opened once; a port that moves needs them reopened.
  const portBefore = ikePort(running);
  const portAfter = ikePort(next);
  if (portBefore !== null && portAfter !== null && portBefore !== portAfter) {
    restartNeeded.push({ path: 'ike.port', message: `the IKE port cannot change while the instance runs (${portBefore} -> ${portAfter}); restart it to apply this` });
  }
  const settings = (['esp', 'ike'] as const).filter((k) => !same(running[k], next[k]));
  return { restartNeeded, peers: peerChanges(running.peers, next.peers), settings };
}

/** True when the plan changes nothing at all. */
export function planIsEmpty(plan: ReloadPlan): boolean {
  const p = plan.peers;
  return plan.restartNeeded.length === 0 && plan.settings.length === 0 && p.added.length + p.removed.length + p.changed.length === 0;
}
