// Looking at a lab host from outside: ping, listening sockets, link names, MAC addresses and
// the kernel's protocol counters.
import type { ExecResult } from './exec';
import type { Host } from './hosts';
import type { Lab } from './lab';
import { commandExists, helperPath } from './system';

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

/** Lab.ping(): iputils ping, or lab/helpers/ping.py where ping is not installed. */
export async function ping(lab: Lab, host: Host | string, address: string, options: PingOptions = {}): Promise<PingResult> {
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
    res = await lab.exec(host, 'ping', args, { allowFailure: true, timeoutMs: (deadline + 10) * 1000 });
  } else {
    res = await lab.exec(host, 'python3', [helperPath('ping.py'), address, String(count), String(interval), String(timeout), String(size), options.source ?? ''], {
      allowFailure: true,
      timeoutMs: (deadline + 10) * 1000,
    });
  }
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(res.stdout);
  if (!m) throw new Error(`cannot parse ping output (exit ${res.code}): ${res.stdout}${res.stderr}`);
  return { transmitted: Number(m[1]), received: Number(m[2]), output: res.stdout };
}

/** Lab.waitForListen(): polls `ss` until something listens on `port`. */
export async function waitForListen(lab: Lab, where: Host | string, port: number, options: { udp?: boolean; timeoutMs?: number } = {}): Promise<void> {
  const end = Date.now() + (options.timeoutMs ?? 10_000);
  for (;;) {
    const { stdout } = await lab.exec(where, 'ss', [options.udp ? '-Hlun' : '-Hltn'], { allowFailure: true });
    const listening = stdout.split('\n').some((line) => (line.trim().split(/\s+/)[3] ?? '').endsWith(`:${port}`));
    if (listening) return;
    if (Date.now() > end) throw new Error(`nothing listens on ${options.udp ? 'udp' : 'tcp'} port ${port} in ${typeof where === 'string' ? where : where.ns}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** MAC address of `dev` in `host`. */
export async function macOf(lab: Lab, host: Host | string, dev: string): Promise<string> {
  const { stdout } = await lab.ip(host, ['-j', 'link', 'show', 'dev', dev]);
  const info = JSON.parse(stdout) as { address?: string }[];
  const mac = info[0]?.address;
  if (!mac) throw new Error(`no MAC for ${dev}`);
  return mac;
}

/** Interface names in a namespace (`ip -n NS link`). */
export async function linkNames(lab: Lab, where: Host | string): Promise<string[]> {
  const { stdout } = await lab.ip(where, ['-j', 'link', 'show']);
  return (JSON.parse(stdout) as { ifname: string }[]).map((l) => l.ifname);
}

/** Reads a counter line pair (e.g. 'Udp:') of /proc/net/snmp inside a namespace. */
export async function snmpCounters(lab: Lab, host: Host, proto: string): Promise<Record<string, number>> {
  const { stdout } = await lab.exec(host, 'cat', ['/proc/net/snmp']);
  const lines = stdout.split('\n').filter((l) => l.startsWith(`${proto}:`));
  const names = (lines[0] ?? '').split(/\s+/).slice(1);
  const values = (lines[1] ?? '').split(/\s+/).slice(1).map(Number);
  const out: Record<string, number> = {};
  names.forEach((n, i) => {
    out[n] = values[i] ?? 0;
  });
  return out;
}
