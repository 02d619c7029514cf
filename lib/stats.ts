// Reads the native counters block (shared memory the workers write) into the public stats
// shape. One read sums the workers' sections; no call into native code per counter.
import { DROP_REASONS, OFFLOAD_COUNTERS, type ControlStats, type Counters, type DropReason, type OffloadStats, type OverlayStats } from './types';

type OffloadCounter = (typeof OFFLOAD_COUNTERS)[number];
import type { NativeStatsLayout } from './native';

/** Counter positions within a section, resolved once from the addon's layout. */
export class CounterIndex {
  readonly txPackets: number;
  readonly txBytes: number;
  readonly rxPackets: number;
  readonly rxBytes: number;
  readonly floodPackets: number;
  readonly txWireBytes: number;
  readonly rxWireBytes: number;
  readonly drops: ReadonlyArray<readonly [DropReason, number]>;
  readonly offload: ReadonlyArray<readonly [OffloadCounter, number]>;

  constructor(readonly layout: NativeStatsLayout) {
    const at = (name: string): number => layout.counters.indexOf(name);
    this.txPackets = at('txPackets');
    this.txBytes = at('txBytes');
    this.rxPackets = at('rxPackets');
    this.rxBytes = at('rxBytes');
    this.floodPackets = at('floodPackets');
    this.txWireBytes = at('txWireBytes');
    this.rxWireBytes = at('rxWireBytes');
    // Reasons the native side does not count yet (they belong to modes to come) read as 0.
    this.drops = DROP_REASONS.map((reason) => [reason, at(`drop.${reason}`)] as const);
    this.offload = OFFLOAD_COUNTERS.map((name) => [name, at(`offload.${name}`)] as const);
  }
}

/** Raw per-section sums, indexed like a section. */
export type RawSection = Float64Array;

export class CountersReader {
  private readonly sectionsPerWorker: number;
  private readonly sharedSections: number;

  constructor(
    private readonly counters: BigUint64Array,
    private readonly index: CounterIndex,
    private readonly workers: number,
  ) {
    this.sharedSections = index.layout.sharedSections ?? 0;
    this.sectionsPerWorker = (counters.length / index.layout.sectionSize - this.sharedSections) / workers;
  }

  /**
   * Section 0 holds the totals; section 1 + slot a peer's counters. Summed over workers; the
   * totals also take the shared sections at the end of the block (counted by the control channel).
   */
  section(section: number): RawSection {
    const size = this.index.layout.sectionSize;
    const sum = new Float64Array(size);
    const add = (base: number) => {
      for (let i = 0; i < size; i++) sum[i]! += Number(this.counters[base + i]!);
    };
    for (let worker = 0; worker < this.workers; worker++) add((worker * this.sectionsPerWorker + section) * size);
    if (section === 0) {
      for (let shared = 0; shared < this.sharedSections; shared++) add((this.workers * this.sectionsPerWorker + shared) * size);
    }
    return sum;
  }

  totals(): RawSection {
    return this.section(0);
  }

  peer(slot: number): RawSection {
    return this.section(1 + slot);
  }

  /** One counter of a section by its native name ('drop.noSa'); 0 when the layout has none. */
  counter(raw: RawSection, name: string): number {
    const i = this.index.layout.counters.indexOf(name);
    return i < 0 ? 0 : raw[i]!;
  }

  /** Packets the data path generated or rewrote (totals only). */
  generated(raw: RawSection): OverlayStats['generated'] {
    const at = (name: string): number => {
      const i = this.index.layout.counters.indexOf(name);
      return i < 0 ? 0 : raw[i]!;
    };
    return {
      icmpTooBig: at('icmpTooBigSent'),
      mssClamped: at('mssClamped'),
      announcements: at('neighborAnnouncements'),
      announceFailures: at('neighborAnnounceFailures'),
    };
  }

  /** Control traffic (totals only): NAT keepalives, control datagrams passed up and sent. */
  control(raw: RawSection): ControlStats {
    const at = (name: string): number => {
      const i = this.index.layout.counters.indexOf(name);
      return i < 0 ? 0 : raw[i]!;
    };
    return { natKeepalives: at('natKeepalives'), controlRx: at('controlRx'), controlTx: at('controlTx') };
  }

  offloadCounters(raw: RawSection): Omit<OffloadStats, 'active'> {
    return readOffloadCounters(this.index, raw);
  }

  toCounters(raw: RawSection, baseline?: RawSection): Counters {
    const value = (i: number): number => (i < 0 ? 0 : raw[i]! - (baseline ? baseline[i]! : 0));
    const drops = {} as Record<DropReason, number>;
    for (const [reason, i] of this.index.drops) drops[reason] = value(i);
    return {
      txPackets: value(this.index.txPackets),
      txBytes: value(this.index.txBytes),
      rxPackets: value(this.index.rxPackets),
      rxBytes: value(this.index.rxBytes),
      floodPackets: value(this.index.floodPackets),
      txWireBytes: value(this.index.txWireBytes),
      rxWireBytes: value(this.index.rxWireBytes),
      drops,
    };
  }
}

export function readOffloadCounters(index: CounterIndex, raw: RawSection): Omit<OffloadStats, 'active'> {
  const out = {} as Omit<OffloadStats, 'active'>;
  for (const [name, i] of index.offload) out[name] = i < 0 ? 0 : raw[i]!;
  return out;
}

export function emptyCounters(): Counters {
  const drops = {} as Record<DropReason, number>;
  for (const reason of DROP_REASONS) drops[reason] = 0;
  return { txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0, floodPackets: 0, txWireBytes: 0, rxWireBytes: 0, drops };
}

/** after − before, counter by counter: the traffic of an interval between two stats() reads. */
export function diffCounters(after: Counters, before: Counters): Counters {
  const drops = {} as Record<DropReason, number>;
  for (const reason of DROP_REASONS) drops[reason] = (after.drops[reason] ?? 0) - (before.drops[reason] ?? 0);
  return {
    txPackets: after.txPackets - before.txPackets,
    txBytes: after.txBytes - before.txBytes,
    rxPackets: after.rxPackets - before.rxPackets,
    rxBytes: after.rxBytes - before.rxBytes,
    floodPackets: after.floodPackets - before.floodPackets,
    // Absent when `after` came from an instance older than the wire bytes.
    ...(after.txWireBytes !== undefined ? { txWireBytes: after.txWireBytes - (before.txWireBytes ?? 0) } : {}),
    ...(after.rxWireBytes !== undefined ? { rxWireBytes: after.rxWireBytes - (before.rxWireBytes ?? 0) } : {}),
    drops,
  };
}
