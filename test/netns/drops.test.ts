// The drop rings end to end: crafted datagrams that overlayfwd drops for known reasons (wrong
// VNI, unknown source, a reserved VXLAN flag bit), sent from the peer's namespace, and what
// `overlayfwd drops` says about them: --json (reason, peer, direction, the bytes as they
// arrived), --pcap (tshark reads the comments and dissects the outer headers, VXLAN VNI
// included), --follow (a drop that happens after it started, printed once). And a transfer that
// keeps flowing, intact, while the rings are read in a loop and filled with drops.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Lab, overlayAddress } from '../../lab';
import { ControlServer } from '../../lib/control';
import type { DroppedPacket, RecentDrops } from '../../lib/types';
import { CLI_MAIN, ensureCliBuilt } from '../helpers/cli';
import { describeNetns, ROOT, sleep, waitFor } from '../helpers/env';
import { delta } from '../helpers/overlay';
import { overlayPair, type Pair } from '../helpers/pair';
import { verifiedTransfer } from '../helpers/transfer';
import { ethernetFrame, sendDatagrams, vxlanHeader, type Datagram } from '../helpers/udp';

const run = promisify(execFile);
const VNI = 42;
const PROBE_ETHERTYPE = 0x88b5;
const PER_KIND = 3;

describeNetns('overlayfwd drops: the recent dropped packets, their reasons and bytes', { tools: ['tshark'] }, () => {
  let lab: Lab;
  let p: Pair;
  let server: ControlServer;
  let runDir: string;
  let stranger: string;
  let kinds: Array<{ reason: string; peer: string | null; datagram: Datagram }>;
  let seen: Set<string>; // worker/sequence of the drops in the rings before the crafted ones

  const cli = (args: string[]) =>
    run(process.execPath, [CLI_MAIN, ...args], { cwd: ROOT, env: { ...process.env, OVERLAYFWD_RUN_DIR: runDir }, timeout: 30_000, maxBuffer: 16 << 20 });
  const id = (d: DroppedPacket) => `${d.worker}/${d.sequence}`;
  const probe = (tag: string) => ethernetFrame(p.A.device.mac, '02:00:00:00:0d:01', PROBE_ETHERTYPE, Buffer.from(`overlayfwd drops ${tag}`));

  beforeAll(async () => {
    await ensureCliBuilt({ tolerateTypeErrors: true });
    lab = await Lab.create();
    p = await overlayPair(lab, { device: 'tap', encap: { type: 'vxlan', vni: VNI }, extra: { workers: 2 } });
    runDir = path.join(lab.tmpdir(), 'run');
    server = await ControlServer.listen(p.A, path.join(runDir, 'ovl0.sock'));
    lab.onDestroy(() => server.close());
    stranger = p.b.underlay.replace(/\.\d+$/, '.99');
    await lab.addAddress(p.b, p.b.underlayDev, `${stranger}/24`);
    expect((await lab.ping(p.b, overlayAddress(1), { count: 2, intervalSec: 0.05 })).received).toBe(2);
    seen = new Set(p.A.recentDrops().drops.map(id));
    kinds = [
      { reason: 'wrongVni', peer: 'b', datagram: { src: p.b.underlay, payload: Buffer.concat([vxlanHeader({ vni: VNI + 1 }), probe('wrong vni')]) } },
      { reason: 'unknownPeer', peer: null, datagram: { src: stranger, payload: Buffer.concat([vxlanHeader({ vni: VNI }), probe('stranger')]) } },
      { reason: 'malformed', peer: 'b', datagram: { src: p.b.underlay, payload: Buffer.concat([vxlanHeader({ vni: VNI, flags: 0x0c }), probe('reserved flag')]) } },
    ];
    for (const k of kinds) {
      const before = p.A.stats().totals;
      await sendDatagrams(lab, p.b, p.A.config.underlay.local, 4789, [{ ...k.datagram, count: PER_KIND }]);
      await waitFor(() => delta(p.A.stats().totals, before).drops[k.reason as 'malformed'] >= PER_KIND, `${PER_KIND} ${k.reason} drops`, 5000);
    }
  }, 240_000);
  afterAll(async () => {
    await lab?.destroy();
  });

  it('drops --json lists each with its reason, peer, direction, worker and the bytes as they arrived', async () => {
    const { stdout } = await cli(['drops', '-n', 'ovl0', '--json']);
    const answer = JSON.parse(stdout) as RecentDrops;
    expect(answer).toMatchObject({ name: 'ovl0', device: { name: 'ovl0', layer: 'ethernet' }, underlay: { local: p.a.underlay }, missed: 0 });
    expect(answer.cursor).toHaveLength(2); // one per worker
    const fresh = answer.drops.filter((d) => !seen.has(id(d)));
    for (const k of kinds) {
      const mine = fresh.filter((d) => d.reason === k.reason);
      // One record per datagram; from an unknown source a UDP GRO batch is one record standing
      // for its datagrams (they are counted, not opened).
      expect(mine.reduce((n, d) => n + d.packets, 0), k.reason).toBe(PER_KIND);
      for (const d of mine) {
        expect(d).toMatchObject({
          peer: k.peer,
          direction: 'rx',
          layer: 'underlay',
          length: k.datagram.payload.length,
          data: k.datagram.payload.toString('hex'), // shorter than 128 bytes: all of it
          underlay: { protocol: 17, remote: k.datagram.src, remotePort: expect.any(Number), localPort: 4789 },
        });
      }
    }
    expect(fresh.filter((d) => !kinds.some((k) => k.reason === d.reason))).toEqual([]);
    // Oldest first, with the worker and a per-worker sequence; times within the run.
    for (const d of fresh) {
      expect([0, 1]).toContain(d.worker);
      expect(d.sequence).toBeGreaterThan(0);
      expect(Math.abs(d.timestampUs / 1000 - Date.now())).toBeLessThan(120_000);
      expect(d.time).toBe(new Date(Math.floor(d.timestampUs / 1000)).toISOString().replace('Z', `${String(d.timestampUs % 1000).padStart(3, '0')}Z`));
    }
    expect([...fresh].sort((x, y) => x.timestampUs - y.timestampUs)).toEqual(fresh);
    // The human listing has the same drops, one line each.
    const text = await cli(['drops', '-n', 'ovl0']);
    const lines = text.stdout.trim().split('\n');
    expect(lines.filter((l) => /\bwrongVni\s+peer b\s+from 198\.18\.\d+\.2:\d+\s+\d+ B\s+underlay: 08000000 00002b00/.test(l))).toHaveLength(PER_KIND);
    expect(lines.filter((l) => new RegExp(`\\bunknownPeer\\s+no peer\\s+from ${stranger.replace(/\./g, '\\.')}:`).test(l))).toHaveLength(PER_KIND);
  });

  it('drops --pcap writes a capture tshark opens: the reason in each comment, the outer headers dissected', async () => {
    const file = path.join(lab.tmpdir(), 'drops.pcapng');
    const r = await cli(['drops', '-n', 'ovl0', '--pcap', file]);
    expect(r.stderr).toMatch(/^overlayfwd: wrote \d+ drops to /);
    const { stdout } = await run('tshark', ['-r', file, '-T', 'fields', '-E', 'separator=|', '-e', 'frame.comment', '-e', 'ip.src', '-e', 'ip.dst', '-e', 'udp.dstport', '-e', 'vxlan.vni', '-e', 'eth.dst', '-e', 'eth.type']);
    const rows = stdout.trim().split('\n').map((l) => l.split('|'));
    const mac = p.A.device.mac;
    const recorded = p.A.recentDrops().drops;
    for (const k of kinds) {
      const mine = rows.filter((row) => row[0]!.startsWith(`reason=${k.reason} `));
      expect(mine.length, k.reason).toBe(recorded.filter((d) => d.reason === k.reason).length);
      const vni = k.reason === 'wrongVni' ? VNI + 1 : VNI; // a reserved flag bit does not stop tshark
      const who = k.peer ? `peer=${k.peer} ` : `peer=- .* remote=${stranger.replace(/\./g, '\\.')}:\\d+`;
      for (const row of mine) {
        expect(row).toEqual([expect.stringMatching(new RegExp(`^reason=${k.reason} direction=rx ${who}`)), k.datagram.src, p.a.underlay, '4789', String(vni), mac, '0x88b5']);
      }
    }
  });

  it('drops --follow prints a drop that happens after it started, once', async () => {
    const child = spawn(process.execPath, [CLI_MAIN, 'drops', '-n', 'ovl0', '--follow', '--json'], { cwd: ROOT, env: { ...process.env, OVERLAYFWD_RUN_DIR: runDir } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += String(d)));
    const printed = () => out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as DroppedPacket & { missed?: number });
    try {
      const already = p.A.recentDrops().drops.length;
      await waitFor(() => printed().length >= already, 'the drops already recorded', 10_000);
      const late = Buffer.concat([vxlanHeader({ vni: 4242 }), probe('after follow started')]);
      await sendDatagrams(lab, p.b, p.a.underlay, 4789, [{ src: p.b.underlay, payload: late }]);
      await waitFor(() => printed().some((d) => d.data === late.toString('hex')), 'the late drop to be printed', 10_000);
      await sleep(1500); // six more polls
      const all = printed();
      const late1 = all.filter((d) => d.data === late.toString('hex'));
      expect(late1).toHaveLength(1);
      expect(late1[0]).toMatchObject({ reason: 'wrongVni', peer: 'b', direction: 'rx', length: late.length });
      expect(all.filter((d) => d.missed !== undefined)).toEqual([]);
      const ids = all.map(id);
      expect(new Set(ids).size).toBe(ids.length); // nothing twice
      // A burst that outruns the ring between two polls: what was lost is said, not hidden.
      const burst = Buffer.concat([vxlanHeader({ vni: 4343 }), probe('a burst')]);
      const BURST = 1000;
      const mark = out.length;
      await sendDatagrams(lab, p.b, p.a.underlay, 4789, [{ src: p.b.underlay, payload: burst, count: BURST }], { burst: BURST, pause: 0 });
      const after = () => out.slice(mark).split('\n').filter(Boolean).map((l) => JSON.parse(l) as DroppedPacket & { missed?: number });
      const tally = () => {
        const lines = after();
        return { printed: lines.filter((d) => d.data === burst.toString('hex')).length, missed: lines.reduce((n, d) => n + (d.missed ?? 0), 0) };
      };
      await waitFor(() => tally().printed + tally().missed >= BURST, 'the burst to be printed or counted as missed', 10_000);
      await sleep(600);
      const t = tally();
      expect(t.printed + t.missed).toBe(BURST);
      expect(t.missed).toBeGreaterThan(0); // 256 records a worker
      expect(t.printed).toBeGreaterThanOrEqual(256);
    } finally {
      child.kill('SIGINT');
    }
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(code).toBe(0);
  });

  it('a transfer keeps flowing, intact, while the rings fill with drops and are read in a loop', async () => {
    // The same transfer with nothing dropped and nobody reading, to compare with.
    const quiet = await verifiedTransfer(lab, { from: p.b, to: p.a, address: overlayAddress(1), megabytes: 48, timeoutMs: 90_000 });
    const bad = Buffer.concat([vxlanHeader({ vni: 777 }), probe('during the transfer')]);
    const BAD = 6000;
    const before = p.A.stats().totals;
    let cursor = p.A.recentDrops().cursor;
    let reading = true;
    let reads = 0;
    let returned = 0;
    let missed = 0;
    const torn: string[] = [];
    const reader = (async () => {
      while (reading) {
        const answer = p.A.recentDrops(cursor);
        cursor = answer.cursor;
        reads++;
        missed += answer.missed;
        for (const d of answer.drops) {
          returned++;
          // Every record is one of the datagrams sent, whole: never a mix of two.
          if (d.reason !== 'wrongVni' || d.data !== bad.toString('hex') || d.length !== bad.length) torn.push(JSON.stringify(d));
        }
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
    const [transfer] = await Promise.all([
      verifiedTransfer(lab, { from: p.b, to: p.a, address: overlayAddress(1), megabytes: 48, timeoutMs: 90_000 }),
      sendDatagrams(lab, p.b, p.a.underlay, 4789, [{ src: p.b.underlay, payload: bad, count: BAD }], { burst: 16, pause: 0.002 }),
    ]);
    await waitFor(() => delta(p.A.stats().totals, before).drops.wrongVni >= BAD, 'every bad datagram to be counted', 10_000);
    await sleep(200);
    reading = false;
    await reader;
    const last = p.A.recentDrops(cursor);
    returned += last.drops.length;
    missed += last.missed;
    for (const d of last.drops) if (d.data !== bad.toString('hex')) torn.push(JSON.stringify(d));
    const d = delta(p.A.stats().totals, before);
    expect(transfer.received.sha256).toBe(transfer.sha256);
    expect(torn).toEqual([]);
    // The rings saw every drop the counters saw: what was read plus what they overwrote first.
    expect(Object.entries(d.drops).filter(([r, n]) => r !== 'wrongVni' && n !== 0)).toEqual([]);
    expect(returned + missed).toBe(d.drops.wrongVni);
    expect(d.drops.wrongVni).toBe(BAD);
    expect(reads).toBeGreaterThan(10);
    console.log(
      `[drops] 48 MB b→a at ${transfer.mbitPerSecond.toFixed(0)} Mbit/s (${quiet.mbitPerSecond.toFixed(0)} Mbit/s without drops or reads) while ${BAD} wrong-VNI datagrams were dropped and the rings read ${reads} times (${returned} records read, ${missed} overwritten first)`,
    );
  });

  it('refuses a cursor that is none, and still answers once the overlay is closed', async () => {
    expect(() => p.A.recentDrops([-1])).toThrow(TypeError);
    expect(() => p.A.recentDrops([0.5, 1])).toThrow(/cursor of an earlier call/);
    const open = p.A.recentDrops();
    await p.A.close();
    const closed = p.A.recentDrops();
    expect(closed.drops).toEqual(open.drops);
    expect(p.A.recentDrops(closed.cursor)).toMatchObject({ drops: [], missed: 0 });
  });
});
