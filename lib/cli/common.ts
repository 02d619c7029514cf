// Shared by the CLI commands: exit codes, error reporting, finding the instance, table output.
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, defaultSocketPath, isConfigError, runDir, type ConfigIssue } from '../config';
import { configWarnings } from '../config/warnings';
import { configTooLarge, loadConfigText, maxConfigBytes, readBounded, sourceName, type BoundedText } from '../config/load';
import { probeSocket } from '../control';
import type { ResolvedConfig } from '../types';

export const EXIT_OK = 0;
/** A runtime failure: a system call failed, no instance is running, ... */
export const EXIT_FAILURE = 1;
/** Bad usage or a bad config: unknown option, invalid config or peer. */
export const EXIT_USAGE = 2;

/** An error caused by how the command was invoked (exit code 2). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function printIssues(heading: string, err: ConfigError): void {
  const lines = [`overlayfwd: ${heading}:`, ...err.issues.map((i) => `  ${i.path}: ${i.message}`)];
  process.stderr.write(`${lines.join('\n')}\n`);
}

/** Prints an error the way every command does and returns the exit code for it. */
/** Which privilege a refused system call wanted, as far as its message tells. */
function privilegeHint(e: NodeJS.ErrnoException): string {
  const text = `${e.syscall ?? ''} ${e.message}`;
  if (/\bbind\b/.test(text)) return 'binding a port below 1024 (IKE on 500) needs CAP_NET_BIND_SERVICE (run as root, or grant it)';
  if (/\bsetns\b|netns/.test(text)) return 'entering another network namespace (netns:) needs CAP_SYS_ADMIN (run as root, or grant it)';
  // Opening the device node is a file permission, which no network capability grants.
  if (/\/dev\/net\/tun/.test(text) && e.syscall === 'open') {
    return 'a user other than root needs /dev/net/tun open to it (udev makes it mode 0666; chmod 666 /dev/net/tun), besides CAP_NET_ADMIN';
  }
  return 'creating devices and raw sockets needs CAP_NET_ADMIN and CAP_NET_RAW (run as root, or grant them)';
}

export function reportError(err: unknown, configHeading = 'invalid config'): number {
  if (isConfigError(err)) {
    printIssues(configHeading, err);
    return EXIT_USAGE;
  }
  const e: NodeJS.ErrnoException = err instanceof Error ? err : new Error(String(err));
  process.stderr.write(`overlayfwd: ${e.message}\n`);
  if ((e.code === 'EPERM' || e.code === 'EACCES') && e.syscall) process.stderr.write(`overlayfwd: hint: ${privilegeHint(e)}\n`);
  return err instanceof UsageError ? EXIT_USAGE : EXIT_FAILURE;
}

export interface InstanceOptions {
  instance?: string;
  socket?: string;
}

/** The control sockets in the run directory that an instance listens on, by name. */
async function liveInstances(): Promise<string[]> {
  const dir = runDir();
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir).filter((f) => f.endsWith('.sock'));
  } catch {
    // no directory: no instance
  }
  const live: string[] = [];
  for (const name of names.sort()) {
    const file = path.join(dir, name);
    if ((await probeSocket(file).catch(() => 'absent')) === 'live') live.push(file);
  }
  return live;
}

function namedSocket(opts: InstanceOptions): string | undefined {
  if (opts.socket) return opts.socket;
  if (opts.instance === undefined) return undefined;
  if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(opts.instance)) {
    throw new UsageError(`invalid instance name ${JSON.stringify(opts.instance)}`);
  }
  return defaultSocketPath(opts.instance);
}

/**
 * The control socket of a read-only command (stats, peers list, fdb, nodes, showconf): --socket;
 * else <run dir>/<--instance>.sock; else the only live instance in the run directory.
 */
export async function resolveSocket(opts: InstanceOptions): Promise<string> {
  const named = namedSocket(opts);
  if (named !== undefined) return named;
  const dir = runDir();
  const live = await liveInstances();
  if (live.length === 1) return live[0]!;
  if (live.length === 0) {
    throw new Error(`no running instance found in ${dir} (start one with "overlayfwd up", or use -n NAME / -s SOCKET)`);
  }
  const instances = live.map((f) => path.basename(f, '.sock'));
  throw new UsageError(`several instances are running (${instances.join(', ')}): choose one with -n NAME`);
}

/**
 * The control socket of a command that changes an instance (peers add|remove, reload): it must
 * be named, with -n NAME or -s SOCKET, even when only one instance runs, so that a command meant
 * for one host's instance never lands on another because it happened to be the only one up.
 * `command` is how the command is called in the message ("peers add").
 */
export async function requireSocket(opts: InstanceOptions, command: string): Promise<string> {
  const named = namedSocket(opts);
  if (named !== undefined) return named;
  const running = (await liveInstances().catch(() => [])).map((f) => path.basename(f, '.sock'));
  throw new UsageError(
    `${command} changes a running instance: name it with -n NAME or -s SOCKET` +
      (running.length > 0 ? ` (running here: ${running.join(', ')})` : ''),
  );
}

// ---------------------------------------------------------------------------------------------
// Reading input files: configs and SA files, "-" for stdin

/** Reads all of stdin, refusing more than `maxBytes` (stops reading at the byte over). Throws ConfigError at `(file)`. */
export async function readStdin(maxBytes: number, tooLarge?: () => ConfigError): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  const stdin = process.stdin;
  if (stdin.isTTY) process.stderr.write('overlayfwd: reading from stdin (end with Ctrl-D)\n');
  try {
    for await (const chunk of stdin) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
      total += buf.length;
      if (total > maxBytes) {
        throw tooLarge?.() ?? new ConfigError([{ path: '(file)', message: `${sourceName('-')}: more than ${formatBytes(maxBytes)}; refusing it` }]);
      }
      chunks.push(buf);
    }
  } finally {
    stdin.destroy();
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The text of the config named by -c: a file, or stdin for "-", at most maxConfigBytes() (16 MiB
 * unless $OVERLAYFWD_MAX_CONFIG_BYTES says otherwise). Throws ConfigError (exit 2).
 */
export async function readConfigText(file: string): Promise<BoundedText> {
  const limit = maxConfigBytes();
  if (file !== '-') return readBounded(file, limit);
  return { text: await readStdin(limit, () => configTooLarge(sourceName('-'), limit)), mode: null };
}

/** The config named by -c: a file, or stdin for "-". Throws ConfigError (exit 2). */
export async function readConfig(file: string): Promise<ResolvedConfig> {
  return loadConfigText((await readConfigText(file)).text, sourceName(file));
}

/** The config named by -c and its warnings (lib/config/warnings.ts), for check and up. Throws ConfigError (exit 2). */
export async function readConfigWithWarnings(file: string): Promise<{ config: ResolvedConfig; warnings: ConfigIssue[] }> {
  const { text, mode } = await readConfigText(file);
  const config = loadConfigText(text, sourceName(file));
  return { config, warnings: configWarnings(config, file === '-' ? null : { name: file, mode }) };
}

/** One line on stderr per warning: `overlayfwd: warning: FIELD: what`. */
export function printWarnings(warnings: readonly ConfigIssue[]): void {
  for (const w of warnings) process.stderr.write(`overlayfwd: warning: ${w.path === '(file)' ? '' : `${w.path}: `}${w.message}\n`);
}

/**
 * Reads a small file that holds secrets (an SA file), or stdin for "-": at most `maxBytes`, and
 * never a device or a FIFO that would not end. Throws ConfigError at `(file)`.
 */
export async function readSmallFile(file: string, maxBytes: number): Promise<string> {
  if (file === '-') return readStdin(maxBytes);
  const fail = (why: string): never => {
    throw new ConfigError([{ path: '(file)', message: `cannot read ${file}: ${why}` }]);
  };
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return fail(code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message);
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) return fail('is a directory');
    if (!st.isFile()) return fail('not a regular file');
    if (st.size > maxBytes) return fail(`larger than ${formatBytes(maxBytes)}`);
    warnIfOthersCanRead(file, st);
    const buf = Buffer.alloc(maxBytes + 1);
    let n = 0;
    for (let r; n < buf.length && (r = fs.readSync(fd, buf, n, buf.length - n, null)) > 0; ) n += r;
    if (n > maxBytes) return fail(`larger than ${formatBytes(maxBytes)}`);
    return buf.subarray(0, n).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

/** As wg-quick does: a file with keys that group or others may read gets a warning on stderr. */
export function warnIfOthersCanRead(file: string, st: fs.Stats): void {
  if ((st.mode & 0o077) === 0) return;
  const mode = (st.mode & 0o777).toString(8).padStart(3, '0');
  process.stderr.write(`overlayfwd: warning: ${file} holds keys and is accessible by others (mode ${mode}); chmod 600 ${file}\n`);
}

/** The package's version (the `started` log line, --version). */
export function packageVersion(): string {
  // lib/cli (sources) or dist/lib/cli (compiled): walk up to the package's own package.json.
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'overlayfwd' && pkg.version) return pkg.version;
    } catch {
      // keep looking
    }
    if (path.dirname(dir) === dir) return 'unknown';
  }
}

// ---------------------------------------------------------------------------------------------
// Formatting

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

const SI = ['', 'k', 'M', 'G', 'T', 'P', 'E'];

/** 1234567 → "1.23 M" (SI, three significant digits). */
export function si(value: number, unit: string): string {
  let v = value;
  let i = 0;
  while (Math.abs(v) >= 1000 && i < SI.length - 1) {
    v /= 1000;
    i++;
  }
  const text = i === 0 ? String(Math.round(v)) : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  return `${text} ${SI[i]}${unit}`;
}

export function formatBytes(n: number): string {
  return si(n, 'B');
}

/** Renders rows as a text table; columns after the first are right-aligned unless `left` says so. */
export function table(header: string[], rows: string[][], left: ReadonlySet<number> = new Set([0])): string {
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
  return all
    .map((r) =>
      r
        .map((cell, c) => {
          const w = widths[c] ?? 0;
          const last = c === r.length - 1;
          if (left.has(c)) return last ? cell : cell.padEnd(w);
          return cell.padStart(w);
        })
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
