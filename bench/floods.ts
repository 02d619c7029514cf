// Floods bench: what a flood of small VXLAN datagrams costs a TCP transfer through overlayfwd, next
// to the kernel's own VXLAN device under the same flood, in one run on the same veth underlay.
//
//   node dist/bench/floods.js [--rounds N] [--megabytes N]
//
// Two hosts a and b (a veth pair) carry a sha256-verified TCP transfer (lab/transfer.ts) a -> b
// through the overlay; a third host x, on a second link of a's, floods a's VXLAN port
// (lab/flood.ts, pinned to the last CPU; this process and what it spawns stay off that CPU, so
// the transfer has the same core with and without the flood). Two floods:
//
//   spoofed sources  64-byte VXLAN frames from 4096 addresses that are no peer's
//   random MACs      64-byte VXLAN frames from b's address, each with a new source MAC
//
// Per target (the kernel device, then overlayfwd) and flood, `--rounds` times (default 3): the
// transfer unloaded, then under the flood. Reported: the median ratio loaded / unloaded, and the
// rate the flood reached (over veth the kernel's receive path for the flood runs on the
// sender's CPU, so a receiver that takes the flood in softirq slows the sender down: compare the
// ratios at the rates each target was flooded at). Written to bench/results/floods-<time>.json.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { addFlooder, ethernetFrame, Lab, pinAwayFromFlood, startFlood, verifiedTransfer, vxlanHeader, type FloodOptions, type FloodResult, type Host, type TransferResult } from '../lab';
import type { Overlay } from '../lib/overlay';
import { quantile } from './netns/measure';
import { MODE_SPECS, OFFLOADS_ON, OVERLAY_A, OVERLAY_B, OVERLAY_PREFIX, VNI } from './netns/modes';
import { startOverlays } from './netns/phases';
import { commitLabel, isoStamp, provenance, repoRoot } from './provenance';

interface Options {
  rounds: number;
  megabytes: number;
}

type Target = 'kernel' | 'overlayfwd';
type FloodKind = 'spoofed sources' | 'random MACs';
const FLOODS: FloodKind[] = ['spoofed sources', 'random MACs'];
/** The kernel device's MAC on a: the flood's frames are for it. */
const KERNEL_MAC_A = '02:00:00:00:aa:01';
const KERNEL_MAC_B = '02:00:00:00:bb:02';
/** The flood runs this long before the loaded transfer starts. */
const WARM_UP_MS = 1000;

interface Round {
  unloadedMbit: number;
  loadedMbit: number;
  ratio: number;
  floodPps: number;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { rounds: 3, megabytes: 128 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split('=');
    const value = Number(inline ?? argv[++i]);
    if (!Number.isInteger(value) || value < 1) throw new Error(`${flag} wants a positive integer`);
    if (flag === '--rounds') options.rounds = value;
    else if (flag === '--megabytes') options.megabytes = value;
    else throw new Error(`unknown option ${flag} (--rounds N, --megabytes N)`);
  }
  return options;
}

const median = (xs: number[]) => quantile([...xs].sort((a, b) => a - b), 0.5) ?? NaN;

/** Brings the target up between a and b; returns the MAC of a's overlay device. */
async function startTarget(lab: Lab, target: Target, a: Host, b: Host): Promise<{ mac: string; overlays: Overlay[] }> {
  if (target === 'kernel') {
    await lab.kernelVxlan(a, { vni: VNI, remotes: [b.underlay], addresses: [`${OVERLAY_A}/${OVERLAY_PREFIX}`], mac: KERNEL_MAC_A });
    await lab.kernelVxlan(b, { vni: VNI, remotes: [a.underlay], addresses: [`${OVERLAY_B}/${OVERLAY_PREFIX}`], mac: KERNEL_MAC_B });
    return { mac: KERNEL_MAC_A, overlays: [] };
  }
  // One worker: the flood leaves this process one CPU.
  const overlays = await startOverlays(lab, a, b, { spec: MODE_SPECS.vxlan, workers: 1, offloads: { ...OFFLOADS_ON } });
  return { mac: overlays[0].device.mac, overlays };
}

function floodOf(kind: FloodKind, a: Host, b: Host, mac: string): FloodOptions {
  const payload = Buffer.concat([vxlanHeader({ vni: VNI }), ethernetFrame(mac, '02:00:00:00:0f:01', 0x88b5)]);
  if (kind === 'spoofed sources') return { dst: a.underlay, port: 4789, payloads: [payload], src: '198.18.200.0', sources: 4096 };
  // The source MAC sits at offset 6 of the frame, behind the 8-byte VXLAN header.
  return { dst: a.underlay, port: 4789, payloads: [payload], src: b.underlay, randomMacAt: 8 + 6 };
}

async function measureTarget(target: Target, options: Options, log: (line: string) => void): Promise<Record<FloodKind, Round[]>> {
  const lab = await Lab.create({ prefix: 'ovbench' });
  const out = {} as Record<FloodKind, Round[]>;
  let overlays: Overlay[] = [];
  try {
    const [a, b] = await lab.pair('a', 'b');
    const started = await startTarget(lab, target, a, b);
    overlays = started.overlays;
    const { x } = await addFlooder(lab, a, a.underlay);
    const transfer = () => verifiedTransfer(lab, { from: a, to: b, address: OVERLAY_B, megabytes: options.megabytes, timeoutMs: 120_000 });
    await transfer(); // ARP, the FDB, and a warm path
    for (const kind of FLOODS) {
      out[kind] = [];
      for (let r = 0; r < options.rounds; r++) {
        const unloaded = await transfer();
        const flood = await startFlood(lab, x, floodOf(kind, a, b, started.mac));
        let loaded: TransferResult;
        let sent: FloodResult;
        try {
          await new Promise((resolve) => setTimeout(resolve, WARM_UP_MS));
          loaded = await transfer();
        } finally {
          sent = await flood.stop();
        }
        const round = { unloadedMbit: unloaded.mbitPerSecond, loadedMbit: loaded.mbitPerSecond, ratio: loaded.mbitPerSecond / unloaded.mbitPerSecond, floodPps: sent.pps };
        out[kind].push(round);
        log(`# ${target}, ${kind}, round ${r + 1}: ${round.unloadedMbit.toFixed(0)} -> ${round.loadedMbit.toFixed(0)} Mbit/s (${round.ratio.toFixed(2)}x), flood ${(round.floodPps / 1000).toFixed(0)}k/s`);
      }
    }
  } finally {
    for (const ov of overlays) await ov.close().catch(() => {});
    await lab.destroy();
  }
  return out;
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const unpin = pinAwayFromFlood();
  const results = {} as Record<Target, Record<FloodKind, Round[]>>;
  try {
    for (const target of ['kernel', 'overlayfwd'] as Target[]) results[target] = await measureTarget(target, options, log);
  } finally {
    unpin();
  }
  const summary = (rounds: Round[]) => ({
    ratio: median(rounds.map((r) => r.ratio)),
    ratioRange: [Math.min(...rounds.map((r) => r.ratio)), Math.max(...rounds.map((r) => r.ratio))],
    unloadedMbit: median(rounds.map((r) => r.unloadedMbit)),
    loadedMbit: median(rounds.map((r) => r.loadedMbit)),
    floodPps: median(rounds.map((r) => r.floodPps)),
  });
  const now = new Date();
  const prov = provenance();
  const table = FLOODS.map((kind) => {
    const k = summary(results.kernel[kind]);
    const o = summary(results.overlayfwd[kind]);
    return { flood: kind, kernel: k, overlayfwd: o, overlayfwdRatioOverKernelRatio: o.ratio / k.ratio };
  });
  const result = { when: now.toISOString(), provenance: prov, machine: { cpus: os.cpus().length, node: process.version, commit: commitLabel(prov) }, options, table, rounds: results };
  const file = path.join(repoRoot(), 'bench', 'results', `floods-${isoStamp(now)}.json`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  const cell = (s: ReturnType<typeof summary>) =>
    `${s.ratio.toFixed(2)}x (${s.ratioRange[0]!.toFixed(2)}-${s.ratioRange[1]!.toFixed(2)}) of ${s.unloadedMbit.toFixed(0)} Mbit/s, flood ${(s.floodPps / 1000).toFixed(0)}k/s`;
  process.stdout.write(
    `floods bench (${commitLabel(prov) ?? 'unknown commit'}): a ${options.megabytes} MB verified TCP transfer under a flood, ÷ the same transfer unloaded; median of ${options.rounds}\n\n` +
      `| flood | kernel VXLAN device | overlayfwd vxlan (TAP, 1 worker) | overlayfwd ÷ kernel |\n|:--|:--|:--|--:|\n` +
      table.map((t) => `| ${t.flood} | ${cell(t.kernel)} | ${cell(t.overlayfwd)} | ${t.overlayfwdRatioOverKernelRatio.toFixed(2)} |`).join('\n') +
      `\n\nresults: ${path.relative(process.cwd(), file)}\n`,
  );
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
