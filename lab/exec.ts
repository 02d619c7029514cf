// Running a command to completion, inside a network namespace or in the caller's own.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { childEnv } from './sanitizer-env';

const execFileAsync = promisify(execFile);

const DEFAULT_EXEC_TIMEOUT_MS = 60_000;

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

/** The command line as a shell would show it, long arguments (inline scripts) cut short. */
export function quoteArgs(cmd: string, args: readonly string[]): string {
  return [cmd, ...args]
    .map((a) => (a.length > 60 || a.includes('\n') ? `${a.trim().split('\n')[0]!.slice(0, 40)}…` : a))
    .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}

/** The file and argv that run `cmd args` inside namespace `ns` (`ip netns exec`), or directly when null. */
export function nsArgv(ns: string | null, cmd: string, args: readonly string[]): [string, string[]] {
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
      env: childEnv(cmd, options.env ?? process.env),
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
