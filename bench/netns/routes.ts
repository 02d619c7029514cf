// 10 vs 100,000 routes: gre-udp on TUN, single-stream TCP with a 10-route table and with a
// 100,000-route one on both ends, alternately on the same two forwarders (peers.replace()), and
// optionally one more 100,000-route run under `perf record -e cpu-clock`.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { commandExists, type Host, type Lab } from '../../lab';
import type { Overlay } from '../../lib/overlay';
import { checkAborted, errorText, isAborted, measureTcp, waitReachable, withCounters, type PhaseContext } from './measure';
import { MODE_SPECS, OFFLOADS_ON, OVERLAY_B } from './modes';
import { defaultPeer, startOverlays } from './phases';
import type { NetnsOptions, ProfileResult, ProfileSymbol, RoutesResult, TcpResult } from './types';

export const ROUTES_SMALL = 10;
export const ROUTE_PEERS = 10_000;
export const ROUTES_PER_PEER = 10;
/** One synthetic IPv4 prefix of each of these lengths per peer: ten tables for the length search. */
export const ROUTE_PREFIX_LENGTHS = [32, 28, 26, 24, 22, 20, 19, 18, 17, 16];

/** Peer i's prefix of length index j: in 40.0.0.0-79.255.255.255 (never sent to), unique per (i, j). */
function syntheticPrefix(i: number, j: number): string {
  const len = ROUTE_PREFIX_LENGTHS[j]!;
  const n = (40 * 2 ** 24 + (i + 1) * 2 ** (32 - len)) >>> 0;
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}/${len}`;
}

/** Synthetic peer i's endpoint (i >= 1): unused addresses in 198.18.1.1 onwards, never sent to. */
function syntheticEndpoint(i: number): string {
  return `198.18.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`;
}

/**
 * `host`'s peer set: the other end with its overlay /32 and nine synthetic prefixes (10 routes),
 * plus, for `large`, 9,999 synthetic peers with ten prefixes each (100,000 routes in all).
 */
function routePeers(host: Host, large: boolean): Record<string, unknown>[] {
  const real = defaultPeer(host, MODE_SPECS['gre-udp']);
  const realRoutes = [...(real['allowedIps'] as string[])];
  for (let j = 1; j < ROUTES_PER_PEER; j++) realRoutes.push(syntheticPrefix(0, j));
  const peers: Record<string, unknown>[] = [{ ...real, allowedIps: realRoutes }];
  if (!large) return peers;
  for (let i = 1; i < ROUTE_PEERS; i++) {
    const allowedIps: string[] = [];
    for (let j = 0; j < ROUTES_PER_PEER; j++) allowedIps.push(syntheticPrefix(i, j));
    peers.push({ name: `p${i}`, endpoint: syntheticEndpoint(i), allowedIps });
  }
  return peers;
}

function routeCount(peers: Record<string, unknown>[]): number {
  return peers.reduce((n, p) => n + ((p['allowedIps'] as string[] | undefined)?.length ?? 0), 0);
}

function mean(xs: number[]): number | null {
  return xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : null;
}

const ROUTE_SYMBOL = /RouteTable|route_detail|by_route/;

/** Parses `perf report --stdio --no-children --sort dso,sym -n`. */
function parsePerfReport(text: string): ProfileSymbol[] {
  const out: ProfileSymbol[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*([\d.]+)%\s+(\d+)\s+(\S+)\s+\[[^\]]+\]\s+(.*?)\s*$/.exec(line);
    if (m) out.push({ percent: Number(m[1]), samples: Number(m[2]), dso: m[3]!, symbol: m[4]! });
  }
  return out;
}

function emptyProfile(): ProfileResult {
  return { command: '', samples: 0, routeSamples: 0, routeShare: null, addonSamples: 0, routeShareOfAddon: null, routeSymbols: [], top: [], tcp: null, error: null };
}

/** Runs one TCP test under `perf record -e cpu-clock -p <this process>` and splits the samples. */
async function profiledRun(lab: Lab, a: Host, b: Host, ctx: PhaseContext, durationSec: number, dir: string): Promise<ProfileResult> {
  const file = path.join(dir, 'routes-100k.perf.data');
  const seconds = Math.max(1, durationSec - 1);
  const args = ['record', '-e', 'cpu-clock', '-F', '999', '-p', String(process.pid), '-o', file, '--', 'sleep', String(seconds)];
  const result: ProfileResult = { ...emptyProfile(), command: `perf ${args.join(' ')}` };
  let perf: ReturnType<Lab['spawn']> | null = null;
  try {
    // Started as the client starts, ends a second before it does: only full-rate traffic.
    result.tcp = await withCounters(lab, a, b, ctx, () =>
      measureTcp(lab, a, b, durationSec, 1, true, () => {
        perf = lab.spawn(null, 'perf', args);
      }),
    );
    const p = perf as ReturnType<Lab['spawn']> | null;
    if (!p) throw new Error('perf did not start');
    const st = await p.wait(30_000);
    if (st.code !== 0) throw new Error(`perf record failed (${p.describeStatus()}): ${p.stderr.slice(-500)}`);
    const report = execFileSync('perf', ['report', '-i', file, '--stdio', '--no-children', '--sort', 'dso,sym', '-n'], {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const symbols = parsePerfReport(report);
    result.samples = symbols.reduce((n, s) => n + s.samples, 0);
    result.routeSymbols = symbols.filter((s) => ROUTE_SYMBOL.test(s.symbol));
    result.routeSamples = result.routeSymbols.reduce((n, s) => n + s.samples, 0);
    result.addonSamples = symbols.filter((s) => s.dso.includes('overlayfwd')).reduce((n, s) => n + s.samples, 0);
    result.routeShare = result.samples ? result.routeSamples / result.samples : null;
    result.routeShareOfAddon = result.addonSamples ? result.routeSamples / result.addonSamples : null;
    result.top = symbols.slice(0, 12);
  } catch (err) {
    if (isAborted()) throw err;
    result.error = errorText(err);
  } finally {
    const p = perf as ReturnType<Lab['spawn']> | null;
    if (p) await p.stop(2000, 'SIGINT').catch(() => undefined);
    fs.rmSync(file, { force: true });
    fs.rmSync(`${file}.old`, { force: true });
  }
  return result;
}

/**
 * gre-udp on TUN, single-stream TCP with 10 routes and with 100,000 routes on both ends,
 * alternating (10, 100k, 100k, 10, ...) on the same two forwarders; peers.replace() switches.
 */
export async function routesTest(lab: Lab, a: Host, b: Host, opts: NetnsOptions, tmp: string): Promise<RoutesResult> {
  const log = opts.log ?? (() => undefined);
  const spec = MODE_SPECS['gre-udp'];
  const result: RoutesResult = {
    mode: spec.mode,
    smallRoutes: ROUTES_SMALL,
    smallPeers: 1,
    largeRoutes: ROUTE_PEERS * ROUTES_PER_PEER,
    largePeers: ROUTE_PEERS,
    prefixLengths: [...ROUTE_PREFIX_LENGTHS],
    bothEnds: true,
    runs: [],
    replaceMs: [],
    smallBitsPerSecond: null,
    largeBitsPerSecond: null,
    ratio: null,
    profile: null,
    errors: [],
  };
  const sets = {
    small: { a: routePeers(a, false), b: routePeers(b, false) },
    large: { a: routePeers(a, true), b: routePeers(b, true) },
  };
  if (routeCount(sets.small.a) !== ROUTES_SMALL || routeCount(sets.large.a) !== ROUTE_PEERS * ROUTES_PER_PEER) throw new Error('route sets miscounted');
  let overlays: [Overlay, Overlay] | null = null;
  try {
    overlays = await startOverlays(lab, a, b, {
      spec,
      workers: 1,
      offloads: OFFLOADS_ON,
      peers: (h) => (h.label === 'a' ? sets.small.a : sets.small.b),
      extra: { limits: { maxPeers: ROUTE_PEERS + 16 } },
    });
    const [oa, ob] = overlays;
    const ctx: PhaseContext = { dev: oa.device.name, overlays: [oa, ob] };
    let current: 'small' | 'large' = 'small';
    const use = async (which: 'small' | 'large') => {
      if (which === current) return;
      const t = Date.now();
      oa.peers.replace(sets[which].a);
      ob.peers.replace(sets[which].b);
      result.replaceMs.push(Date.now() - t);
      current = which;
      log(`netns: routes: ${which === 'large' ? `${result.largeRoutes} routes / ${result.largePeers} peers` : `${ROUTES_SMALL} routes / 1 peer`} on both ends (replace ${Date.now() - t} ms)`);
      await waitReachable(lab, a, OVERLAY_B);
    };
    await waitReachable(lab, a, OVERLAY_B);
    const order: ('small' | 'large')[] = [];
    for (let r = 0; r < opts.routeRounds; r++) order.push(...(r % 2 === 0 ? (['small', 'large'] as const) : (['large', 'small'] as const)));
    for (const which of order) {
      checkAborted();
      await use(which);
      const routes = which === 'large' ? result.largeRoutes : ROUTES_SMALL;
      const peers = which === 'large' ? result.largePeers : 1;
      log(`netns: routes: gre-udp, ${routes} routes: TCP 1 stream ${opts.durationSec} s`);
      let tcp: TcpResult | null = null;
      try {
        tcp = await withCounters(lab, a, b, ctx, () => measureTcp(lab, a, b, opts.durationSec, 1, true));
        log(`netns: routes: ${routes} routes: ${(tcp.bitsPerSecond / 1e9).toFixed(3)} Gbit/s`);
      } catch (err) {
        if (isAborted()) throw err;
        result.errors.push(`${routes} routes: ${errorText(err)}`);
        log(`netns: routes: ${routes} routes: FAILED ${errorText(err)}`);
      }
      result.runs.push({ routes, peers, tcp });
    }
    const bps = (n: number) => result.runs.filter((r) => r.routes === n && r.tcp).map((r) => r.tcp!.bitsPerSecond);
    result.smallBitsPerSecond = mean(bps(ROUTES_SMALL));
    result.largeBitsPerSecond = mean(bps(result.largeRoutes));
    if (result.smallBitsPerSecond && result.largeBitsPerSecond !== null) result.ratio = result.largeBitsPerSecond / result.smallBitsPerSecond;
    if (opts.profile) {
      if (!commandExists('perf')) {
        result.profile = { ...emptyProfile(), error: 'perf is not installed (apt-get install linux-perf)' };
      } else {
        await use('large');
        log(`netns: routes: profiling one more ${result.largeRoutes}-route run (perf record -e cpu-clock, not counted above)`);
        result.profile = await profiledRun(lab, a, b, ctx, opts.durationSec, tmp);
        const pr = result.profile;
        log(
          pr.error
            ? `netns: routes: profile FAILED ${pr.error}`
            : `netns: routes: profile: ${pr.routeSamples} of ${pr.samples} samples in route lookup (${((pr.routeShare ?? 0) * 100).toFixed(2)} %)`,
        );
      }
    }
  } catch (err) {
    if (isAborted()) throw err;
    result.errors.push(`setup: ${errorText(err)}`);
  } finally {
    for (const ov of overlays ?? []) await ov.close();
  }
  return result;
}
