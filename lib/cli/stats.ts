// overlayfwd stats [-n NAME] [-s SOCKET] [--json] [--watch]
import { controlRequest } from '../control';
import type { Counters, DropReason, OverlayStats } from '../types';
import { EXIT_OK, formatBytes, plural, reportError, resolveSocket, si, table, type InstanceOptions } from './common';

function dropsOf(c: Counters): Array<[DropReason, number]> {
  return (Object.entries(c.drops) as Array<[DropReason, number]>).filter(([, n]) => n > 0);
}

function dropsText(c: Counters): string {
  const drops = dropsOf(c);
  return drops.length === 0 ? '0' : drops.map(([reason, n]) => `${reason} ${n}`).join(', ');
}

function totalDrops(c: Counters): number {
  return Object.values(c.drops).reduce((a, b) => a + b, 0);
}

function heading(stats: OverlayStats): string {
  return `${stats.name}: device ${stats.device}, ${plural(stats.workers, 'worker')}, fdb ${stats.fdb.learned} learned + ${stats.fdb.static} static${stats.fdb.refused ? ` (${stats.fdb.refused} refused: full)` : ''}`;
}

function rows(stats: OverlayStats): Array<[string, Counters]> {
  const peers = Object.keys(stats.peers).sort();
  return [...peers.map((name) => [name, stats.peers[name]!] as [string, Counters]), ['TOTAL', stats.totals]];
}

/** Wire bytes, or '-' from an instance that does not count them. */
function wire(bytes: number | undefined): string {
  return bytes === undefined ? '-' : formatBytes(bytes);
}

/** What encapsulation adds per packet, on average: "36.0 B/packet (+2.4 %)". */
function overhead(packets: number, inner: number, outer: number | undefined): string | null {
  if (outer === undefined || packets <= 0 || inner <= 0) return null;
  return `${((outer - inner) / packets).toFixed(1)} B/packet (+${(((outer - inner) / inner) * 100).toFixed(1)} %)`;
}

/** The one-shot human view: one row per peer, then the totals; bytes inner, and outer ("wire"). */
export function renderStats(stats: OverlayStats): string {
  const body = rows(stats).map(([name, c]) => [
    name,
    String(c.txPackets),
    formatBytes(c.txBytes),
    wire(c.txWireBytes),
    String(c.rxPackets),
    formatBytes(c.rxBytes),
    wire(c.rxWireBytes),
    dropsText(c),
  ]);
  const lines = [
    heading(stats),
    '',
    table(['PEER', 'TX PKTS', 'TX BYTES', 'TX WIRE', 'RX PKTS', 'RX BYTES', 'RX WIRE', 'DROPS'], body, new Set([0, 7])),
  ];
  if (Object.keys(stats.peers).length === 0) lines.push('(no peers)');
  lines.push(`flooded: ${stats.totals.floodPackets} packets`);
  const t = stats.totals;
  const tx = overhead(t.txPackets, t.txBytes, t.txWireBytes);
  const rx = overhead(t.rxPackets, t.rxBytes, t.rxWireBytes);
  if (tx || rx) lines.push(`encapsulation: ${[tx && `tx ${tx}`, rx && `rx ${rx}`].filter(Boolean).join(', ')}`);
  return `${lines.join('\n')}\n`;
}

/** The --watch view: counts and per-second rates since `prev` (taken `seconds` earlier). */
export function renderRates(stats: OverlayStats, prev: OverlayStats | undefined, seconds: number): string {
  const before = (name: string): Counters | undefined => (name === 'TOTAL' ? prev?.totals : prev?.peers[name]);
  const rate = (now: number, then: number | undefined, unit: string, scale = 1): string =>
    then === undefined || seconds <= 0 || now < then ? '-' : si(((now - then) * scale) / seconds, unit);
  const body = rows(stats).map(([name, c]) => {
    const p = before(name);
    return [
      name,
      String(c.txPackets),
      rate(c.txPackets, p?.txPackets, 'pps'),
      rate(c.txBytes, p?.txBytes, 'bit/s', 8),
      String(c.rxPackets),
      rate(c.rxPackets, p?.rxPackets, 'pps'),
      rate(c.rxBytes, p?.rxBytes, 'bit/s', 8),
      rate(totalDrops(c), p ? totalDrops(p) : undefined, '/s'),
      dropsText(c),
    ];
  });
  const lines = [
    `${heading(stats)}  (every 1 s, Ctrl-C to quit)  ${new Date().toLocaleTimeString()}`,
    '',
    table(['PEER', 'TX PKTS', 'TX PKT/S', 'TX BIT/S', 'RX PKTS', 'RX PKT/S', 'RX BIT/S', 'DROPS/S', 'DROPS'], body, new Set([0, 8])),
    `flooded: ${stats.totals.floodPackets} packets`,
  ];
  return `${lines.join('\n')}\n`;
}

export interface StatsOptions extends InstanceOptions {
  json?: boolean;
  watch?: boolean;
}

export async function runStats(opts: StatsOptions): Promise<number> {
  try {
    const socket = await resolveSocket(opts);
    if (!opts.watch) {
      const stats = await controlRequest(socket, { cmd: 'stats' });
      process.stdout.write(opts.json ? `${JSON.stringify(stats, null, 2)}\n` : renderStats(stats));
      return EXIT_OK;
    }
    return await watch(socket, Boolean(opts.json));
  } catch (err) {
    return reportError(err);
  }
}

async function watch(socket: string, json: boolean): Promise<number> {
  let stop = false;
  let wake: () => void = () => {};
  const onSignal = () => {
    stop = true;
    wake();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const tty = process.stdout.isTTY === true;
  try {
    let prev: OverlayStats | undefined;
    let prevAt = 0;
    while (!stop) {
      const stats = await controlRequest(socket, { cmd: 'stats' });
      const now = performance.now();
      if (json) {
        process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...stats })}\n`);
      } else {
        const frame = renderRates(stats, prev, (now - prevAt) / 1000);
        process.stdout.write(tty ? `\x1b[H\x1b[2J${frame}` : `${frame}\n`);
      }
      prev = stats;
      prevAt = now;
      if (stop) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, 1000 - (performance.now() - now)));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return EXIT_OK;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
