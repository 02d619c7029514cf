// `npm run soak`: a soak bench, not a test. Each mode (vxlan, esp) gets two namespaces of its
// own joined by a veth pair and an `overlayfwd up` in each (child processes: their memory is
// theirs), then for the chosen time: mixed traffic across the overlay (TCP at a fixed rate, a
// counted UDP stream of small datagrams, ping at 10/s; traffic.ts), peers added and removed at
// both ends through the control socket and the config reloaded (churn.ts), and in esp IKEv2
// rekeying the Child SA every ~20 s and the IKE SA every few minutes (configs.ts). Every interval
// it samples each `up`: RSS and VmHWM, open fds, threads, CPU, every counter of its stats and its
// SAs (sample.ts). At the end: a table over time per mode, the figures of the whole run, and a
// verdict (verdict.ts) that fails the soak (exit 1) on a leak or on traffic that stopped.
//
//   node dist/bench/soak/main.js [--minutes N] [--modes vxlan,esp] [--interval S] [--rekey S] [--out FILE] [--logs DIR]
//
// Result: bench/results/soak-<start time>.json (or --out), with the provenance of what ran.
// Progress on stderr, tables on stdout. Ctrl-C ends the soak early (its result is still written,
// marked interrupted); a second one exits at once, and the lab's exit hook removes the namespaces.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { commandExists, Lab } from '../../lab';
import { netnsUnavailableReason } from '../netns';
import { waitReachable } from '../netns/measure';
import { commitLabel, isoStamp, provenance, provenanceText, repoRoot } from '../provenance';
import { parseSoakArgs, SOAK_USAGE, type SoakArgs } from './args';
import { Churn, CHURN_SEC, LIVE_RUNTIME_PEERS, RELOAD_EVERY } from './churn';
import { IKE_REKEY_FACTOR, overlayOf, type ModeEnds } from './configs';
import { SoakInstance } from './instance';
import { instanceSummary, timeTable, trafficSummary, verdictInput, verdictText } from './report';
import { Sampler } from './sample';
import { ModeTraffic, PING_INTERVAL_SEC, ROUND_SEC, TCP_RATE, UDP_PPS, UDP_SIZE } from './traffic';
import type { Sample, SoakResult } from './types';
import { computeVerdict, verdictExitCode } from './verdict';

const t0 = Date.now();
function log(line: string): void {
  process.stderr.write(`# [${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function progressLine(s: Sample): string {
  const parts = Object.entries(s.instances).map(
    ([label, x]) => `${label} ${x.rssKiB === null ? '-' : (x.rssKiB / 1024).toFixed(1)} MiB ${x.fds ?? '-'} fds ${x.threads ?? '-'} thr${x.error ? ` (${x.error.slice(0, 80)})` : ''}`,
  );
  return `t ${s.t.toFixed(0)} s: ${parts.join(' | ')}${s.soakCores === null ? '' : ` | soak ${s.soakCores.toFixed(2)} cores`}`;
}

/** The result as JSON: indented, but one line per sample and per round (hundreds of each in a long soak). */
function resultJson(result: SoakResult): string {
  const { samples, rounds, ...rest } = result;
  const head = JSON.stringify(rest, null, 2).replace(/\n}$/, '');
  const list = (items: unknown[]) => (items.length ? `[\n${items.map((x) => `    ${JSON.stringify(x)}`).join(',\n')}\n  ]` : '[]');
  return `${head},\n  "samples": ${list(samples)},\n  "rounds": ${list(rounds)}\n}\n`;
}

function writeResult(file: string, result: SoakResult): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, resultJson(result));
  fs.renameSync(tmp, file);
}

/** Resolves when the soak is asked to end early (SIGINT, SIGTERM). */
function stopOnSignal(onFirst: (signal: NodeJS.Signals) => void): Promise<void> {
  return new Promise<void>((resolve) => {
    let received = false;
    const handler = (signal: NodeJS.Signals) => {
      // A second signal: exit at once; the lab's exit hook still deletes the namespaces.
      if (received) process.exit(signal === 'SIGINT' ? 130 : 143);
      received = true;
      onFirst(signal);
      resolve();
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
  });
}

async function soak(args: SoakArgs, result: SoakResult, stop: Promise<void>): Promise<void> {
  const lab = await Lab.create({ prefix: 'ovsoak' });
  const instances: SoakInstance[] = [];
  const traffic: ModeTraffic[] = [];
  const churns = new Map<string, Churn>();
  let stopping = false;
  void stop.then(() => (stopping = true));
  try {
    const ends: ModeEnds[] = [];
    for (const [index, mode] of args.modes.entries()) {
      const [a, b] = await lab.pair(`${mode}a`, `${mode}b`);
      ends.push({ mode, index, a, b });
      result.setup[mode] = {
        namespaces: { a: a.ns, b: b.ns },
        underlay: { a: a.underlay, b: b.underlay },
        overlay: { a: overlayOf({ index }, 'a'), b: overlayOf({ index }, 'b') },
        ...(mode === 'esp' ? { ike: { rekeySeconds: args.rekeySec, ikeRekeySeconds: args.rekeySec * IKE_REKEY_FACTOR, auth: 'psk' } } : {}),
      };
    }
    result.setup['traffic'] = { roundSec: ROUND_SEC, tcpRate: TCP_RATE, udpPps: UDP_PPS, udpBytes: UDP_SIZE, pingIntervalSec: PING_INTERVAL_SEC };
    result.setup['nodeArgs'] = process.env['OVERLAYFWD_SOAK_NODE_ARGS'] ?? '';
    result.setup['churn'] = { everySec: CHURN_SEC, reloadEverySteps: RELOAD_EVERY, liveRuntimePeers: LIVE_RUNTIME_PEERS };
    for (const e of ends) {
      for (const side of ['a', 'b'] as const) {
        if (stopping) return;
        log(`starting overlayfwd up: ${e.mode}/${side} in ${e[side].ns}`);
        instances.push(await SoakInstance.start(lab, e, side, args.rekeySec, args.logs, args.fullGc));
      }
    }
    for (const e of ends) {
      // esp: IKE must have set up the Child SA first.
      await waitReachable(lab, e.a, overlayOf(e, 'b'), 60_000);
      await waitReachable(lab, e.b, overlayOf(e, 'a'), 60_000);
    }
    const start = Date.now();
    const now = () => (Date.now() - start) / 1000;
    for (const e of ends) {
      const t = new ModeTraffic(lab, { mode: e.mode, a: e.a, b: e.b, addressA: overlayOf(e, 'a'), addressB: overlayOf(e, 'b') }, now);
      t.start();
      traffic.push(t);
    }
    // The ends churn a little apart, so that no two requests meet in one tick.
    instances.forEach((inst, i) => {
      const c = new Churn(inst, 500 + (i * CHURN_SEC * 1000) / instances.length);
      c.start();
      churns.set(inst.label, c);
    });
    const sampler = new Sampler(instances, start);
    result.drops = sampler.drops;
    const deadline = start + args.minutes * 60_000;
    log(`soak: ${args.minutes} min, modes ${args.modes.join(', ')}, a sample every ${args.intervalSec} s`);
    for (let k = 1; ; k++) {
      const s = await sampler.sample();
      result.samples.push(s);
      log(progressLine(s));
      const next = Math.min(start + k * args.intervalSec * 1000, deadline);
      if (stopping || Date.now() >= deadline) break;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([stop, new Promise<void>((r) => (timer = setTimeout(r, Math.max(0, next - Date.now()))))]);
      clearTimeout(timer);
    }
    log('soak: stopping churn and traffic');
    await Promise.all([...churns.values()].map((c) => c.stop()));
    await Promise.all(traffic.map((t) => t.stop()));
  } catch (err) {
    result.errors.push(errorText(err));
    log(`soak FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await Promise.all([...churns.values()].map((c) => c.stop().catch(() => undefined)));
    await Promise.all(traffic.map((t) => t.stop().catch(() => undefined)));
  } finally {
    for (const t of traffic) result.rounds.push(...t.rounds);
    result.rounds.sort((x, y) => x.start - y.start);
    for (const [label, c] of churns) result.churn[label] = c.tally;
    for (const inst of instances) {
      result.exits[inst.label] = await inst.stop().catch((err: unknown) => `stop failed: ${errorText(err)}`);
      result.logs[inst.label] = inst.log;
    }
    log('soak: tearing down');
    await lab.destroy().catch((err: unknown) => result.errors.push(`teardown: ${errorText(err)}`));
  }
}

async function main(): Promise<number> {
  let parsed: ReturnType<typeof parseSoakArgs>;
  try {
    parsed = parseSoakArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${errorText(err)}\n`);
    return 2;
  }
  if (parsed === 'help') {
    process.stdout.write(`${SOAK_USAGE}\n`);
    return 0;
  }
  const args = parsed;
  const reason = netnsUnavailableReason() ?? (commandExists('python3') ? null : 'python3 is not installed (the UDP stream)');
  if (reason) {
    process.stderr.write(`soak unavailable: ${reason}\n`);
    return 1;
  }
  const started = new Date();
  const prov = provenance();
  log(provenanceText(prov));
  const result: SoakResult = {
    version: 1,
    kind: 'soak',
    startedAt: started.toISOString(),
    finishedAt: null,
    interrupted: false,
    options: args,
    provenance: prov,
    host: { hostname: os.hostname(), kernel: os.release(), cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? null, node: process.version, commit: commitLabel(prov), loadavgAtStart: os.loadavg() },
    setup: {},
    samples: [],
    rounds: [],
    churn: {},
    logs: {},
    drops: {},
    exits: {},
    verdict: null,
    errors: [],
  };
  const stop = stopOnSignal((signal) => {
    result.interrupted = true;
    log(`${signal}: ending the soak early (again: exit at once)`);
  });
  await soak(args, result, stop);
  result.finishedAt = new Date().toISOString();
  result.host['loadavgAtEnd'] = os.loadavg();
  const verdict = computeVerdict(verdictInput(result));
  result.verdict = verdict;
  const file = args.out ? path.resolve(args.out) : path.join(repoRoot(), 'bench', 'results', `soak-${isoStamp(started)}.json`);
  writeResult(file, result);

  const print = (text: string) => process.stdout.write(`${text}\n`);
  const last = result.samples[result.samples.length - 1];
  print(`\nsoak, ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC, ${provenanceText(prov)}: ${((last?.t ?? 0) / 60).toFixed(1)} min${result.interrupted ? ' (interrupted)' : ''}, a sample every ${args.intervalSec} s`);
  for (const mode of args.modes) print(`\n${mode}:\n${timeTable(result, mode)}`);
  print(`\n${instanceSummary(result)}`);
  if (result.rounds.length) print(`\n${trafficSummary(result.rounds)}`);
  if (result.errors.length) {
    print('\nerrors:');
    for (const e of result.errors) print(`  ${e}`);
  }
  print(`\n${verdictText(verdict)}`);
  print(`\nresults: ${path.relative(process.cwd(), file) || file}`);
  if (result.errors.length || result.interrupted) return result.interrupted ? 130 : 1;
  return verdictExitCode(verdict);
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
