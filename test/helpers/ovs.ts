// Open vSwitch's userspace datapath as an independent tunnel peer, run inside a lab host.
//
// startOvs() starts a private ovsdb-server and ovs-vswitchd inside the host's namespace (their
// own database, sockets, pid and log files under the lab's temporary directory; OVS_RUNDIR,
// OVS_DBDIR, OVS_LOGDIR and OVS_SYSCONFDIR point there, so nothing under /var/run/openvswitch is
// touched and a system-wide OVS, if any, is never talked to) and builds the topology of OVS's
// "userspace tunneling" guide, with both bridges on the netdev (userspace) datapath:
//
//   198.19.0.2/24 ── br-int (LOCAL port: a tap the kernel sees, MTU = underlay − overhead)
//                      └─ tun0  type=vxlan|geneve|gre, options:remote_ip, options:key
//   198.18.N.2/24 ── br-phy (LOCAL port: a tap; the underlay address is MOVED here)
//                      └─ veth0 (the host's underlay veth, read and written through AF_PACKET)
//
// The underlay address has to live on br-phy: a netdev-datapath tunnel port sends through OVS's
// own route table (ovs/route/show, copied from the namespace's kernel routes, so the route to the
// remote must point at a bridge) and neighbour cache (tnl/arp/show, learnt by snooping ARP on
// that bridge), and it decapsulates what arrives for an address of one of OVS's own ports. An
// address left on the veth belongs to the kernel alone, and OVS would neither send nor receive.
// start() waits until OVS routes to the remote through br-phy and knows its MAC (it pings the
// remote over the underlay, which also teaches the remote's kernel br-phy's MAC).
//
// Everything ends with the lab: the daemons are lab processes (SIGTERM, then SIGKILL, on
// Lab.destroy() whether the test passed or not), anything else left in the namespace is killed,
// and OVS's taps (ovs-netdev, br-phy, br-int) vanish with the namespace.
//
// The peer that talks to OVS must not leave checksums to offload on the veth that faces it
// (`lab.disableTxChecksumOffload(peer, dev)`): OVS reads the veth through AF_PACKET, which hands
// it the packet with the checksum never filled in, and drops it as a tunnel pop error.
import fs from 'node:fs';
import path from 'node:path';
import type { ExecResult, Host, Lab, LabProcess } from '../../lab';
import { waitFor } from './env';

export type OvsTunnelType = 'vxlan' | 'geneve' | 'gre';

export interface OvsTunnel {
  /** OVS interface type. `gre` is Ethernet over GRE (protocol 0x6558), as overlayfwd's gre on TAP. */
  type: OvsTunnelType;
  /** options:key: the VNI for vxlan and geneve (required), the GRE key for gre (optional: no K bit without it). */
  key?: number;
  /** More `options:NAME=VALUE` for the tunnel interface, e.g. { csum: 'true' } (GRE C bit, UDP checksum). */
  options?: Record<string, string>;
}

/** Bytes a tunnel adds to an inner Ethernet frame's payload with an IPv4 underlay (outer IP + tunnel + inner Ethernet). */
export function tunnelOverhead(t: OvsTunnel): number {
  switch (t.type) {
    case 'vxlan':
    case 'geneve': // OVS sends no Geneve options unless a flow sets tun_metadata
      return 20 + 8 + 8 + 14;
    case 'gre':
      return 20 + 4 + (t.key !== undefined ? 4 : 0) + (t.options?.csum === 'true' ? 4 : 0) + 14;
  }
}

/** The overlayfwd `encap` section that talks to this OVS tunnel. */
export function encapFor(t: OvsTunnel): Record<string, unknown> {
  switch (t.type) {
    case 'vxlan':
    case 'geneve':
      if (t.key === undefined) throw new Error(`${t.type} needs a key (the VNI)`);
      return { type: t.type, vni: t.key };
    case 'gre':
      return { type: 'gre', ...(t.key !== undefined ? { key: t.key } : {}), ...(t.options?.csum === 'true' ? { checksum: true } : {}) };
  }
}

export interface OvsHostOptions {
  /** CIDR for br-int, the overlay side, e.g. '198.19.0.2/24'. */
  address: string;
  /** Underlay address of the remote tunnel endpoint (options:remote_ip). */
  remoteIp: string;
  tunnel: OvsTunnel;
  /** br-int MTU (default: the underlay veth's MTU minus tunnelOverhead()). */
  mtu?: number;
}

/** OpenFlow port counters (ovs-ofctl dump-ports). */
export interface OvsPortStats {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
}

const SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema';
/**
 * OVS coverage counters of packets the datapath dropped (tunnel pop/push errors, invalid ports,
 * upcall failures, ...). OpenFlow pipeline drops (drop_action_*) are left out: a learning switch
 * makes some legitimately.
 */
const DATAPATH_DROP_COVERAGE = /^datapath_drop_\w+$/;

export class OvsHost {
  /** The tunnel interface on br-int. */
  readonly tunnelPort = 'tun0';
  readonly intBridge = 'br-int';
  readonly phyBridge = 'br-phy';
  mtu = 0;

  private constructor(
    readonly lab: Lab,
    readonly host: Host,
    readonly dir: string,
    readonly tunnel: OvsTunnel,
    private readonly env: NodeJS.ProcessEnv,
    readonly processes: LabProcess[],
  ) {}

  get dbSocket(): string {
    return path.join(this.dir, 'run', 'db.sock');
  }

  get vswitchdCtl(): string {
    return path.join(this.dir, 'run', 'ovs-vswitchd.ctl');
  }

  /** `ovs-vsctl --db=unix:SOCK ARGS` in the host (waits for ovs-vswitchd to apply a change). */
  vsctl(args: readonly string[], options: { allowFailure?: boolean } = {}): Promise<ExecResult> {
    return this.lab.exec(this.host, 'ovs-vsctl', [`--db=unix:${this.dbSocket}`, '--timeout=20', ...args], { env: this.env, timeoutMs: 30_000, ...options });
  }

  /** `ovs-appctl -t ovs-vswitchd.ctl ARGS` in the host. */
  appctl(args: readonly string[], options: { allowFailure?: boolean } = {}): Promise<ExecResult> {
    return this.lab.exec(this.host, 'ovs-appctl', ['-t', this.vswitchdCtl, '--timeout=10', ...args], { env: this.env, timeoutMs: 20_000, ...options });
  }

  /** MAC address of br-int, the overlay-side device (what overlayfwd learns). */
  async overlayMac(): Promise<string> {
    return this.lab.macOf(this.host, this.intBridge);
  }

  /** `ovs-ofctl ARGS` in the host (finds the bridges' OpenFlow sockets under OVS_RUNDIR). */
  ofctl(args: readonly string[]): Promise<ExecResult> {
    return this.lab.exec(this.host, 'ovs-ofctl', ['--timeout=10', ...args], { env: this.env, timeoutMs: 20_000 });
  }

  /**
   * OpenFlow counters of a port of br-int (default: the tunnel port): rx = frames that came out of
   * the tunnel (decapsulated), tx = frames sent into it (encapsulated). OVS adds the datapath's
   * flow counters to them every revalidator round (about every 500 ms), so poll for a value
   * (waitForPortStats) rather than read it once right after the traffic.
   */
  async portStats(port = this.tunnelPort, bridge = this.intBridge): Promise<OvsPortStats> {
    const { stdout } = await this.ofctl(['dump-ports', bridge, port]);
    const num = (re: RegExp) => {
      const m = re.exec(stdout);
      if (!m) throw new Error(`cannot parse ovs-ofctl dump-ports ${bridge} ${port}:\n${stdout}`);
      return Number(m[1]);
    };
    return {
      rxPackets: num(/rx pkts=(\d+)/),
      rxBytes: num(/rx pkts=\d+, bytes=(\d+)/),
      txPackets: num(/tx pkts=(\d+)/),
      txBytes: num(/tx pkts=\d+, bytes=(\d+)/),
    };
  }

  /**
   * Polls portStats() until `want` holds for the counters minus `since` (a portStats() taken
   * before the traffic); resolves with that difference, rejects with the last one after timeoutMs.
   */
  async waitForPortStats(since: OvsPortStats, want: (d: OvsPortStats) => boolean, what: string, timeoutMs = 8_000): Promise<OvsPortStats> {
    let d: OvsPortStats = { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0 };
    const diff = (now: OvsPortStats): OvsPortStats => ({
      rxPackets: now.rxPackets - since.rxPackets,
      rxBytes: now.rxBytes - since.rxBytes,
      txPackets: now.txPackets - since.txPackets,
      txBytes: now.txBytes - since.txBytes,
    });
    try {
      await waitFor(async () => want((d = diff(await this.portStats()))), what, timeoutMs, 100);
    } catch (err) {
      throw new Error(`${(err as Error).message}: OVS ${this.tunnelPort} counters moved by ${JSON.stringify(d)}`);
    }
    return d;
  }

  /** Totals of OVS's datapath drop coverage counters (e.g. datapath_drop_tunnel_pop_error), by name. */
  async dropCoverage(): Promise<Record<string, number>> {
    const { stdout } = await this.appctl(['coverage/show']);
    const out: Record<string, number> = {};
    for (const line of stdout.split('\n')) {
      const m = /^(\S+)\s.*total:\s*(\d+)/.exec(line.trim());
      if (m && DATAPATH_DROP_COVERAGE.test(m[1]!)) out[m[1]!] = Number(m[2]);
    }
    return out;
  }

  /** What to look at when traffic does not flow: routes, neighbours, datapath flows, drops, log tail. */
  async diagnostics(): Promise<string> {
    const parts: string[] = [];
    const run = async (what: string, p: Promise<ExecResult>) => {
      try {
        const r = await p;
        parts.push(`--- ${what}\n${(r.stdout + r.stderr).trim()}`);
      } catch (err) {
        parts.push(`--- ${what}: ${(err as Error).message}`);
      }
    };
    await run('ovs-vsctl show', this.vsctl(['show'], { allowFailure: true }));
    await run('ovs/route/show', this.appctl(['ovs/route/show'], { allowFailure: true }));
    await run('tnl/arp/show', this.appctl(['tnl/arp/show'], { allowFailure: true }));
    await run('tnl/ports/show', this.appctl(['tnl/ports/show'], { allowFailure: true }));
    await run('dpctl/dump-flows', this.appctl(['dpctl/dump-flows'], { allowFailure: true }));
    parts.push(`--- drop coverage\n${JSON.stringify(await this.dropCoverage().catch((e: Error) => e.message))}`);
    for (const p of this.processes) if (!p.running) parts.push(`--- ${p.command} exited (${p.describeStatus()}): ${(p.stderr + p.stdout).slice(-1000)}`);
    const log = path.join(this.dir, 'log', 'ovs-vswitchd.log');
    if (fs.existsSync(log)) parts.push(`--- ovs-vswitchd.log (tail)\n${fs.readFileSync(log, 'utf8').split('\n').slice(-40).join('\n')}`);
    return parts.join('\n');
  }

  /**
   * Starts ovsdb-server and ovs-vswitchd inside `host` and builds br-phy (the host's first
   * underlay veth, with the underlay address moved to the bridge) and br-int (the tunnel port and
   * `options.address`). Resolves once OVS routes to and knows the MAC of `remoteIp`.
   */
  static async start(lab: Lab, host: Host, options: OvsHostOptions): Promise<OvsHost> {
    const link = host.links[0];
    if (!link) throw new Error(`host ${host.label} has no underlay link for br-phy`);
    const t = options.tunnel;
    if ((t.type === 'vxlan' || t.type === 'geneve') && t.key === undefined) throw new Error(`${t.type} tunnel needs a key (the VNI)`);

    const dir = fs.mkdtempSync(path.join(lab.tmpdir(), `ovs-${host.label}-`));
    const d = (sub: string) => path.join(dir, sub);
    for (const sub of ['run', 'db', 'log', 'etc']) fs.mkdirSync(d(sub));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      OVS_RUNDIR: d('run'),
      OVS_DBDIR: d('db'),
      OVS_LOGDIR: d('log'),
      OVS_SYSCONFDIR: d('etc'),
    };
    const processes: LabProcess[] = [];
    const ovs = new OvsHost(lab, host, dir, t, env, processes);

    const db = path.join(d('db'), 'conf.db');
    await lab.exec(host, 'ovsdb-tool', ['create', db, SCHEMA], { env });

    // Both daemons run in the foreground as lab processes: Lab.destroy() stops them (and would
    // kill them with the namespace anyway), whether the test passed or not.
    const daemon = async (cmd: string, args: string[], ready: () => Promise<boolean>, what: string) => {
      const proc = lab.spawn(host, cmd, args, { env });
      processes.push(proc);
      await waitFor(
        async () => {
          if (!proc.running) throw new Error(`${cmd} exited (${proc.describeStatus()}): ${(proc.stderr + proc.stdout).slice(-2000)}`);
          return ready();
        },
        what,
        20_000,
        50,
      );
    };
    const quiet = ['-vconsole:warn', '-vfile:info'];
    await daemon(
      'ovsdb-server',
      [db, `--remote=punix:${ovs.dbSocket}`, `--unixctl=${d('run/ovsdb-server.ctl')}`, `--pidfile=${d('run/ovsdb-server.pid')}`, `--log-file=${d('log/ovsdb-server.log')}`, ...quiet],
      async () => fs.existsSync(ovs.dbSocket) && (await lab.exec(host, 'ovs-vsctl', [`--db=unix:${ovs.dbSocket}`, '--no-wait', 'init'], { env, allowFailure: true })).code === 0,
      'ovsdb-server to accept ovs-vsctl',
    );
    await daemon(
      'ovs-vswitchd',
      [
        `unix:${ovs.dbSocket}`,
        // The userspace (netdev) datapath only: never the kernel's openvswitch module.
        '--disable-system',
        `--unixctl=${ovs.vswitchdCtl}`,
        `--pidfile=${d('run/ovs-vswitchd.pid')}`,
        `--log-file=${d('log/ovs-vswitchd.log')}`,
        ...quiet,
      ],
      async () => fs.existsSync(ovs.vswitchdCtl) && (await ovs.appctl(['version'], { allowFailure: true })).code === 0,
      'ovs-vswitchd to answer ovs-appctl',
    );

    // br-phy: the underlay veth becomes a port, its address moves to the bridge's LOCAL port.
    const underlayMtu = Number((JSON.parse((await lab.ip(host, ['-j', 'link', 'show', 'dev', link.dev])).stdout) as { mtu: number }[])[0]?.mtu ?? 1500);
    await ovs.vsctl(['add-br', ovs.phyBridge, '--', 'set', 'bridge', ovs.phyBridge, 'datapath_type=netdev', '--', 'add-port', ovs.phyBridge, link.dev]);
    await ovs.vsctl(['set', 'interface', ovs.phyBridge, `mtu_request=${underlayMtu}`]);
    await lab.ip(host, ['addr', 'flush', 'dev', link.dev]);
    await lab.ip(host, ['addr', 'add', `${link.address}/${link.prefixLength}`, 'dev', ovs.phyBridge]);
    await lab.ip(host, ['link', 'set', ovs.phyBridge, 'up']);

    // br-int: the tunnel port and the overlay address.
    ovs.mtu = options.mtu ?? underlayMtu - tunnelOverhead(t);
    const tunnelOptions: string[] = [`options:remote_ip=${options.remoteIp}`];
    if (t.key !== undefined) tunnelOptions.push(`options:key=${t.key}`);
    for (const [k, v] of Object.entries(t.options ?? {})) tunnelOptions.push(`options:${k}=${v}`);
    await ovs.vsctl([
      'add-br', ovs.intBridge, '--', 'set', 'bridge', ovs.intBridge, 'datapath_type=netdev',
      '--', 'add-port', ovs.intBridge, ovs.tunnelPort,
      '--', 'set', 'interface', ovs.tunnelPort, `type=${t.type}`, ...tunnelOptions,
      '--', 'set', 'interface', ovs.intBridge, `mtu_request=${ovs.mtu}`,
    ]); // prettier-ignore
    await lab.ip(host, ['addr', 'add', options.address, 'dev', ovs.intBridge]);
    await lab.ip(host, ['link', 'set', ovs.intBridge, 'up']);

    // OVS's tunnel routing: wait for the kernel route to the remote to reach OVS's route cache.
    await waitFor(
      async () => /dev\s+br-phy\b/.test((await ovs.appctl(['ovs/route/lookup', options.remoteIp], { allowFailure: true })).stdout),
      `OVS to route ${options.remoteIp} via ${ovs.phyBridge}`,
      10_000,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await ovs.diagnostics()}`);
    });
    // ...and its neighbour cache: an underlay ping through br-phy lets OVS snoop the reply; if it
    // did not, copy the kernel's entry (OVS would drop tunnel packets while it resolves).
    const ping = await lab.ping(host, options.remoteIp, { count: 1, timeoutSec: 3 });
    if (ping.received !== 1) throw new Error(`underlay ping from ${host.label} through ${ovs.phyBridge} to ${options.remoteIp} failed\n${await ovs.diagnostics()}`);
    const known = async () => (await ovs.appctl(['tnl/arp/show'])).stdout.split('\n').some((l) => l.trim().split(/\s+/)[0] === options.remoteIp);
    if (!(await waitFor(known, 'OVS tunnel ARP entry', 1000).then(() => true, () => false))) {
      const { stdout } = await lab.ip(host, ['-j', 'neigh', 'show', options.remoteIp, 'dev', ovs.phyBridge]);
      const mac = (JSON.parse(stdout) as { lladdr?: string }[])[0]?.lladdr;
      if (!mac) throw new Error(`no neighbour entry for ${options.remoteIp} on ${ovs.phyBridge}\n${await ovs.diagnostics()}`);
      await ovs.appctl(['tnl/arp/set', ovs.phyBridge, options.remoteIp, mac]);
    }
    const ports = (await ovs.appctl(['tnl/ports/show'])).stdout;
    if (!/\(\d+\)/.test(ports.split('\n').slice(1).join('\n'))) throw new Error(`OVS lists no listening tunnel port:\n${ports}`);
    return ovs;
  }
}

/** Starts Open vSwitch in `host` as the tunnel peer of `options.remoteIp`; see OvsHost.start. */
export function startOvs(lab: Lab, host: Host, options: OvsHostOptions): Promise<OvsHost> {
  return OvsHost.start(lab, host, options);
}
