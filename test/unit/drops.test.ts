// `overlayfwd drops` and the pcapng it writes, without root or the addon: the pcapng blocks as
// the format lays them out, the outer headers made up for underlay captures, tshark (an
// independent reader) opening the file, and the CLI against a ControlServer over a fake overlay
// whose drop rings are a list (--json, the listing, --follow with its cursor and overruns,
// --pcap).
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { commandExists } from '../../lab';
import { ControlServer, type OverlayLike } from '../../lib/control';
import { isoMicroseconds } from '../../lib/drops';
import { DropCapture, LINKTYPE_ETHERNET, LINKTYPE_RAW, PcapngWriter, dropComment, outerPacket } from '../../lib/pcapng';
import type { DroppedPacket, OverlayStats, RecentDrops } from '../../lib/types';
import { CLI_MAIN, ensureCliBuilt } from '../helpers/cli';
import { REQUIRE_NETNS } from '../helpers/env';
import { fakeCounters, fakeOffloadStats } from '../helpers/fake-stats';

const run = promisify(execFile);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ovldrops-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const T0 = 1_750_000_000_123_456; // µs

/** A VXLAN datagram (after its UDP header): flags 0x08, VNI, then an Ethernet frame with a probe. */
function vxlan(vni: number, frameLength = 60): Buffer {
  const header = Buffer.alloc(8);
  header[0] = 0x08;
  header.writeUIntBE(vni, 4, 3);
  const frame = Buffer.alloc(frameLength);
  Buffer.from([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]).copy(frame);
  frame.writeUInt16BE(0x88b5, 12);
  return Buffer.concat([header, frame]);
}

function drop(over: Partial<DroppedPacket> & { bytes?: Buffer }): DroppedPacket {
  const bytes = over.bytes ?? vxlan(43);
  const { bytes: _b, ...rest } = over;
  const timestampUs = rest.timestampUs ?? T0;
  return {
    worker: 0,
    sequence: 1,
    time: isoMicroseconds(timestampUs),
    timestampUs,
    reason: 'wrongVni',
    direction: 'rx',
    peer: 'b',
    packets: 1,
    layer: 'underlay',
    length: bytes.length,
    data: bytes.subarray(0, 128).toString('hex'),
    underlay: { protocol: 17, remote: '198.18.0.2', remotePort: 40000, localPort: 4789 },
    ...rest,
  };
}

// ---- a reader for what PcapngWriter wrote, by the format's layout

interface Block {
  type: number;
  body: Buffer;
}

function blocks(file: Buffer): Block[] {
  const out: Block[] = [];
  for (let at = 0; at < file.length; ) {
    const type = file.readUInt32LE(at);
    const length = file.readUInt32LE(at + 4);
    expect(length % 4, 'block length is a multiple of 4').toBe(0);
    expect(file.readUInt32LE(at + length - 4), 'trailing length').toBe(length);
    out.push({ type, body: file.subarray(at + 8, at + length - 4) });
    at += length;
  }
  return out;
}

function readOptions(buf: Buffer): Map<number, string> {
  const out = new Map<number, string>();
  for (let at = 0; at + 4 <= buf.length; ) {
    const code = buf.readUInt16LE(at);
    const length = buf.readUInt16LE(at + 2);
    if (code === 0) break;
    out.set(code, buf.subarray(at + 4, at + 4 + length).toString('utf8'));
    at += 4 + ((length + 3) & ~3);
  }
  return out;
}

function internetChecksum(buf: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2) sum += buf[buf.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

describe('pcapng writer', () => {
  it('lays out a section header, interfaces and packets with comments as the format says', () => {
    const parts: Buffer[] = [];
    const w = new PcapngWriter((b) => parts.push(b));
    expect(w.addInterface(LINKTYPE_RAW, 'underlay', 'outer packets')).toBe(0);
    expect(w.addInterface(LINKTYPE_ETHERNET, 'ovl0')).toBe(1);
    w.packet(1, T0, Buffer.from('abcde'), 1500, 'reason=noRoute');
    w.packet(0, T0 + 1, Buffer.alloc(8), 8);
    expect(() => w.packet(2, T0, Buffer.alloc(1), 1)).toThrow(/no interface 2/);
    const [shb, idb0, idb1, epb, epb2, ...more] = blocks(Buffer.concat(parts));
    expect(more).toEqual([]);
    expect(shb!.type).toBe(0x0a0d0d0a);
    expect(shb!.body.readUInt32LE(0)).toBe(0x1a2b3c4d);
    expect([shb!.body.readUInt16LE(4), shb!.body.readUInt16LE(6)]).toEqual([1, 0]);
    expect(readOptions(shb!.body.subarray(16)).get(4)).toBe('overlayfwd');
    expect([idb0!.type, idb0!.body.readUInt16LE(0)]).toEqual([1, LINKTYPE_RAW]);
    expect(readOptions(idb0!.body.subarray(8))).toEqual(new Map([[2, 'underlay'], [3, 'outer packets']]));
    expect([idb1!.type, idb1!.body.readUInt16LE(0)]).toEqual([1, LINKTYPE_ETHERNET]);
    expect(epb!.type).toBe(6);
    const b = epb!.body;
    expect(b.readUInt32LE(0)).toBe(1);
    expect((BigInt(b.readUInt32LE(4)) << 32n) | BigInt(b.readUInt32LE(8))).toBe(BigInt(T0));
    expect([b.readUInt32LE(12), b.readUInt32LE(16)]).toEqual([5, 1500]);
    expect(b.subarray(20, 25).toString()).toBe('abcde');
    expect(readOptions(b.subarray(20 + 8)).get(1)).toBe('reason=noRoute'); // data padded to 8
    expect(epb2!.body.length).toBe(20 + 8); // no options at all without a comment
  });

  it('makes up the outer IPv4 and UDP headers of an underlay capture, checksums included', () => {
    const d = drop({});
    const { data, originalLength } = outerPacket(d, '198.18.0.1');
    const payload = vxlan(43);
    expect(originalLength).toBe(20 + 8 + payload.length);
    expect(data.length).toBe(originalLength);
    expect(data[0]).toBe(0x45);
    expect(data.readUInt16BE(2)).toBe(originalLength);
    expect(data[9]).toBe(17);
    expect([...data.subarray(12, 16)]).toEqual([198, 18, 0, 2]); // rx: from the peer
    expect([...data.subarray(16, 20)]).toEqual([198, 18, 0, 1]); // to us
    expect(internetChecksum(data.subarray(0, 20))).toBe(0xffff);
    expect([data.readUInt16BE(20), data.readUInt16BE(22), data.readUInt16BE(24)]).toEqual([40000, 4789, 8 + payload.length]);
    const pseudo = Buffer.concat([data.subarray(12, 20), Buffer.from([0, 17]), data.subarray(24, 26)]);
    expect(internetChecksum(Buffer.concat([pseudo, data.subarray(20)]))).toBe(0xffff);
    expect(data.subarray(28).equals(payload)).toBe(true);
    // tx: from us, from the sending socket's port; a truncated capture keeps the lengths whole.
    const long = vxlan(42, 1400);
    const tx = outerPacket(drop({ direction: 'tx', bytes: long, length: long.length, data: long.subarray(0, 128).toString('hex'), underlay: { protocol: 17, remote: '198.18.0.2', remotePort: 4789, localPort: 51000 } }), '198.18.0.1');
    expect(tx.originalLength).toBe(28 + long.length);
    expect(tx.data.length).toBe(28 + 128);
    expect([...tx.data.subarray(12, 16)]).toEqual([198, 18, 0, 1]);
    expect([tx.data.readUInt16BE(20), tx.data.readUInt16BE(22), tx.data.readUInt16BE(26)]).toEqual([51000, 4789, 0]);
  });

  it('makes up IPv6 headers, and raw-IP protocols without a UDP header; device frames stay as they are', () => {
    const v6 = outerPacket(drop({ underlay: { protocol: 17, remote: 'fd00::2', remotePort: 4000, localPort: 6081 } }), 'fd00::1');
    expect(v6.data[0]! >> 4).toBe(6);
    expect(v6.data[6]).toBe(17);
    expect(v6.data.readUInt16BE(4)).toBe(8 + vxlan(43).length);
    expect(v6.data.subarray(8, 24).toString('hex')).toBe('fd000000000000000000000000000002');
    expect(v6.data.subarray(24, 40).toString('hex')).toBe('fd000000000000000000000000000001');
    const gre = Buffer.from('00006558', 'hex');
    const raw = outerPacket(drop({ bytes: gre, underlay: { protocol: 47, remote: '198.18.0.2', remotePort: 0, localPort: 0 } }), '198.18.0.1');
    expect(raw.data.length).toBe(24);
    expect(raw.data[9]).toBe(47);
    expect(raw.data.subarray(20).equals(gre)).toBe(true);
    const frame = Buffer.alloc(60, 7);
    const device = outerPacket(drop({ layer: 'device', bytes: frame, length: 1514 }), '198.18.0.1');
    expect(device.data.equals(frame)).toBe(true);
    expect(device.originalLength).toBe(1514);
  });

  it('says reason, direction, peer, worker and record in each comment', () => {
    expect(dropComment(drop({ worker: 1, sequence: 7 }))).toBe('reason=wrongVni direction=rx peer=b worker=1 sequence=7');
    expect(dropComment(drop({ reason: 'unknownPeer', peer: null, packets: 3 }))).toBe(
      'reason=unknownPeer direction=rx peer=- worker=0 sequence=1 packets=3 remote=198.18.0.2:40000',
    );
  });
});

// ---- tshark opens what we write

const tsharkMissing = commandExists('tshark') ? null : 'tshark is not installed';
const tsharkTitle = 'pcapng of drops, read back by tshark';
if (tsharkMissing && REQUIRE_NETNS) {
  describe(tsharkTitle, () => {
    it('has its prerequisites (OVERLAYFWD_REQUIRE_NETNS=1)', () => {
      throw new Error(`OVERLAYFWD_REQUIRE_NETNS=1 but this suite cannot run: ${tsharkMissing}`);
    });
  });
} else {
  (tsharkMissing ? describe.skip : describe)(tsharkMissing ? `${tsharkTitle} [skipped: ${tsharkMissing}]` : tsharkTitle, () => {
    async function fields(file: string, names: string[]): Promise<string[][]> {
      const { stdout } = await run('tshark', ['-r', file, '-T', 'fields', '-E', 'separator=|', ...names.flatMap((n) => ['-e', n])]);
      return stdout.trim().split('\n').map((l) => l.split('|'));
    }

    it('dissects the outer headers (VXLAN VNI), the inner frames on their own interface, and shows each comment', async () => {
      const file = path.join(tmp, 'tap.pcapng');
      const parts: Buffer[] = [];
      const capture = new DropCapture((b) => parts.push(b), { name: 'ovl0', device: { name: 'ovl0', layer: 'ethernet' }, underlay: { local: '198.18.0.1' } });
      const inner = vxlan(0).subarray(8); // an Ethernet frame
      expect(capture.add(drop({ sequence: 1 }))).toBe(true);
      expect(capture.add(drop({ sequence: 2, reason: 'unknownPeer', peer: null, underlay: { protocol: 17, remote: '198.18.0.99', remotePort: 40000, localPort: 4789 } }))).toBe(true);
      expect(capture.add(drop({ sequence: 3, reason: 'noRoute', direction: 'tx', layer: 'device', peer: null, bytes: inner, underlay: undefined }))).toBe(true);
      expect(capture.add(drop({ sequence: 4, reason: 'deviceError', layer: 'none', bytes: Buffer.alloc(0), underlay: undefined }))).toBe(false);
      expect(capture.add(drop({ sequence: 5, reason: 'malformed', bytes: vxlan(42).subarray(0, 5) }))).toBe(true);
      fs.writeFileSync(file, Buffer.concat(parts));
      const rows = await fields(file, ['frame.interface_id', 'frame.comment', 'ip.src', 'ipv6.src', 'udp.dstport', 'vxlan.vni', 'eth.type']);
      expect(rows).toEqual([
        ['0', 'reason=wrongVni direction=rx peer=b worker=0 sequence=1', '198.18.0.2', '', '4789', '43', '0x88b5'],
        ['0', 'reason=unknownPeer direction=rx peer=- worker=0 sequence=2 remote=198.18.0.99:40000', '198.18.0.99', '', '4789', '43', '0x88b5'],
        ['1', 'reason=noRoute direction=tx peer=- worker=0 sequence=3', '', '', '', '', '0x88b5'],
        ['0', 'reason=malformed direction=rx peer=b worker=0 sequence=5', '198.18.0.2', '', '4789', '', ''],
      ]);
    });

    it('writes a TUN device frame as raw IP', async () => {
      const file = path.join(tmp, 'tun.pcapng');
      const parts: Buffer[] = [];
      const capture = new DropCapture((b) => parts.push(b), { name: 'tun0', device: { name: 'tun0', layer: 'ip' }, underlay: { local: '198.18.0.1' } });
      const ip = Buffer.from('4500001c0000400040110000c6130001c6130063', 'hex');
      capture.add(drop({ reason: 'noRoute', direction: 'tx', layer: 'device', peer: null, bytes: Buffer.concat([ip, Buffer.alloc(8)]), underlay: undefined }));
      fs.writeFileSync(file, Buffer.concat(parts));
      expect(await fields(file, ['frame.interface_id', 'ip.dst', 'frame.comment'])).toEqual([['1', '198.19.0.99', 'reason=noRoute direction=tx peer=- worker=0 sequence=1']]);
    });
  });
}

// ---- the CLI against a fake overlay

/** An overlay whose drop "rings" are a list per worker, with a cursor as recentDrops() takes it. */
function fakeOverlay(name: string) {
  const rings: DroppedPacket[][] = [[], []];
  const lost = [0, 0]; // records the rings no longer hold, per worker
  const overlay: OverlayLike & { record(worker: number, d: Partial<DroppedPacket>): void; lose(worker: number, n: number): void } = {
    name,
    stats: (): OverlayStats => ({
      name,
      device: name,
      workers: 2,
      totals: fakeCounters(1, { tx: 1, rx: 1, flood: 0, bytesPerPacket: 100 }),
      peers: {},
      fdb: { learned: 0, static: 0, refused: 0 },
      healthy: true,
      offloads: fakeOffloadStats(),
      generated: { icmpTooBig: 0, mssClamped: 0 },
      control: { natKeepalives: 0, controlRx: 0, controlTx: 0 },
    }),
    peers: { add: () => ({}) as never, remove: () => false, list: () => [] },
    fdb: () => [],
    recentDrops: (since?: number[]): RecentDrops => {
      let missed = 0;
      const drops: DroppedPacket[] = [];
      const cursor = rings.map((ring, w) => {
        const oldest = lost[w]! + 1;
        const from = since?.[w] ?? oldest;
        if (since && from < oldest) missed += oldest - from;
        drops.push(...ring.filter((d) => d.sequence >= Math.max(from, oldest)));
        return lost[w]! + ring.length + 1;
      });
      drops.sort((a, b) => a.timestampUs - b.timestampUs);
      return { name, device: { name, layer: 'ethernet' }, underlay: { local: '198.18.0.1' }, drops, cursor, missed };
    },
    record: (worker, d) => {
      const ring = rings[worker]!;
      const sequence = lost[worker]! + ring.length + 1;
      ring.push(drop({ worker, sequence, timestampUs: T0 + worker * 1000 + sequence, ...d }));
    },
    lose: (worker, n) => {
      rings[worker]!.splice(0, n);
      lost[worker]! += n;
    },
  };
  return overlay;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI_MAIN, ...args], { env: { ...process.env, OVERLAYFWD_RUN_DIR: path.join(tmp, 'run') }, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

describe('overlayfwd drops against a running instance', () => {
  const servers: ControlServer[] = [];
  let overlay: ReturnType<typeof fakeOverlay>;
  beforeAll(async () => {
    await ensureCliBuilt({ tolerateTypeErrors: true });
  }, 180_000);
  const start = async () => {
    overlay = fakeOverlay('ovl0');
    servers.push(await ControlServer.listen(overlay, path.join(tmp, 'run', 'ovl0.sock')));
  };
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  it('--json prints what recentDrops() returns; the listing has one line per drop', async () => {
    await start();
    overlay.record(0, {});
    overlay.record(1, { reason: 'unknownPeer', peer: null, underlay: { protocol: 17, remote: '198.18.0.99', remotePort: 40000, localPort: 4789 } });
    overlay.record(0, { reason: 'noRoute', direction: 'tx', layer: 'device', peer: null, underlay: undefined, length: 1514 });
    const json = await cli(['drops', '-n', 'ovl0', '--json']);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(overlay.recentDrops!());
    const text = await cli(['drops', '-n', 'ovl0']);
    expect(text.code, text.stderr).toBe(0);
    const lines = text.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^2025-06-15T15:06:40\.12345\dZ\s+w0\s+rx\s+wrongVni\s+peer b\s+from 198\.18\.0\.2:40000\s+68 B\s+underlay: 08000000 00002b00 02000000 00010200 00000002 88b50000 …$/);
    // Oldest first across the workers (worker 1's drop is a millisecond later here).
    expect(lines[1]).toMatch(/w0\s+tx\s+noRoute\s+no peer\s+1514 B\s+device: /);
    expect(lines[2]).toMatch(/w1\s+rx\s+unknownPeer\s+no peer\s+from 198\.18\.0\.99:40000/);
  });

  it('says when there is nothing, and refuses --json with --pcap', async () => {
    await start();
    expect((await cli(['drops', '-n', 'ovl0'])).stdout).toBe('(no drops recorded)\n');
    const both = await cli(['drops', '-n', 'ovl0', '--json', '--pcap', path.join(tmp, 'x.pcapng')]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--json and --pcap/);
  });

  it('--pcap writes a pcapng file with one packet per drop that has bytes', async () => {
    await start();
    overlay.record(0, {});
    overlay.record(0, { reason: 'deviceError', layer: 'none', data: '', length: 0, underlay: undefined });
    overlay.record(1, { reason: 'malformed' });
    const file = path.join(tmp, 'cli.pcapng');
    const r = await cli(['drops', '-n', 'ovl0', '--pcap', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`overlayfwd: wrote 2 drops to ${file} (1 drop without captured bytes left out)\n`);
    const all = blocks(fs.readFileSync(file));
    expect(all.map((b) => b.type)).toEqual([0x0a0d0d0a, 1, 1, 6, 6]);
    expect(readOptions(all[3]!.body.subarray(20 + ((all[3]!.body.readUInt32LE(12) + 3) & ~3))).get(1)).toBe(
      'reason=wrongVni direction=rx peer=b worker=0 sequence=1',
    );
  });

  it('--follow prints each new drop once, as it comes, and says how many an overrun cost', async () => {
    await start();
    overlay.record(0, {});
    const child = spawn(process.execPath, [CLI_MAIN, 'drops', '-n', 'ovl0', '--follow', '--json'], {
      env: { ...process.env, OVERLAYFWD_RUN_DIR: path.join(tmp, 'run') },
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += String(d)));
    const lines = () => out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Partial<DroppedPacket> & { missed?: number });
    const until = async (cond: () => boolean, what: string) => {
      for (let waited = 0; !cond(); waited += 25) {
        if (waited > 10_000) throw new Error(`timed out waiting for ${what}: ${out}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    };
    try {
      await until(() => lines().length >= 1, 'the drop already recorded');
      overlay.record(1, { reason: 'unknownPeer', peer: null });
      await until(() => lines().length >= 2, 'a new drop');
      // A burst the follower cannot see all of: the ring kept the last two of five.
      for (let i = 0; i < 5; i++) overlay.record(0, { reason: 'malformed' });
      overlay.lose(0, 4);
      await until(() => lines().length >= 5, 'the overrun and the two drops left');
      await new Promise((resolve) => setTimeout(resolve, 800)); // several more polls: nothing twice
      expect(lines().map((l) => (l.missed !== undefined ? `missed ${l.missed}` : `${l.worker}/${l.sequence} ${l.reason}`))).toEqual([
        '0/1 wrongVni',
        '1/1 unknownPeer',
        'missed 3',
        '0/5 malformed',
        '0/6 malformed',
      ]);
    } finally {
      child.kill('SIGINT');
    }
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(code).toBe(0);
  });
});
