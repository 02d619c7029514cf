// One end of a soak overlay: `overlayfwd up -c FILE` as a child process of its own (so that its
// memory, descriptors and threads are the overlay's, not the bench's), its config file, its
// control socket, and what its log says.
import fs from 'node:fs';
import path from 'node:path';
import type { Lab, LabProcess } from '../../lab';
import { controlRequest, type ControlRequest, type ControlResults } from '../../lib/control';
import { processResources, type ProcessResources } from '../proc';
import type { SoakMode } from './args';
import { baseConfig, persistentPeer, type ModeEnds, type Side } from './configs';
import { GcTrace } from './gc-trace';
import type { LogTally } from './types';

const CLI_MAIN = path.resolve(__dirname, '..', '..', 'lib', 'cli', 'main.js');
/** Prefixes of the names of the peers that come and go: runtime (peers add) and file (reload). */
export const RUNTIME_PREFIX = 'r';
export const FILE_PREFIX = 'f';
/** The most warning and error lines kept as they were written. */
const KEEP_LINES = 50;

/** The log lines that count what the soak is after: rekeys done, SAs set up. */
const COUNTED = ['Child SA rekeyed', 'Child SA installed', 'IKE SA rekeyed', 'IKE SA established', 'peer table installed', 'packets dropped'];
/** Warnings that restate what the soak judges by itself: the drop summary repeats the drop counters (and covers the start, before the soak). */
const RESTATED = new Set(['packets dropped']);

export class SoakInstance {
  readonly log: LogTally = { counted: {}, warnings: 0, transientWarnings: 0, lines: [] };
  /** V8's heap, from the --trace-gc lines `up` prints on stdout. */
  readonly gc = new GcTrace();
  private variant = 0;
  private partial = '';

  private constructor(
    readonly ends: ModeEnds,
    readonly side: Side,
    readonly socket: string,
    readonly file: string,
    private readonly rekeySec: number,
    readonly proc: LabProcess,
  ) {
    proc.child.stderr?.on('data', (chunk: Buffer) => this.onLog(chunk.toString('utf8')));
    proc.child.stdout?.on('data', (chunk: Buffer) => this.gc.feed(chunk.toString('utf8')));
  }

  get mode(): SoakMode {
    return this.ends.mode;
  }

  get label(): string {
    return `${this.mode}/${this.side}`;
  }

  get pid(): number {
    return this.proc.pid!;
  }

  /**
   * Writes the config (the persistent peer and no other), starts `up` at log level info (its lines
   * also to DIR/MODE-SIDE.log) with --trace-gc, and with --gc-global when `fullGc` (every
   * collection a full one: RSS carries no garbage a deferred full collection would free, and the
   * heap after each is what is live); waits for its banner.
   */
  static async start(lab: Lab, ends: ModeEnds, side: Side, rekeySec: number, logDir: string | null, fullGc: boolean): Promise<SoakInstance> {
    const dir = lab.tmpdir();
    const socket = path.join(dir, `${ends.mode}-${side}.sock`);
    const file = path.join(dir, `${ends.mode}-${side}.yaml`);
    fs.writeFileSync(file, `${JSON.stringify({ ...baseConfig(ends, side, socket, rekeySec, 0), peers: [persistentPeer(ends, side)] }, null, 2)}\n`, { mode: 0o600 });
    // OVERLAYFWD_SOAK_NODE_ARGS: more node flags for every `up` (e.g. --heapsnapshot-signal=SIGUSR2,
    // to see what the heap holds); what they print goes with its log.
    const nodeArgs = ['--trace-gc', ...(fullGc ? ['--gc-global'] : []), ...(process.env['OVERLAYFWD_SOAK_NODE_ARGS'] ?? '').split(' ').filter(Boolean)];
    const proc = lab.spawn(null, process.execPath, [...nodeArgs, CLI_MAIN, 'up', '-c', file, '--log-level', 'info']);
    const instance = new SoakInstance(ends, side, socket, file, rekeySec, proc);
    if (logDir) {
      fs.mkdirSync(logDir, { recursive: true });
      const out = fs.createWriteStream(path.join(logDir, `${ends.mode}-${side}.log`));
      // Both streams into one file: neither may end it for the other.
      proc.child.stderr?.pipe(out, { end: false });
      proc.child.stdout?.pipe(out, { end: false });
      void proc.exited.then(() => out.end());
    }
    await proc.waitForOutput(/ up: /, 30_000);
    return instance;
  }

  /** Rewrites the config file with the persistent peer and `extra` peers; each call flips a live setting (esp: ike.dpdSeconds). */
  writeConfig(extra: Record<string, unknown>[]): void {
    this.variant++;
    const config = { ...baseConfig(this.ends, this.side, this.socket, this.rekeySec, this.variant), peers: [persistentPeer(this.ends, this.side), ...extra] };
    // YAML is a superset of JSON: `up` reads this as it reads any config.
    fs.writeFileSync(this.file, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  }

  request<R extends ControlRequest>(req: R): Promise<ControlResults[R['cmd']]> {
    return controlRequest(this.socket, req, 10_000);
  }

  /** /proc of the `up` process; null once it has exited. */
  resources(): ProcessResources | null {
    if (!this.proc.running) return null;
    try {
      return processResources(this.pid);
    } catch {
      return null;
    }
  }

  /** SIGTERM and the exit status (`up` closes the overlay and exits 0). */
  async stop(): Promise<string> {
    await this.proc.stop(10_000);
    return this.proc.describeStatus();
  }

  private onLog(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.trim()) continue;
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        this.keep(line);
        this.log.warnings++;
        continue;
      }
      const msg = String(entry['msg'] ?? '');
      if (COUNTED.includes(msg)) this.log.counted[msg] = (this.log.counted[msg] ?? 0) + 1;
      const level = entry['level'];
      if ((level !== 'warn' && level !== 'error' && level !== 'fatal') || RESTATED.has(msg)) continue;
      // A peer that comes and goes points at nobody: its IKE requests go unanswered, as they should.
      const peer = typeof entry['peer'] === 'string' ? entry['peer'] : '';
      if (new RegExp(`^(${RUNTIME_PREFIX}|${FILE_PREFIX})\\d+$`).test(peer)) {
        this.log.transientWarnings++;
        continue;
      }
      this.log.warnings++;
      this.keep(line);
    }
  }

  private keep(line: string): void {
    if (this.log.lines.length < KEEP_LINES) this.log.lines.push(line.slice(0, 1000));
  }
}
