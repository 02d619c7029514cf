// The soak bench's pure parts: its command line, and the verdict it draws from a series (a leak,
// traffic that stopped, trouble), judged by the thresholds it states.
import { describe, expect, it } from 'vitest';
import { parseSoakArgs, SOAK_DEFAULTS } from '../../bench/soak/args';
import type { TrafficRound } from '../../bench/soak/types';
import { computeVerdict, LEAK_MIB_PER_HOUR, verdictExitCode, type SeriesPoint } from '../../bench/soak/verdict';

describe('soak arguments', () => {
  it('defaults to 10 minutes of both modes, a sample every 10 s', () => {
    expect(parseSoakArgs([])).toEqual(SOAK_DEFAULTS);
    expect(SOAK_DEFAULTS).toMatchObject({ minutes: 10, modes: ['vxlan', 'esp'], intervalSec: 10, out: null, logs: null, rekeySec: 20 });
  });

  it('takes every option with a separate value or after =', () => {
    expect(parseSoakArgs(['--minutes', '30', '--modes', 'esp', '--interval=15', '--rekey', '12', '--out', 'x.json', '--logs=/tmp/l'])).toEqual({
      minutes: 30,
      modes: ['esp'],
      intervalSec: 15,
      rekeySec: 12,
      out: 'x.json',
      logs: '/tmp/l',
    });
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
    expect(() => parseSoakArgs(['--fast'])).toThrow(/unknown option --fast\nusage: npm run soak/);
    // Fewer than 6 samples: nothing to compare after the warm-up.
    expect(() => parseSoakArgs(['--minutes', '1', '--interval', '20'])).toThrow(/too long for 1 minutes/);
  });
});

/** A series of `n` samples `every` seconds apart; each field a function of the time. */
function series(n: number, every: number, f: { rssMiB?: (t: number) => number; fds?: (t: number) => number; threads?: (t: number) => number; pps?: (t: number) => number; drops?: (t: number) => Record<string, number> } = {}): SeriesPoint[] {
  const out: SeriesPoint[] = [];
  let delivered = 0;
  for (let i = 0; i < n; i++) {
    const t = i * every;
    if (i > 0) delivered += (f.pps?.(t) ?? 1000) * every;
    out.push({ t, rssKiB: (f.rssMiB?.(t) ?? 80) * 1024, fds: f.fds?.(t) ?? 40, threads: f.threads?.(t) ?? 8, delivered, drops: f.drops?.(t) ?? { queueFull: 0 } });
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
