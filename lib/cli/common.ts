// Shared by the CLI commands: exit codes, error reporting, finding the instance, table output.
import fs from 'node:fs';
import path from 'node:path';
import { defaultSocketPath, isConfigError, runDir, type ConfigError } from '../config';
import { probeSocket } from '../control';

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
export function reportError(err: unknown, configHeading = 'invalid config'): number {
  if (isConfigError(err)) {
    printIssues(configHeading, err);
    return EXIT_USAGE;
  }
  const e: NodeJS.ErrnoException = err instanceof Error ? err : new Error(String(err));
  process.stderr.write(`overlayfwd: ${e.message}\n`);
  if ((e.code === 'EPERM' || e.code === 'EACCES') && e.syscall) {
    process.stderr.write('overlayfwd: hint: creating devices and raw sockets needs CAP_NET_ADMIN (run as root)\n');
  }
  return err instanceof UsageError ? EXIT_USAGE : EXIT_FAILURE;
}

export interface InstanceOptions {
  instance?: string;
  socket?: string;
}

/**
 * The control socket to talk to: --socket; else <run dir>/<--instance>.sock; else the only live
 * instance in the run directory.
 */
export async function resolveSocket(opts: InstanceOptions): Promise<string> {
  if (opts.socket) return opts.socket;
  if (opts.instance !== undefined) {
    if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(opts.instance)) {
      throw new UsageError(`invalid instance name ${JSON.stringify(opts.instance)}`);
    }
    return defaultSocketPath(opts.instance);
  }
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
  if (live.length === 1) return live[0]!;
  if (live.length === 0) {
    throw new Error(`no running instance found in ${dir} (start one with "overlayfwd up", or use -n NAME / -s SOCKET)`);
  }
  const instances = live.map((f) => path.basename(f, '.sock'));
  throw new UsageError(`several instances are running (${instances.join(', ')}): choose one with -n NAME`);
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
