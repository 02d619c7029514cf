// What V8 says of its heap: each `up` runs with --trace-gc, which prints a line per collection
// on stdout, e.g.
//
//   [8276:0x1dd70090]  301031 ms: Scavenge 19.3 (20.4) -> 18.5 (20.4) MB, 0.38 / 0.00 ms  (...) task;
//   [8276:0x1dd70090] 8469 ms: Mark-Compact (reduce) 17.9 (36.6) -> 15.8 (17.6) MB, 14.65 / 0.01 ms ...
//
// used (committed) before -> used (committed) after. Why the soak wants it: RSS alone cannot tell
// a leak from garbage. V8 runs a full collection only when its old generation reaches a limit it
// raises as the heap grows; a forwarder that allocates little can go half an hour without one,
// and its RSS climbs by what its scavenges promoted meanwhile (seen: 14.5-18 MiB/h over 30
// minutes, the heap in use after a forced full collection flat but for compiled code). The heap
// V8 has committed, subtracted from RSS, leaves what lives outside it (the addon's buffers and
// tables, malloc, stacks); the heap in use after a full collection is what JavaScript holds.

export interface GcEvent {
  /** A full (mark-compact or mark-sweep) collection of the whole heap, not a young-generation one. */
  full: boolean;
  /** In use and committed after the collection, MiB (V8 prints MB: 2^20 bytes). */
  usedMiB: number;
  committedMiB: number;
}

const LINE = /: (Scavenge|Minor Mark-Compact|Minor Mark-Sweep|Mark-Compact|Mark-Sweep)(?: \([a-z ]+\))? [\d.]+ \([\d.]+\) -> ([\d.]+) \(([\d.]+)\) MB/;

/** One --trace-gc line; null for anything else. */
export function parseGcLine(line: string): GcEvent | null {
  const m = LINE.exec(line);
  if (!m) return null;
  return { full: !m[1]!.startsWith('Minor') && m[1] !== 'Scavenge', usedMiB: Number(m[2]), committedMiB: Number(m[3]) };
}

/** The heap as the latest collections left it: what a sample records. */
export interface HeapReading {
  /** Committed after the latest collection of any kind. */
  committedMiB: number;
  /** In use after the latest full collection (null: none yet). */
  liveMiB: number | null;
  collections: number;
  fullCollections: number;
}

/** Reads --trace-gc output as it comes, in chunks that may split lines. */
export class GcTrace {
  private partial = '';
  private reading: HeapReading | null = null;

  feed(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      const event = parseGcLine(line);
      if (!event) continue;
      const r = (this.reading ??= { committedMiB: 0, liveMiB: null, collections: 0, fullCollections: 0 });
      r.committedMiB = event.committedMiB;
      r.collections++;
      if (event.full) {
        r.liveMiB = event.usedMiB;
        r.fullCollections++;
      }
    }
  }

  /** null: no collection seen (the process printed none, or runs without --trace-gc). */
  get heap(): HeapReading | null {
    return this.reading ? { ...this.reading } : null;
  }
}
