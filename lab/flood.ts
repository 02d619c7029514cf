// Floods of crafted UDP datagrams at full rate (helpers/udp-flood.c, compiled on demand): the
// payloads are built once by the caller and written to a file, the C sender stamps the fields
// that vary (the spoofed source address, a random inner source MAC) and blasts them with sendmmsg
// on a raw socket, on a CPU of its own. Used by the floods test and the floods bench.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Host } from './hosts';
import type { Lab } from './lab';
import type { LabProcess } from './process';
import { commandExists, helperPath } from './system';

export interface FloodOptions {
  /** Destination address and UDP port. */
  dst: string;
  port: number;
  /** The UDP payloads, sent in turn. */
  payloads: Buffer[];
  /** First source address; the i-th datagram comes from src + (i mod sources). */
  src: string;
  sources?: number;
  /** Write a fresh random unicast MAC at this offset of every payload. */
  randomMacAt?: number;
  /** The CPU the sender runs on (default: the last one; see pinAwayFromFlood). */
  cpu?: number;
}

export interface FloodResult {
  sent: number;
  seconds: number;
  pps: number;
  errors: number;
}

export interface Flood {
  readonly process: LabProcess;
  stop(): Promise<FloodResult>;
}

let built: string | null = null;

/** Compiles udp-flood into the lab's temporary directory (once per test file). */
export function buildFlooder(lab: Lab): string {
  if (built && fs.existsSync(built)) return built;
  const cc = commandExists('cc') ? 'cc' : commandExists('gcc') ? 'gcc' : null;
  if (!cc) throw new Error('no C compiler (cc) to build udp-flood');
  const out = path.join(lab.tmpdir(), 'udp-flood');
  try {
    execFileSync(cc, ['-O2', '-Wall', '-o', out, helperPath('udp-flood.c')], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: Buffer };
    throw new Error(`cc udp-flood.c: ${e.stderr?.toString().trim() || (err as Error).message}`);
  }
  built = out;
  return out;
}

let floods = 0;

/**
 * Host x, the flooder: on a second link of `a`'s, with a route to `underlayA` (an address of a's)
 * through it; a's reverse-path filter off, so that a takes any source from it. Returns x and
 * its address on the link.
 */
export async function addFlooder(lab: Lab, a: Host, underlayA: string): Promise<{ x: Host; address: string }> {
  const x = await lab.addHost('x');
  const [ax, xa] = await lab.connect(a, x);
  await lab.ip(x, ['route', 'add', `${underlayA}/32`, 'via', ax.address]);
  await lab.exec(a, 'sysctl', ['-q', '-w', 'net.ipv4.conf.all.rp_filter=0', `net.ipv4.conf.${ax.dev}.rp_filter=0`]);
  return { x, address: xa.address };
}

/** The CPU floods run on: the last one. */
export function floodCpu(): number {
  return os.cpus().length - 1;
}

/**
 * Keeps this process (every thread, and so the forwarders' workers, and every child it spawns
 * from now on, the transfers included) off the flood's CPU, until the returned function restores
 * the old affinity. The flood's sender is one thread that runs flat out, and over a veth the
 * kernel's receive path for what it sends (into the flooded host's socket) runs in its context
 * too: on a 2-core machine, sharing a core with it measures the lab, not the forwarder. With this
 * the transfer has the other core both unloaded and under the flood; what the flood costs it is
 * the forwarder's work to read and reject the flood. A no-op on a single CPU.
 */
export function pinAwayFromFlood(): () => void {
  const cpus = os.cpus().length;
  if (cpus < 2) return () => undefined;
  const before = execFileSync('taskset', ['-p', String(process.pid)], { encoding: 'utf8' }).trim().split(/\s+/).pop()!;
  execFileSync('taskset', ['-a', '-p', '-c', `0-${floodCpu() - 1}`, String(process.pid)], { stdio: 'ignore' });
  return () => execFileSync('taskset', ['-a', '-p', before, String(process.pid)], { stdio: 'ignore' });
}

/** Starts a flood from `host`; resolves once its socket is open. */
export async function startFlood(lab: Lab, host: Host, o: FloodOptions): Promise<Flood> {
  const bin = buildFlooder(lab);
  const file = path.join(lab.tmpdir(), `flood-${++floods}.bin`);
  fs.writeFileSync(
    file,
    Buffer.concat(
      o.payloads.flatMap((p) => {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(p.length);
        return [len, p];
      }),
    ),
  );
  const args = ['-c', String(o.cpu ?? floodCpu()), bin, '--dst', o.dst, '--port', String(o.port), '--payloads', file, '--src', o.src, '--sources', String(o.sources ?? 1)];
  if (o.randomMacAt !== undefined) args.push('--random-mac', String(o.randomMacAt));
  const proc = lab.spawn(host, 'taskset', args);
  await proc.waitForOutput('ready', 15_000);
  return {
    process: proc,
    async stop(): Promise<FloodResult> {
      proc.kill('SIGTERM');
      await proc.wait(10_000);
      const line = proc.stdout.split('\n').find((l) => l.startsWith('{'));
      if (!line) throw new Error(`udp-flood printed no result (${proc.describeStatus()}): ${proc.stderr.slice(-500)}`);
      return JSON.parse(line) as FloodResult;
    },
  };
}

