// Property-based tests (fast-check) of the control socket's request handling (lib/control.ts):
// whatever a client sends (arbitrary bytes in arbitrary chunks, JSON of any shape, requests with
// a known command and hostile fields, an ESP peer whose keys must not come back), the server
// answers once, with one line of JSON that is a well-formed response, within its deadline, and
// goes on serving: never a crash, a hang, or a second answer.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseConfig, parsePeer, publicPeer } from '../../lib/config';
import { ControlServer, controlRequest, type OverlayLike } from '../../lib/control';
import type { OverlayStats, ResolvedPeer } from '../../lib/types';
import { fakeCounters, fakeOffloadStats } from '../helpers/fake-stats';
import { PROPERTY_SCALE, runs } from '../helpers/property';

const TIMEOUT = 30_000 * PROPERTY_SCALE;
/** How long a client waits for the answer: far more than an answer takes, far less than the server's idle timeout. */
const ANSWER_MS = 3000;

const KEY_OUT = '8f'.repeat(32) + '01020304';
const KEY_IN = '7e'.repeat(32) + '05060708';

/** An ESP instance: peers.add validates against it (SA keys included). */
function fakeOverlay(): OverlayLike {
  const config = parseConfig({ name: 'prop0', encap: { type: 'esp', cipher: 'aes-256-gcm' }, device: { type: 'tun' }, underlay: { local: '198.18.0.1' } });
  const table: ResolvedPeer[] = [];
  const counters = fakeCounters(1, { tx: 1, rx: 1, flood: 0, bytesPerPacket: 100 });
  return {
    name: 'prop0',
    stats: (): OverlayStats => ({
      name: 'prop0',
      device: 'prop0',
      workers: 1,
      healthy: true,
      totals: counters,
      peers: Object.fromEntries(table.map((p) => [p.name, counters])),
      fdb: { learned: 0, static: 0, refused: 0 },
      offloads: fakeOffloadStats(),
      generated: { icmpTooBig: 0, mssClamped: 0 },
      control: { natKeepalives: 0, controlRx: 0, controlTx: 0 },
    }),
    peers: {
      add: (input: unknown) => {
        const peer = parsePeer(input, 'peer', config, table);
        table.push(peer);
        // Keep the table small: the property adds many peers.
        if (table.length > 8) table.shift();
        return peer;
      },
      remove: (name: string) => {
        const i = table.findIndex((p) => p.name === name);
        if (i < 0) return false;
        table.splice(i, 1);
        return true;
      },
      // As Overlay lists them: publicPeer, never the keys.
      list: () => table.map((p) => ({ ...publicPeer(p), learnedMacs: 0 })),
    },
    fdb: () => [],
  };
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ovlprop-'));
const socketPath = path.join(tmp, 'run', 'prop0.sock');
let server: ControlServer;
beforeAll(async () => {
  server = await ControlServer.listen(fakeOverlay(), socketPath);
});
afterAll(async () => {
  await server?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Sends `chunks` (then half-closes) and returns everything the server sent before it closed. */
function exchange(chunks: Buffer[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const conn = net.connect(socketPath);
    const received: Buffer[] = [];
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new Error(`no answer within ${ANSWER_MS} ms to ${JSON.stringify(Buffer.concat(chunks).toString('latin1').slice(0, 200))}`));
    }, ANSWER_MS);
    conn.on('connect', async () => {
      for (const chunk of chunks) {
        if (conn.destroyed) return;
        conn.write(chunk);
        await new Promise((r) => setImmediate(r));
      }
      conn.end();
    });
    conn.on('data', (d: Buffer) => received.push(d));
    // The server may answer and close before all of a long request was written.
    conn.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE' && e.code !== 'ECONNRESET') {
        clearTimeout(timer);
        reject(e);
      }
    });
    conn.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(received).toString('utf8'));
    });
  });
}

/** One line of JSON, a response of one of the two shapes. */
function expectResponse(text: string, request: string): { ok: boolean; result?: unknown; error?: { message: string } } {
  // A request of only whitespace gets no answer (there is nothing to answer).
  if (text === '') {
    expect(request.trim(), 'no answer to a request').toBe('');
    return { ok: false, error: { message: '' } };
  }
  expect(text.endsWith('\n')).toBe(true);
  expect(text.indexOf('\n')).toBe(text.length - 1);
  const response = JSON.parse(text) as Record<string, unknown>;
  expect(typeof response.ok).toBe('boolean');
  if (response.ok) {
    expect(Object.keys(response).sort()).toEqual(['ok', 'result']);
  } else {
    expect(Object.keys(response).sort()).toEqual(['error', 'ok']);
    const error = response.error as Record<string, unknown>;
    expect(typeof error.message).toBe('string');
    expect((error.message as string).length).toBeGreaterThan(0);
    if (error.issues !== undefined) {
      expect(Array.isArray(error.issues)).toBe(true);
      for (const issue of error.issues as Array<Record<string, unknown>>) {
        expect(typeof issue.path).toBe('string');
        expect(typeof issue.message).toBe('string');
      }
    }
  }
  return response as { ok: boolean };
}

/** Splits `bytes` at the given points (as a client's writes may arrive). */
function chunked(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let at = 0;
  for (const p of points) {
    if (p > at) out.push(bytes.subarray(at, p));
    at = Math.max(at, p);
  }
  if (at < bytes.length || out.length === 0) out.push(bytes.subarray(at));
  return out;
}

const cuts = fc.array(fc.nat(), { maxLength: 4 });
const peerInput = fc.record(
  {
    name: fc.oneof(fc.constantFrom('b', 'c', 'd'), fc.string({ maxLength: 10 })),
    endpoint: fc.oneof(fc.constantFrom('198.18.0.2', '198.18.0.3:4500', '[fd00::2]:4500', '198.18.0.1', 'x'), fc.jsonValue({ maxDepth: 1 })),
    allowedIps: fc.oneof(fc.constant(['198.19.0.2/32']), fc.array(fc.oneof(fc.constantFrom('10.0.0.0/8', 'fd00::/64', '1.2.3.4/33'), fc.string({ maxLength: 6 })), { maxLength: 3 })),
    sa: fc.oneof(
      fc.constant({ out: { spi: '0x1001', key: KEY_OUT }, in: { spi: '0x2001', key: KEY_IN } }),
      fc.constant({ out: { spi: 0, key: KEY_OUT }, in: [{ spi: '0x2001', key: KEY_IN.slice(2) }] }),
      fc.constant({ out: { spi: '0x1002', key: `${KEY_OUT}00` }, in: { spi: 'x', key: KEY_IN } }),
      fc.jsonValue({ maxDepth: 2 }),
    ),
    extra: fc.jsonValue({ maxDepth: 1 }),
  },
  { requiredKeys: [] },
);
const request = fc.oneof(
  fc.record({ cmd: fc.constantFrom('stats', 'peers.list', 'fdb', 'nodes') }),
  fc.record({ cmd: fc.constant('peers.add'), peer: peerInput }, { requiredKeys: ['cmd'] }),
  fc.record({ cmd: fc.constant('peers.remove'), name: fc.oneof(fc.constantFrom('b', 'c'), fc.jsonValue({ maxDepth: 1 })) }, { requiredKeys: ['cmd'] }),
  fc.record({ cmd: fc.oneof(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 1 })), peer: fc.jsonValue({ maxDepth: 2 }), name: fc.jsonValue({ maxDepth: 1 }) }, { requiredKeys: [] }),
  fc.jsonValue({ maxDepth: 3 }),
);

describe('control socket: properties', () => {
  it('answers arbitrary bytes, in any chunks, with one well-formed response', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 600 }), fc.boolean(), cuts, async (raw, newline, at) => {
        const bytes = Buffer.concat([Buffer.from(raw), newline ? Buffer.from('\n') : Buffer.alloc(0)]);
        expectResponse(await exchange(chunked(bytes, at)), bytes.toString('utf8'));
      }),
      runs(150),
    );
  }, TIMEOUT);

  it('answers JSON requests of any shape well-formed, and never sends an SA key back', async () => {
    await fc.assert(
      fc.asyncProperty(request, cuts, fc.constantFrom('\n', '', '\r\n', '\n{"cmd":"stats"}\n'), async (req, at, tail) => {
        const line = `${JSON.stringify(req)}${tail}`;
        const text = await exchange(chunked(Buffer.from(line), at));
        const response = expectResponse(text, line);
        expect(text.includes(KEY_OUT.slice(0, 32)) || text.includes(KEY_IN.slice(0, 32))).toBe(false);
        const cmd = (req as { cmd?: unknown } | null)?.cmd;
        if (cmd === 'stats' || cmd === 'peers.list' || cmd === 'fdb') expect(response.ok).toBe(true);
      }),
      runs(200),
    );
  }, TIMEOUT);

  it('answers a request longer than its limit without a newline, once', async () => {
    const big = Buffer.alloc((1 << 20) + 4096, 0x61);
    const text = await exchange([big.subarray(0, 600_000), big.subarray(600_000)]);
    const response = expectResponse(text, 'x');
    expect(response.ok).toBe(false);
    expect(response.error?.message).toMatch(/larger than/);
  });

  it('still serves after all that', async () => {
    const stats = await controlRequest(socketPath, { cmd: 'stats' });
    expect(stats.name).toBe('prop0');
  });
});
