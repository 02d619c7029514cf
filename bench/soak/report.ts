// What the soak prints at the end: per mode a table over time, the figures of the whole run per
// end and per traffic kind, and the verdict with the thresholds it judged by. Pure: it reads a
// SoakResult, nothing else.
import type { SoakMode } from './args';
import { heapText, type SeriesPoint, type VerdictInput } from './verdict';
import type { InstanceSample, Sample, SoakResult, TrafficRound, Verdict } from './types';

/** The table over time shows at most this many rows (evenly spread, the last sample always in). */
const MAX_ROWS = 20;

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

const mib = (kib: number | null | undefined) => (kib === null || kib === undefined ? '-' : (kib / 1024).toFixed(1));
const other = (side: string) => (side === 'a' ? 'b' : 'a');

function sumDrops(s: InstanceSample | undefined): number | null {
  const d = s?.stats?.totals.drops;
  return d ? Object.values(d).reduce((a, b) => a + b, 0) : null;
}

/** Packets the end delivered from its persistent peer so far. */
function delivered(s: InstanceSample | undefined, side: string): number | null {
  return s?.stats?.peers[other(side)]?.rxPackets ?? null;
}

/** The series the verdict judges, one per end: memory, descriptors, threads, deliveries, drops. */
export function verdictSeries(samples: readonly Sample[]): Record<string, SeriesPoint[]> {
  const series: Record<string, SeriesPoint[]> = {};
  for (const s of samples) {
    for (const [label, x] of Object.entries(s.instances)) {
      (series[label] ??= []).push({
        t: s.t,
        rssKiB: x.rssKiB,
        fds: x.fds,
        threads: x.threads,
        delivered: delivered(x, label.split('/')[1]!),
        drops: (x.stats?.totals.drops as Record<string, number> | undefined) ?? null,
        heap: x.heap ?? null,
      });
    }
  }
  return series;
}

/** The findings besides the series: warnings the overlays logged, churn that went wrong, an unclean exit. */
export function otherTrouble(result: SoakResult): string[] {
  const out: string[] = [];
  for (const [label, log] of Object.entries(result.logs)) {
    if (log.warnings > 0) out.push(`${label}: ${log.warnings} warning/error log line(s), first: ${log.lines[0]?.slice(0, 300) ?? '?'}`);
  }
  for (const [label, c] of Object.entries(result.churn)) {
    if (c.failures > 0) out.push(`${label}: ${c.failures} churn request(s) failed, first: ${c.errors[0] ?? '?'}`);
    if (c.mismatchSteps > 0) out.push(`${label}: peers list differed from the peers made after ${c.mismatchSteps} step(s), first: ${c.mismatches[0] ?? '?'}`);
    if (c.reloads > 0 && c.reloadsApplied < c.reloads - c.failures) out.push(`${label}: ${c.reloads - c.reloadsApplied} reload(s) changed nothing`);
  }
  for (const [label, exit] of Object.entries(result.exits)) {
    if (exit !== 'exit 0') out.push(`${label}: up ended with ${exit}, not exit 0`);
  }
  return out;
}

export function verdictInput(result: SoakResult): VerdictInput {
  const last = result.samples[result.samples.length - 1];
  return { durationSec: last?.t ?? 0, series: verdictSeries(result.samples), rounds: result.rounds, trouble: otherTrouble(result) };
}

function pickRows(samples: readonly Sample[]): Sample[] {
  if (samples.length <= MAX_ROWS) return [...samples];
  const step = (samples.length - 1) / (MAX_ROWS - 1);
  return Array.from({ length: MAX_ROWS }, (_, i) => samples[Math.round(i * step)]!);
}

/** Per mode: memory, descriptors and threads of both ends, packets per second each way, peers, drops, SAs, the soak's CPU. */
export function timeTable(result: SoakResult, mode: SoakMode): string {
  const rows = pickRows(result.samples);
  const a = `${mode}/a`;
  const b = `${mode}/b`;
  const esp = mode === 'esp';
  const header = ['t min', 'RSS a MiB', 'RSS b MiB', 'fds a/b', 'threads a/b', 'a->b pps', 'b->a pps', 'peers a/b', 'drops a/b', ...(esp ? ['Child SAs made a/b', 'IKE sessions a/b'] : []), 'soak cores'];
  let prev: Sample | null = null;
  const body = rows.map((s) => {
    const x = s.instances[a];
    const y = s.instances[b];
    const pps = (now: InstanceSample | undefined, before: InstanceSample | undefined, side: string) => {
      const n1 = delivered(now, side);
      const n0 = prev ? delivered(before, side) : null;
      return prev && n1 !== null && n0 !== null && s.t > prev.t ? ((n1 - n0) / (s.t - prev.t)).toFixed(0) : '-';
    };
    const row = [
      (s.t / 60).toFixed(1),
      mib(x?.rssKiB),
      mib(y?.rssKiB),
      `${x?.fds ?? '-'}/${y?.fds ?? '-'}`,
      `${x?.threads ?? '-'}/${y?.threads ?? '-'}`,
      pps(y, prev?.instances[b], 'b'),
      pps(x, prev?.instances[a], 'a'),
      `${x?.peers ?? '-'}/${y?.peers ?? '-'}`,
      `${sumDrops(x) ?? '-'}/${sumDrops(y) ?? '-'}`,
      ...(esp
        ? [`${x?.esp?.childSasInstalled ?? '-'}/${y?.esp?.childSasInstalled ?? '-'}`, `${x?.esp?.ikeSessions ?? '-'}/${y?.esp?.ikeSessions ?? '-'}`]
        : []),
      s.soakCores === null ? '-' : s.soakCores.toFixed(2),
    ];
    prev = s;
    return row;
  });
  return table(header, body);
}

function distinct<T>(values: readonly (T | null | undefined)[]): number {
  return new Set(values.filter((v) => v !== null && v !== undefined)).size;
}

/** Per end: memory at the start, the end and its peak, descriptors, threads, CPU, deliveries, drops, rekeys, churn. */
export function instanceSummary(result: SoakResult): string {
  const labels = Object.keys(result.samples[0]?.instances ?? {});
  const rows = labels.map((label) => {
    const points = result.samples.map((s) => s.instances[label]).filter((x): x is InstanceSample => !!x);
    const first = points[0];
    const last = [...points].reverse().find((p) => p.rssKiB !== null) ?? points[points.length - 1];
    const end = [...points].reverse().find((p) => p.stats) ?? last;
    const side = label.split('/')[1]!;
    const drops = Object.entries(end?.stats?.totals.drops ?? {}).map(([r, n]) => `${r} ${n}`);
    const log = end?.log ?? {};
    const c = result.churn[label];
    const cpu = last?.cpuSeconds !== null && last?.cpuSeconds !== undefined && first?.cpuSeconds !== null && first?.cpuSeconds !== undefined ? last.cpuSeconds - first.cpuSeconds : null;
    const seconds = (result.samples[result.samples.length - 1]?.t ?? 0) - (result.samples[0]?.t ?? 0);
    return [
      label,
      `${mib(first?.rssKiB)} / ${mib(last?.rssKiB)} / ${mib(Math.max(...points.map((p) => p.hwmKiB ?? 0)))}`,
      `${mib(first?.rssAnonKiB)} -> ${mib(last?.rssAnonKiB)}`,
      `${first?.fds ?? '-'} -> ${last?.fds ?? '-'}`,
      `${first?.threads ?? '-'} -> ${last?.threads ?? '-'}`,
      cpu === null || seconds <= 0 ? '-' : `${cpu.toFixed(1)} s (${((cpu / seconds) * 100).toFixed(1)} %)`,
      String(delivered(end, side) ?? '-'),
      drops.join(', ') || '0',
      result.options.modes.includes('esp') && label.startsWith('esp')
        ? `child ${log['Child SA rekeyed'] ?? 0}, IKE ${log['IKE SA rekeyed'] ?? 0} (SPIs seen: child ${distinct(points.map((p) => p.esp?.persistentChildSpi))}, IKE ${distinct(points.map((p) => p.esp?.persistentIkeSpi))})`
        : '-',
      c ? `+${c.adds} -${c.removes}, ${c.reloadsApplied}/${c.reloads} reloads` : '-',
    ];
  });
  return table(['end', 'RSS MiB start / end / peak', 'of it anon', 'fds', 'threads', 'CPU', 'delivered from peer', 'drops (totals)', 'rekeys logged', 'churn'], rows);
}

/** Per mode and kind: rounds, what was sent, delivered and lost. */
export function trafficSummary(rounds: readonly TrafficRound[]): string {
  const keys = [...new Set(rounds.map((r) => `${r.mode} ${r.kind}`))];
  const rows = keys.map((key) => {
    const list = rounds.filter((r) => `${r.mode} ${r.kind}` === key);
    const ok = list.filter((r) => r.error === undefined);
    const sum = (f: (r: TrafficRound) => number | null | undefined) => ok.reduce((s, r) => s + (f(r) ?? 0), 0);
    const tcp = list[0]!.kind === 'tcp';
    const secs = ok.reduce((s, r) => s + (r.end - r.start), 0);
    return [
      key,
      `${list.length}${list.length > ok.length ? ` (${list.length - ok.length} failed)` : ''}`,
      tcp ? `${(sum((r) => r.received) / 1e6).toFixed(1)} MB` : String(sum((r) => r.sent)),
      tcp ? `${secs > 0 ? ((sum((r) => r.received) * 8) / secs / 1e6).toFixed(1) : '-'} Mbit/s` : String(sum((r) => r.received)),
      tcp ? `${sum((r) => r.retransmits)} retransmits` : String(sum((r) => r.lost)),
      list[0]!.kind === 'udp' ? String(sum((r) => r.kernelDrops)) : '-',
    ];
  });
  return table(['traffic', 'rounds', 'sent (tcp: delivered)', 'delivered (tcp: rate)', 'lost (tcp: retransmits)', 'kernel drops'], rows);
}

export function verdictText(v: Verdict): string {
  const th = v.thresholds;
  const lines = [
    `verdict: ${v.outcome.toUpperCase()} (a leak: RSS up more than ${th.leakMiBPerHour} MiB/h and more than ${th.leakMinMiB} MiB from the first to the last third of the samples ` +
      `after a ${th.warmUpSec.toFixed(0)} s warm-up, or fds up more than ${th.fdSlack}, threads more than ${th.threadSlack}; ` +
      `traffic stopped: ${th.stoppedIntervals} intervals at the end without a packet from the persistent peer, or a last round that delivered nothing)`,
  ];
  for (const j of v.instances) {
    const g = j.rssGrowthMiBPerHour;
    const heap = heapText(j);
    lines.push(
      `  ${j.label}: RSS ${j.rssFirstMiB?.toFixed(1) ?? '-'} -> ${j.rssLastMiB?.toFixed(1) ?? '-'} MiB (${g === null ? 'not judged' : `${g >= 0 ? '+' : ''}${g.toFixed(1)} MiB/h`}), ` +
        `fds ${j.fdsDelta === null ? '-' : `${j.fdsDelta >= 0 ? '+' : ''}${j.fdsDelta}`}, threads ${j.threadsDelta === null ? '-' : `${j.threadsDelta >= 0 ? '+' : ''}${j.threadsDelta}`}` +
        (heap && `; ${heap}`),
    );
  }
  for (const [what, list] of [['leak', v.leaks], ['stopped', v.stopped], ['trouble', v.trouble], ['note', v.notes]] as const) {
    for (const l of list) lines.push(`  ${what}: ${l}`);
  }
  return lines.join('\n');
}
