// Network namespaces of a lab: their names (PREFIX-LABEL-PID-COUNTER), creation, and deletion
// together with every process still inside, asynchronously (destroy()) or synchronously (exit
// and signal handlers, and the sweep of namespaces left by a process that died).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { execIn } from './exec';

const LABEL_RE = /^[a-z][a-z0-9]{0,11}$/;

let nsCounter = 0;

/** A fresh namespace name for host `label` of a lab with `prefix`: PREFIX-LABEL-PID-COUNTER. */
export function namespaceName(prefix: string, label: string): string {
  if (!LABEL_RE.test(label)) throw new Error(`bad host label ${JSON.stringify(label)} (want [a-z][a-z0-9]{0,11})`);
  return `${prefix}-${label}-${process.pid}-${++nsCounter}`;
}

/** Creates namespace `ns` with loopback up and, unless `ipv6`, IPv6 switched off. */
export async function createNamespace(ns: string, ipv6: boolean): Promise<void> {
  await execIn(null, 'ip', ['netns', 'add', ns]);
  await execIn(null, 'ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  if (!ipv6) {
    await execIn(ns, 'sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1', 'net.ipv6.conf.lo.disable_ipv6=1']);
  }
}

/** SIGKILLs the pids of `ip netns pids` output, except init, this process and its parent. */
function killPids(pidList: string): void {
  for (const p of pidList.split(/\s+/).filter(Boolean)) {
    const pid = Number(p);
    if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid || pid === process.ppid) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** Kills every process inside `ns` and deletes it; the error when it is still there afterwards. */
export async function deleteNamespace(ns: string): Promise<Error | null> {
  try {
    const { stdout } = await execIn(null, 'ip', ['netns', 'pids', ns], { allowFailure: true, timeoutMs: 10_000 });
    killPids(stdout);
  } catch {
    /* ignore */
  }
  const del = await execIn(null, 'ip', ['netns', 'del', ns], { allowFailure: true, timeoutMs: 10_000 }).catch((e: unknown) => ({ code: -1, stderr: String(e), stdout: '' }));
  if (del.code !== 0 && fs.existsSync(`/run/netns/${ns}`)) return new Error(`ip netns del ${ns}: ${del.stderr.trim()}`);
  return null;
}

/** Kills every process whose network namespace is `ns` (except this process and its parent) and deletes it. */
export function deleteNamespaceSync(ns: string): void {
  try {
    killPids(execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }));
  } catch {
    /* namespace already gone */
  }
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 10_000 });
  } catch {
    /* already gone */
  }
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

/**
 * Deletes namespaces named PREFIX-LABEL-PID-N whose PID is no longer alive (a lab whose process
 * was SIGKILLed). Returns the names removed.
 */
export function sweepStaleNamespaces(prefix: string): string[] {
  const re = new RegExp(`^${prefix}-[a-z][a-z0-9]*-(\\d+)-\\d+$`);
  const removed: string[] = [];
  for (const ns of listNetnsSync()) {
    const m = re.exec(ns);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    deleteNamespaceSync(ns);
    removed.push(ns);
  }
  return removed;
}
