// The bench's ceiling forwarder (bench/ceiling/ceiling_vxlan.c) still forwards correctly, so the
// figure the bench divides overlayfwd by cannot rot: its checksum against a reference; a pair of
// them (pings, 20 MB sha256-verified, with TSO super-frames segmented into UDP_SEGMENT trains and
// UDP_GRO trains coalesced into GSO writes); and one of them against the kernel's VXLAN device
// with checksum offload off on the ceiling's veth, so the kernel verifies every inner checksum the
// ceiling computed (and the ceiling coalesces what the kernel sends).
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, overlayAddress, VXLAN_PORT } from '../../lab';
import type { Host } from '../../lab';
import {
  buildCeiling,
  ceilingStats,
  startCeiling,
  startCeilingPair,
  stopCeilingPair,
  type CeilingPair,
  type CeilingStats,
} from '../../bench/netns/ceiling';
import { describeNetns } from '../helpers/env';
import { verifiedTransfer } from '../helpers/transfer';

const VNI = 42;
const OPTIONS = { vni: VNI, port: VXLAN_PORT, threads: 1 };

describeNetns('the bench ceiling forwarder (ceiling_vxlan)', { addon: false, tools: ['cc'] }, () => {
  let binary: string;
  let dir: string;

  beforeAll(() => {
    dir = fs.mkdtempSync('/tmp/ceiling-test-');
    binary = buildCeiling(dir);
  });
  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('computes the Internet checksum as a byte-by-byte reference does', () => {
    const out = JSON.parse(execFileSync(binary, ['--checksum-selftest'], { encoding: 'utf8' })) as { ok: boolean; checked: number };
    expect(out.ok).toBe(true);
    expect(out.checked).toBeGreaterThan(1000);
  });

  describe('a pair', () => {
    let lab: Lab;
    let a: Host;
    let b: Host;
    let pair: CeilingPair;

    beforeAll(async () => {
      lab = await Lab.create();
      [a, b] = await lab.pair('a', 'b');
      pair = await startCeilingPair(
        lab,
        binary,
        [
          { host: a, local: a.underlay, remote: b.underlay, address: `${overlayAddress(1)}/24` },
          { host: b, local: b.underlay, remote: a.underlay, address: `${overlayAddress(2)}/24` },
        ],
        OPTIONS,
      );
    });
    afterAll(async () => {
      if (pair) await stopCeilingPair(pair);
      await lab?.destroy();
    });

    it('sets up the TAP with the MTU and gso_max_segs that fit one super-frame into one train', () => {
      expect(pair.ready.a).toMatchObject({ tap: 'ceil0', mtu: 1450, udpGro: true, gsoMaxSegs: 44, segmentsPerTrainMax: 44 });
    });

    it('pings and moves 20 MB intact, segmenting and coalescing', async () => {
      const ping = await lab.ping(a, overlayAddress(2), { count: 5, intervalSec: 0.05, timeoutSec: 5 });
      expect(ping.received).toBe(5);
      const before: [CeilingStats, CeilingStats] = [await ceilingStats(pair.a, 'SIGUSR1'), await ceilingStats(pair.b, 'SIGUSR1')];
      await verifiedTransfer(lab, { from: a, to: b, address: overlayAddress(2), megabytes: 20 });
      const [sa, sb] = [await ceilingStats(pair.a, 'SIGUSR1'), await ceilingStats(pair.b, 'SIGUSR1')];
      expect(sa.tx.superFrames - before[0].tx.superFrames).toBeGreaterThan(10);
      expect(sa.tx.superSegments - before[0].tx.superSegments).toBeGreaterThan(sa.tx.gsoSends - before[0].tx.gsoSends);
      expect(sb.rx.coalescedWrites - before[1].rx.coalescedWrites).toBeGreaterThan(10);
      for (const s of [sa, sb]) expect([s.tx.drops, s.tx.sendErrors, s.rx.drops, s.rx.wrongVni, s.rx.unknownSource, s.rx.writeErrors]).toEqual([0, 0, 0, 0, 0, 0]);
    });
  });

  describe('against the kernel VXLAN device', () => {
    let lab: Lab;
    let a: Host;
    let b: Host;
    let ceiling: Awaited<ReturnType<typeof startCeiling>>;

    beforeAll(async () => {
      lab = await Lab.create();
      [a, b] = await lab.pair('a', 'b');
      // Outer UDP checksums computed in software on a's side, so b's kernel checks them and then
      // every inner checksum (over veth a CHECKSUM_PARTIAL packet would be taken as verified).
      await lab.disableTxChecksumOffload(a, a.underlayDev);
      ceiling = await startCeiling(lab, binary, { host: a, local: a.underlay, remote: b.underlay, address: `${overlayAddress(1)}/24` }, OPTIONS);
      await lab.kernelVxlan(b, { vni: VNI, remotes: [a.underlay], addresses: [`${overlayAddress(2)}/24`] });
    });
    afterAll(async () => {
      await ceiling?.proc.stop(1000).catch(() => undefined);
      await lab?.destroy();
    });

    it('pings and moves 20 MB intact each way', async () => {
      const ping = await lab.ping(a, overlayAddress(2), { count: 5, intervalSec: 0.05, timeoutSec: 5 });
      expect(ping.received).toBe(5);
      await verifiedTransfer(lab, { from: a, to: b, address: overlayAddress(2), megabytes: 20 });
      await verifiedTransfer(lab, { from: b, to: a, address: overlayAddress(1), megabytes: 20 });
      const s = await ceilingStats(ceiling.proc, 'SIGUSR1');
      expect(s.tx.superFrames).toBeGreaterThan(10);
      expect([s.tx.drops, s.tx.sendErrors, s.rx.drops, s.rx.wrongVni, s.rx.unknownSource, s.rx.writeErrors]).toEqual([0, 0, 0, 0, 0, 0]);
    });
  });
});
