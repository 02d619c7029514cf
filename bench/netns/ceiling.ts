// The ceiling: bench/ceiling/ceiling_vxlan.c, a minimal VXLAN forwarder (TAP <-> UDP) that does
// only the work a userspace forwarder cannot avoid, run as one process per namespace on the same
// veth underlay as the kernel VXLAN device and overlayfwd. Compiled on demand with the system C
// compiler; test/netns/ceiling.test.ts runs it too.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { commandExists, type Host, type Lab, type LabProcess } from '../../lab';

/** The ceiling's TAP device in each namespace (the kernel's is vx0, overlayfwd's ovl0). */
export const CEILING_DEV = 'ceil0';
export const CEILING_MTU = 1450;

/** `ready {...}`: what ceiling_vxlan set up. */
export interface CeilingReady {
  tap: string;
  mtu: number;
  local: string;
  remote: string;
  vni: number;
  port: number;
  threads: number;
  udpGro: boolean;
  /** gso_max_segs the TAP got (-1: setting it failed). */
  gsoMaxSegs: number;
  /** Datagrams in one UDP_SEGMENT send at this MTU (65,507 bytes of UDP payload). */
  segmentsPerTrainMax: number;
  /** Runs of equal-size small frames sent as UDP_SEGMENT trains (off with --no-small-trains). */
  smallTrains: boolean;
}

/** `stats {...}`: ceiling_vxlan's counters (since it started). */
export interface CeilingStats {
  tx: {
    tapReads: number;
    tapBytes: number;
    /** TCP super-frames read from the TAP, the segments cut from them, the UDP_SEGMENT sends that carried them. */
    superFrames: number;
    superSegments: number;
    gsoSends: number;
    /** Frames sent one per datagram (ARP, ICMP, UDP, ACKs), the messages that carried them (a run of one size is one UDP_SEGMENT message), the trains among them and their frames, and the sendmmsg calls. */
    singleFrames: number;
    singleMessages: number;
    smallTrains: number;
    smallTrainFrames: number;
    sendmmsgCalls: number;
    drops: number;
    sendErrors: number;
  };
  rx: {
    recvmmsgCalls: number;
    /** recvmmsg slots filled: a datagram, or a UDP_GRO train of several. */
    datagrams: number;
    groTrains: number;
    /** VXLAN datagrams (segments of the trains). */
    segments: number;
    bytes: number;
    /** GSO frames written to the TAP, and the segments in them. */
    coalescedWrites: number;
    coalescedSegments: number;
    singleWrites: number;
    drops: number;
    wrongVni: number;
    /** Datagrams from another address than REMOTE. */
    unknownSource: number;
    writeErrors: number;
  };
}

export interface CeilingPair {
  binary: string;
  threads: number;
  a: LabProcess;
  b: LabProcess;
  ready: { a: CeilingReady; b: CeilingReady };
}

/** bench/ceiling/ceiling_vxlan.c, from dist/bench/netns/ (compiled) or bench/netns/ (source). */
export function ceilingSource(): string {
  for (const p of [path.resolve(__dirname, '../../../bench/ceiling/ceiling_vxlan.c'), path.resolve(__dirname, '../ceiling/ceiling_vxlan.c')]) {
    if (fs.existsSync(p)) return p;
  }
  throw new Error('bench/ceiling/ceiling_vxlan.c not found');
}

/** sha256 of the source the binary is built from (the result files record it). */
export function ceilingSourceSha256(): string {
  return crypto.createHash('sha256').update(fs.readFileSync(ceilingSource())).digest('hex');
}

/** Compiles ceiling_vxlan into `dir` (cc -O2); returns the binary's path. */
export function buildCeiling(dir: string): string {
  const out = path.join(dir, 'ceiling_vxlan');
  const cc = commandExists('cc') ? 'cc' : commandExists('gcc') ? 'gcc' : null;
  if (!cc) throw new Error('no C compiler (cc) to build ceiling_vxlan');
  try {
    execFileSync(cc, ['-O2', '-Wall', '-pthread', '-o', out, ceilingSource()], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: Buffer };
    throw new Error(`cc ceiling_vxlan.c: ${e.stderr?.toString().trim() || (err as Error).message}`);
  }
  return out;
}

function jsonAfter<T>(text: string, tag: string, nth: number): T | null {
  const lines = text.split('\n').filter((l) => l.startsWith(`${tag} {`));
  const line = lines[nth];
  return line ? (JSON.parse(line.slice(tag.length + 1)) as T) : null;
}

export interface CeilingEnd {
  host: Host;
  local: string;
  remote: string;
  /** ADDRESS/PREFIX of the TAP. */
  address: string;
}

export interface CeilingOptions {
  vni: number;
  port: number;
  threads: number;
  mtu?: number;
  /** false: --no-small-trains (one datagram per message for frames that are not TCP super-frames). */
  smallTrains?: boolean;
}

/** Starts ceiling_vxlan in one namespace and waits for its ready line. */
export async function startCeiling(lab: Lab, binary: string, end: CeilingEnd, options: CeilingOptions): Promise<{ proc: LabProcess; ready: CeilingReady }> {
  const args = [CEILING_DEV, end.local, end.remote, String(options.vni), String(options.port), end.address, '--mtu', String(options.mtu ?? CEILING_MTU), '--threads', String(options.threads)];
  if (options.smallTrains === false) args.push('--no-small-trains');
  const proc = lab.spawn(end.host, binary, args);
  try {
    await proc.waitForOutput(/^ready \{.*\}$/m, 10_000);
    const ready = jsonAfter<CeilingReady>(proc.stdout, 'ready', 0);
    if (!ready) throw new Error(`ceiling_vxlan in ${end.host.label}: no ready line: ${proc.stdout}${proc.stderr}`);
    return { proc, ready };
  } catch (err) {
    await proc.stop(1000).catch(() => undefined);
    throw err;
  }
}

/** Starts ceiling_vxlan in both namespaces; stops the first when the second fails to come up. */
export async function startCeilingPair(lab: Lab, binary: string, ends: [CeilingEnd, CeilingEnd], options: CeilingOptions): Promise<CeilingPair> {
  const a = await startCeiling(lab, binary, ends[0], options);
  try {
    const b = await startCeiling(lab, binary, ends[1], options);
    return { binary, threads: options.threads, a: a.proc, b: b.proc, ready: { a: a.ready, b: b.ready } };
  } catch (err) {
    await a.proc.stop(1000).catch(() => undefined);
    throw err;
  }
}

function statsCount(proc: LabProcess): number {
  return proc.stdout.split('\n').filter((l) => l.startsWith('stats {')).length;
}

/** One end's counters: now (SIGUSR1), or when it exits (SIGTERM). */
export async function ceilingStats(proc: LabProcess, signal: 'SIGUSR1' | 'SIGTERM'): Promise<CeilingStats> {
  const before = statsCount(proc);
  if (signal === 'SIGUSR1') proc.kill('SIGUSR1');
  else await proc.stop(2000, signal);
  const end = Date.now() + 5000;
  while (statsCount(proc) <= before) {
    if (!proc.running && statsCount(proc) <= before) throw new Error(`ceiling_vxlan exited (${proc.describeStatus()}) without stats: ${proc.stderr.slice(-500)}`);
    if (Date.now() > end) throw new Error('ceiling_vxlan printed no stats within 5 s');
    await new Promise((r) => setTimeout(r, 10));
  }
  return jsonAfter<CeilingStats>(proc.stdout, 'stats', before)!;
}

/** Both ends' counters now (SIGUSR1). */
export async function ceilingSnapshot(pair: CeilingPair): Promise<{ a: CeilingStats; b: CeilingStats }> {
  return { a: await ceilingStats(pair.a, 'SIGUSR1'), b: await ceilingStats(pair.b, 'SIGUSR1') };
}

/** Stops both ends (SIGTERM) and returns their last counters (null for an end that printed none). */
export async function stopCeilingPair(pair: CeilingPair): Promise<{ a: CeilingStats | null; b: CeilingStats | null }> {
  const stop = (p: LabProcess) => ceilingStats(p, 'SIGTERM').catch(() => null);
  return { a: await stop(pair.a), b: await stop(pair.b) };
}

function minus<T extends object>(x: T, y: T): T {
  const [a, b] = [x as Record<string, number>, y as Record<string, number>];
  const out: Record<string, number> = {};
  for (const k of Object.keys(a)) out[k] = (a[k] ?? 0) - (b[k] ?? 0);
  return out as T;
}

export function diffCeilingStats(after: CeilingStats, before: CeilingStats): CeilingStats {
  return { tx: minus(after.tx, before.tx), rx: minus(after.rx, before.rx) };
}

/** What one test did per operation, data direction a -> b (a's transmit side, b's receive side). */
export interface CeilingSummary {
  superFrames: number;
  /** a: segments per TCP super-frame, and per UDP_SEGMENT send. */
  segmentsPerSuperFrame: number | null;
  segmentsPerGsoSend: number | null;
  /** a: frames per UDP message and per sendmmsg of the one-per-datagram path. */
  framesPerMessage: number | null;
  framesPerSendmmsg: number | null;
  /** b: VXLAN datagrams per recvmmsg slot (UDP_GRO trains), per recvmmsg call, and per coalesced TAP write. */
  segmentsPerDatagram: number | null;
  segmentsPerRecvmmsg: number | null;
  segmentsPerCoalescedWrite: number | null;
  drops: number;
  errors: number;
}

const per = (n: number, d: number) => (d > 0 ? n / d : null);

export function summarizeCeiling(a: CeilingStats, b: CeilingStats): CeilingSummary {
  return {
    superFrames: a.tx.superFrames,
    segmentsPerSuperFrame: per(a.tx.superSegments, a.tx.superFrames),
    segmentsPerGsoSend: per(a.tx.superSegments, a.tx.gsoSends),
    framesPerMessage: per(a.tx.singleFrames, a.tx.singleMessages),
    framesPerSendmmsg: per(a.tx.singleFrames, a.tx.sendmmsgCalls),
    segmentsPerDatagram: per(b.rx.segments, b.rx.datagrams),
    segmentsPerRecvmmsg: per(b.rx.segments, b.rx.recvmmsgCalls),
    segmentsPerCoalescedWrite: per(b.rx.coalescedSegments, b.rx.coalescedWrites),
    drops: a.tx.drops + a.rx.drops + a.rx.wrongVni + a.rx.unknownSource + b.tx.drops + b.rx.drops + b.rx.wrongVni + b.rx.unknownSource,
    errors: a.tx.sendErrors + a.rx.writeErrors + b.tx.sendErrors + b.rx.writeErrors,
  };
}

// ---- the ceiling's sanity check before it is measured: lab/transfer.ts's verified transfer

/** What the sanity transfer recorded (in the result file). */
export interface VerifiedTransfer {
  bytes: number;
  sha256: string;
  seconds: number;
}
