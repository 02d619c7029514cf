// The soak bench's pure parts: its command line, and the verdict it draws from a series (a leak,
// traffic that stopped, trouble), judged by the thresholds it states.
import { describe, expect, it } from 'vitest';
import { parseSoakArgs, SOAK_DEFAULTS } from '../../bench/soak/args';
import { GcTrace, parseGcLine, type HeapReading } from '../../bench/soak/gc-trace';
import type { TrafficRound } from '../../bench/soak/types';
import { computeVerdict, LEAK_MIB_PER_HOUR, verdictExitCode, type SeriesPoint } from '../../bench/soak/verdict';

describe('soak arguments', () => {
  it('defaults to 10 minutes of both modes, a sample every 10 s', () => {
    expect(parseSoakArgs([])).toEqual(SOAK_DEFAULTS);
    expect(SOAK_DEFAULTS).toMatchObject({ minutes: 10, modes: ['vxlan', 'esp'], intervalSec: 10, out: null, logs: null, rekeySec: 20 });
  });

  it('takes every option with a separate value or after =', () => {
    expect(parseSoakArgs(['--minutes', '30', '--modes', 'esp', '--interval=15', '--rekey', '12', '--out', 'x.json', '--logs=/tmp/l', '--full-gc'])).toEqual({
      minutes: 30,
      modes: ['esp'],
      intervalSec: 15,
      rekeySec: 12,
      out: 'x.json',
      logs: '/tmp/l',
      fullGc: true,
    });
    expect(SOAK_DEFAULTS.fullGc).toBe(false);
    expect(parseSoakArgs(['--modes', 'esp,vxlan,esp', '--minutes=2.5'])).toMatchObject({ modes: ['esp', 'vxlan'], minutes: 2.5 });
    expect(parseSoakArgs(['--minutes', '1', '--help'])).toBe('help');
  });

  it('refuses what it cannot run, saying why', () => {
    expect(() => parseSoakArgs(['--minutes', '0'])).toThrow(/--minutes wants a number from 0.5 to 1440/);
    expect(() => parseSoakArgs(['--minutes', 'ten'])).toThrow(/--minutes wants/);
    expect(() => parseSoakArgs(['--interval', '2.5'])).toThrow(/--interval wants a whole number/);
    expect(() => parseSoakArgs(['--rekey', '5'])).toThrow(/--rekey wants a whole number from 10/);
    expect(() => parseSoakArgs(['--modes', 'gre'])).toThrow(/unknown mode gre/);
    expect(() => parseSoakArgs(['--modes', ','])).toThrow(/names no mode/);
    expect(() => parseSoakArgs(['--out'])).toThrow(/--out needs a value/);
    expect(() => parseSoakArgs(['--full-gc=yes'])).toThrow(/--full-gc takes no value/);
    expect(() => parseSoakArgs(['--fast'])).toThrow(/unknown option --fast\nusage: npm run soak/);
    // Fewer than 6 samples: nothing to compare after the warm-up.
    expect(() => parseSoakArgs(['--minutes', '1', '--interval', '20'])).toThrow(/too long for 1 minutes/);
  });
});

/** A series of `n` samples `every` seconds apart; each field a function of the time. */
function series(
  n: number,
  every: number,
  f: {
    rssMiB?: (t: number) => number;
    fds?: (t: number) => number;
    threads?: (t: number) => number;
    pps?: (t: number) => number;
    drops?: (t: number) => Record<string, number>;
    heap?: (t: number) => HeapReading;
  } = {},
): SeriesPoint[] {
  const out: SeriesPoint[] = [];
  let delivered = 0;
  for (let i = 0; i < n; i++) {
    const t = i * every;
    if (i > 0) delivered += (f.pps?.(t) ?? 1000) * every;
    out.push({ t, rssKiB: (f.rssMiB?.(t) ?? 80) * 1024, fds: f.fds?.(t) ?? 40, threads: f.threads?.(t) ?? 8, delivered, drops: f.drops?.(t) ?? { queueFull: 0 }, heap: f.heap?.(t) ?? null });
  }
  return out;
}

const HOUR = 3600;
/** 30 minutes, a sample every 10 s. */
const N = 181;
const EVERY = 10;

function round(over: Partial<TrafficRound>): TrafficRound {
  return { mode: 'vxlan', kind: 'udp', start: 0, end: 30, partial: false, sent: 6000, received: 6000, lost: 0, kernelDrops: 0, ...over };
}

describe('soak verdict', () => {
  it('flat memory, descriptors and threads under steady traffic: ok, exit 0', () => {
    // RSS wobbling by 2 MiB (GC) around a flat line is no leak.
    const v = computeVerdict({ durationSec: 1800, series: { 'vxlan/a': series(N, EVERY, { rssMiB: (t) => 80 + 2 * Math.sin(t / 37) }) }, rounds: [round({})] });
    expect(v.outcome).toBe('ok');
    expect(v.leaks).toEqual([]);
    expect(v.trouble).toEqual([]);
    expect(Math.abs(v.instances[0]!.rssGrowthMiBPerHour!)).toBeLessThan(LEAK_MIB_PER_HOUR);
    expect(verdictExitCode(v)).toBe(0);
  });

  it('RSS growing 20 MiB an hour after the warm-up is a leak, with the rate; exit 1', () => {
    const v = computeVerdict({ durationSec: 1800, series: { 'esp/b': series(N, EVERY, { rssMiB: (t) => 80 + (20 * t) / HOUR }) }, rounds: [] });
    expect(v.outcome).toBe('leak');
    expect(v.instances[0]!.rssGrowthMiBPerHour).toBeCloseTo(20, 0);
    expect(v.leaks).toEqual([expect.stringMatching(/^esp\/b: RSS 8\d\.\d -> 8\d\.\d MiB .*20\.\d MiB\/h > 10 MiB\/h$/)]);
    expect(verdictExitCode(v)).toBe(1);
  });

  it('growth during the warm-up only, or too little to tell from noise in a short run, is no leak', () => {
    // +30 MiB in the first minute (start-up), flat after.
    const warm = computeVerdict({ durationSec: 1800, series: { 'vxlan/a': series(N, EVERY, { rssMiB: (t) => (t < 60 ? 50 + t / 2 : 80) }) }, rounds: [] });
    expect(warm.leaks).toEqual([]);
    // 2 minutes: +1.5 MiB is a huge rate but under the 3 MiB floor.
    const short = computeVerdict({ durationSec: 120, series: { 'vxlan/a': series(25, 5, { rssMiB: (t) => 80 + (1.5 * t) / 120 }) }, rounds: [] });
    expect(short.instances[0]!.rssGrowthMiBPerHour!).toBeGreaterThan(LEAK_MIB_PER_HOUR);
    expect(short.leaks).toEqual([]);
  });

  it('descriptors or threads that keep growing are a leak; a sample catching one more is not', () => {
    const fds = computeVerdict({ durationSec: 1800, series: { 'esp/a': series(N, EVERY, { fds: (t) => 30 + Math.floor(t / 120) }) }, rounds: [] });
    expect(fds.outcome).toBe('leak');
    expect(fds.leaks).toEqual([expect.stringMatching(/^esp\/a: open fds \d+ -> \d+ .*more than 3 up$/)]);
    const threads = computeVerdict({ durationSec: 1800, series: { 'esp/a': series(N, EVERY, { threads: (t) => (t > 900 ? 20 : 9) }) }, rounds: [] });
    expect(threads.leaks).toEqual([expect.stringMatching(/threads 9 -> 20/)]);
    const blip = computeVerdict({ durationSec: 1800, series: { 'esp/a': series(N, EVERY, { fds: (t) => (t % 70 === 0 ? 31 : 30) }) }, rounds: [] });
    expect(blip.leaks).toEqual([]);
  });

  it('nothing delivered at the end is traffic that stopped (exit 1); a stall that recovered is trouble', () => {
    const stoppedAtEnd = computeVerdict({ durationSec: 1800, series: { 'vxlan/b': series(N, EVERY, { pps: (t) => (t > 1700 ? 0 : 1000) }) }, rounds: [] });
    expect(stoppedAtEnd.outcome).toBe('traffic stopped');
    expect(stoppedAtEnd.stopped).toEqual(['vxlan/b: nothing delivered from the persistent peer in the last 2 intervals']);
    expect(verdictExitCode(stoppedAtEnd)).toBe(1);
    const stall = computeVerdict({ durationSec: 1800, series: { 'vxlan/b': series(N, EVERY, { pps: (t) => (t === 600 ? 0 : 1000) }) }, rounds: [] });
    expect(stall.outcome).toBe('trouble');
    expect(stall.trouble).toEqual(['vxlan/b: nothing delivered from the persistent peer in 1 interval(s) (at 600 s)']);
    expect(verdictExitCode(stall)).toBe(0);
    const gone = series(N, EVERY);
    gone[gone.length - 1]!.rssKiB = null;
    expect(computeVerdict({ durationSec: 1800, series: { 'esp/a': gone }, rounds: [] }).stopped).toContain('esp/a: the overlay process was gone at the end');
  });

  it('drops that grew during the soak are trouble, by reason', () => {
    const v = computeVerdict({ durationSec: 1800, series: { 'esp/a': series(N, EVERY, { drops: (t) => ({ noSa: 2, unknownSpi: t > 900 ? 3 : 0, replay: 0 }) }) }, rounds: [] });
    expect(v.trouble).toEqual(['esp/a: drops unknownSpi 3']);
    expect(v.outcome).toBe('trouble');
  });

  it('traffic rounds: a last round that delivered nothing stopped; loss beyond what the kernel dropped is trouble; a ping cut short is not loss', () => {
    const rounds = [round({ kind: 'tcp', sent: 1e6, received: 1e6, lost: null }), round({ kind: 'tcp', start: 30, end: 60, received: null, sent: null, lost: null, error: 'iperf3: unable to connect' })];
    expect(computeVerdict({ durationSec: 1800, series: {}, rounds }).stopped).toEqual(['vxlan tcp: the last whole round delivered nothing (iperf3: unable to connect)']);
    const udp = [round({ lost: 5, received: 5995, kernelDrops: 2 }), round({ start: 30, end: 60, lost: 0 })];
    expect(computeVerdict({ durationSec: 1800, series: {}, rounds: udp }).trouble).toEqual(['vxlan udp: 5 of 12000 lost (the kernel dropped 2 in the hosts)']);
    const starved = [round({ lost: 5, received: 5995, kernelDrops: 5 })];
    expect(computeVerdict({ durationSec: 1800, series: {}, rounds: starved }).trouble).toEqual([]);
    const ping = [round({ kind: 'ping', sent: 300, received: 300 }), round({ kind: 'ping', start: 30, end: 41, partial: true, sent: 110, received: 109, lost: 1 })];
    expect(computeVerdict({ durationSec: 1800, series: {}, rounds: ping }).outcome).toBe('ok');
  });

  it('a run too short to judge memory says so instead of judging', () => {
    const v = computeVerdict({ durationSec: 70, series: { 'vxlan/a': series(8, 10) }, rounds: [] });
    expect(v.instances[0]!.rssGrowthMiBPerHour).toBeNull();
    expect(v.notes).toEqual(['vxlan/a: fewer than 3 samples after the 60 s warm-up: memory not judged']);
  });
});

describe('soak heap trace (--trace-gc)', () => {
  // Lines as Node 20's V8 prints them.
  const scavenge = '[8276:0x1dd70090]   301031 ms: Scavenge 19.3 (20.4) -> 18.5 (20.4) MB, 0.38 / 0.00 ms  (average mu = 0.996, current mu = 0.976) task; ';
  const reduce =
    '[8276:0x1dd70090]     8469 ms: Mark-Compact (reduce) 17.9 (36.6) -> 15.8 (17.6) MB, 14.65 / 0.01 ms  (+ 8.0 ms in 71 steps since start of marking) finalize incremental marking via task; GC in old space requested';
  const forced = '[10113:0x21d11ee0]       24 ms: Mark-Compact 3.9 (4.0) -> 3.1 (5.5) MB, 4.21 / 0.00 ms  (average mu = 1.000, current mu = 1.000) allocation failure; GC in old space forced by flags';

  it('reads used and committed after each collection, and which were full', () => {
    expect(parseGcLine(scavenge)).toEqual({ full: false, usedMiB: 18.5, committedMiB: 20.4 });
    expect(parseGcLine(reduce)).toEqual({ full: true, usedMiB: 15.8, committedMiB: 17.6 });
    expect(parseGcLine(forced)).toEqual({ full: true, usedMiB: 3.1, committedMiB: 5.5 });
    expect(parseGcLine('{"level":"info","msg":"overlay up"}')).toBeNull();
  });

  it('keeps the latest committed heap and the latest live one, across chunks that split lines', () => {
    const trace = new GcTrace();
    expect(trace.heap).toBeNull();
    const text = `${reduce}\n${scavenge}\n`;
    trace.feed(text.slice(0, 40));
    expect(trace.heap).toBeNull();
    trace.feed(text.slice(40, reduce.length + 1));
    expect(trace.heap).toEqual({ committedMiB: 17.6, liveMiB: 15.8, collections: 1, fullCollections: 1 });
    trace.feed(text.slice(reduce.length + 1, -10));
    expect(trace.heap!.collections).toBe(1);
    trace.feed(text.slice(-10));
    expect(trace.heap).toEqual({ committedMiB: 20.4, liveMiB: 15.8, collections: 2, fullCollections: 1 });
  });

  it('an RSS leak says where it sits; one wholly in a heap V8 never fully collected gets a note, and stays a leak', () => {
    // RSS +20 MiB/h, all of it V8's committed heap, no full collection after the start.
    const grow = (t: number) => (20 * t) / HOUR;
    const deferred = computeVerdict({
      durationSec: 1800,
      series: { 'vxlan/b': series(N, EVERY, { rssMiB: (t) => 80 + grow(t), heap: (t) => ({ committedMiB: 20 + grow(t), liveMiB: 16, collections: t, fullCollections: 2 }) }) },
      rounds: [],
    });
    expect(deferred.outcome).toBe('leak');
    expect(deferred.leaks).toEqual([expect.stringMatching(/^vxlan\/b: RSS .* MiB\/h > 10 MiB\/h; V8's heap 2\d\.\d -> 2\d\.\d MiB committed, live after full collections 16\.0 -> 16\.0 \(0 between\), outside it 60\.0 -> 60\.0$/)]);
    expect(deferred.notes).toEqual([expect.stringMatching(/^vxlan\/b: the RSS growth is in V8's heap, which had no full collection after the warm-up/)]);
    // The same growth outside V8's heap (the addon, malloc): a leak, and no note.
    const native = computeVerdict({
      durationSec: 1800,
      series: { 'esp/a': series(N, EVERY, { rssMiB: (t) => 80 + grow(t), heap: (t) => ({ committedMiB: 20, liveMiB: 16, collections: t, fullCollections: Math.floor(t / 60) }) }) },
      rounds: [],
    });
    expect(native.leaks).toEqual([expect.stringMatching(/outside it 6\d\.\d -> 6\d\.\d$/)]);
    expect(native.notes).toEqual([]);
    expect(native.instances[0]!.fullCollections).toBeGreaterThan(20);
  });

  it('a live heap that grows across full collections is a leak, whatever RSS does', () => {
    const v = computeVerdict({
      durationSec: 1800,
      series: { 'esp/b': series(N, EVERY, { heap: (t) => ({ committedMiB: 40, liveMiB: 16 + (20 * t) / HOUR, collections: t, fullCollections: t }) }) },
      rounds: [],
    });
    expect(v.outcome).toBe('leak');
    expect(v.leaks).toEqual([expect.stringMatching(/^esp\/b: V8's heap live after full collections 1\d\.\d -> 2\d\.\d MiB, 20\.\d MiB\/h > 10 MiB\/h$/)]);
  });
});
