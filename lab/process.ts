// Long-running processes of a lab: started in their own process group, inside a namespace or in
// the caller's own, with their output captured.
import { spawn as spawnChild } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { nsArgv, quoteArgs } from './exec';
import { childEnv } from './sanitizer-env';

const MAX_CAPTURED_OUTPUT = 4 * 1024 * 1024;

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** 'pipe' to write to the child's stdin (LabProcess.child.stdin); default 'ignore'. */
  stdin?: 'pipe' | 'ignore';
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A process spawned by a Lab, with its output captured. Stopped by Lab.destroy() at the latest. */
export class LabProcess {
  stdout = '';
  stderr = '';
  status: ExitStatus | null = null;
  readonly exited: Promise<ExitStatus>;
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly child: ChildProcess,
    readonly ns: string | null,
    readonly command: string,
  ) {
    const append = (which: 'stdout' | 'stderr') => (chunk: Buffer) => {
      let text = this[which] + chunk.toString('utf8');
      if (text.length > MAX_CAPTURED_OUTPUT) text = text.slice(text.length - MAX_CAPTURED_OUTPUT);
      this[which] = text;
      for (const l of this.listeners) l();
    };
    child.stdout?.on('data', append('stdout'));
    child.stderr?.on('data', append('stderr'));
    this.exited = new Promise<ExitStatus>((resolve) => {
      const done = (code: number | null, signal: NodeJS.Signals | null) => {
        if (this.status) return;
        this.status = { code, signal };
        for (const l of this.listeners) l();
        resolve(this.status);
      };
      child.on('error', (err) => {
        this.stderr += `\nspawn error: ${err.message}`;
        done(null, null);
      });
      child.on('close', done);
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.status === null;
  }

  /** Resolves with the captured output once `pattern` appears in stdout or stderr; rejects on exit or timeout. */
  waitForOutput(pattern: RegExp | string, timeoutMs = 10_000): Promise<string> {
    const test = (s: string) => (typeof pattern === 'string' ? s.includes(pattern) : pattern.test(s));
    return new Promise<string>((resolve, reject) => {
      const check = () => {
        const all = this.stdout + this.stderr;
        if (test(this.stdout) || test(this.stderr)) {
          cleanup();
          resolve(all);
        } else if (this.status) {
          cleanup();
          reject(new Error(`${this.command} exited (${this.describeStatus()}) before printing ${String(pattern)}; output:\n${all.slice(-2000)}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${String(pattern)} from ${this.command}; output:\n${(this.stdout + this.stderr).slice(-2000)}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
      check();
    });
  }

  /** Waits for the process to exit; rejects after timeoutMs (the process keeps running). */
  async wait(timeoutMs = 60_000): Promise<ExitStatus> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${this.command} to exit; output:\n${(this.stdout + this.stderr).slice(-2000)}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Like wait(), but rejects unless the process exits with code 0. Returns stdout. */
  async succeed(timeoutMs = 60_000): Promise<string> {
    const st = await this.wait(timeoutMs);
    if (st.code !== 0) {
      throw new Error(`${this.command} failed (${this.describeStatus()}):\n${(this.stderr || this.stdout).slice(-4000)}`);
    }
    return this.stdout;
  }

  /** Sends a signal to the process group (the process and anything it started). */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (!this.running || this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      try {
        this.child.kill(signal);
      } catch {
        /* gone */
      }
    }
  }

  /** SIGTERM (or `signal`), then SIGKILL after graceMs. */
  async stop(graceMs = 2000, signal: NodeJS.Signals = 'SIGTERM'): Promise<ExitStatus> {
    if (!this.running) return this.status!;
    this.kill(signal);
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  describeStatus(): string {
    if (!this.status) return 'running';
    return this.status.signal ? `signal ${this.status.signal}` : `exit ${this.status.code}`;
  }
}

/** Starts `cmd args` inside namespace `ns` (or in the caller's own when null), in its own process group. */
export function spawnIn(ns: string | null, cmd: string, args: readonly string[] = [], options: SpawnOptions = {}): LabProcess {
  const [file, argv] = nsArgv(ns, cmd, args);
  const child = spawnChild(file, argv, {
    detached: true,
    stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'],
    env: childEnv(cmd, options.env ?? process.env),
    cwd: options.cwd,
  });
  return new LabProcess(child, ns, (ns ? `[${ns}] ` : '') + quoteArgs(cmd, args));
}
