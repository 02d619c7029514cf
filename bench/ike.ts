// IKE bench: IKEv2 handshakes (IKE_SA_INIT + IKE_AUTH, x25519; PSK, ECDSA P-256 and Ed25519
// certificates) and Child SA rekeys (CREATE_CHILD_SA without and with PFS x25519) per second.
//
//   node dist/bench/ike.js [--duration S] [--rounds N] [--concurrency N] [--only inproc|sockets]
//                          [--tests LIST] [--warmup S] [--no-pin]
//
// inproc: the real IkeManager as responder, fed by N initiator IkeSessions in the same process
// over an in-memory transport (no sockets, no native code): the IKE engine on one core, the JS
// thread. Both ends share that thread, so besides the rate of the pair the bench times every
// call into the responder's manager and reports what the responder alone would do.
//
// sockets: the same initiator sessions, in this process, reach real UDP sockets in a lab
// namespace through a small relay (bench/ike-relay.ts), against two responders in two other
// namespaces of the same run: strongSwan's charon and an overlayfwd daemon (`overlayfwd up`,
// the IKE manager on the native control channel, Child SAs installed in the native SA table).
// The comparison is per responder CPU-second (/proc/PID/stat of the responder process, all its
// threads), since the initiators, on one JS thread, may not be able to saturate either one.
//
// Results: tables on stdout, progress on stderr, JSON in bench/results/ike-<start time>.json.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { addTunnelAddress, Charon, Lab, Pki, strongswanUnavailableReason } from '../lab';
import type { CertAuthority, Host, HostCredential, LabProcess, SwanctlAuth, SwanctlConnection } from '../lab';
import { COOKIE_THRESHOLD, IkeManager, type IkePeer } from '../lib/ike/manager';
import { decodeMessage } from '../lib/ike/message';
import { parseProposals } from '../lib/ike/proposals';
import { selectorsFromCidrs } from '../lib/ike/selectors';
import { IkeSession, type Endpoint, type Identity, type LocalAuth, type SessionOptions, type SessionTiming } from '../lib/ike/session';
import { PROTOCOL_ESP, PROTOCOL_IKE } from '../lib/ike/transforms';
import { ID_FQDN } from '../lib/ike/auth';
import { cpuSecondsOf } from './proc';
import { commitLabel, isoStamp, provenance, repoRoot } from './provenance';

// ---------------------------------------------------------------------------------------------
// Options

const TESTS = ['ike-psk', 'ike-ecdsa', 'ike-ed25519', 'rekey', 'rekey-pfs'] as const;
type TestName = (typeof TESTS)[number];
type AuthKind = 'psk' | 'ecdsa-p256' | 'ed25519';

interface TestSpec {
  name: TestName;
  kind: 'handshake' | 'rekey';
  auth: AuthKind;
  esp: string[];
  label: string;
}

const IKE_PROPOSAL = 'aes256gcm16-prfsha256-x25519';
const SPECS: Record<TestName, TestSpec> = {
  'ike-psk': { name: 'ike-psk', kind: 'handshake', auth: 'psk', esp: ['aes256gcm16'], label: 'IKE SA, PSK' },
  'ike-ecdsa': { name: 'ike-ecdsa', kind: 'handshake', auth: 'ecdsa-p256', esp: ['aes256gcm16'], label: 'IKE SA, ECDSA P-256 cert' },
  'ike-ed25519': { name: 'ike-ed25519', kind: 'handshake', auth: 'ed25519', esp: ['aes256gcm16'], label: 'IKE SA, Ed25519 cert' },
  rekey: { name: 'rekey', kind: 'rekey', auth: 'psk', esp: ['aes256gcm16'], label: 'Child SA rekey, no PFS' },
  'rekey-pfs': { name: 'rekey-pfs', kind: 'rekey', auth: 'psk', esp: ['aes256gcm16-x25519'], label: 'Child SA rekey, PFS x25519' },
};

interface Options {
  durationSec: number;
  warmupSec: number;
  rounds: number;
  concurrency: number;
  only: 'inproc' | 'sockets' | null;
  tests: TestName[];
  pin: boolean;
  /** sockets: overlayfwd's esp.rekeyGraceSeconds. */
  graceSec: number;
}

const USAGE =
  'usage: node dist/bench/ike.js [--duration S] [--warmup S] [--rounds N] [--concurrency N] [--only inproc|sockets] [--tests ' +
  `${TESTS.join(',')}] [--grace S] [--no-pin]`;

function parseArgs(argv: string[]): Options {
  const o: Options = { durationSec: 2, warmupSec: 0.5, rounds: 3, concurrency: 8, only: null, tests: [...TESTS], pin: true, graceSec: 1 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split('=', 2) as [string, string | undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} wants a value\n${USAGE}`);
      return v;
    };
    const number = (min: number, max: number, integer: boolean) => {
      const v = Number(value());
      if (!Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) throw new Error(`${flag} wants ${integer ? 'an integer' : 'a number'} in ${min}..${max}`);
      return v;
    };
    if (flag === '--duration') o.durationSec = number(0.2, 600, false);
    else if (flag === '--warmup') o.warmupSec = number(0, 60, false);
    else if (flag === '--rounds') o.rounds = number(1, 50, true);
    else if (flag === '--concurrency') o.concurrency = number(1, 30, true);
    else if (flag === '--only') {
      const v = value();
      if (v !== 'inproc' && v !== 'sockets') throw new Error(`--only wants inproc or sockets\n${USAGE}`);
      o.only = v;
    } else if (flag === '--tests') {
      const names = value().split(',').map((s) => s.trim()).filter(Boolean);
      for (const n of names) if (!(TESTS as readonly string[]).includes(n)) throw new Error(`unknown test ${n} (${TESTS.join(', ')})`);
      o.tests = TESTS.filter((t) => names.includes(t));
    } else if (flag === '--grace') o.graceSec = number(1, 3600, true);
    else if (flag === '--no-pin') o.pin = false;
    else if (flag === '--help' || flag === '-h') throw new Error(USAGE);
    else throw new Error(`unknown option ${flag}\n${USAGE}`);
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

const t0 = Date.now();
function log(line: string): void {
  process.stderr.write(`# [${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${line}\n`);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  return [line(header), `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...rows.map(line)].join('\n');
}

const fmt = (x: number, digits = 0) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');

function add(map: Record<string, number>, key: string, n = 1): void {
  map[key] = (map[key] ?? 0) + n;
}

// ---------------------------------------------------------------------------------------------
// Credentials and session options

const PSK = 'overlayfwd-ike-bench-psk-0123456789';
const INITIATOR_ID = 'i.test';
const RESPONDER_ID = 'r.test';
const fqdn = (name: string): Identity => ({ type: ID_FQDN, data: Buffer.from(name, 'ascii') });

interface CertSet {
  ca: CertAuthority;
  initiator: HostCredential;
  responder: HostCredential;
}

interface Credentials {
  certs: Partial<Record<Exclude<AuthKind, 'psk'>, CertSet>>;
  /** Why certificates are missing (no `pki`), or null. */
  missing: string | null;
}

async function makeCredentials(dir: string): Promise<Credentials> {
  const creds: Credentials = { certs: {}, missing: null };
  try {
    const pki = await Pki.create(dir);
    for (const [kind, stem] of [['ecdsa-p256', 'ecdsa'], ['ed25519', 'ed']] as const) {
      const ca = await pki.ca(`ca-${stem}`, { keyType: kind });
      const initiator = await pki.host(ca, `i-${stem}`, { keyType: kind, dns: [INITIATOR_ID] });
      const responder = await pki.host(ca, `r-${stem}`, { keyType: kind, dns: [RESPONDER_ID] });
      creds.certs[kind] = { ca, initiator, responder };
    }
  } catch (e) {
    creds.missing = `no test certificates: ${(e as Error).message.split('\n')[0]}`;
  }
  return creds;
}

function localAuth(creds: Credentials, kind: AuthKind, side: 'initiator' | 'responder'): LocalAuth {
  if (kind === 'psk') return { method: 'psk', psk: Buffer.from(PSK, 'utf8') };
  const set = creds.certs[kind];
  if (!set) throw new Error(creds.missing ?? `no ${kind} certificates`);
  const own = set[side];
  return { method: 'certificate', certificate: new X509Certificate(own.certPem), privateKey: createPrivateKey(own.keyPem), ca: [new X509Certificate(set.ca.certPem)] };
}

/** No timer of the bench's sessions fires during a run (no rekey, no DPD); retransmissions are quick. */
const TIMING: SessionTiming = {
  childRekeyMs: 86_400_000,
  childLifetimeMs: 90_000_000,
  ikeRekeyMs: 86_400_000,
  dpdMs: 0,
  retransmitTimeoutMs: 500,
  retransmitTries: 4,
};

type PeerOptions = Omit<SessionOptions, 'send' | 'allocateSpi'>;

function sessionOptions(creds: Credentials, spec: TestSpec, side: 'initiator' | 'responder', local: Endpoint, remote: Endpoint, ts: { local: string; remote: string }): PeerOptions {
  return {
    local,
    remote,
    natPort: 4500,
    auth: localAuth(creds, spec.auth, side),
    localId: fqdn(side === 'initiator' ? INITIATOR_ID : RESPONDER_ID),
    remoteId: fqdn(side === 'initiator' ? RESPONDER_ID : INITIATOR_ID),
    ikeProposals: parseProposals([IKE_PROPOSAL], PROTOCOL_IKE),
    espProposals: parseProposals(spec.esp, PROTOCOL_ESP),
    localTs: selectorsFromCidrs([`${ts.local}/32`]),
    remoteTs: selectorsFromCidrs([`${ts.remote}/32`]),
    timing: TIMING,
  };
}

// ---------------------------------------------------------------------------------------------
// The initiators: IkeSessions in this process, one "slot" (source address) each

type Net = (slot: number, fromPort: number, to: Endpoint, data: Buffer) => void;

class Initiators {
  private readonly sessions = new Map<string, IkeSession>();
  private nextSpi = 0x10000;
  /** Datagrams for no session of ours (answers to our Deletes of closed sessions) and undecodable ones. */
  readonly ignored: Record<string, number> = {};

  constructor(private readonly net: Net) {}

  /** Starts an initiator session in `slot`. */
  start(slot: number, options: PeerOptions): IkeSession {
    const s = new IkeSession('initiator', {
      ...options,
      send: (data, to, fromPort) => this.net(slot, fromPort, to, data),
      allocateSpi: () => this.nextSpi++,
    });
    s.start();
    const key = `${slot}/${s.localSpis()[0]!.toString('hex')}`;
    this.sessions.set(key, s);
    s.once('closed', () => this.sessions.delete(key));
    return s;
  }

  get live(): number {
    return this.sessions.size;
  }

  /** A datagram for `slot`, received on its `localPort` from `from`. */
  deliver(slot: number, localPort: number, from: Endpoint, data: Buffer): void {
    const decoded = decodeMessage(data);
    if (!decoded.ok) return add(this.ignored, decoded.reason);
    const { header, payloads } = decoded.value;
    // Every message of an IKE SA carries the original initiator's SPI: ours.
    const s = this.sessions.get(`${slot}/${header.initiatorSpi.toString('hex')}`);
    if (!s) return add(this.ignored, 'no such session (closed)');
    s.receive(data, { header, payloads }, decoded.value.sk ? decoded.value : null, from, localPort);
  }
}

/** What a meter says about the responder over the measured window. */
interface Usage {
  /** Busy time of the responder: in-process, time inside its receive(); sockets, CPU time of its process. */
  responderSeconds: number;
  /** In-process: the same split by exchange (ms in total). */
  responderMsByExchange?: Record<string, number>;
  /** CPU time of this process (the initiators, and in-process the responder too). */
  benchCpuSeconds: number;
  /** Sockets: the relay's CPU time. */
  relayCpuSeconds?: number;
  /** Sockets, overlayfwd: the responder's main (JS) thread alone. */
  responderMainThreadSeconds?: number;
}

interface Meter {
  begin(): void;
  end(): Usage;
}

interface RunResult {
  ops: number;
  seconds: number;
  perSecond: number;
  /** ops per second of responder busy time (in-process: time in the responder; sockets: its CPU seconds). */
  perResponderSecond: number;
  usage: Usage;
  latencyMs: { p50: number; p90: number };
  failures: Record<string, number>;
}

interface SlotSpec {
  slot: number;
  options: PeerOptions;
}

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}

function result(ops: number, seconds: number, usage: Usage, latencies: number[], failures: Record<string, number>): RunResult {
  return {
    ops,
    seconds,
    perSecond: ops / seconds,
    perResponderSecond: usage.responderSeconds > 0 ? ops / usage.responderSeconds : NaN,
    usage,
    latencyMs: { p50: percentile(latencies, 0.5), p90: percentile(latencies, 0.9) },
    failures,
  };
}

async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(5);
  }
  return true;
}

/**
 * Handshakes: every slot runs IKE_SA_INIT + IKE_AUTH (with the first Child SA), and once its
 * Child SA is up sends a Delete for the IKE SA (not waited for) and starts the next one. Counted:
 * handshakes completed (the initiator has its Child SA) within the measured window.
 */
async function handshakeRun(ini: Initiators, slots: SlotSpec[], meter: Meter, warmupMs: number, durationMs: number): Promise<RunResult> {
  let phase: 'warmup' | 'measure' | 'drain' = 'warmup';
  let ops = 0;
  const latencies: number[] = [];
  const failures: Record<string, number> = {};
  const next = (spec: SlotSpec) => {
    if (phase === 'drain') return;
    const started = performance.now();
    const s = ini.start(spec.slot, spec.options);
    s.once('childUp', () => {
      if (phase === 'measure') {
        ops++;
        latencies.push(performance.now() - started);
      }
      // Not from inside the session's own handler: it is still installing the Child SA.
      queueMicrotask(() => {
        s.sendDeleteAndClose('bench: done');
        next(spec);
      });
    });
    s.once('closed', (reason) => {
      if (reason === 'bench: done') return;
      add(failures, reason);
      setTimeout(() => next(spec), 50);
    });
  };
  for (const spec of slots) next(spec);
  await sleep(warmupMs);
  meter.begin();
  phase = 'measure';
  const from = performance.now();
  await sleep(durationMs);
  const seconds = (performance.now() - from) / 1000;
  const done = ops;
  const usage = meter.end();
  phase = 'drain';
  await waitUntil(() => ini.live === 0, 5000);
  return result(done, seconds, usage, latencies, failures);
}

/**
 * Rekeys: one IKE SA per slot, established first; then each rekeys its Child SA
 * (CREATE_CHILD_SA, then the Delete of the old Child SA, RFC 7296 §1.3.3, §2.8) and starts the
 * next rekey when the Delete is answered. Counted: rekeys whose Delete was answered within the
 * measured window.
 */
async function rekeyRun(ini: Initiators, slots: SlotSpec[], meter: Meter, warmupMs: number, durationMs: number): Promise<RunResult> {
  const failures: Record<string, number> = {};
  const sessions = slots.map((spec) => ini.start(spec.slot, spec.options));
  for (const s of sessions) {
    s.on('log', (l) => {
      if (l.level === 'warn') add(failures, l.msg);
    });
    s.once('closed', (reason) => {
      if (reason !== 'bench: done') add(failures, `IKE SA closed: ${reason}`);
    });
  }
  const up = await waitUntil(() => sessions.every((s) => s.child !== null || s.state === 'closed'), 20_000);
  const ready = sessions.filter((s) => s.child !== null);
  if (!up || ready.length < sessions.length) {
    for (const s of sessions) s.sendDeleteAndClose('bench: done');
    throw new Error(`only ${ready.length} of ${sessions.length} IKE SAs came up (${JSON.stringify(failures)})`);
  }
  let phase: 'warmup' | 'measure' | 'drain' = 'warmup';
  let ops = 0;
  let inFlight = 0;
  const latencies: number[] = [];
  const startedAt = new Map<IkeSession, number>();
  const kick = (s: IkeSession) => {
    if (phase === 'drain' || s.state !== 'established') return;
    inFlight++;
    startedAt.set(s, performance.now());
    s.rekeyChild();
  };
  for (const s of sessions) {
    s.on('childDown', (_child, reason) => {
      if (reason !== 'rekeyed') return;
      inFlight--;
      if (phase === 'measure') {
        ops++;
        latencies.push(performance.now() - startedAt.get(s)!);
      }
      queueMicrotask(() => kick(s));
    });
    kick(s);
  }
  await sleep(warmupMs);
  meter.begin();
  phase = 'measure';
  const from = performance.now();
  await sleep(durationMs);
  const seconds = (performance.now() - from) / 1000;
  const done = ops;
  const usage = meter.end();
  phase = 'drain';
  await waitUntil(() => inFlight === 0, 5000);
  for (const s of sessions) s.sendDeleteAndClose('bench: done');
  await waitUntil(() => ini.live === 0, 5000);
  return result(done, seconds, usage, latencies, failures);
}

// ---------------------------------------------------------------------------------------------
// inproc: the IkeManager and the initiators on one thread, an in-memory transport between them

const EXCHANGES: Record<number, string> = { 34: 'IKE_SA_INIT', 35: 'IKE_AUTH', 36: 'CREATE_CHILD_SA', 37: 'INFORMATIONAL' };

/** Datagrams in flight, delivered in order, one batch per turn of the event loop (timers still run). */
class Bus {
  private queue: (() => void)[] = [];
  private scheduled = false;
  post(fn: () => void): void {
    this.queue.push(fn);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.drain);
    }
  }
  private readonly drain = () => {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    for (const fn of batch) fn();
  };
}

interface InprocTestResult {
  test: TestName;
  label: string;
  runs: RunResult[];
  cookies: number;
  managerDrops: Record<string, number>;
}

const RESPONDER = '10.0.0.1';
const slotAddress = (slot: number) => `10.1.${slot >> 8}.${(slot & 255) + 1}`;

async function inprocRun(spec: TestSpec, creds: Credentials, o: Options): Promise<{ run: RunResult; drops: Record<string, number> }> {
  const bus = new Bus();
  const busy: Record<string, number> = {};
  let measuring = false;
  let manager: IkeManager;
  const bySlotAddress = new Map<string, number>();
  const ini = new Initiators((slot, fromPort, to, data) => {
    const address = slotAddress(slot);
    bus.post(() => {
      const started = performance.now();
      manager.receive({ localPort: to.port, address, port: fromPort, data });
      if (measuring) add(busy, EXCHANGES[data[18]!] ?? String(data[18]), performance.now() - started);
    });
  });
  manager = new IkeManager(
    (localPort, address, port, data) => {
      const slot = bySlotAddress.get(address);
      if (slot !== undefined) bus.post(() => ini.deliver(slot, port, { address: RESPONDER, port: localPort }, data));
    },
    RESPONDER,
    () => false,
  );
  const slots: SlotSpec[] = [];
  const peers: IkePeer[] = [];
  for (let slot = 0; slot < o.concurrency; slot++) {
    const address = slotAddress(slot);
    bySlotAddress.set(address, slot);
    const ts = { local: `10.200.${slot}.1`, remote: '10.201.0.1' };
    slots.push({ slot, options: sessionOptions(creds, spec, 'initiator', { address, port: 500 }, { address: RESPONDER, port: 500 }, ts) });
    const { remote: _remote, ...session } = sessionOptions(creds, spec, 'responder', { address: RESPONDER, port: 500 }, { address, port: 500 }, { local: ts.remote, remote: ts.local });
    peers.push({ name: `i${slot}`, endpoint: { address, port: 500 }, start: 'passive', session });
  }
  manager.setPeers(peers);
  let cpu = process.cpuUsage();
  const meter: Meter = {
    begin() {
      for (const k of Object.keys(busy)) delete busy[k];
      measuring = true;
      cpu = process.cpuUsage();
    },
    end() {
      measuring = false;
      const c = process.cpuUsage(cpu);
      const ms = Object.values(busy).reduce((a, b) => a + b, 0);
      return { responderSeconds: ms / 1000, responderMsByExchange: { ...busy }, benchCpuSeconds: (c.user + c.system) / 1e6 };
    },
  };
  try {
    const run = spec.kind === 'handshake' ? await handshakeRun(ini, slots, meter, o.warmupSec * 1000, o.durationSec * 1000) : await rekeyRun(ini, slots, meter, o.warmupSec * 1000, o.durationSec * 1000);
    return { run, drops: Object.fromEntries(manager.drops) };
  } finally {
    manager.close();
  }
}

async function runInproc(o: Options, creds: Credentials, errors: string[]): Promise<InprocTestResult[]> {
  const out: InprocTestResult[] = [];
  for (const name of o.tests) {
    const spec = SPECS[name];
    if (spec.auth !== 'psk' && !creds.certs[spec.auth]) {
      errors.push(`inproc ${name}: skipped (${creds.missing})`);
      continue;
    }
    const entry: InprocTestResult = { test: name, label: spec.label, runs: [], cookies: 0, managerDrops: {} };
    for (let round = 0; round < o.rounds; round++) {
      try {
        const { run, drops } = await inprocRun(spec, creds, o);
        entry.runs.push(run);
        for (const [k, v] of Object.entries(drops)) add(entry.managerDrops, k, v);
        log(`inproc ${name} round ${round + 1}: ${fmt(run.perSecond)}/s (both ends), ${fmt(run.perResponderSecond)}/s responder only`);
      } catch (e) {
        errors.push(`inproc ${name} round ${round + 1}: ${(e as Error).message}`);
        log(`inproc ${name} round ${round + 1} FAILED: ${(e as Error).message}`);
      }
    }
    entry.cookies = Object.entries(entry.managerDrops)
      .filter(([k]) => k.includes('COOKIE'))
      .reduce((a, [, v]) => a + v, 0);
    out.push(entry);
  }
  return out;
}

function inprocTable(results: InprocTestResult[]): string {
  const rows = results.map((r) => {
    const per = (f: (x: RunResult) => number) => median(r.runs.map(f));
    const split = (x: RunResult, ex: string) => ((x.usage.responderMsByExchange?.[ex] ?? 0) / Math.max(1, x.ops));
    const exchanges = SPECS[r.test].kind === 'handshake' ? ['IKE_SA_INIT', 'IKE_AUTH', 'INFORMATIONAL'] : ['CREATE_CHILD_SA', 'INFORMATIONAL'];
    return [
      r.label,
      fmt(per((x) => x.perSecond)),
      fmt(per((x) => x.perResponderSecond)),
      fmt(per((x) => (x.usage.responderSeconds * 1000) / Math.max(1, x.ops)), 3),
      exchanges.map((ex) => fmt(per((x) => split(x, ex)), 3)).join(' / '),
      fmt(per((x) => x.latencyMs.p50), 2),
      `${r.runs.length}`,
    ];
  });
  return table(['test (inproc, one JS thread)', 'per s, both ends', 'per s, responder alone', 'responder ms/op', 'of which (INIT / AUTH / Delete; CREATE_CHILD_SA / Delete)', 'p50 latency ms', 'rounds'], rows);
}

// ---------------------------------------------------------------------------------------------
// sockets: the initiators through a relay in a namespace, against charon and `overlayfwd up`

function commOf(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** The blocks of initiator addresses: one per test, `concurrency` addresses each. */
interface Block {
  test: TestName;
  first: number;
}

interface SocketsEnv {
  lab: Lab;
  ini: Host;
  targets: Record<'strongswan' | 'overlayfwd', { host: Host; ts: string; pid: number; mainTid?: number; proc?: LabProcess }>;
  blocks: Block[];
  addresses: string[];
  initiators: Initiators;
  relay: LabProcess;
  setupErrors: string[];
}

const TARGETS = ['strongswan', 'overlayfwd'] as const;
type TargetName = (typeof TARGETS)[number];

async function startRelay(lab: Lab, ini: Host, addresses: string[], deliver: (slot: number, localPort: number, from: Endpoint, data: Buffer) => void): Promise<{ relay: LabProcess; send: Net }> {
  const sockPath = path.join(lab.tmpdir(), 'relay.sock');
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(sockPath, resolve);
  });
  const connections = new Set<net.Socket>();
  server.on('connection', (c) => connections.add(c));
  // server.close() waits for its connections: end them first (the relay exits when its closes).
  lab.onDestroy(
    () =>
      new Promise<void>((resolve) => {
        for (const c of connections) c.destroy();
        server.close(() => resolve());
      }),
  );
  const connected = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const relay = lab.spawn(ini, process.execPath, [path.join(__dirname, 'ike-relay.js'), sockPath, ...addresses]);
  const conn = await Promise.race([
    connected,
    relay.exited.then((st) => {
      throw new Error(`ike-relay exited (${JSON.stringify(st)}): ${relay.stderr.slice(-1000)}`);
    }),
  ]);
  conn.setNoDelay(true);
  await relay.waitForOutput('ready', 15_000);
  let pending: Buffer = Buffer.alloc(0);
  conn.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let at = 0;
    while (pending.length - at >= 4) {
      const len = pending.readUInt32BE(at);
      if (pending.length - at < 4 + len) break;
      const slot = pending[at + 4]!;
      const localPort = pending[at + 5] === 1 ? 4500 : 500;
      const address = `${pending[at + 6]}.${pending[at + 7]}.${pending[at + 8]}.${pending[at + 9]}`;
      const port = pending.readUInt16BE(at + 10);
      // A copy: the session keeps parts of the first messages (what AUTH signs).
      const data = Buffer.from(pending.subarray(at + 12, at + 4 + len));
      deliver(slot, localPort, { address, port }, data);
      at += 4 + len;
    }
    pending = at === pending.length ? Buffer.alloc(0) : Buffer.from(pending.subarray(at));
  });
  const send: Net = (slot, fromPort, to, data) => {
    const out = Buffer.allocUnsafe(12 + data.length);
    out.writeUInt32BE(8 + data.length, 0);
    out[4] = slot;
    out[5] = fromPort === 4500 ? 1 : 0;
    const parts = to.address.split('.');
    for (let i = 0; i < 4; i++) out[6 + i] = Number(parts[i]);
    out.writeUInt16BE(to.port, 10);
    data.copy(out, 12);
    conn.write(out);
  };
  return { relay, send };
}

function swanAuth(creds: Credentials, kind: AuthKind, side: 'local' | 'remote'): SwanctlAuth {
  const id = side === 'local' ? RESPONDER_ID : INITIATOR_ID;
  if (kind === 'psk') return { auth: 'psk', id };
  const set = creds.certs[kind]!;
  return side === 'local' ? { auth: 'pubkey', id, certs: [set.responder] } : { auth: 'pubkey', id, cacerts: [set.ca] };
}

async function socketsSetup(o: Options, creds: Credentials): Promise<SocketsEnv> {
  const setupErrors: string[] = [];
  const lab = await Lab.create({ prefix: 'ikeb' });
  try {
    const [ini, ss, ovl] = await lab.switched(['ini', 'ss', 'ovl']);
    const base = ini!.underlay.slice(0, ini!.underlay.lastIndexOf('.'));
    const tests = o.tests.filter((t) => SPECS[t].auth === 'psk' || creds.certs[SPECS[t].auth]);
    const blocks: Block[] = tests.map((test, i) => ({ test, first: i * o.concurrency }));
    const addresses = Array.from({ length: blocks.length * o.concurrency }, (_, g) => `${base}.${101 + g}`);
    if (101 + addresses.length > 254) throw new Error(`too many initiator addresses (${addresses.length}): lower --concurrency`);
    for (const a of addresses) await lab.addAddress(ini!, ini!.underlayDev, `${a}/24`);

    // The initiators: this process; their sockets: the relay in `ini`.
    let initiators: Initiators | null = null;
    const { relay, send } = await startRelay(lab, ini!, addresses, (slot, localPort, from, data) => initiators!.deliver(slot, localPort, from, data));
    initiators = new Initiators(send);

    // strongSwan: one connection per block (matched by the initiators' addresses), logging
    // at level 0 (audit lines only: the lab's default of 2 would write a dozen lines per handshake).
    const strongswanReason = strongswanUnavailableReason();
    let ssTarget: SocketsEnv['targets']['strongswan'] | null = null;
    if (strongswanReason) {
      setupErrors.push(`strongSwan not measured: ${strongswanReason}`);
    } else {
      const charon = await Charon.start(lab, ss!, { name: 'ss', logLevel: 0, logLevels: { ike: 0, cfg: 0, knl: 0 } });
      await addTunnelAddress(lab, ss!, '10.201.0.2');
      const connections: SwanctlConnection[] = blocks.map((b) => {
        const spec = SPECS[b.test];
        return {
          name: `b-${b.test}`,
          localAddrs: [ss!.underlay],
          remoteAddrs: [`${addresses[b.first]}-${addresses[b.first + o.concurrency - 1]}`],
          local: swanAuth(creds, spec.auth, 'local'),
          remote: swanAuth(creds, spec.auth, 'remote'),
          proposals: [IKE_PROPOSAL],
          encap: true,
          mobike: false,
          unique: 'never',
          children: [{ name: 'net', localTs: ['10.201.0.2/32'], remoteTs: ['10.200.0.0/16'], espProposals: spec.esp }],
        };
      });
      const sets = Object.values(creds.certs);
      await charon.load(
        { connections, secrets: [{ ids: [INITIATOR_ID, RESPONDER_ID], secret: PSK }] },
        { certs: sets.map((s) => s.responder), keys: sets.map((s) => s.responder), cas: sets.map((s) => s.ca) },
      );
      let pid = charon.pid!;
      if (commOf(pid) !== 'charon') {
        const pids = (await lab.exec(ss!, 'ip', ['netns', 'pids', ss!.ns]).catch(() => ({ stdout: '' }))).stdout.split(/\s+/).filter(Boolean).map(Number);
        pid = pids.find((p) => commOf(p) === 'charon') ?? pid;
      }
      ssTarget = { host: ss!, ts: '10.201.0.2', pid };
    }

    // overlayfwd: `overlayfwd up` in its own process, one IKE peer per initiator address.
    const tmp = lab.tmpdir();
    const peers = blocks.flatMap((b) =>
      Array.from({ length: o.concurrency }, (_, k) => {
        const g = b.first + k;
        const spec = SPECS[b.test];
        const set = spec.auth === 'psk' ? null : creds.certs[spec.auth]!;
        const ike = set
          ? { auth: 'certificate', certificate: set.responder.certPath, privateKey: set.responder.keyPath, ca: [set.ca.certPath], espProposals: spec.esp }
          : { auth: 'psk', psk: PSK, espProposals: spec.esp };
        return { name: `p${g}`, endpoint: addresses[g], allowedIps: [`10.200.${g}.1/32`], ike };
      }),
    );
    const config = {
      name: 'ikebench',
      netns: ovl!.ns,
      device: { type: 'tun', name: 'ovl0', addresses: ['10.201.0.3/24'] },
      encap: { type: 'esp' },
      // A replaced inbound SA stays --grace seconds (default 1, the minimum) after its rekey: each
      // SA change installs a snapshot of every SA, and at hundreds of rekeys per second the
      // default 30 s would keep thousands in it. (charon keeps a rekeyed one 5 s,
      // delete_rekeyed_delay, but a change there does not rebuild a table.)
      esp: { rekeyGraceSeconds: o.graceSec },
      underlay: { local: ovl!.underlay },
      workers: 1,
      ike: { id: RESPONDER_ID, remoteId: INITIATOR_ID, proposals: [IKE_PROPOSAL], start: 'passive', rekeySeconds: 86400, lifetimeSeconds: 90000, ikeRekeySeconds: 86400, dpdSeconds: 0 },
      peers,
      control: { socket: path.join(tmp, 'ovl.sock') },
    };
    const configPath = path.join(tmp, 'overlayfwd-ike.json');
    fs.writeFileSync(configPath, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
    const cli = path.join(__dirname, '..', 'lib', 'cli', 'main.js');
    const pinResponder = o.pin && os.cpus().length >= 2;
    // OVERLAYFWD_IKE_BENCH_NODE_ARGS: extra node flags for the responder (e.g. --cpu-prof --cpu-prof-dir=DIR).
    const nodeArgs = (process.env['OVERLAYFWD_IKE_BENCH_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
    const argv = [process.execPath, ...nodeArgs, cli, 'up', '-c', configPath];
    const proc = pinResponder ? lab.spawn(null, 'taskset', ['-c', '1', ...argv]) : lab.spawn(null, argv[0]!, argv.slice(1));
    await proc.waitForOutput(/ up: /, 30_000);
    const ovlTarget = { host: ovl!, ts: '10.201.0.3', pid: proc.pid!, mainTid: proc.pid!, proc };

    if (pinResponder) {
      // The initiators and the relay on CPU 0, each responder on CPU 1 (one at a time under load).
      const { execIn } = await import('../lab');
      const taskset = (pid: number, cpu: number) => execIn(null, 'taskset', ['-a', '-p', '-c', String(cpu), String(pid)]);
      await taskset(process.pid, 0);
      await taskset(relay.pid!, 0);
      if (ssTarget) await taskset(ssTarget.pid, 1);
      await taskset(ovlTarget.pid, 1);
    }
    const targets = { overlayfwd: ovlTarget } as SocketsEnv['targets'];
    if (ssTarget) targets.strongswan = ssTarget;
    return { lab, ini: ini!, targets, blocks, addresses, initiators, relay, setupErrors };
  } catch (e) {
    await lab.destroy().catch(() => undefined);
    throw e;
  }
}

interface SocketsTestResult {
  test: TestName;
  label: string;
  runs: Partial<Record<TargetName, RunResult[]>>;
  /** Per round, overlayfwd ÷ strongSwan of the two runs of that round (seconds apart). */
  pairedRatios: { perCpuSecond: number; perSecond: number }[];
}

async function socketsRun(env: SocketsEnv, spec: TestSpec, target: TargetName, creds: Credentials, o: Options): Promise<RunResult> {
  const t = env.targets[target]!;
  const block = env.blocks.find((b) => b.test === spec.name)!;
  const slots: SlotSpec[] = Array.from({ length: o.concurrency }, (_, k) => {
    const g = block.first + k;
    const address = env.addresses[g]!;
    return {
      slot: g,
      options: sessionOptions(creds, spec, 'initiator', { address, port: 500 }, { address: t.host.underlay, port: 500 }, { local: `10.200.${g}.1`, remote: t.ts }),
    };
  });
  let at = { responder: 0, main: 0, bench: process.cpuUsage(), relay: 0 };
  const meter: Meter = {
    begin() {
      at = { responder: cpuSecondsOf(t.pid), main: t.mainTid ? cpuSecondsOf(t.pid, t.mainTid) : 0, bench: process.cpuUsage(), relay: cpuSecondsOf(env.relay.pid!) };
    },
    end() {
      const c = process.cpuUsage(at.bench);
      return {
        responderSeconds: cpuSecondsOf(t.pid) - at.responder,
        ...(t.mainTid ? { responderMainThreadSeconds: cpuSecondsOf(t.pid, t.mainTid) - at.main } : {}),
        benchCpuSeconds: (c.user + c.system) / 1e6,
        relayCpuSeconds: cpuSecondsOf(env.relay.pid!) - at.relay,
      };
    },
  };
  return spec.kind === 'handshake'
    ? handshakeRun(env.initiators, slots, meter, o.warmupSec * 1000, o.durationSec * 1000)
    : rekeyRun(env.initiators, slots, meter, o.warmupSec * 1000, o.durationSec * 1000);
}

async function runSockets(o: Options, creds: Credentials, errors: string[]): Promise<{ results: SocketsTestResult[]; idle: Record<string, number>; pinned: boolean } | null> {
  let env: SocketsEnv;
  try {
    env = await socketsSetup(o, creds);
  } catch (e) {
    errors.push(`sockets: setup failed: ${(e as Error).message}`);
    log(`sockets setup FAILED: ${(e as Error).stack ?? String(e)}`);
    return null;
  }
  errors.push(...env.setupErrors);
  try {
    // What each responder burns doing nothing (CPU seconds per second, over 2 s after a 1 s pause).
    await sleep(1000);
    const idle: Record<string, number> = {};
    const before = Object.fromEntries(Object.entries(env.targets).map(([k, t]) => [k, cpuSecondsOf(t.pid)]));
    await sleep(2000);
    for (const [k, t] of Object.entries(env.targets)) idle[k] = (cpuSecondsOf(t.pid) - before[k]!) / 2;
    log(`idle CPU: ${Object.entries(idle).map(([k, v]) => `${k} ${fmt(100 * v, 1)} %`).join(', ')}`);
    const results: SocketsTestResult[] = [];
    for (const b of env.blocks) {
      const spec = SPECS[b.test];
      const entry: SocketsTestResult = { test: b.test, label: spec.label, runs: {}, pairedRatios: [] };
      for (let round = 0; round < o.rounds; round++) {
        // Alternating order (ABBA...), so a trend in the machine's load falls on both alike.
        const order = (round % 2 === 0 ? [...TARGETS] : [...TARGETS].reverse()).filter((x) => env.targets[x]);
        const pair: Partial<Record<TargetName, RunResult>> = {};
        for (const target of order) {
          try {
            const run = await socketsRun(env, spec, target, creds, o);
            (entry.runs[target] ??= []).push(run);
            pair[target] = run;
            log(`sockets ${b.test} ${target} round ${round + 1}: ${fmt(run.perSecond)}/s, ${fmt(run.perResponderSecond)} per responder CPU-s (responder busy ${fmt((100 * run.usage.responderSeconds) / run.seconds)} %)`);
            const failed = Object.entries(run.failures);
            if (failed.length) log(`  failures: ${JSON.stringify(run.failures)}`);
          } catch (e) {
            errors.push(`sockets ${b.test} ${target} round ${round + 1}: ${(e as Error).message}`);
            log(`sockets ${b.test} ${target} round ${round + 1} FAILED: ${(e as Error).message}`);
          }
        }
        if (pair.strongswan && pair.overlayfwd) {
          entry.pairedRatios.push({
            perCpuSecond: pair.overlayfwd.perResponderSecond / pair.strongswan.perResponderSecond,
            perSecond: pair.overlayfwd.perSecond / pair.strongswan.perSecond,
          });
        }
      }
      results.push(entry);
    }
    const ovl = env.targets.overlayfwd.proc;
    if (ovl && !ovl.running) errors.push(`overlayfwd exited during the run: ${ovl.stderr.slice(-500)}`);
    return { results, idle, pinned: o.pin && os.cpus().length >= 2 };
  } finally {
    await env.lab.destroy().catch((e: unknown) => errors.push(`teardown: ${(e as Error).message}`));
  }
}

function socketsTable(results: SocketsTestResult[]): string {
  const rows = results.map((r) => {
    const m = (target: TargetName, f: (x: RunResult) => number) => median((r.runs[target] ?? []).map(f));
    const ssCpu = m('strongswan', (x) => x.perResponderSecond);
    const ovCpu = m('overlayfwd', (x) => x.perResponderSecond);
    const ssWall = m('strongswan', (x) => x.perSecond);
    const ovWall = m('overlayfwd', (x) => x.perSecond);
    const busy = (target: TargetName) => fmt(m(target, (x) => (100 * x.usage.responderSeconds) / x.seconds));
    return [
      r.label,
      fmt(ssWall),
      fmt(ssCpu),
      fmt(ovWall),
      fmt(ovCpu),
      fmt(median(r.pairedRatios.map((x) => x.perCpuSecond)), 2),
      fmt(median(r.pairedRatios.map((x) => x.perSecond)), 2),
      `${busy('strongswan')} / ${busy('overlayfwd')}`,
      fmt(m('overlayfwd', (x) => (100 * (x.usage.responderMainThreadSeconds ?? NaN)) / Math.max(1e-9, x.usage.responderSeconds))),
      `${fmt(m('strongswan', (x) => x.latencyMs.p50), 1)} / ${fmt(m('overlayfwd', (x) => x.latencyMs.p50), 1)}`,
      `${fmt(m('strongswan', (x) => (100 * x.usage.benchCpuSeconds) / x.seconds))} / ${fmt(m('overlayfwd', (x) => (100 * x.usage.benchCpuSeconds) / x.seconds))}`,
    ];
  });
  return table(
    [
      'test (UDP in namespaces)',
      'strongSwan /s',
      'strongSwan per CPU-s',
      'overlayfwd /s',
      'overlayfwd per CPU-s',
      'x strongSwan (per CPU-s)',
      'x strongSwan (/s)',
      'responder CPU % (ss / ovl)',
      'ovl JS thread % of its CPU',
      'p50 latency ms (ss / ovl)',
      'initiators CPU % (ss / ovl)',
    ],
    rows,
  );
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  let o: Options;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 2;
  }
  const started = new Date();
  const prov = provenance();
  const errors: string[] = [];
  const credDir = fs.mkdtempSync(path.join(os.tmpdir(), 'overlayfwd-ikebench-'));
  const output: Record<string, unknown> = {
    version: 1,
    startedAt: started.toISOString(),
    finishedAt: null,
    options: o,
    constants: { ikeProposal: IKE_PROPOSAL, cookieThreshold: COOKIE_THRESHOLD },
    provenance: prov,
    host: { hostname: os.hostname(), kernel: os.release(), cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? null, node: process.version, commit: commitLabel(prov), loadavgAtStart: os.loadavg() },
    inproc: null,
    sockets: null,
    errors,
  };
  const print = (text: string) => process.stdout.write(`${text}\n`);
  if (o.concurrency >= COOKIE_THRESHOLD) log(`--concurrency ${o.concurrency} >= the manager's COOKIE threshold (${COOKIE_THRESHOLD} half-open SAs): IKE_SA_INITs will take a COOKIE round trip`);
  // Ctrl-C: the lab's own handler deletes the namespaces and what runs in them; this the certificates.
  process.on('exit', () => fs.rmSync(credDir, { recursive: true, force: true }));
  try {
    log('making test certificates');
    const creds = await makeCredentials(credDir);
    if (creds.missing) errors.push(creds.missing);
    const markdown: string[] = [];
    if (o.only !== 'sockets') {
      log(`inproc: ${o.concurrency} initiators, ${o.rounds} rounds of ${o.durationSec} s (after ${o.warmupSec} s warm-up) per test`);
      const inproc = await runInproc(o, creds, errors);
      output['inproc'] = inproc;
      const text = `inproc: IkeManager (responder) + ${o.concurrency} IkeSession initiators on one JS thread, in-memory transport; medians of ${o.rounds} rounds of ${o.durationSec} s\n\n${inprocTable(inproc)}`;
      markdown.push(text);
      print(`\n${text}`);
    }
    if (o.only !== 'inproc') {
      log(`sockets: ${o.concurrency} initiators per test, ${o.rounds} rounds of ${o.durationSec} s per test and responder`);
      const sockets = await runSockets(o, creds, errors);
      output['sockets'] = sockets;
      if (sockets) {
        const text =
          `sockets: ${o.concurrency} initiators (IkeSessions in the bench process, UDP through a relay in a namespace) against charon and \`overlayfwd up\`, each in its own namespace` +
          `${sockets.pinned ? ', responders pinned to CPU 1, initiators and relay to CPU 0' : ''}; medians of ${o.rounds} rounds of ${o.durationSec} s; per CPU-s = per second of the responder process's CPU time\n\n${socketsTable(sockets.results)}`;
        markdown.push(text);
        print(`\n${text}`);
      }
    }
    output['markdown'] = markdown.join('\n\n');
  } finally {
    fs.rmSync(credDir, { recursive: true, force: true });
  }
  output['finishedAt'] = new Date().toISOString();
  (output['host'] as Record<string, unknown>)['loadavgAtEnd'] = os.loadavg();
  if (errors.length) {
    print('\nerrors:');
    for (const e of errors) print(`  ${e}`);
  }
  const dir = path.join(repoRoot(), 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `ike-${isoStamp(started)}.json`);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(output, null, 2)}\n`);
  fs.renameSync(tmp, file);
  print(`\nresults: ${path.relative(process.cwd(), file) || file}`);
  return errors.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`ike bench: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
