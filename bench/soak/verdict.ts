// The soak's verdict, computed from its series alone (no I/O, so a unit test can feed it any).
//
// Memory: the RSS medians of the first and the last third of the samples after the warm-up, and
// the growth between them per hour. A forwarder that runs for days must hold its memory flat:
// its tables are as large as its peers, and the data path allocates nothing per packet. A leak
// of a few hundred bytes per peer change, per rekey or per control request, at the rates the soak
// drives them (a peer change every few seconds, a rekey every 20 s, four requests every sample),
// comes to several MiB an hour. Below LEAK_MIB_PER_HOUR a half-hour run cannot tell a leak from
// V8 sizing its heap and glibc keeping freed arenas, which move RSS by a few MiB either way; and
// a growth of less than LEAK_MIN_MIB between the thirds is that noise, however short the run
// that makes it a large rate. Descriptors and threads must not grow at all once warm (libuv
// starts its thread pool lazily, a sample may catch a control connection being served): a few
// of slack.
//
// Where the memory sits, when `up` ran with --trace-gc (gc-trace.ts): RSS less the heap V8 has
// committed is memory outside it (the addon, malloc, stacks), and the heap in use after a full
// collection is what JavaScript holds. The judgement reports both beside RSS, a live heap that
// grows as RSS would is a leak too, and an RSS leak that sits wholly in a heap V8 never fully
// collected after the warm-up gets a note: only a run with --full-gc tells that garbage from a
// leak. RSS stays the judge: a note never clears a leak.
import type { HeapReading } from './gc-trace';
import type { InstanceJudgement, TrafficKind, TrafficRound, Verdict, VerdictThresholds } from './types';

/** 10 MiB an hour is 240 MiB a day: what a daemon cannot carry for a week. */
export const LEAK_MIB_PER_HOUR = 10;
export const LEAK_MIN_MIB = 3;
export const FD_SLACK = 3;
export const THREAD_SLACK = 4;
/** The samples of the warm-up are not judged: the first minute, or the first tenth of a longer run. */
export const WARM_UP_MIN_SEC = 60;
export const WARM_UP_SHARE = 0.1;
/** This many intervals in a row without a packet delivered to the persistent peer, at the end, is traffic that stopped. */
export const STOPPED_INTERVALS = 2;

export interface SeriesPoint {
  /** Seconds since the start. */
  t: number;
  /** null: the process was gone, or the reading failed. */
  rssKiB: number | null;
  fds: number | null;
  threads: number | null;
  /** Packets delivered from the persistent peer so far (its rxPackets); null: the stats request failed. */
  delivered: number | null;
  /** The totals' drops so far, by reason. */
  drops: Record<string, number> | null;
  /** V8's heap as --trace-gc reported it last (absent or null: no trace). */
  heap?: HeapReading | null;
}

export interface VerdictInput {
  durationSec: number;
  /** Per end (mode/side), the samples in time order. */
  series: Record<string, SeriesPoint[]>;
  rounds: TrafficRound[];
  /** Other findings already counted elsewhere (warnings logged, churn that went wrong): trouble. */
  trouble?: string[];
}

export function thresholds(durationSec: number): VerdictThresholds {
  return {
    warmUpSec: Math.max(WARM_UP_MIN_SEC, durationSec * WARM_UP_SHARE),
    leakMiBPerHour: LEAK_MIB_PER_HOUR,
    leakMinMiB: LEAK_MIN_MIB,
    fdSlack: FD_SLACK,
    threadSlack: THREAD_SLACK,
    stoppedIntervals: STOPPED_INTERVALS,
  };
}

export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((x, y) => x - y);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The first and last third of `points` (at least one point each; null with fewer than three). */
export function thirds<T>(points: readonly T[]): [T[], T[]] | null {
  if (points.length < 3) return null;
  const k = Math.floor(points.length / 3);
  return [points.slice(0, k), points.slice(points.length - k)];
}

/** What a series point holds, by field or computed from it (null: not read). */
type Reading = (p: SeriesPoint) => number | null;
const field = (key: 'rssKiB' | 'fds' | 'threads' | 't'): Reading => (p) => p[key];
/** MiB: V8's committed heap, what is live in it, and RSS outside it. */
const v8Heap: Reading = (p) => p.heap?.committedMiB ?? null;
const liveHeap: Reading = (p) => p.heap?.liveMiB ?? null;
const outsideHeap: Reading = (p) => (p.heap && p.rssKiB !== null ? p.rssKiB / 1024 - p.heap.committedMiB : null);

function medianOf(points: readonly SeriesPoint[], reading: Reading): number | null {
  return median(points.map(reading).filter((v): v is number => v !== null));
}

/** Full collections between the first third's first sample and the last third's last one (null: no trace). */
function fullCollectionsIn(first: readonly SeriesPoint[], last: readonly SeriesPoint[]): number | null {
  const a = first[0]?.heap;
  const b = last[last.length - 1]?.heap;
  return a && b ? b.fullCollections - a.fullCollections : null;
}

const oneDecimal = (v: number | null) => (v === null ? '-' : v.toFixed(1));

/** Where a judgement's memory sat (V8's heap, its live part, RSS outside it); '' without a --trace-gc. */
export function heapText(j: InstanceJudgement): string {
  if (j.v8FirstMiB === null) return '';
  return (
    `V8's heap ${oneDecimal(j.v8FirstMiB)} -> ${oneDecimal(j.v8LastMiB)} MiB committed, live after full collections ` +
    `${oneDecimal(j.liveFirstMiB)} -> ${oneDecimal(j.liveLastMiB)} (${j.fullCollections} between), outside it ${oneDecimal(j.outsideFirstMiB)} -> ${oneDecimal(j.outsideLastMiB)}`
  );
}

function judgeInstance(label: string, points: readonly SeriesPoint[], th: VerdictThresholds, leaks: string[], notes: string[]): InstanceJudgement {
  const judged = points.filter((p) => p.t >= th.warmUpSec);
  const out: InstanceJudgement = {
    label,
    rssFirstMiB: null,
    rssLastMiB: null,
    rssGrowthMiBPerHour: null,
    fdsDelta: null,
    threadsDelta: null,
    v8FirstMiB: null,
    v8LastMiB: null,
    liveFirstMiB: null,
    liveLastMiB: null,
    outsideFirstMiB: null,
    outsideLastMiB: null,
    fullCollections: null,
  };
  const parts = thirds(judged);
  if (!parts) return out;
  const [first, last] = parts;
  const r0 = medianOf(first, field('rssKiB'));
  const r1 = medianOf(last, field('rssKiB'));
  const t0 = medianOf(first, field('t'))!;
  const t1 = medianOf(last, field('t'))!;
  if (r0 !== null && r1 !== null && t1 > t0) {
    out.rssFirstMiB = r0 / 1024;
    out.rssLastMiB = r1 / 1024;
    const growth = out.rssLastMiB - out.rssFirstMiB;
    out.rssGrowthMiBPerHour = (growth * 3600) / (t1 - t0);
    out.v8FirstMiB = medianOf(first, v8Heap);
    out.v8LastMiB = medianOf(last, v8Heap);
    out.liveFirstMiB = medianOf(first, liveHeap);
    out.liveLastMiB = medianOf(last, liveHeap);
    out.outsideFirstMiB = medianOf(first, outsideHeap);
    out.outsideLastMiB = medianOf(last, outsideHeap);
    out.fullCollections = fullCollectionsIn(first, last);
    const where = heapText(out);
    if (growth > th.leakMinMiB && out.rssGrowthMiBPerHour > th.leakMiBPerHour) {
      leaks.push(
        `${label}: RSS ${out.rssFirstMiB.toFixed(1)} -> ${out.rssLastMiB.toFixed(1)} MiB (first to last third after warm-up), ` +
          `${out.rssGrowthMiBPerHour.toFixed(1)} MiB/h > ${th.leakMiBPerHour} MiB/h${where && `; ${where}`}`,
      );
      const outsideGrowth = out.outsideFirstMiB !== null && out.outsideLastMiB !== null ? out.outsideLastMiB - out.outsideFirstMiB : null;
      if (out.fullCollections === 0 && outsideGrowth !== null && outsideGrowth <= th.leakMinMiB) {
        notes.push(`${label}: the RSS growth is in V8's heap, which had no full collection after the warm-up: garbage or a leak, which only a run with --full-gc tells`);
      }
    }
    if (out.liveFirstMiB !== null && out.liveLastMiB !== null) {
      const live = out.liveLastMiB - out.liveFirstMiB;
      const rate = (live * 3600) / (t1 - t0);
      if (live > th.leakMinMiB && rate > th.leakMiBPerHour) {
        leaks.push(`${label}: V8's heap live after full collections ${oneDecimal(out.liveFirstMiB)} -> ${oneDecimal(out.liveLastMiB)} MiB, ${rate.toFixed(1)} MiB/h > ${th.leakMiBPerHour} MiB/h`);
      }
    }
  }
  for (const [key, slack, what] of [['fds', th.fdSlack, 'open fds'], ['threads', th.threadSlack, 'threads']] as const) {
    const a = medianOf(first, field(key));
    const b = medianOf(last, field(key));
    if (a === null || b === null) continue;
    const delta = b - a;
    if (key === 'fds') out.fdsDelta = delta;
    else out.threadsDelta = delta;
    if (delta > slack) leaks.push(`${label}: ${what} ${a} -> ${b} (first to last third after warm-up), more than ${slack} up`);
  }
  return out;
}

/** Packets delivered in each interval (null where a reading is missing). */
function deliveredPerInterval(points: readonly SeriesPoint[]): Array<{ t: number; n: number | null }> {
  const out: Array<{ t: number; n: number | null }> = [];
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1]!.delivered;
    const b = points[i]!.delivered;
    out.push({ t: points[i]!.t, n: a === null || b === null ? null : b - a });
  }
  return out;
}

function judgeTraffic(label: string, points: readonly SeriesPoint[], th: VerdictThresholds, stopped: string[], trouble: string[]): void {
  const last = points[points.length - 1];
  if (!last) {
    stopped.push(`${label}: no sample`);
    return;
  }
  if (last.rssKiB === null) stopped.push(`${label}: the overlay process was gone at the end`);
  const intervals = deliveredPerInterval(points);
  const tail = intervals.slice(-th.stoppedIntervals);
  if (tail.length === th.stoppedIntervals && tail.every((x) => x.n === 0 || x.n === null)) {
    stopped.push(`${label}: nothing delivered from the persistent peer in the last ${th.stoppedIntervals} intervals`);
  }
  const stalls = intervals.filter((x, i) => x.n === 0 && i < intervals.length - tail.length);
  if (stalls.length) trouble.push(`${label}: nothing delivered from the persistent peer in ${stalls.length} interval(s) (at ${stalls.map((x) => `${x.t.toFixed(0)} s`).slice(0, 5).join(', ')})`);
  const first = points[0]!.drops;
  const end = last.drops ?? [...points].reverse().find((p) => p.drops)?.drops ?? null;
  if (first && end) {
    const grew = Object.entries(end)
      .map(([reason, n]) => [reason, n - (first[reason] ?? 0)] as const)
      .filter(([, n]) => n > 0);
    if (grew.length) trouble.push(`${label}: drops ${grew.map(([r, n]) => `${r} ${n}`).join(', ')}`);
  }
}

function judgeRounds(rounds: readonly TrafficRound[], stopped: string[], trouble: string[]): void {
  const groups = new Map<string, TrafficRound[]>();
  for (const r of rounds) {
    const key = `${r.mode} ${r.kind}`;
    let list = groups.get(key);
    if (!list) groups.set(key, (list = []));
    list.push(r);
  }
  for (const [key, list] of groups) {
    const whole = list.filter((r) => !r.partial);
    const lastWhole = whole[whole.length - 1];
    if (lastWhole && (lastWhole.error !== undefined || !lastWhole.received)) {
      stopped.push(`${key}: the last whole round delivered nothing${lastWhole.error ? ` (${lastWhole.error})` : ''}`);
    }
    const failed = whole.filter((r) => r !== lastWhole && (r.error !== undefined || !r.received));
    if (failed.length) trouble.push(`${key}: ${failed.length} of ${whole.length} rounds delivered nothing${failed[0]!.error ? ` (first: ${failed[0]!.error})` : ''}`);
    const kind = list[0]!.kind as TrafficKind;
    if (kind === 'tcp') continue; // TCP retransmits what it loses: its rounds report retransmits, not loss.
    // A ping cut short by the end of the soak counts its last request, still on its way, as lost.
    const counted = list.filter((r) => r.error === undefined && r.lost !== null && !(r.partial && kind === 'ping'));
    const lost = counted.reduce((s, r) => s + (r.lost ?? 0), 0);
    const sent = counted.reduce((s, r) => s + (r.sent ?? 0), 0);
    const kernel = counted.reduce((s, r) => s + (r.kernelDrops ?? 0), 0);
    // A datagram the kernel itself dropped (a receiver starved of CPU) is not the forwarder's.
    if (lost > kernel) trouble.push(`${key}: ${lost} of ${sent} lost${kind === 'udp' ? ` (the kernel dropped ${kernel} in the hosts)` : ''}`);
  }
}

export function computeVerdict(input: VerdictInput): Verdict {
  const th = thresholds(input.durationSec);
  const leaks: string[] = [];
  const stopped: string[] = [];
  const trouble: string[] = [];
  const notes: string[] = [];
  const instances: InstanceJudgement[] = [];
  for (const [label, points] of Object.entries(input.series)) {
    const j = judgeInstance(label, points, th, leaks, notes);
    if (j.rssGrowthMiBPerHour === null) notes.push(`${label}: fewer than 3 samples after the ${th.warmUpSec.toFixed(0)} s warm-up: memory not judged`);
    instances.push(j);
    judgeTraffic(label, points, th, stopped, trouble);
  }
  judgeRounds(input.rounds, stopped, trouble);
  trouble.push(...(input.trouble ?? []));
  const outcome = leaks.length ? 'leak' : stopped.length ? 'traffic stopped' : trouble.length ? 'trouble' : 'ok';
  return { outcome, leaks, stopped, trouble, notes, instances, thresholds: th };
}

/** The exit status a verdict gives: a leak or traffic that stopped fails the soak. */
export function verdictExitCode(v: Verdict): number {
  return v.outcome === 'leak' || v.outcome === 'traffic stopped' ? 1 : 0;
}
