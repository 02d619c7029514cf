// A small network lab: network namespaces joined by veth pairs (or a bridge in a "switch"
// namespace), processes run inside them, and the kernel's own VXLAN device as a reference peer.
// Used by `overlayfwd demo`, the netns integration tests and the bench suite.
//
// Everything a Lab makes is recorded and removed by destroy(): the processes it spawned (and any
// process left inside its namespaces), the namespaces themselves (which takes their interfaces
// with them) and its temporary directory. destroy() is idempotent; a synchronous variant runs
// on process exit and on SIGINT/SIGTERM, and Lab.create() sweeps namespaces left behind by a
// process of the same prefix that died without cleaning up (SIGKILL).
//
// Addressing: underlay links get 198.18.N.0/24 (N = link index in the lab), overlay addresses
// are 198.19.0.0/16 (see overlayAddress()). Both ranges are the RFC 2544 benchmarking range;
// interfaces live only inside the lab's namespaces, so traffic never leaves them.
import { execFile, execFileSync, spawn as spawnChild } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

const MAX_IFNAME = 15;
const LABEL_RE = /^[a-z][a-z0-9]{0,11}$/;
const DEFAULT_EXEC_TIMEOUT_MS = 60_000;
const MAX_CAPTURED_OUTPUT = 4 * 1024 * 1024;

export const UNDERLAY_NET = '198.18';
export const OVERLAY_NET = '198.19';
export const VXLAN_PORT = 4789;

/** Overlay address number `i` (1..65534) in 198.19.0.0/16, e.g. overlayAddress(1) = '198.19.0.1'. */
export function overlayAddress(i: number): string {
  if (!Number.isInteger(i) || i < 1 || i > 65534) throw new RangeError(`overlay address index out of range: ${i}`);
  return `${OVERLAY_NET}.${i >> 8}.${i & 0xff}`;
}

export class LabCommandError extends Error {
  constructor(
    message: string,
    readonly command: string,
    readonly exitCode: number | null,
    readonly signal: string | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'LabCommandError';
  }
}

export interface ExecOptions {
  /** Kill the command after this long (default 60 s). */
  timeoutMs?: number;
  /** Resolve instead of rejecting on a non-zero exit. */
  allowFailure?: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  /** 0 on success; the exit code (or null when killed by a signal) with allowFailure. */
  code: number | null;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** 'pipe' to write to the child's stdin (LabProcess.child.stdin); default 'ignore'. */
  stdin?: 'pipe' | 'ignore';
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

function quoteArgs(cmd: string, args: readonly string[]): string {
  return [cmd, ...args]
    .map((a) => (a.length > 60 || a.includes('\n') ? `${a.trim().split('\n')[0]!.slice(0, 40)}…` : a))
    .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}

function nsArgv(ns: string | null, cmd: string, args: readonly string[]): [string, string[]] {
  return ns === null ? [cmd, [...args]] : ['ip', ['netns', 'exec', ns, cmd, ...args]];
}

/** Runs a command (inside namespace `ns`, or in the caller's own when null) and collects its output. */
export async function execIn(
  ns: string | null,
  cmd: string,
  args: readonly string[] = [],
  options: ExecOptions = {},
): Promise<ExecResult> {
  const [file, argv] = nsArgv(ns, cmd, args);
  const shown = (ns ? `[${ns}] ` : '') + quoteArgs(cmd, args);
  try {
    const { stdout, stderr } = await execFileAsync(file, argv, {
      timeout: options.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS,
      killSignal: 'SIGKILL',
      maxBuffer: 256 * 1024 * 1024,
      encoding: 'utf8',
      env: options.env ?? process.env,
      cwd: options.cwd,
    });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stdout?: string; stderr?: string; code?: unknown; signal?: string | null; killed?: boolean };
    const stdout = typeof e.stdout === 'string' ? e.stdout : '';
    const stderr = typeof e.stderr === 'string' ? e.stderr : '';
    const exitCode = typeof e.code === 'number' ? e.code : null;
    if (typeof e.code === 'string') {
      // spawn failure (ENOENT, ...): never "allowed"
      throw new LabCommandError(`${shown}: ${e.message}`, shown, null, null, stdout, stderr);
    }
    if (options.allowFailure && !e.killed) return { stdout, stderr, code: exitCode };
    const why = e.killed ? `timed out after ${options.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS} ms` : exitCode !== null ? `exited ${exitCode}` : `killed by ${e.signal}`;
    throw new LabCommandError(`${shown}: ${why}${stderr.trim() ? `: ${stderr.trim()}` : ''}`, shown, exitCode, e.signal ?? null, stdout, stderr);
  }
}

/** A process spawned by a Lab, with its output captured. Stopped by Lab.destroy() at the latest. */
export class LabProcess {
  stdout = '';
  stderr = '';
  status: ExitStatus | null = null;
  readonly exited: Promise<ExitStatus>;
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly child: ChildProcess,
    readonly ns: string | null,
    readonly command: string,
  ) {
    const append = (which: 'stdout' | 'stderr') => (chunk: Buffer) => {
      let text = this[which] + chunk.toString('utf8');
      if (text.length > MAX_CAPTURED_OUTPUT) text = text.slice(text.length - MAX_CAPTURED_OUTPUT);
      this[which] = text;
      for (const l of this.listeners) l();
    };
    child.stdout?.on('data', append('stdout'));
    child.stderr?.on('data', append('stderr'));
    this.exited = new Promise<ExitStatus>((resolve) => {
      const done = (code: number | null, signal: NodeJS.Signals | null) => {
        if (this.status) return;
        this.status = { code, signal };
        for (const l of this.listeners) l();
        resolve(this.status);
      };
      child.on('error', (err) => {
        this.stderr += `\nspawn error: ${err.message}`;
        done(null, null);
      });
      child.on('close', done);
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.status === null;
  }

  /** Resolves with the captured output once `pattern` appears in stdout or stderr; rejects on exit or timeout. */
  waitForOutput(pattern: RegExp | string, timeoutMs = 10_000): Promise<string> {
    const test = (s: string) => (typeof pattern === 'string' ? s.includes(pattern) : pattern.test(s));
    return new Promise<string>((resolve, reject) => {
      const check = () => {
        const all = this.stdout + this.stderr;
        if (test(this.stdout) || test(this.stderr)) {
          cleanup();
          resolve(all);
        } else if (this.status) {
          cleanup();
          reject(new Error(`${this.command} exited (${this.describeStatus()}) before printing ${String(pattern)}; output:\n${all.slice(-2000)}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${String(pattern)} from ${this.command}; output:\n${(this.stdout + this.stderr).slice(-2000)}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
      check();
    });
  }

  /** Waits for the process to exit; rejects after timeoutMs (the process keeps running). */
  async wait(timeoutMs = 60_000): Promise<ExitStatus> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${this.command} to exit; output:\n${(this.stdout + this.stderr).slice(-2000)}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Like wait(), but rejects unless the process exits with code 0. Returns stdout. */
  async succeed(timeoutMs = 60_000): Promise<string> {
    const st = await this.wait(timeoutMs);
    if (st.code !== 0) {
      throw new Error(`${this.command} failed (${this.describeStatus()}):\n${(this.stderr || this.stdout).slice(-4000)}`);
    }
    return this.stdout;
  }

  /** Sends a signal to the process group (the process and anything it started). */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (!this.running || this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      try {
        this.child.kill(signal);
      } catch {
        /* gone */
      }
    }
  }

  /** SIGTERM (or `signal`), then SIGKILL after graceMs. */
  async stop(graceMs = 2000, signal: NodeJS.Signals = 'SIGTERM'): Promise<ExitStatus> {
    if (!this.running) return this.status!;
    this.kill(signal);
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  describeStatus(): string {
    if (!this.status) return 'running';
    return this.status.signal ? `signal ${this.status.signal}` : `exit ${this.status.code}`;
  }
}

export interface HostLink {
  /** Interface name inside the host's namespace. */
  dev: string;
  /** IPv4 address without prefix length. */
  address: string;
  prefixLength: number;
  /** Label of the host (or 'switch') at the other end. */
  peer: string;
}

export interface Host {
  /** Short label given to addHost(), e.g. 'a'. */
  readonly label: string;
  /** Namespace name (/run/netns/NAME): the `netns` of an overlayfwd config. */
  readonly ns: string;
  /** Underlay interfaces in the order they were made. */
  readonly links: HostLink[];
  /** Address of the first underlay link ('' before there is one). */
  readonly underlay: string;
  /** Device of the first underlay link ('' before there is one). */
  readonly underlayDev: string;
}

class HostImpl implements Host {
  readonly links: HostLink[] = [];
  constructor(
    readonly label: string,
    readonly ns: string,
  ) {}
  get underlay(): string {
    return this.links[0]?.address ?? '';
  }
  get underlayDev(): string {
    return this.links[0]?.dev ?? '';
  }
}

export interface LinkOptions {
  mtu?: number;
  /** Addresses (without prefix) for the two ends; default 198.18.N.1 and 198.18.N.2. */
  addresses?: [string, string];
  prefixLength?: number;
}

export interface KernelVxlanOptions {
  /** Device name (default 'vx0'). */
  name?: string;
  vni: number;
  /** Local underlay address (default: the host's first underlay address). */
  local?: string;
  /** Remote VTEPs. One: `remote X`; several: head-end replication via all-zero FDB entries. */
  remotes: string[];
  /** Underlay device (default: the host's first underlay device). */
  dev?: string;
  port?: number;
  /** CIDRs assigned to the VXLAN device, e.g. ['198.19.0.2/24']. */
  addresses?: string[];
  mtu?: number;
  mac?: string;
  /** MAC learning from received frames (default true). */
  learning?: boolean;
  /**
   * Keep the device's transmit checksum offload (default false: turned off). Over veth nothing
   * ever completes an offloaded checksum, so the inner TCP/UDP checksums of frames the kernel
   * encapsulates would reach a userspace VTEP (overlayfwd's UDP socket) unfinished and be dropped
   * by the receiving stack; a kernel VTEP is not affected because the skb keeps its csum state.
   */
  checksumOffload?: boolean;
}

export interface PingOptions {
  count?: number;
  /** Seconds between requests (default 0.2; below 0.2 needs root, which a lab has). */
  intervalSec?: number;
  /** Seconds to wait for the last reply (default 2). */
  timeoutSec?: number;
  /** ICMP payload size (default 56). */
  size?: number;
  /** Source address or interface (ping -I). */
  source?: string;
}

export interface PingResult {
  transmitted: number;
  received: number;
  output: string;
}

export interface LabOptions {
  /** Namespace name prefix (default 'ovt'): names are PREFIX-LABEL-PID-COUNTER. */
  prefix?: string;
  /** Keep IPv6 on in the namespaces (default off: no router solicitations, MLD or DAD noise on the overlay). */
  ipv6?: boolean;
}

/** Why a lab cannot be built here, or null when it can (root, iproute2, /dev/net/tun). */
export function labUnavailableReason(): string | null {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    return `network namespaces need root (uid is ${process.getuid()})`;
  }
  if (!commandExists('ip')) return 'iproute2 (`ip`) is not installed';
  if (!fs.existsSync('/dev/net/tun')) return '/dev/net/tun is missing';
  return null;
}

const commandCache = new Map<string, boolean>();
/** True when `cmd` is an executable on PATH. */
export function commandExists(cmd: string): boolean {
  const cached = commandCache.get(cmd);
  if (cached !== undefined) return cached;
  let found = false;
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    if (!dir) continue;
    try {
      fs.accessSync(path.join(dir, cmd), fs.constants.X_OK);
      found = true;
      break;
    } catch {
      /* next */
    }
  }
  commandCache.set(cmd, found);
  return found;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function listNetnsSync(): string[] {
  try {
    const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return out
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[0] ?? '')
      .filter(Boolean);
  } catch {
    return [];
  }
}

/** Kills every process whose network namespace is `ns` (except this process and its parent) and deletes it. */
function killAndDeleteNetnsSync(ns: string): void {
  try {
    const out = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    for (const p of out.split(/\s+/).filter(Boolean)) {
      const pid = Number(p);
      if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid || pid === process.ppid) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  } catch {
    /* namespace already gone */
  }
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 10_000 });
  } catch {
    /* already gone */
  }
}

// ---- process-wide registry: cleanup on exit and signals -------------------------------------------

const liveLabs = new Set<Lab>();
let handlersInstalled = false;
let nsCounter = 0;

function destroyAllSync(): void {
  for (const lab of [...liveLabs]) lab.destroySync();
}

type HandledSignal = 'SIGINT' | 'SIGTERM' | 'SIGHUP';

function onSignal(signal: HandledSignal): void {
  // Someone else (the CLI, the demo, a test runner) handles this signal and is expected to call
  // destroy(); the 'exit' handler is the backstop. Alone, we clean up and die of the signal.
  if (process.listenerCount(signal) > 1) return;
  destroyAllSync();
  process.removeListener(signal, signalHandlers[signal]);
  process.kill(process.pid, signal);
}

const signalHandlers: Record<HandledSignal, () => void> = {
  SIGINT: () => onSignal('SIGINT'),
  SIGTERM: () => onSignal('SIGTERM'),
  SIGHUP: () => onSignal('SIGHUP'),
};

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', destroyAllSync);
  for (const sig of Object.keys(signalHandlers) as (keyof typeof signalHandlers)[]) {
    process.on(sig, signalHandlers[sig]);
  }
}

export class Lab {
  readonly prefix: string;
  private readonly ipv6: boolean;
  private readonly hosts: HostImpl[] = [];
  /** Every namespace made (hosts and switches), in creation order. */
  private readonly namespaces: string[] = [];
  private readonly processes = new Set<LabProcess>();
  private readonly hooks: (() => unknown)[] = [];
  private linkCount = 0;
  private tmp: string | null = null;
  private destroying: Promise<void> | null = null;
  private destroyed = false;

  private constructor(options: LabOptions) {
    this.prefix = options.prefix ?? 'ovt';
    this.ipv6 = options.ipv6 ?? false;
    if (!/^[a-z][a-z0-9]{0,7}$/.test(this.prefix)) throw new Error(`bad lab prefix ${JSON.stringify(this.prefix)}`);
  }

  /** Makes an empty lab (no namespaces yet) after sweeping namespaces left by dead processes. */
  static async create(options: LabOptions = {}): Promise<Lab> {
    const reason = labUnavailableReason();
    if (reason) throw new Error(`cannot build a network lab: ${reason}`);
    const lab = new Lab(options);
    Lab.sweepStale(lab.prefix);
    installHandlers();
    liveLabs.add(lab);
    return lab;
  }

  /**
   * Deletes namespaces named PREFIX-LABEL-PID-N whose PID is no longer alive (a lab whose process
   * was SIGKILLed). Returns the names removed.
   */
  static sweepStale(prefix = 'ovt'): string[] {
    const re = new RegExp(`^${prefix}-[a-z][a-z0-9]*-(\\d+)-\\d+$`);
    const removed: string[] = [];
    for (const ns of listNetnsSync()) {
      const m = re.exec(ns);
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid === process.pid || pidAlive(pid)) continue;
      killAndDeleteNetnsSync(ns);
      removed.push(ns);
    }
    return removed;
  }

  get isDestroyed(): boolean {
    return this.destroyed || this.destroying !== null;
  }

  /** Namespaces made so far (hosts and switches). */
  get namespaceNames(): readonly string[] {
    return this.namespaces;
  }

  /** A private temporary directory, removed by destroy(). */
  tmpdir(): string {
    if (!this.tmp) this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), `overlayfwd-${this.prefix}-`));
    return this.tmp;
  }

  /** Registers cleanup to run first in destroy() (last registered runs first), e.g. closing an overlay. */
  onDestroy(fn: () => unknown): void {
    this.hooks.push(fn);
  }

  private assertLive(): void {
    if (this.isDestroyed) throw new Error('lab already destroyed');
  }

  private async newNamespace(label: string): Promise<string> {
    this.assertLive();
    if (!LABEL_RE.test(label)) throw new Error(`bad host label ${JSON.stringify(label)} (want [a-z][a-z0-9]{0,11})`);
    const ns = `${this.prefix}-${label}-${process.pid}-${++nsCounter}`;
    // Record before creating: a failure half-way still gets cleaned up.
    this.namespaces.push(ns);
    await execIn(null, 'ip', ['netns', 'add', ns]);
    await execIn(null, 'ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    if (!this.ipv6) {
      await execIn(ns, 'sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1', 'net.ipv6.conf.lo.disable_ipv6=1']);
    }
    return ns;
  }

  /** Makes a host: a fresh namespace with loopback up and no other interface. */
  async addHost(label: string): Promise<Host> {
    const ns = await this.newNamespace(label);
    const host = new HostImpl(label, ns);
    this.hosts.push(host);
    return host;
  }

  host(label: string): Host {
    const h = this.hosts.find((x) => x.label === label);
    if (!h) throw new Error(`no host ${label} in this lab`);
    return h;
  }

  private nextDev(host: HostImpl, stem: string): string {
    let i = 0;
    while (host.links.some((l) => l.dev === `${stem}${i}`)) i++;
    const dev = `${stem}${i}`;
    if (dev.length > MAX_IFNAME) throw new Error(`interface name too long: ${dev}`);
    return dev;
  }

  /** Joins two hosts with a veth pair; addresses 198.18.N.1/24 and 198.18.N.2/24 by default. */
  async connect(a: Host, b: Host, options: LinkOptions = {}): Promise<[HostLink, HostLink]> {
    this.assertLive();
    const ha = a as HostImpl;
    const hb = b as HostImpl;
    if (ha === hb) throw new Error('cannot connect a host to itself');
    const n = this.linkCount++;
    if (n > 255) throw new Error('too many links in one lab');
    const prefixLength = options.prefixLength ?? 24;
    const [addrA, addrB] = options.addresses ?? [`${UNDERLAY_NET}.${n}.1`, `${UNDERLAY_NET}.${n}.2`];
    const devA = this.nextDev(ha, 'veth');
    const devB = this.nextDev(hb, 'veth');
    // Made directly inside both namespaces: nothing ever appears in the caller's namespace.
    await execIn(null, 'ip', ['link', 'add', devA, 'netns', ha.ns, 'type', 'veth', 'peer', 'name', devB, 'netns', hb.ns]);
    const la: HostLink = { dev: devA, address: addrA, prefixLength, peer: hb.label };
    const lb: HostLink = { dev: devB, address: addrB, prefixLength, peer: ha.label };
    ha.links.push(la);
    hb.links.push(lb);
    for (const [h, l] of [[ha, la], [hb, lb]] as const) {
      if (options.mtu) await execIn(null, 'ip', ['-n', h.ns, 'link', 'set', l.dev, 'mtu', String(options.mtu)]);
      await execIn(null, 'ip', ['-n', h.ns, 'addr', 'add', `${l.address}/${prefixLength}`, 'dev', l.dev]);
      await execIn(null, 'ip', ['-n', h.ns, 'link', 'set', l.dev, 'up']);
    }
    return [la, lb];
  }

  /** Two new hosts joined by a veth pair (underlay 198.18.N.1 and .2). */
  async pair(labelA = 'a', labelB = 'b', options: LinkOptions = {}): Promise<[Host, Host]> {
    const a = await this.addHost(labelA);
    const b = await this.addHost(labelB);
    await this.connect(a, b, options);
    return [a, b];
  }

  /**
   * N new hosts on one underlay segment: a bridge `br0` in a "switch" namespace, each host's
   * `veth0` plugged into it; host i (0-based) gets 198.18.N.(i+1)/24.
   */
  async switched(labels: string[], options: { mtu?: number } = {}): Promise<Host[]> {
    this.assertLive();
    if (labels.length < 2 || labels.length > 250) throw new Error('switched() wants 2..250 hosts');
    const n = this.linkCount++;
    if (n > 255) throw new Error('too many links in one lab');
    const sw = await this.newNamespace('sw');
    await execIn(null, 'ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
    if (options.mtu) await execIn(null, 'ip', ['-n', sw, 'link', 'set', 'br0', 'mtu', String(options.mtu)]);
    await execIn(null, 'ip', ['-n', sw, 'link', 'set', 'br0', 'up']);
    const hosts: Host[] = [];
    for (const [i, label] of labels.entries()) {
      const host = (await this.addHost(label)) as HostImpl;
      const dev = this.nextDev(host, 'veth');
      const port = `p${i}`;
      await execIn(null, 'ip', ['link', 'add', dev, 'netns', host.ns, 'type', 'veth', 'peer', 'name', port, 'netns', sw]);
      const link: HostLink = { dev, address: `${UNDERLAY_NET}.${n}.${i + 1}`, prefixLength: 24, peer: 'switch' };
      host.links.push(link);
      if (options.mtu) {
        await execIn(null, 'ip', ['-n', host.ns, 'link', 'set', dev, 'mtu', String(options.mtu)]);
        await execIn(null, 'ip', ['-n', sw, 'link', 'set', port, 'mtu', String(options.mtu)]);
      }
      await execIn(null, 'ip', ['-n', sw, 'link', 'set', port, 'master', 'br0']);
      await execIn(null, 'ip', ['-n', sw, 'link', 'set', port, 'up']);
      await execIn(null, 'ip', ['-n', host.ns, 'addr', 'add', `${link.address}/24`, 'dev', dev]);
      await execIn(null, 'ip', ['-n', host.ns, 'link', 'set', dev, 'up']);
      hosts.push(host);
    }
    return hosts;
  }

  /** Runs a command inside a host (or namespace name) and collects its output; rejects on failure. */
  exec(where: Host | string, cmd: string, args: readonly string[] = [], options: ExecOptions = {}): Promise<ExecResult> {
    this.assertLive();
    return execIn(typeof where === 'string' ? where : where.ns, cmd, args, options);
  }

  /** `ip -n NS ARGS...` */
  ip(where: Host | string, args: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    this.assertLive();
    return execIn(null, 'ip', ['-n', typeof where === 'string' ? where : where.ns, ...args], options);
  }

  /**
   * Starts a long-running command inside a host (or in the caller's namespace when `where` is
   * null), in its own process group. destroy() stops it if it is still running.
   */
  spawn(where: Host | string | null, cmd: string, args: readonly string[] = [], options: SpawnOptions = {}): LabProcess {
    this.assertLive();
    const ns = where === null ? null : typeof where === 'string' ? where : where.ns;
    const [file, argv] = nsArgv(ns, cmd, args);
    const child = spawnChild(file, argv, {
      detached: true,
      stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'],
      env: options.env ?? process.env,
      cwd: options.cwd,
    });
    const proc = new LabProcess(child, ns, (ns ? `[${ns}] ` : '') + quoteArgs(cmd, args));
    this.processes.add(proc);
    void proc.exited.then(() => this.processes.delete(proc));
    return proc;
  }

  async addAddress(where: Host | string, dev: string, cidr: string): Promise<void> {
    await this.ip(where, ['addr', 'add', cidr, 'dev', dev]);
  }

  /**
   * Creates a kernel VXLAN device in `host`:
   * `ip link add vx0 type vxlan id VNI local A [remote B] dstport 4789 dev vethX`, plus
   * `bridge fdb append 00:00:00:00:00:00 dst X dev vx0` per remote when there are several.
   */
  async kernelVxlan(host: Host, options: KernelVxlanOptions): Promise<string> {
    this.assertLive();
    const name = options.name ?? 'vx0';
    if (name.length > MAX_IFNAME) throw new Error(`interface name too long: ${name}`);
    const local = options.local ?? host.underlay;
    const dev = options.dev ?? host.underlayDev;
    if (!local || !dev) throw new Error(`host ${host.label} has no underlay link`);
    if (options.remotes.length === 0) throw new Error('kernelVxlan needs at least one remote');
    const args = ['link', 'add', name];
    if (options.mac) args.push('address', options.mac);
    args.push('type', 'vxlan', 'id', String(options.vni), 'local', local);
    if (options.remotes.length === 1) args.push('remote', options.remotes[0]!);
    args.push('dstport', String(options.port ?? VXLAN_PORT), 'dev', dev);
    if (options.learning === false) args.push('nolearning');
    await this.ip(host, args);
    if (options.remotes.length > 1) {
      for (const r of options.remotes) {
        await this.exec(host, 'bridge', ['fdb', 'append', '00:00:00:00:00:00', 'dst', r, 'dev', name]);
      }
    }
    if (options.mtu) await this.ip(host, ['link', 'set', name, 'mtu', String(options.mtu)]);
    if (!options.checksumOffload) await this.disableTxChecksumOffload(host, name);
    for (const cidr of options.addresses ?? []) await this.addAddress(host, name, cidr);
    await this.ip(host, ['link', 'set', name, 'up']);
    return name;
  }

  /**
   * Turns off transmit checksum offload on `dev` (`ethtool -K DEV tx off`, or the equivalent
   * SIOCETHTOOL ioctl when ethtool is not installed), so the stack computes checksums itself.
   */
  async disableTxChecksumOffload(where: Host | string, dev: string): Promise<void> {
    if (commandExists('ethtool')) {
      await this.exec(where, 'ethtool', ['-K', dev, 'tx', 'off']);
    } else {
      await this.exec(where, 'python3', ['-c', PY_TX_CSUM_OFF, dev]);
    }
  }

  /** Pings `address` from `host`; never rejects for lost replies (look at `received`). */
  async ping(host: Host | string, address: string, options: PingOptions = {}): Promise<PingResult> {
    this.assertLive();
    const count = options.count ?? 3;
    const interval = options.intervalSec ?? 0.2;
    const timeout = options.timeoutSec ?? 2;
    const size = options.size ?? 56;
    const deadline = Math.ceil(count * (interval + 0.05) + timeout + 1);
    let res: ExecResult;
    if (commandExists('ping')) {
      const args = ['-n', '-q', '-c', String(count), '-i', String(interval), '-W', String(timeout), '-s', String(size)];
      if (options.source) args.push('-I', options.source);
      args.push(address);
      res = await this.exec(host, 'ping', args, { allowFailure: true, timeoutMs: (deadline + 10) * 1000 });
    } else {
      res = await this.exec(host, 'python3', ['-c', PY_PING, address, String(count), String(interval), String(timeout), String(size), options.source ?? ''], {
        allowFailure: true,
        timeoutMs: (deadline + 10) * 1000,
      });
    }
    const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(res.stdout);
    if (!m) throw new Error(`cannot parse ping output (exit ${res.code}): ${res.stdout}${res.stderr}`);
    return { transmitted: Number(m[1]), received: Number(m[2]), output: res.stdout };
  }

  /**
   * Waits until something listens on `port` (TCP, or UDP with `udp`) inside the host, e.g. an
   * iperf3 server (whose own output is block-buffered when piped). Polls `ss`.
   */
  async waitForListen(where: Host | string, port: number, options: { udp?: boolean; timeoutMs?: number } = {}): Promise<void> {
    const end = Date.now() + (options.timeoutMs ?? 10_000);
    for (;;) {
      const { stdout } = await this.exec(where, 'ss', [options.udp ? '-Hlun' : '-Hltn'], { allowFailure: true });
      const listening = stdout.split('\n').some((line) => (line.trim().split(/\s+/)[3] ?? '').endsWith(`:${port}`));
      if (listening) return;
      if (Date.now() > end) throw new Error(`nothing listens on ${options.udp ? 'udp' : 'tcp'} port ${port} in ${typeof where === 'string' ? where : where.ns}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** MAC address of `dev` in `host`. */
  async macOf(host: Host | string, dev: string): Promise<string> {
    const { stdout } = await this.ip(host, ['-j', 'link', 'show', 'dev', dev]);
    const info = JSON.parse(stdout) as { address?: string }[];
    const mac = info[0]?.address;
    if (!mac) throw new Error(`no MAC for ${dev}`);
    return mac;
  }

  /** Interface names in a namespace (`ip -n NS link`). */
  async links(where: Host | string): Promise<string[]> {
    const { stdout } = await this.ip(where, ['-j', 'link', 'show']);
    return (JSON.parse(stdout) as { ifname: string }[]).map((l) => l.ifname);
  }

  /**
   * Removes everything: runs onDestroy hooks (last first), stops spawned processes (SIGTERM, then
   * SIGKILL), kills whatever is left inside the namespaces, deletes them and the temp directory.
   * Idempotent: later calls return the first call's promise. Rejects (after cleaning up all it
   * could) when a hook failed.
   */
  destroy(): Promise<void> {
    if (this.destroyed) return Promise.resolve();
    if (!this.destroying) this.destroying = this.doDestroy();
    return this.destroying;
  }

  private async doDestroy(): Promise<void> {
    const errors: unknown[] = [];
    for (const hook of this.hooks.splice(0).reverse()) {
      try {
        await withTimeout(Promise.resolve().then(hook), 30_000, 'lab onDestroy hook');
      } catch (err) {
        errors.push(err);
      }
    }
    await Promise.all([...this.processes].map((p) => p.stop(1500).catch(() => undefined)));
    for (const ns of [...this.namespaces].reverse()) {
      try {
        const { stdout } = await execIn(null, 'ip', ['netns', 'pids', ns], { allowFailure: true, timeoutMs: 10_000 });
        const pids = stdout.split(/\s+/).filter(Boolean).map(Number);
        for (const pid of pids) {
          if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid || pid === process.ppid) continue;
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      } catch {
        /* ignore */
      }
      const del = await execIn(null, 'ip', ['netns', 'del', ns], { allowFailure: true, timeoutMs: 10_000 }).catch((e: unknown) => ({ code: -1, stderr: String(e), stdout: '' }));
      if (del.code !== 0 && fs.existsSync(`/run/netns/${ns}`)) errors.push(new Error(`ip netns del ${ns}: ${del.stderr.trim()}`));
    }
    this.namespaces.length = 0;
    this.removeTmp();
    this.destroyed = true;
    liveLabs.delete(this);
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `lab destroy: ${errors.length} errors`);
  }

  /** Synchronous last-resort cleanup (process exit, signals): no hooks, SIGKILL everything. */
  destroySync(): void {
    if (this.destroyed) return;
    for (const p of this.processes) p.kill('SIGKILL');
    for (const ns of [...this.namespaces].reverse()) killAndDeleteNetnsSync(ns);
    this.namespaces.length = 0;
    this.removeTmp();
    this.destroyed = true;
    liveLabs.delete(this);
  }

  private removeTmp(): void {
    if (!this.tmp) return;
    try {
      fs.rmSync(this.tmp, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
    this.tmp = null;
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** ETHTOOL_STXCSUM(0) through SIOCETHTOOL: `ethtool -K DEV tx off` without ethtool. */
const PY_TX_CSUM_OFF = String.raw`
import array, fcntl, socket, struct, sys
SIOCETHTOOL, ETHTOOL_STXCSUM = 0x8946, 0x17
value = array.array('B', struct.pack('II', ETHTOOL_STXCSUM, 0))
ifreq = struct.pack('16sP', sys.argv[1].encode(), value.buffer_info()[0]) + bytes(16)
fcntl.ioctl(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), SIOCETHTOOL, ifreq)
`;

/** ICMP echo with a raw socket, for machines without iputils ping. Prints ping's summary line. */
const PY_PING = String.raw`
import os, select, socket, struct, sys, time
dst, count, interval, timeout, size, src = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
if src:
    s.bind((src, 0))
ident = os.getpid() & 0xffff
def csum(b):
    if len(b) % 2: b += b'\0'
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b)); t = (t >> 16) + (t & 0xffff); t += t >> 16
    return ~t & 0xffff
sent, got, start = {}, set(), {}
def recv_until(end, early):
    while not (early and len(got) == len(sent)):
        r = end - time.time()
        if r <= 0: return
        if not select.select([s], [], [], r)[0]: return
        data, addr = s.recvfrom(65535)
        ihl = (data[0] & 15) * 4
        t, _, _, i, sq = struct.unpack('!BBHHH', data[ihl:ihl + 8])
        if t == 0 and i == ident and addr[0] == dst and sq in sent: got.add(sq)
for seq in range(count):
    payload = bytes(size)
    c = csum(struct.pack('!BBHHH', 8, 0, 0, ident, seq) + payload)
    s.sendto(struct.pack('!BBHHH', 8, 0, c, ident, seq) + payload, (dst, 0))
    sent[seq] = time.time()
    recv_until(time.time() + (interval if seq < count - 1 else 0), False)
recv_until(time.time() + timeout, True)
print('%d packets transmitted, %d received' % (len(sent), len(got)))
sys.exit(0 if got else 1)
`;
