// Peer churn at one end, through its control socket as `overlayfwd peers add|remove` and
// `overlayfwd reload` do it: every CHURN_SEC a peer is added (and the oldest runtime peer removed
// once LIVE_RUNTIME_PEERS are in), and every RELOAD_EVERY steps the config file is rewritten and
// reloaded instead (alternately with two peers of its own and with none; the runtime peers go,
// since the file is the truth; in esp an IKE setting flips too). After each step peers list must
// show exactly the peers the soak made.
import type { ChurnTally } from './types';
import { transientPeer } from './configs';
import { FILE_PREFIX, RUNTIME_PREFIX, type SoakInstance } from './instance';

export const CHURN_SEC = 3;
export const RELOAD_EVERY = 10;
export const LIVE_RUNTIME_PEERS = 3;
const KEEP = 20;

function errorText(err: unknown): string {
  return err instanceof Error ? err.message.split('\n')[0]! : String(err);
}

export class Churn {
  readonly tally: ChurnTally = { adds: 0, removes: 0, reloads: 0, reloadsApplied: 0, mismatches: [], mismatchSteps: 0, errors: [], failures: 0 };
  private stopping = false;
  private onStop: () => void = () => undefined;
  private readonly stopped = new Promise<void>((r) => (this.onStop = r));
  private loop: Promise<void> | null = null;
  private next = 0;
  private runtime: string[] = [];
  private file: string[] = [];

  constructor(
    private readonly instance: SoakInstance,
    /** Delay of the first step, so that the ends of a mode do not churn in the same tick. */
    private readonly offsetMs: number,
  ) {}

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.onStop();
    await this.loop;
  }

  private async sleep(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.stopped, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
  }

  private failed(what: string, err: unknown): void {
    this.tally.failures++;
    if (this.tally.errors.length < KEEP) this.tally.errors.push(`${what}: ${errorText(err)}`);
  }

  private async run(): Promise<void> {
    await this.sleep(this.offsetMs);
    for (let step = 1; !this.stopping; step++) {
      if (step % RELOAD_EVERY === 0) await this.reload();
      else await this.addAndRemove();
      await this.check(step);
      await this.sleep(CHURN_SEC * 1000);
    }
  }

  private peer(prefix: string): Record<string, unknown> {
    return transientPeer(this.instance.ends, this.instance.side, this.next++, prefix);
  }

  private async addAndRemove(): Promise<void> {
    const peer = this.peer(RUNTIME_PREFIX);
    try {
      await this.instance.request({ cmd: 'peers.add', peer });
      this.runtime.push(String(peer['name']));
      this.tally.adds++;
    } catch (err) {
      this.failed(`peers add ${String(peer['name'])}`, err);
    }
    if (this.runtime.length <= LIVE_RUNTIME_PEERS) return;
    const name = this.runtime.shift()!;
    try {
      const { removed } = await this.instance.request({ cmd: 'peers.remove', name });
      if (!removed) throw new Error('the instance had no such peer');
      this.tally.removes++;
    } catch (err) {
      this.failed(`peers remove ${name}`, err);
    }
  }

  private async reload(): Promise<void> {
    const extra = this.tally.reloads % 2 === 0 ? [this.peer(FILE_PREFIX), this.peer(FILE_PREFIX)] : [];
    this.instance.writeConfig(extra);
    this.tally.reloads++;
    try {
      const r = await this.instance.request({ cmd: 'reload' });
      if (r.applied) this.tally.reloadsApplied++;
      this.file = extra.map((p) => String(p['name']));
      this.runtime = [];
    } catch (err) {
      this.failed('reload', err);
    }
  }

  private async check(step: number): Promise<void> {
    const other = this.instance.side === 'a' ? 'b' : 'a';
    const expected = [other, ...this.file, ...this.runtime].sort();
    try {
      const names = (await this.instance.request({ cmd: 'peers.list' })).map((p) => p.name).sort();
      if (names.join(',') !== expected.join(',')) {
        this.tally.mismatchSteps++;
        if (this.tally.mismatches.length < KEEP) this.tally.mismatches.push(`step ${step}: peers ${names.join(',')}, expected ${expected.join(',')}`);
      }
    } catch (err) {
      this.failed('peers list', err);
    }
  }
}
