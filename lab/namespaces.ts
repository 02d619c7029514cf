// Network namespaces of a lab: their names (PREFIX-LABEL-PID-COUNTER), creation, and deletion
// together with every process still inside, asynchronously (destroy()) or synchronously (exit
// and signal handlers, and the sweep of namespaces left by a process that died).
//
// A name alone does not say whose a namespace is: the PID in it means another process in
// another PID namespace (a container, a second CI job on the host), where "no such process"
// says nothing. So every namespace a lab makes gets an owner record (the process's PID, its
// start time and its PID namespace), and the sweep removes only namespaces whose record says
// they were made from this PID namespace by a process that is gone. A namespace without a
// record is never touched.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { execIn } from './exec';
import { childEnv } from './sanitizer-env';

/** Owner records, one file per namespace (a tmpfs: gone at reboot, as the namespaces are). */
export const OWNER_DIR = '/run/overlayfwd-lab';

export interface NamespaceOwner {
  pid: number;
  /** Start time of `pid` in clock ticks since boot (/proc/PID/stat field 22): a reused PID differs. */
  startTime: string;
  /** The PID namespace, as /proc/self/ns/pid reads ("pid:[4026531836]"). */
  pidNamespace: string;
}

function startTimeOf(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function thisOwner(): NamespaceOwner {
  return { pid: process.pid, startTime: startTimeOf(process.pid) ?? '', pidNamespace: fs.readlinkSync('/proc/self/ns/pid') };
}

/** Writes the owner record of `ns`: this process. */
export function recordOwner(ns: string, owner: NamespaceOwner = thisOwner()): void {
  fs.mkdirSync(OWNER_DIR, { recursive: true, mode: 0o755 });
  fs.writeFileSync(path.join(OWNER_DIR, ns), JSON.stringify(owner));
}

function readOwner(ns: string): NamespaceOwner | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(OWNER_DIR, ns), 'utf8')) as NamespaceOwner;
  } catch {
    return null;
  }
}

function forgetOwner(ns: string): void {
  fs.rmSync(path.join(OWNER_DIR, ns), { force: true });
}

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
  recordOwner(ns);
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
  forgetOwner(ns);
  return null;
}

/** Kills every process whose network namespace is `ns` (except this process and its parent) and deletes it. */
export function deleteNamespaceSync(ns: string): void {
  try {
    killPids(execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000, env: childEnv('ip') }));
  } catch {
    /* namespace already gone */
  }
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 10_000, env: childEnv('ip') });
  } catch {
    /* already gone */
  }
  if (!fs.existsSync(`/run/netns/${ns}`)) forgetOwner(ns);
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
    const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], env: childEnv('ip') });
    return out
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[0] ?? '')
      .filter(Boolean);
  } catch {
    return [];
  }
}

/**
 * Deletes namespaces named PREFIX-LABEL-PID-N that a lab of this PID namespace made (their
 * owner record says so) and whose maker is gone: its PID is dead, or now belongs to a process
 * that started later. Namespaces without a record, or made from another PID namespace, are left
 * alone. Returns the names removed.
 */
export function sweepStaleNamespaces(prefix: string): string[] {
  const re = new RegExp(`^${prefix}-[a-z][a-z0-9]*-(\\d+)-\\d+$`);
  const me = thisOwner();
  const removed: string[] = [];
  for (const ns of listNetnsSync()) {
    if (!re.test(ns)) continue;
    const owner = readOwner(ns);
    if (!owner || owner.pidNamespace !== me.pidNamespace || owner.pid === process.pid) continue;
    if (pidAlive(owner.pid) && startTimeOf(owner.pid) === owner.startTime) continue;
    deleteNamespaceSync(ns);
    forgetOwner(ns);
    removed.push(ns);
  }
  return removed;
}
