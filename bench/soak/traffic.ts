// The soak's traffic across each mode's overlay, in rounds, each generator started again when its
// round ends, every round counted: a rate-limited iperf3 TCP stream a -> b, a UDP stream of small
// datagrams a -> b (lab/udp-stream.ts, every datagram counted against what the kernel dropped),
// and ping b -> a at 10 a second. The rates keep the whole soak well under half a core.
import { startUdpStream, type Host, type Lab, type LabProcess } from '../../lab';
import type { SoakMode } from './args';
import type { TrafficKind, TrafficRound } from './types';

export const ROUND_SEC = 30;
export const TCP_RATE = '20M';
export const UDP_PPS = 200;
export const UDP_SIZE = 64;
export const PING_INTERVAL_SEC = 0.1;
const IPERF_PORT = 5201;
const UDP_PORT = 5301;

/** What a round measured; the loop adds when and what. */
type RoundFigures = Omit<TrafficRound, 'mode' | 'kind' | 'start' | 'end' | 'partial'>;

export interface TrafficEnds {
  mode: SoakMode;
  a: Host;
  b: Host;
  /** Overlay addresses. */
  addressA: string;
  addressB: string;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message.split('\n')[0]! : String(err);
}

/** Rounds of the three generators of one mode, until stop(). */
export class ModeTraffic {
  readonly rounds: TrafficRound[] = [];
  private stopping = false;
  private onStop: () => void = () => undefined;
  /** Resolves when stop() is called: every wait of a round races it. */
  private readonly stopped = new Promise<void>((r) => (this.onStop = r));
  private readonly current = new Set<LabProcess>();
  private server: LabProcess | null = null;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly lab: Lab,
    private readonly ends: TrafficEnds,
    /** Seconds since the soak's start. */
    private readonly now: () => number,
  ) {}

  start(): void {
    this.loops = [this.loop('tcp', () => this.tcpRound()), this.loop('udp', () => this.udpRound()), this.loop('ping', () => this.pingRound())];
  }

  /** Ends every round now: the UDP stream and ping count what they did, a TCP round cut short is not recorded. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.onStop();
    for (const p of this.current) p.kill('SIGINT');
    await Promise.all(this.loops);
    await this.server?.stop(2000).catch(() => undefined);
  }

  private async loop(kind: TrafficKind, round: () => Promise<RoundFigures>): Promise<void> {
    while (!this.stopping) {
      const start = this.now();
      let r: RoundFigures;
      try {
        r = await round();
      } catch (err) {
        r = { sent: null, received: null, lost: null, error: errorText(err) };
      }
      const end = this.now();
      // The soak's end came during the round: it was cut short (or ended just then).
      const partial = this.stopping;
      // A TCP round cut short has no figures: not a failure, not worth a record.
      if (!(partial && kind === 'tcp')) this.rounds.push({ mode: this.ends.mode, kind, start, end, partial, ...r });
      // A round that failed at once must not spin: wait a little before the next.
      if (end - start < 1) await this.sleep(1000);
    }
  }

  /** Sleeps `ms`, or less when the soak ends meanwhile. */
  private async sleep(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.stopped, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
  }

  private track(p: LabProcess): LabProcess {
    this.current.add(p);
    void p.exited.then(() => this.current.delete(p));
    return p;
  }

  private async tcpRound(): Promise<RoundFigures> {
    const { lab, ends } = this;
    if (!this.server?.running) {
      this.server = lab.spawn(ends.b, 'iperf3', ['-s', '-B', ends.addressB, '-p', String(IPERF_PORT)]);
      await lab.waitForListen(ends.b, IPERF_PORT);
    }
    const client = this.track(
      lab.spawn(ends.a, 'iperf3', ['-c', ends.addressB, '-p', String(IPERF_PORT), '-t', String(ROUND_SEC), '-b', TCP_RATE, '-J', '--connect-timeout', '5000']),
    );
    const st = await client.wait((ROUND_SEC + 30) * 1000).catch(async (err: unknown) => {
      await client.stop(1000);
      throw err;
    });
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(client.stdout) as Record<string, unknown>;
    } catch {
      throw new Error(`iperf3 exited ${st.code ?? st.signal} without JSON: ${(client.stdout + client.stderr).trim().slice(0, 200)}`);
    }
    if (typeof doc['error'] === 'string') throw new Error(`iperf3: ${doc['error']}`);
    const end = (doc['end'] ?? {}) as Record<string, Record<string, number> | undefined>;
    const sent = end['sum_sent'];
    const received = end['sum_received'];
    if (!sent || !received) throw new Error('iperf3: no end.sum_sent / sum_received');
    return {
      sent: sent['bytes'] ?? null,
      received: received['bytes'] ?? null,
      lost: null,
      bitsPerSecond: received['bits_per_second'] ?? 0,
      retransmits: typeof sent['retransmits'] === 'number' ? sent['retransmits'] : null,
    };
  }

  private async udpRound(): Promise<RoundFigures> {
    const { lab, ends } = this;
    const stream = await startUdpStream(lab, { from: ends.a, to: ends.b, address: ends.addressB, port: UDP_PORT, pps: UDP_PPS, size: UDP_SIZE });
    await this.sleep(ROUND_SEC * 1000);
    const r = await stream.stop();
    return { sent: r.sent, received: r.received, lost: r.lost, kernelDrops: r.kernel.total, sendErrors: r.sendErrors };
  }

  private async pingRound(): Promise<RoundFigures> {
    const { lab, ends } = this;
    const count = Math.round(ROUND_SEC / PING_INTERVAL_SEC);
    // SIGINT at the end of the soak: ping prints its summary of what it sent so far.
    const ping = this.track(lab.spawn(ends.b, 'ping', ['-n', '-q', '-i', String(PING_INTERVAL_SEC), '-c', String(count), '-W', '2', ends.addressA]));
    await ping.wait((ROUND_SEC + 30) * 1000).catch(async (err: unknown) => {
      await ping.stop(1000);
      throw err;
    });
    const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(ping.stdout);
    if (!m) throw new Error(`ping: no summary: ${(ping.stdout + ping.stderr).trim().slice(-200)}`);
    const transmitted = Number(m[1]);
    const received = Number(m[2]);
    return { sent: transmitted, received, lost: transmitted - received };
  }
}
