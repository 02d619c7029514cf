// The drop summary: what the data path dropped since the last summary, by reason and by peer,
// at most once per interval and only when drops grew. Pure bookkeeping over stats() snapshots
// (the shared counters block, read once per interval by the caller); nothing per packet.
import type { Counters, OverlayStats } from '../types';

/** At most one summary a minute unless OVERLAYFWD_DROP_SUMMARY_MS says otherwise (tests). */
export const DROP_SUMMARY_DEFAULT_MS = 60_000;
export const DROP_SUMMARY_MIN_MS = 100;
/** Peers named in a summary, most drops first. */
export const DROP_SUMMARY_TOP_PEERS = 5;

export type DropStats = Pick<OverlayStats, 'totals' | 'peers'>;

export interface DropReport {
  /** Drops since the last summary, all reasons. */
  total: number;
  /** The reasons that grew, and by how much. */
  drops: Record<string, number>;
  /** The peers charged with the most of them (drops from no known peer are in `drops` only). */
  topPeers: { peer: string; drops: number }[];
  /** The drops happened within this many seconds (since the counters were last seen unchanged). */
  withinSeconds: number;
}

/** The summary interval: OVERLAYFWD_DROP_SUMMARY_MS when it is a whole number of ms >= 100, else a minute. */
export function dropSummaryInterval(env: NodeJS.ProcessEnv = process.env): { ms: number; invalid?: string } {
  const text = env['OVERLAYFWD_DROP_SUMMARY_MS'];
  if (text === undefined || text === '') return { ms: DROP_SUMMARY_DEFAULT_MS };
  const ms = Number(text);
  if (!Number.isInteger(ms) || ms < DROP_SUMMARY_MIN_MS) return { ms: DROP_SUMMARY_DEFAULT_MS, invalid: text };
  return { ms };
}

function sumDrops(c: Counters): number {
  let n = 0;
  for (const v of Object.values(c.drops)) n += v;
  return n;
}

export class DropSummary {
  private reasons: Record<string, number>;
  private peers: Map<string, number>;
  private lastReportAt = -Infinity;
  /** When the counters were last seen equal to the baseline. */
  private quietSince: number;

  constructor(
    private readonly intervalMs: number,
    initial: DropStats,
    nowMs: number,
    private readonly topPeers = DROP_SUMMARY_TOP_PEERS,
  ) {
    this.reasons = { ...initial.totals.drops };
    this.peers = DropSummary.peerDrops(initial);
    this.quietSince = nowMs;
  }

  private static peerDrops(stats: DropStats): Map<string, number> {
    return new Map(Object.entries(stats.peers).map(([name, c]) => [name, sumDrops(c)]));
  }

  /**
   * A report when drops grew since the last one and the last one is at least an interval old;
   * otherwise null, and the growth waits for a later call.
   */
  observe(stats: DropStats, nowMs: number): DropReport | null {
    const drops: Record<string, number> = {};
    let total = 0;
    for (const [reason, value] of Object.entries(stats.totals.drops)) {
      const grown = value - (this.reasons[reason] ?? 0);
      if (grown > 0) {
        drops[reason] = grown;
        total += grown;
      }
    }
    if (total === 0) {
      this.quietSince = nowMs;
      return null;
    }
    if (nowMs - this.lastReportAt < this.intervalMs) return null;

    const now = DropSummary.peerDrops(stats);
    const peers: DropReport['topPeers'] = [];
    for (const [peer, value] of now) {
      const before = this.peers.get(peer) ?? 0;
      // A peer removed and added again starts from zero: all it has is new.
      const grown = value >= before ? value - before : value;
      if (grown > 0) peers.push({ peer, drops: grown });
    }
    peers.sort((x, y) => y.drops - x.drops || (x.peer < y.peer ? -1 : 1));

    const report: DropReport = { total, drops, topPeers: peers.slice(0, this.topPeers), withinSeconds: Math.max(0, Math.round((nowMs - this.quietSince) / 100) / 10) };
    this.reasons = { ...stats.totals.drops };
    this.peers = now;
    this.lastReportAt = nowMs;
    this.quietSince = nowMs;
    return report;
  }
}
