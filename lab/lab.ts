// The Lab: network namespaces joined by veth pairs (or a bridge in a "switch" namespace),
// processes run inside them, and the kernel's own VXLAN device as a reference peer.
//
// Everything a Lab makes is recorded and removed by destroy(): the processes it spawned (and any
// process left inside its namespaces), the namespaces themselves (which takes their interfaces
// with them) and its temporary directory. destroy() is idempotent; a synchronous variant runs
// on process exit and on SIGINT/SIGTERM (cleanup.ts), and Lab.create() sweeps namespaces left
// behind by a process of the same prefix that died without cleaning up (SIGKILL).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { registerLab, unregisterLab } from './cleanup';
import { execIn, type ExecOptions, type ExecResult } from './exec';
import { HostImpl, nextDev, UNDERLAY_NET, type Host, type HostLink, type LinkOptions } from './hosts';
import { addKernelVxlan, disableTxChecksumOffload, type KernelVxlanOptions } from './kernel-vxlan';
import { createNamespace, deleteNamespace, deleteNamespaceSync, namespaceName, sweepStaleNamespaces } from './namespaces';
import { LabProcess, spawnIn, type SpawnOptions } from './process';
import { linkNames, macOf, ping, waitForListen, type PingOptions, type PingResult } from './probes';
import { labUnavailableReason } from './system';

export interface LabOptions {
  /** Namespace name prefix (default 'ovt'): names are PREFIX-LABEL-PID-COUNTER. */
  prefix?: string;
  /** Keep IPv6 on in the namespaces (default off: no router solicitations, MLD or DAD noise on the overlay). */
  ipv6?: boolean;
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
    registerLab(lab);
    return lab;
  }

  /**
   * Deletes namespaces named PREFIX-LABEL-PID-N whose PID is no longer alive (a lab whose process
   * was SIGKILLed). Returns the names removed.
   */
  static sweepStale(prefix = 'ovt'): string[] {
    return sweepStaleNamespaces(prefix);
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
    const ns = namespaceName(this.prefix, label);
    // Record before creating: a failure half-way still gets cleaned up.
    this.namespaces.push(ns);
    await createNamespace(ns, this.ipv6);
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
    const devA = nextDev(ha, 'veth');
    const devB = nextDev(hb, 'veth');
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
      const dev = nextDev(host, 'veth');
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
    const proc = spawnIn(ns, cmd, args, options);
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
    return addKernelVxlan(this, host, options);
  }

  /**
   * Turns off transmit checksum offload on `dev` (`ethtool -K DEV tx off`, or the equivalent
   * SIOCETHTOOL ioctl when ethtool is not installed), so the stack computes checksums itself.
   */
  disableTxChecksumOffload(where: Host | string, dev: string): Promise<void> {
    return disableTxChecksumOffload(this, where, dev);
  }

  /** Pings `address` from `host`; never rejects for lost replies (look at `received`). */
  async ping(host: Host | string, address: string, options: PingOptions = {}): Promise<PingResult> {
    this.assertLive();
    return ping(this, host, address, options);
  }

  /**
   * Waits until something listens on `port` (TCP, or UDP with `udp`) inside the host, e.g. an
   * iperf3 server (whose own output is block-buffered when piped). Polls `ss`.
   */
  waitForListen(where: Host | string, port: number, options: { udp?: boolean; timeoutMs?: number } = {}): Promise<void> {
    return waitForListen(this, where, port, options);
  }

  /** MAC address of `dev` in `host`. */
  macOf(host: Host | string, dev: string): Promise<string> {
    return macOf(this, host, dev);
  }

  /** Interface names in a namespace (`ip -n NS link`). */
  links(where: Host | string): Promise<string[]> {
    return linkNames(this, where);
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
      const err = await deleteNamespace(ns);
      if (err) errors.push(err);
    }
    this.namespaces.length = 0;
    this.removeTmp();
    this.destroyed = true;
    unregisterLab(this);
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `lab destroy: ${errors.length} errors`);
  }

  /** Synchronous last-resort cleanup (process exit, signals): no hooks, SIGKILL everything. */
  destroySync(): void {
    if (this.destroyed) return;
    for (const p of this.processes) p.kill('SIGKILL');
    for (const ns of [...this.namespaces].reverse()) deleteNamespaceSync(ns);
    this.namespaces.length = 0;
    this.removeTmp();
    this.destroyed = true;
    unregisterLab(this);
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
