// One sample of every end: /proc of its `up` process first (before the requests below open a
// control connection in it), then its stats and peers over the control socket; and the CPU the
// whole soak and the machine used since the previous sample.
import type { Counters, OverlayStats, PeerInfo } from '../../lib/types';
import { hostBusySeconds, treeCpuSeconds } from '../proc';
import type { SoakInstance } from './instance';
import type { DropLog, EspSaCounts, InstanceSample, Sample } from './types';

/** Dropped packets kept per end (the earliest), their bytes cut to what names the packet (outer headers, SPI, sequence). */
const KEEP_DROPS = 100;
const KEEP_DROP_BYTES = 48;

/** Drop reasons at 0 left out: two dozen zeros per peer per sample would be most of the file. */
function compactCounters(c: Counters): Counters {
  return { ...c, drops: Object.fromEntries(Object.entries(c.drops).filter(([, n]) => n !== 0)) as Counters['drops'] };
}

function idle(c: Counters): boolean {
  return c.txPackets === 0 && c.rxPackets === 0 && c.floodPackets === 0 && (c.rxWireBytes ?? 0) === 0 && Object.values(c.drops).every((n) => n === 0);
}

/**
 * The stats as the control socket gave them, made smaller for a file of hundreds of samples:
 * drop reasons at 0 left out, and peers that have moved nothing at all (most of those that come
 * and go) named in `idle` instead of listed with their zeros.
 */
export function compactStats(s: OverlayStats): { stats: OverlayStats; idle: string[] } {
  const peers = Object.entries(s.peers);
  return {
    stats: { ...s, totals: compactCounters(s.totals), peers: Object.fromEntries(peers.filter(([, c]) => !idle(c)).map(([k, c]) => [k, compactCounters(c)])) },
    idle: peers.filter(([, c]) => idle(c)).map(([k]) => k),
  };
}

function espCounts(stats: OverlayStats | null, peers: PeerInfo[], persistent: string): EspSaCounts {
  const manual = peers.filter((p) => p.sa);
  const own = peers.find((p) => p.name === persistent)?.ikeSa;
  return {
    manualOutbound: manual.length,
    manualInbound: manual.reduce((n, p) => n + p.sa!.in.length, 0),
    ikeChildren: peers.filter((p) => p.ikeSa?.child).length,
    ikeSessions: stats?.ike?.sessions ?? 0,
    ikeEstablished: stats?.ike?.established ?? 0,
    childSasInstalled: stats?.ike?.childSas ?? 0,
    persistentIkeSpi: own?.spis?.initiator ?? null,
    persistentChildSpi: own?.child?.inboundSpi ?? null,
  };
}

/** Reads the drops the end recorded since the last read into `log` (the workers' drop rings, as `overlayfwd drops` shows them). */
async function readDrops(inst: SoakInstance, log: DropLog, cursor: number[] | undefined): Promise<number[] | undefined> {
  const r = await inst.request(cursor ? { cmd: 'drops', since: cursor } : { cmd: 'drops' });
  log.missed += r.missed;
  log.total += r.drops.length;
  for (const d of r.drops) {
    if (log.records.length >= KEEP_DROPS) break;
    log.records.push({ ...d, data: d.data.slice(0, KEEP_DROP_BYTES * 2) });
  }
  return r.cursor;
}

async function sampleInstance(inst: SoakInstance): Promise<InstanceSample> {
  const res = inst.resources();
  const out: InstanceSample = {
    rssKiB: res?.rssKiB ?? null,
    hwmKiB: res?.hwmKiB ?? null,
    rssAnonKiB: res?.rssAnonKiB ?? null,
    fds: res?.fds ?? null,
    threads: res?.threads ?? null,
    cpuSeconds: res?.cpuSeconds ?? null,
    stats: null,
    idlePeers: [],
    peers: null,
    esp: null,
    heap: inst.gc.heap,
    log: { ...inst.log.counted },
    warnings: inst.log.warnings,
  };
  if (!res) return { ...out, error: `up exited (${inst.proc.describeStatus()})` };
  try {
    const stats = await inst.request({ cmd: 'stats' });
    const compact = compactStats(stats);
    out.stats = compact.stats;
    out.idlePeers = compact.idle;
    const peers = await inst.request({ cmd: 'peers.list' });
    out.peers = peers.length;
    if (inst.mode === 'esp') out.esp = espCounts(stats, peers, inst.side === 'a' ? 'b' : 'a');
  } catch (err) {
    out.error = err instanceof Error ? err.message : String(err);
  }
  return out;
}

export class Sampler {
  private last: { wall: number; tree: number; host: number } | null = null;
  /** Per end: every drop recorded since the first sample. */
  readonly drops: Record<string, DropLog> = {};
  private readonly cursors = new Map<string, number[] | undefined>();

  constructor(
    private readonly instances: readonly SoakInstance[],
    /** When the soak started (ms, Date.now()). */
    private readonly t0: number,
  ) {}

  async sample(): Promise<Sample> {
    const wall = Date.now();
    const tree = treeCpuSeconds();
    const host = hostBusySeconds();
    const prev = this.last;
    this.last = { wall, tree, host };
    const seconds = prev ? (wall - prev.wall) / 1000 : 0;
    const instances: Record<string, InstanceSample> = {};
    for (const inst of this.instances) {
      instances[inst.label] = await sampleInstance(inst);
      const log = (this.drops[inst.label] ??= { total: 0, missed: 0, records: [] });
      try {
        // The first read only sets the cursor: what the start dropped (before the traffic) is not the soak's.
        const first = !this.cursors.has(inst.label);
        const cursor = await readDrops(inst, first ? { total: 0, missed: 0, records: [] } : log, this.cursors.get(inst.label));
        this.cursors.set(inst.label, cursor);
      } catch {
        /* the stats request above reports a dead control socket */
      }
    }
    return {
      t: (wall - this.t0) / 1000,
      at: new Date(wall).toISOString(),
      soakCores: prev && seconds > 0 ? (tree - prev.tree) / seconds : null,
      hostCores: prev && seconds > 0 ? (host - prev.host) / seconds : null,
      instances,
    };
  }
}
