// The recent drops, from the workers' drop rings (native/core/base/drop_ring.h) into the public
// shape (types.ts: DroppedPacket, RecentDrops). Read on demand, never per packet.
import type { NativeDropReadout, NativeDropRecord } from './native';
import type { DropReason, DroppedPacket } from './types';

/** ISO 8601 in UTC with microseconds: 2025-01-02T03:04:05.123456Z. */
export function isoMicroseconds(timestampUs: number): string {
  const ms = Math.floor(timestampUs / 1000);
  const micro = String(Math.floor(timestampUs) % 1000).padStart(3, '0');
  return new Date(ms).toISOString().replace('Z', `${micro}Z`);
}

export function toDroppedPacket(record: NativeDropRecord, peerOfSlot: (slot: number) => string | undefined): DroppedPacket {
  const reason = record.reason.replace(/^drop\./, '');
  const timestampUs = Number(record.timeNs / 1000n);
  const drop: DroppedPacket = {
    worker: record.worker,
    sequence: record.sequence,
    time: isoMicroseconds(timestampUs),
    timestampUs,
    // A reason DROP_REASONS lacks (a newer core) still reads as the core names it.
    reason: reason as DropReason,
    direction: record.direction,
    peer: record.slot < 0 ? null : (peerOfSlot(record.slot) ?? null),
    packets: record.packets,
    layer: record.layer,
    length: record.length,
    data: record.data.toString('hex'),
  };
  if (record.layer === 'underlay' || record.layer === 'outerIp') {
    drop.underlay = { protocol: record.protocol, remote: record.remoteAddress, remotePort: record.remotePort, localPort: record.localPort };
  }
  return drop;
}

/** The records of a readout, oldest first across the workers. */
export function dropsOf(readout: NativeDropReadout, peerOfSlot: (slot: number) => string | undefined): DroppedPacket[] {
  return readout.records
    .map((r) => toDroppedPacket(r, peerOfSlot))
    .sort((a, b) => a.timestampUs - b.timestampUs || a.worker - b.worker || a.sequence - b.sequence);
}

/** A cursor as recentDrops() takes it: per worker, a non-negative integer. */
export function isDropCursor(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0);
}
