// `npm run bench`: the codec micro bench, then the netns bench (kernel VXLAN vs overlayfwd in
// every mode), tables on stdout (progress on stderr), the JSON in bench/results/ and the netns
// tables as Markdown in bench/results/latest.md, and their ratios drawn as an SVG beside the JSON
// (bench/results/<stamp>.svg, and latest.svg).
//
//   node dist/bench/run.js [--quick] [--only micro|netns] [--duration S] [--parallel N]
//                          [--no-workers2] [--no-offloads-off] [--modes LIST] [--no-routes]
//                          [--route-rounds N] [--no-raw-baseline] [--no-profile] [--no-kernel-end]
//                          [--no-kernel-each] [--no-ceiling] [--ceiling-threads 1|2] [--pings N]
//
// OVERLAYFWD_BENCH_MODES=LIST is the same as --modes LIST (the flag wins).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { espMicroTable, runEspMicro } from './esp-micro';
import { renderChart } from './netns/chart';
import { MICRO_PACKETS, runMicro, type MicroResult } from './micro';
import {
  abortNetns,
  BENCH_MODES,
  ceilingRows,
  headlineRows,
  kernelReference,
  modeRows,
  netnsPhases,
  netnsRows,
  offloadRows,
  parseModes,
  rawRows,
  routesRows,
  runNetns,
  targetRows,
  type BenchMode,
  type NetnsResult,
} from './netns';
import { commitLabel, isoStamp, provenance, provenanceText, repoRoot, type Provenance } from './provenance';

interface Args {
  quick: boolean;
  only: 'micro' | 'netns' | null;
  durationSec: number;
  workers2: boolean;
  parallel: number;
  offloadsOff: boolean;
  modes: BenchMode[];
  routes: boolean;
  routeRounds: number;
  rawBaseline: boolean;
  profile: boolean;
  kernelEnd: boolean;
  kernelEach: boolean;
  ceiling: boolean;
  ceilingThreads: number;
  pings: number;
}

const USAGE =
  'usage: node dist/bench/run.js [--quick] [--only micro|netns] [--duration S] [--parallel N] [--no-workers2] [--no-offloads-off]\n' +
  `       [--modes all|none|${BENCH_MODES.join(',')}] [--no-routes] [--route-rounds N] [--no-raw-baseline] [--no-profile] [--no-kernel-end] [--no-kernel-each]\n` +
  '       [--no-ceiling] [--ceiling-threads 1|2] [--pings N]\n' +
  '       (OVERLAYFWD_BENCH_MODES=LIST = --modes LIST)';

/** Seconds per iperf3 test: default, and with --quick. */
const DEFAULT_DURATION = 8;
const QUICK_DURATION = 2;
const DEFAULT_PARALLEL = 4;
/** Rounds of the routes test (each: one 10-route and one 100,000-route run, ABBA order). */
const DEFAULT_ROUTE_ROUNDS = 3;
/** Echo requests per RTT measurement (the median is the figure), and the interval between them. */
const DEFAULT_PINGS = 1000;
const PING_INTERVAL_SEC = 0.002;
/** The ceiling's forwarding threads per end (bench/ceiling/ceiling_vxlan.c --threads). */
const DEFAULT_CEILING_THREADS = 1;

function parseArgs(argv: string[]): Args {
  const args: Args = {
    quick: false,
    only: null,
    durationSec: 0,
    workers2: true,
    parallel: DEFAULT_PARALLEL,
    offloadsOff: true,
    modes: [...BENCH_MODES],
    routes: true,
    routeRounds: DEFAULT_ROUTE_ROUNDS,
    rawBaseline: true,
    profile: true,
    kernelEnd: true,
    kernelEach: true,
    ceiling: true,
    ceilingThreads: DEFAULT_CEILING_THREADS,
    pings: DEFAULT_PINGS,
  };
  let duration: number | null = null;
  const envModes = process.env['OVERLAYFWD_BENCH_MODES'];
  if (envModes !== undefined && envModes.trim() !== '') {
    try {
      args.modes = parseModes(envModes);
    } catch (err) {
      throw new Error(`OVERLAYFWD_BENCH_MODES: ${(err as Error).message}\n${USAGE}`);
    }
  }
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
    else if (a === '--no-routes') args.routes = false;
    else if (a === '--no-raw-baseline') args.rawBaseline = false;
    else if (a === '--no-profile') args.profile = false;
    else if (a === '--no-kernel-end') args.kernelEnd = false;
    else if (a === '--no-kernel-each') args.kernelEach = false;
    else if (a === '--no-ceiling') args.ceiling = false;
    else if (a === '--ceiling-threads' || a.startsWith('--ceiling-threads=')) {
      const v = Number(value());
      if (v !== 1 && v !== 2) throw new Error(`--ceiling-threads wants 1 or 2\n${USAGE}`);
      args.ceilingThreads = v;
    } else if (a === '--pings' || a.startsWith('--pings=')) {
      const v = Number(value());
      if (!Number.isInteger(v) || v < 10 || v > 100_000) throw new Error(`--pings wants 10..100000 echo requests\n${USAGE}`);
      args.pings = v;
    }
    else if (a === '--modes' || a.startsWith('--modes=')) {
      try {
        args.modes = parseModes(value());
      } catch (err) {
        throw new Error(`--modes: ${(err as Error).message}\n${USAGE}`);
      }
    } else if (a === '--route-rounds' || a.startsWith('--route-rounds=')) {
      const v = Number(value());
      if (!Number.isInteger(v) || v < 1 || v > 20) throw new Error(`--route-rounds wants 1..20\n${USAGE}`);
      args.routeRounds = v;
    }
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
function netnsMarkdown(netns: NetnsResult, started: Date, prov: Provenance): string {
  const cpus = os.cpus().length;
  const pinged = netns.overlayfwd || netns.ceiling;
  const intro =
    `netns, ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC, ${provenanceText(prov)}: kernel VXLAN (vx0, kernel's default offloads) vs overlayfwd ` +
    `(ovl0, in-process; modes: ${netns.modes.join(', ') || 'none'})${netns.ceiling ? ' and the ceiling (ceil0, bench/ceiling/ceiling_vxlan.c)' : ''}, VNI ${netns.overlay.vni}, one veth underlay ${netns.underlay.a} <-> ${netns.underlay.b}; ` +
    `iperf3 ${netns.durationSec} s per test${pinged ? `, RTT = median of ping -c ${netns.pingCount} -i ${netns.pingIntervalSec}` : ''}; ${cpus} CPUs, Linux ${os.release()}, node ${process.version}` +
    `, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} at the end. ` +
    `w = overlayfwd workers; ratio = overlayfwd / kernel (same stream count; the offloads-off row is against the kernel with its offloads). ` +
    `Shared machine: compare ratios, not absolutes.`;
  const parts = [intro];
  const head = headlineRows(netns);
  if (head.length) {
    const c = netns.ceiling?.ceiling;
    parts.push(
      '',
      `Kernel VXLAN, the ceiling (a minimal C forwarder doing only the unavoidable work: one readv per TSO super-frame, one UDP_SEGMENT sendmsg per train, ` +
        `one UDP_GRO recvmmsg slot per train, one writev per coalesced run, small frames of one size as UDP_SEGMENT trains; ${c ? `${c.threads} forwarding thread${c.threads > 1 ? 's' : ''} per end` : 'not run'}) ` +
        `and overlayfwd vxlan (TAP, w=1), measured one after the other in this run:`,
      '',
      markdownTable(
        ['metric', 'kernel', 'ceiling', 'overlayfwd', 'overlayfwd / kernel', 'overlayfwd / ceiling', 'ceiling / kernel'],
        head.map((r) => [r.metric, r.kernel, r.ceiling, r.overlayfwd, r.overlayfwdOverKernel, r.overlayfwdOverCeiling, r.ceilingOverKernel]),
        [false, true, true, true, true, true, true],
      ),
    );
  }
  if (netns.overlayfwd) {
    parts.push(
      '',
      markdownTable(
        ['metric', 'kernel', 'overlayfwd', 'ratio'],
        netnsRows(netns).map((r) => [r.metric, r.kernel, r.overlayfwd, r.ratio]),
        [false, true, true, true],
      ),
    );
  }
  const modes = modeRows(netns);
  if (modes.length > 1) {
    const ref = kernelReference(netns);
    parts.push(
      '',
      `Every mode, TCP 1 stream (iperf3 ${netns.durationSec} s, workers 1, offloads on), against the kernel VXLAN device over IPv4 ` +
        `(the reference: median of the run's ${ref.runs.length} kernel VXLAN IPv4 single-stream runs, the first one, one right before each mode and one at the end, ` +
        `${ref.bitsPerSecond === null ? 'n/a' : (ref.bitsPerSecond / 1e9).toFixed(3)} Gbit/s). "paired" = against the kernel run just before that mode; ` +
        `the IPv6 rows also against the kernel VXLAN device over IPv6 (measured just before them):`,
      '',
      markdownTable(
        ['mode', 'MTU', 'Gbit/s', 'x kernel VXLAN IPv4', 'x kernel, paired', 'x kernel VXLAN IPv6', 'host CPU s/GB', 'retransmits', 'target', 'met'],
        modes.map((r) => [r.mode, r.mtu, r.gbps, r.ratio, r.ratioPaired, r.ratioSameFamily, r.hostCpuPerGB, r.retransmits, r.target, r.met]),
        [false, true, true, true, true, true, true, true, false, false],
      ),
    );
  }
  const raw = rawRows(netns);
  if (raw.length) {
    parts.push(
      '',
      'Raw-IP modes against a bare `sendmmsg`/`recvmmsg` of full-size raw IP packets of the same protocol across the same veth pair ' +
        '(bench/raw-baseline/raw_blast.c; outer packets per second received in b; for overlayfwd: b\'s decapsulated packets during the TCP test):',
      '',
      markdownTable(
        ['what', 'outer bytes', 'kpps', 'outer Gbit/s', 'ratio to bare', 'target met'],
        raw.map((r) => [r.what, r.packetBytes, r.kpps, r.gbps, r.ratio, r.met]),
        [false, true, true, true, true, false],
      ),
    );
  }
  const routes = routesRows(netns);
  if (routes.length && netns.routes) {
    const rt = netns.routes;
    parts.push(
      '',
      `Routes: ${rt.mode} on TUN, TCP 1 stream, with ${rt.smallRoutes} routes and with ${rt.largeRoutes.toLocaleString('en-US')} ` +
        `(${rt.largePeers.toLocaleString('en-US')} peers x ${rt.largeRoutes / rt.largePeers} IPv4 prefixes of lengths ${rt.prefixLengths.join('/')}) on both ends, ` +
        `alternating on the same forwarders (peers.replace()):`,
      '',
      markdownTable(
        ['what', 'value'],
        routes.map((r) => [r.what, r.value]),
        [false, false],
      ),
    );
  }
  const targets = targetRows(netns);
  if (targets.length) {
    parts.push(
      '',
      'Targets:',
      '',
      markdownTable(
        ['target', 'this run', 'met'],
        targets.map((r) => [r.target, r.figure, r.met]),
        [false, true, false],
      ),
    );
  }
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
  const ceil = ceilingRows(netns);
  if (ceil.length) {
    parts.push(
      '',
      'The ceiling\'s counters per test, data direction a -> b (a: TCP super-frames read from the TAP and cut into VXLAN datagrams, sent as UDP_SEGMENT trains; ' +
        'other frames per UDP message (a run of one size is one UDP_SEGMENT train) and per sendmmsg; b: VXLAN datagrams per recvmmsg slot (UDP_GRO trains) and per coalesced TAP write):',
      '',
      markdownTable(
        ['test', 'a: super-frames', 'a: segments per super-frame', 'a: datagrams per GSO send', 'a: small frames per message / per sendmmsg', 'b: datagrams per recv slot', 'b: segments per coalesced write', 'drops / errors'],
        ceil.map((r) => [r.test, r.superFrames, r.segmentsPerSuperFrame, r.segmentsPerGsoSend, r.framesPerMessage, r.segmentsPerDatagram, r.segmentsPerCoalescedWrite, r.dropsErrors]),
        [false, true, true, true, true, true, true, true],
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

function writeJsonAtomic(file: string, data: unknown): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(data, null, 2)}\n`);
  fs.renameSync(tmp, file);
}

function hostInfo(prov: Provenance): Record<string, unknown> {
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
    commit: commitLabel(prov),
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
  // namespaces), then exit. A second signal exits at once; the lab's exit hook still deletes
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
  const prov = provenance();
  log(provenanceText(prov));
  const output: Record<string, unknown> = {
    version: 1,
    startedAt: started.toISOString(),
    finishedAt: null,
    options: args,
    provenance: prov,
    host: hostInfo(prov),
    micro: null,
    netns: null,
    errors: [] as string[],
  };
  const errors = output['errors'] as string[];
  const print = (text: string) => {
    process.stdout.write(`${text}\n`);
  };
  let markdown: string | null = null;
  let chart: string | null = null;

  if (args.only !== 'netns') {
    try {
      log('micro bench');
      const micro = await runMicro({ quick: args.quick, log });
      output['micro'] = micro;
      print(`\nmicro: native VXLAN codec, one core, ${MICRO_PACKETS}-buffer batches (ns and Mpps from the native timer)\n`);
      print(microTable(micro));
      const esp = runEspMicro({ quick: args.quick, log });
      output['espMicro'] = esp;
      print(`\nmicro: ESP AEAD per core vs openssl speed (same machine, same run)\n`);
      print(espMicroTable(esp));
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
        pingCount: args.pings,
        pingIntervalSec: PING_INTERVAL_SEC,
        ceiling: args.ceiling,
        ceilingThreads: args.ceilingThreads,
        workers2: args.workers2,
        parallel: args.parallel,
        offloadsOff: args.offloadsOff,
        modes: args.modes,
        routes: args.routes,
        routeRounds: args.routeRounds,
        rawBaseline: args.rawBaseline,
        profile: args.profile,
        kernelEnd: args.kernelEnd,
        kernelEach: args.kernelEach,
        log,
      });
      output['netns'] = netns;
      markdown = netnsMarkdown(netns, started, prov);
      chart = renderChart(netns, `${provenanceText(prov)}, ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC, ${os.cpus().length} CPUs, iperf3 ${netns.durationSec} s per test; each mode against the kernel run right before it`);
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
  (output['host'] as Record<string, unknown>)['loadavgAtEnd'] = os.loadavg();
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
  if (chart !== null) {
    // The chart of this run beside its JSON (the README shows a committed one), and as latest.svg.
    writeTextAtomic(file.replace(/\.json$/, '.svg'), chart);
    writeTextAtomic(path.join(dir, 'latest.svg'), chart);
    also += ', bench/results/latest.svg';
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
