// Floods of crafted UDP datagrams at full rate (lab/helpers/udp-flood.c, compiled on demand):
// the payloads are built once here and written to a file, the C sender stamps the fields that
// vary (the spoofed source address, a random inner source MAC) and blasts them with sendmmsg on a
// raw socket. And the memory and descriptors of this process, where the forwarders run.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { commandExists } from '../../lab';
import type { Host, Lab, LabProcess } from '../../lab';
import { helperPath } from '../../lab/system';

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
  /** Niceness of the sender (default 10): it shares the cores with the forwarders it floods. */
  nice?: number;
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
  const args = ['-n', String(o.nice ?? 10), bin, '--dst', o.dst, '--port', String(o.port), '--payloads', file, '--src', o.src, '--sources', String(o.sources ?? 1)];
  if (o.randomMacAt !== undefined) args.push('--random-mac', String(o.randomMacAt));
  const proc = lab.spawn(host, 'nice', args);
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

/** VmRSS of this process in bytes (/proc/self/status). */
export function rssBytes(): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error('no VmRSS in /proc/self/status');
  return Number(m[1]) * 1024;
}

/** Open file descriptors of this process. */
export function fdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}
