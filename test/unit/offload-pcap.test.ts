// The frames the native segmentation code (TSO/USO super-frames cut into wire frames) produced in
// its unit tests, checked by an independent implementation: tshark verifies every IPv4 header,
// TCP and UDP checksum. native/build/core_tests (built by `npm run test:native`) writes them to
// $OVERLAYFWD_PCAP_DIR/offload_segments.pcap.
//
// Skipped with the reason when the binary or tshark is missing; under OVERLAYFWD_REQUIRE_NETNS=1
// (CI) that is a failure instead.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandExists } from '../../lab';
import { REQUIRE_NETNS, ROOT } from '../helpers/env';

const run = promisify(execFile);

const CORE_TESTS = path.join(ROOT, 'native', 'build', 'core_tests');
const PCAP = 'offload_segments.pcap';

function missing(): string | null {
  if (!fs.existsSync(CORE_TESTS)) return `${path.relative(ROOT, CORE_TESTS)} is not built (run npm run test:native)`;
  if (!commandExists('tshark')) return 'tshark is not installed';
  return null;
}

/** tshark's checksum status values (epan/proto.h: PROTO_CHECKSUM_E_BAD = 0, _GOOD = 1, _UNVERIFIED = 2, ...). */
const GOOD = new Set(['1', 'Good']);

interface Frame {
  number: number;
  ipProto: string;
  ip6Next: string;
  ip: string;
  tcp: string;
  udp: string;
}

const reason = missing();
const title = 'segmented frames from the native unit tests, checksums verified by tshark';

if (reason && REQUIRE_NETNS) {
  describe(title, () => {
    it('has its prerequisites (OVERLAYFWD_REQUIRE_NETNS=1)', () => {
      throw new Error(`OVERLAYFWD_REQUIRE_NETNS=1 but this suite cannot run: ${reason}`);
    });
  });
} else {
  if (reason) process.stderr.write(`[overlayfwd] skipping "${title}": ${reason} (set OVERLAYFWD_REQUIRE_NETNS=1 to make this a failure)\n`);
  (reason ? describe.skip : describe)(reason ? `${title} [skipped: ${reason}]` : title, () => {
    let dir: string;
    let wrote: number;
    let frames: Frame[];

    beforeAll(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'overlayfwd-pcap-'));
      const native = await run(CORE_TESTS, [], {
        env: { ...process.env, OVERLAYFWD_PCAP_DIR: dir },
        timeout: 120_000,
        maxBuffer: 64 * 1024 * 1024,
      });
      const m = /wrote (\d+) frames to (.*offload_segments\.pcap)/.exec(native.stdout);
      if (!m) throw new Error(`core_tests did not report writing ${PCAP}:\n${native.stdout.slice(-2000)}`);
      wrote = Number(m[1]);
      const fields = ['frame.number', 'ip.proto', 'ipv6.nxt', 'ip.checksum.status', 'tcp.checksum.status', 'udp.checksum.status'];
      const { stdout } = await run(
        'tshark',
        [
          '-n',
          '-r',
          path.join(dir, PCAP),
          '-o', 'ip.check_checksum:TRUE',
          '-o', 'tcp.check_checksum:TRUE',
          '-o', 'udp.check_checksum:TRUE',
          '-T', 'fields',
          '-E', 'separator=/t',
          '-E', 'occurrence=a',
          '-E', 'aggregator=,',
          ...fields.flatMap((f) => ['-e', f]),
        ],
        { timeout: 60_000, maxBuffer: 64 * 1024 * 1024 },
      );
      frames = stdout
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => {
          const [number, ipProto, ip6Next, ip, tcp, udp] = l.split('\t');
          return { number: Number(number), ipProto: ipProto ?? '', ip6Next: ip6Next ?? '', ip: ip ?? '', tcp: tcp ?? '', udp: udp ?? '' };
        });
    }, 180_000);

    afterAll(() => {
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it('tshark reads every frame the native tests wrote, and there are many', () => {
      expect(wrote).toBeGreaterThanOrEqual(100);
      expect(frames.length).toBe(wrote);
    });

    it('covers TCP and UDP over IPv4 and IPv6', () => {
      const has = (pred: (f: Frame) => boolean) => frames.some(pred);
      expect(has((f) => f.ipProto !== '' && f.tcp !== '')).toBe(true);
      expect(has((f) => f.ipProto !== '' && f.udp !== '')).toBe(true);
      expect(has((f) => f.ipProto === '' && f.ip6Next !== '' && f.tcp !== '')).toBe(true);
      expect(has((f) => f.ipProto === '' && f.ip6Next !== '' && f.udp !== '')).toBe(true);
    });

    it('every IPv4 header, TCP and UDP checksum is good', () => {
      const bad: string[] = [];
      for (const f of frames) {
        const statuses = [f.ip, f.tcp, f.udp].flatMap((s) => (s ? s.split(',') : []));
        // Every frame is IPv4 (with its header checksum) or IPv6, and carries TCP or UDP.
        const complete = (f.ipProto === '' || f.ip !== '') && (f.tcp !== '' || f.udp !== '');
        if (!complete || statuses.some((s) => !GOOD.has(s))) {
          bad.push(`frame ${f.number}: ip.proto=${f.ipProto} ipv6.nxt=${f.ip6Next} ip=${f.ip || '-'} tcp=${f.tcp || '-'} udp=${f.udp || '-'}`);
        }
      }
      expect(bad, `${bad.length} of ${frames.length} frames are not all good:\n${bad.slice(0, 20).join('\n')}`).toEqual([]);
    });
  });
}
