// The soak's result shapes: what the JSON result file holds.
import type { Provenance } from '../provenance';
import type { DroppedPacket, OverlayStats } from '../../lib/types';
import type { SoakArgs, SoakMode } from './args';
import type { HeapReading } from './gc-trace';

/** What an `up` process logged: counted messages, and the warnings and errors. */
export interface LogTally {
  /** Lines by message, for those that count rekeys and table swaps (instance.ts COUNTED). */
  counted: Record<string, number>;
  /** Warning and error lines (and lines that are not JSON) not about a peer that comes and goes. */
  warnings: number;
  /** Warnings about peers that come and go (their IKE requests reach nobody, as meant). */
  transientWarnings: number;
  /** The first of those `warnings` lines, as written. */
  lines: string[];
}

/** The SAs an esp end holds: manual ones from peers list, IKE's from stats().ike and peers list. */
export interface EspSaCounts {
  /** Peers with manual SAs (one outbound SA each), and their inbound SAs (rekeys' retiring ones included). */
  manualOutbound: number;
  manualInbound: number;
  /** Peers whose IKE SA has a Child SA in use. */
  ikeChildren: number;
  /** stats().ike: IKE SAs held, those established, Child SAs installed since start. */
  ikeSessions: number;
  ikeEstablished: number;
  childSasInstalled: number;
  /** The persistent peer's IKE SA (initiator SPI) and Child SA (our inbound SPI): a change is a rekey seen. */
  persistentIkeSpi: string | null;
  persistentChildSpi: number | null;
}

/** One end at one sample. */
export interface InstanceSample {
  /** /proc of the `up` process (null: it has exited). */
  rssKiB: number | null;
  hwmKiB: number | null;
  /** The anonymous part of rssKiB (RssAnon): heaps, not code. */
  rssAnonKiB: number | null;
  fds: number | null;
  threads: number | null;
  cpuSeconds: number | null;
  /**
   * `overlayfwd stats --json` (the control socket's stats), drop reasons at 0 left out and the
   * peers that moved nothing at all left out of `peers` (named in idlePeers); null when the request failed.
   */
  stats: OverlayStats | null;
  idlePeers: string[];
  peers: number | null;
  esp: EspSaCounts | null;
  /** V8's heap after its latest collections (--trace-gc); null: none reported yet. */
  heap: HeapReading | null;
  /** The log's counted messages so far. */
  log: Record<string, number>;
  warnings: number;
  error?: string;
}

/** The packets an end dropped during the soak, as its drop rings recorded them. */
export interface DropLog {
  /** Drops read; those the rings had overwritten before a read. */
  total: number;
  missed: number;
  /** The first of them, bytes cut short. */
  records: DroppedPacket[];
}

export interface Sample {
  /** Seconds since the soak started (the traffic's start). */
  t: number;
  at: string;
  /** CPU cores the whole soak used since the previous sample: the bench, the overlays, the traffic tools. */
  soakCores: number | null;
  /** The machine's busy cores over the same time (the soak and everything else). */
  hostCores: number | null;
  instances: Record<string, InstanceSample>;
}

export type TrafficKind = 'tcp' | 'udp' | 'ping';

/** One round of one traffic generator; each is started again when it ends. */
export interface TrafficRound {
  mode: SoakMode;
  kind: TrafficKind;
  /** Seconds since the soak started. */
  start: number;
  end: number;
  /** Cut short by the end of the soak (counted as far as it went, or not at all: `error`). */
  partial: boolean;
  /** tcp: bytes; udp: datagrams; ping: echo requests. */
  sent: number | null;
  received: number | null;
  lost: number | null;
  /** tcp: throughput and retransmits (iperf3's sum_sent). */
  bitsPerSecond?: number;
  retransmits?: number | null;
  /** udp: what the kernel dropped in the mode's hosts meanwhile (a starved reader), and datagrams the sender could not send. */
  kernelDrops?: number;
  sendErrors?: number;
  error?: string;
}

/** Peer churn and reloads at one end. */
export interface ChurnTally {
  adds: number;
  removes: number;
  reloads: number;
  /** Reloads that changed something (each one should). */
  reloadsApplied: number;
  /** Steps after which peers list differed from what the soak had made it, described (at most 20). */
  mismatches: string[];
  mismatchSteps: number;
  /** Requests that failed (at most 20). */
  errors: string[];
  failures: number;
}

export interface VerdictThresholds {
  warmUpSec: number;
  leakMiBPerHour: number;
  leakMinMiB: number;
  fdSlack: number;
  threadSlack: number;
  stoppedIntervals: number;
}

export interface InstanceJudgement {
  label: string;
  /** Medians of the first and last third of the samples after the warm-up, MiB; null: too few samples. */
  rssFirstMiB: number | null;
  rssLastMiB: number | null;
  rssGrowthMiBPerHour: number | null;
  fdsDelta: number | null;
  threadsDelta: number | null;
  /** The same medians of V8's committed heap, its heap live after full collections, and RSS outside the committed heap (null: no trace). */
  v8FirstMiB: number | null;
  v8LastMiB: number | null;
  liveFirstMiB: number | null;
  liveLastMiB: number | null;
  outsideFirstMiB: number | null;
  outsideLastMiB: number | null;
  /** Full collections from the first third's start to the last third's end. */
  fullCollections: number | null;
}

export interface Verdict {
  /** The worst finding: a leak or traffic that stopped makes the soak fail. */
  outcome: 'ok' | 'trouble' | 'leak' | 'traffic stopped';
  leaks: string[];
  stopped: string[];
  /** Signs of trouble that do not fail the soak by themselves: drops by reason, lost datagrams, warnings. */
  trouble: string[];
  /** What could not be judged (a run too short). */
  notes: string[];
  instances: InstanceJudgement[];
  thresholds: VerdictThresholds;
}

export interface SoakResult {
  version: 1;
  kind: 'soak';
  startedAt: string;
  finishedAt: string | null;
  interrupted: boolean;
  options: SoakArgs;
  provenance: Provenance;
  host: Record<string, unknown>;
  /** What ran: per mode the hosts, addresses and traffic rates. */
  setup: Record<string, unknown>;
  samples: Sample[];
  rounds: TrafficRound[];
  churn: Record<string, ChurnTally>;
  logs: Record<string, LogTally>;
  drops: Record<string, DropLog>;
  /** How each `up` ended (SIGTERM at the end: exit 0). */
  exits: Record<string, string>;
  verdict: Verdict | null;
  errors: string[];
}
