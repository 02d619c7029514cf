// overlayfwd drops [-n NAME] [-s SOCKET] [--follow] [--pcap FILE] [--json]
import fs from 'node:fs';
import { controlRequest } from '../control';
import { DropCapture, formatEndpoint } from '../pcapng';
import type { DroppedPacket, RecentDrops } from '../types';
import { EXIT_OK, plural, reportError, resolveSocket, UsageError, type InstanceOptions } from './common';

/** How often --follow asks for what is new. */
export const FOLLOW_INTERVAL_MS = 250;

export interface DropsOptions extends InstanceOptions {
  follow?: boolean;
  pcap?: string;
  json?: boolean;
}

/** The first bytes in groups of four: "08000000 00002a00 0200...". */
function hexPreview(hex: string, bytes = 24): string {
  const shown = hex.slice(0, bytes * 2);
  const groups = shown.match(/.{1,8}/g) ?? [];
  return groups.join(' ') + (hex.length > shown.length ? ' …' : '');
}

/** One drop on one line: time, worker, direction, reason, peer, the other end, size, what was captured. */
export function formatDrop(d: DroppedPacket): string {
  const who = d.peer !== null ? `peer ${d.peer}` : 'no peer';
  const where = d.underlay?.remote ? `${d.direction === 'rx' ? 'from' : 'to'} ${formatEndpoint(d.underlay.remote, d.underlay.remotePort)}` : '';
  const size = `${d.length} B${d.packets > 1 ? ` x${d.packets}` : ''}`;
  const bytes = d.layer === 'none' ? '(no bytes)' : `${d.layer}: ${hexPreview(d.data)}`;
  return [d.time, `w${d.worker}`, d.direction, d.reason.padEnd(16), who.padEnd(14), where.padEnd(28), size.padStart(9), bytes].join('  ').trimEnd();
}

export function missedLine(missed: number): string {
  return `-- ${plural(missed, 'drop')} missed: the rings overran between two reads --`;
}

/** Where --pcap writes: a file, or stdout for "-". */
function pcapSink(file: string): { write: (b: Buffer) => void; close: () => void } {
  if (file === '-') return { write: (b) => process.stdout.write(b), close: () => {} };
  const fd = fs.openSync(file, 'w', 0o600);
  return { write: (b) => fs.writeSync(fd, b), close: () => fs.closeSync(fd) };
}

export async function runDrops(opts: DropsOptions): Promise<number> {
  let sink: ReturnType<typeof pcapSink> | undefined;
  try {
    if (opts.json && opts.pcap !== undefined) throw new UsageError('--json and --pcap both say what to print: choose one');
    const socket = await resolveSocket(opts);
    const first = await controlRequest(socket, { cmd: 'drops' });
    let capture: DropCapture | undefined;
    let written = 0;
    let blank = 0;
    if (opts.pcap !== undefined) {
      sink = pcapSink(opts.pcap);
      capture = new DropCapture(sink.write, first);
    }
    const show = (answer: RecentDrops, following: boolean): void => {
      if (capture) {
        for (const d of answer.drops) {
          if (capture.add(d)) written++;
          else blank++;
        }
        if (answer.missed > 0) process.stderr.write(`overlayfwd: ${missedLine(answer.missed)}\n`);
      } else if (opts.json && !following) {
        process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
      } else if (opts.json) {
        if (answer.missed > 0) process.stdout.write(`${JSON.stringify({ missed: answer.missed })}\n`);
        for (const d of answer.drops) process.stdout.write(`${JSON.stringify(d)}\n`);
      } else {
        if (answer.missed > 0) process.stdout.write(`${missedLine(answer.missed)}\n`);
        for (const d of answer.drops) process.stdout.write(`${formatDrop(d)}\n`);
      }
    };
    if (!opts.follow) {
      show(first, false);
      if (!capture && !opts.json && first.drops.length === 0) process.stdout.write('(no drops recorded)\n');
    } else {
      show(first, true);
      await follow(socket, first.cursor, (answer) => show(answer, true));
    }
    if (capture && opts.pcap !== '-') {
      const left = blank > 0 ? ` (${plural(blank, 'drop')} without captured bytes left out)` : '';
      process.stderr.write(`overlayfwd: wrote ${plural(written, 'drop')} to ${opts.pcap}${left}\n`);
    }
    return EXIT_OK;
  } catch (err) {
    return reportError(err);
  } finally {
    sink?.close();
  }
}

/** Asks for what came after `cursor` every FOLLOW_INTERVAL_MS until SIGINT or SIGTERM. */
async function follow(socket: string, cursor: number[], show: (answer: RecentDrops) => void): Promise<void> {
  let stop = false;
  let wake: () => void = () => {};
  const onSignal = () => {
    stop = true;
    wake();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    let since = cursor;
    while (!stop) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, FOLLOW_INTERVAL_MS);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      if (stop) break;
      const answer = await controlRequest(socket, { cmd: 'drops', since });
      since = answer.cursor;
      show(answer);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
