// `npm run bench`: the codec micro bench, then the netns bench (kernel VXLAN vs overlayfwd),
// tables on stdout (progress on stderr), the JSON in bench/results/ and the netns tables as
// Markdown in bench/results/latest.md.
//
//   node dist/bench/run.js [--quick] [--only micro|netns] [--duration S] [--parallel N]
//                          [--no-workers2] [--no-offloads-off]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MICRO_PACKETS, runMicro, type MicroResult } from './micro';
import { abortNetns, netnsPhases, netnsRows, offloadRows, runNetns, type NetnsResult } from './netns';

interface Args {
  quick: boolean;
  only: 'micro' | 'netns' | null;
  durationSec: number;
  workers2: boolean;
  parallel: number;
  offloadsOff: boolean;
}

const USAGE =
  'usage: node dist/bench/run.js [--quick] [--only micro|netns] [--duration S] [--parallel N] [--no-workers2] [--no-offloads-off]';

/** Seconds per iperf3 test: default, and with --quick. */
const DEFAULT_DURATION = 8;
const QUICK_DURATION = 2;
const DEFAULT_PARALLEL = 4;

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, only: null, durationSec: 0, workers2: true, parallel: DEFAULT_PARALLEL, offloadsOff: true };
  let duration: number | null = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const eq = a.indexOf('=');
      if (eq >= 0) return a.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    if (a === '--quick') args.quick = true;
    else if (a === '--no-workers2') args.workers2 = false;
    else if (a === '--no-offloads-off') args.offloadsOff = false;
    else if (a === '--parallel' || a.startsWith('--parallel=')) {
      const v = Number(value());
      if (!Number.isInteger(v) || v < 0 || v === 1 || v > 64) throw new Error(`--parallel wants 2..64 streams, or 0 to skip\n${USAGE}`);
      args.parallel = v;
    }
    else if (a === '--only' || a.startsWith('--only=')) {
      const v = value();
      if (v !== 'micro' && v !== 'netns') throw new Error(`--only wants micro or netns, not ${v}\n${USAGE}`);
      args.only = v;
    } else if (a === '--duration' || a.startsWith('--duration=')) {
      const v = Number(value());
      if (!Number.isInteger(v) || v < 1 || v > 600) throw new Error(`--duration wants whole seconds 1..600\n${USAGE}`);
      duration = v;
    } else if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new Error(`unknown option ${a}\n${USAGE}`);
  }
  args.durationSec = duration ?? (args.quick ? QUICK_DURATION : DEFAULT_DURATION);
  return args;
}

const t0 = Date.now();
function log(line: string): void {
  process.stderr.write(`# [${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${line}\n`);
}

function table(header: string[], rows: string[][], rightAlign: boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (rightAlign[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join(' | ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-|-'), ...rows.map(line)].join('\n');
}

function microTable(results: MicroResult[]): string {
  return table(
    ['op', 'size B', 'ns/packet', 'p50 ns/packet', 'Mpps', '±%', 'calls'],
    results.map((r) => [r.op, String(r.size), r.nsPerPacket.toFixed(2), r.p50NsPerPacket.toFixed(2), r.mpps.toFixed(2), r.rmePercent.toFixed(2), String(r.calls)]),
    [false, true, true, true, true, true, true],
  );
}

/** A Markdown table, padded so that it also reads well as plain text. */
function markdownTable(header: string[], rows: string[][], rightAlign: boolean[]): string {
  const esc = (c: string) => c.replace(/\|/g, '\\|');
  const cells = [header, ...rows].map((r) => r.map((c) => esc(c ?? '')));
  const widths = header.map((_, i) => Math.max(3, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (rightAlign[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (rightAlign[i] ? `${'-'.repeat(w + 1)}:` : `:${'-'.repeat(w + 1)}`)).join('|')}|`;
  return [line(cells[0]!), rule, ...cells.slice(1).map(line)].join('\n');
}

/** The netns results as Markdown: a context line, the comparison table and the offload counters. */
function netnsMarkdown(netns: NetnsResult, started: Date): string {
  const cpus = os.cpus().length;
  const intro =
    `netns, ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC: kernel VXLAN (vx0, kernel's default offloads) vs overlayfwd ` +
    `(ovl0, in-process, TAP), VNI ${netns.overlay.vni}, one veth underlay ${netns.underlay.a} <-> ${netns.underlay.b}; ` +
    `iperf3 ${netns.durationSec} s per test, ping -c ${netns.pingCount} -i 0.01; ${cpus} CPUs, Linux ${os.release()}, node ${process.version}. ` +
    `w = overlayfwd workers; ratio = overlayfwd / kernel (same stream count; the offloads-off row is against the kernel with its offloads). ` +
    `Shared machine: compare ratios, not absolutes.`;
  const main = markdownTable(
    ['metric', 'kernel', 'overlayfwd', 'ratio'],
    netnsRows(netns).map((r) => [r.metric, r.kernel, r.overlayfwd, r.ratio]),
    [false, true, true, true],
  );
  const parts = [intro, '', main];
  const off = offloadRows(netns);
  if (off.length) {
    parts.push(
      '',
      'overlayfwd offload counters per test, data direction a -> b (`overlay.stats().offloads` changes: TSO and GSO of the sender a, ' +
        'GRO and coalescing of the receiver b; "x (y %)" = per operation (share of all packets in that direction)):',
      '',
      markdownTable(
        ['test', 'offloads in use', 'a: TSO super-frames read', 'a: datagrams per GSO send', 'b: datagrams per GRO receive', 'b: segments per coalesced write', 'fallbacks'],
        off.map((r) => [r.test, r.active, r.superFrames, r.gso, r.gro, r.coalesced, r.fallbacks]),
        [false, false, true, true, true, true, true],
      ),
    );
  }
  return parts.join('\n');
}

function writeTextAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

/** The repository root: the nearest directory above this file with a package.json. */
function repoRoot(): string {
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}

/** ISO 8601 basic format (no colons, safe as a file name everywhere): 20250102T030405Z. */
function isoStamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

function writeJsonAtomic(file: string, data: unknown): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(data, null, 2)}\n`);
  fs.renameSync(tmp, file);
}

function hostInfo(): Record<string, unknown> {
  let loadavg: number[] = [];
  try {
    loadavg = os.loadavg();
  } catch {
    /* ignore */
  }
  return {
    hostname: os.hostname(),
    kernel: os.release(),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? null,
    memoryBytes: os.totalmem(),
    loadavgAtStart: loadavg,
    node: process.version,
  };
}

async function main(): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }

  // Ctrl-C / SIGTERM: tear the lab down (closing the overlays, stopping iperf3, deleting the
  // namespaces), then exit. A second signal exits at once; lib/lab.ts's exit hook still deletes
  // the namespaces synchronously.
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    const code = signal === 'SIGINT' ? 130 : 143;
    if (interrupted) process.exit(code);
    interrupted = true;
    log(`${signal}: tearing down`);
    abortNetns()
      .catch((err: unknown) => log(`teardown: ${String(err)}`))
      .finally(() => process.exit(code));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const started = new Date();
  const output: Record<string, unknown> = {
    version: 1,
    startedAt: started.toISOString(),
    finishedAt: null,
    options: args,
    host: hostInfo(),
    micro: null,
    netns: null,
    errors: [] as string[],
  };
  const errors = output['errors'] as string[];
  const print = (text: string) => {
    process.stdout.write(`${text}\n`);
  };
  let markdown: string | null = null;

  if (args.only !== 'netns') {
    try {
      log('micro bench');
      const micro = await runMicro({ quick: args.quick, log });
      output['micro'] = micro;
      print(`\nmicro: native VXLAN codec, one core, ${MICRO_PACKETS}-buffer batches (ns and Mpps from the native timer)\n`);
      print(microTable(micro));
    } catch (err) {
      errors.push(`micro: ${(err as Error).message}`);
      log(`micro FAILED: ${(err as Error).stack ?? String(err)}`);
    }
  }

  if (args.only !== 'micro' && !interrupted) {
    try {
      log(`netns bench: ${args.durationSec} s per iperf3 test`);
      const netns: NetnsResult = await runNetns({
        durationSec: args.durationSec,
        pingCount: args.quick ? 50 : 200,
        workers2: args.workers2,
        parallel: args.parallel,
        offloadsOff: args.offloadsOff,
        log,
      });
      output['netns'] = netns;
      markdown = netnsMarkdown(netns, started);
      print(`\n${markdown}`);
      const phaseErrors = netnsPhases(netns).flatMap((p) => p.errors.map((e) => `${p.label}: ${e}`));
      for (const e of [...netns.errors, ...phaseErrors]) errors.push(`netns: ${e}`);
    } catch (err) {
      errors.push(`netns: ${(err as Error).message}`);
      log(`netns FAILED: ${(err as Error).stack ?? String(err)}`);
    }
  }
  if (interrupted) return 130;

  output['finishedAt'] = new Date().toISOString();
  if (errors.length) {
    print('\nerrors:');
    for (const e of errors) print(`  ${e}`);
  }

  const dir = path.join(repoRoot(), 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${isoStamp(started)}.json`);
  writeJsonAtomic(file, output);
  writeJsonAtomic(path.join(dir, 'latest.json'), output);
  let also = 'bench/results/latest.json';
  if (markdown !== null) {
    const errorNote = errors.length ? `\n\nerrors in this run:\n\n${errors.map((e) => `- ${e}`).join('\n')}` : '';
    writeTextAtomic(path.join(dir, 'latest.md'), `${markdown}${errorNote}\n\n<!-- bench/results/${path.basename(file)} -->\n`);
    also += ', bench/results/latest.md';
  }
  print(`\nresults: ${path.relative(process.cwd(), file) || file} (and ${also})`);
  return errors.length ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
