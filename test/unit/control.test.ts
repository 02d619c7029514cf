import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, parsePeer } from '../../lib/config';
import { ControlError, ControlServer, controlRequest, probeSocket, type OverlayLike } from '../../lib/control';
import type { Counters, OverlayStats, RecentDrops, ResolvedPeer } from '../../lib/types';
import { fakeCounters, fakeOffloadStats } from '../helpers/fake-stats';

const counters = (n: number): Counters => fakeCounters(n, { tx: 1, rx: 2, flood: 1, bytesPerPacket: 100 });



function fakeOverlay(): OverlayLike & { table: ResolvedPeer[] } {
  const config = parseConfig({ name: 'fake0', encap: { vni: 1 }, underlay: { local: '198.18.0.1' } });
  const table: ResolvedPeer[] = [];
  return {
    table,
    name: 'fake0',
    stats: (): OverlayStats => ({
      name: 'fake0',
      device: 'fake0',
      workers: 2,
      totals: counters(3),
      peers: Object.fromEntries(table.map((p, i) => [p.name, counters(i + 1)])),
      fdb: { learned: 1, static: 2, refused: 0 },
      healthy: true,
      offloads: fakeOffloadStats(),
      generated: { icmpTooBig: 0, mssClamped: 0 },
      control: { natKeepalives: 0, controlRx: 0, controlTx: 0 },
    }),
    peers: {
      add: (input: unknown) => {
        const peer = parsePeer(input, 'peer', config, table);
        table.push(peer);
        return peer;
      },
      remove: (name: string) => {
        const i = table.findIndex((p) => p.name === name);
        if (i < 0) return false;
        table.splice(i, 1);
        return true;
      },
      list: () => table.map((p) => ({ ...p, learnedMacs: 0 })),
    },
    fdb: () => [{ mac: '02:00:00:00:00:09', peer: 'b', static: false, ageSeconds: 5 }],
  };
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ovlctl-'));
let seq = 0;
const socketPath = () => path.join(tmp, `run${++seq}`, 'fake0.sock');
const servers: ControlServer[] = [];
async function listen(overlay: OverlayLike, file: string): Promise<ControlServer> {
  const server = await ControlServer.listen(overlay, file);
  servers.push(server);
  return server;
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Sends raw text and returns the raw answer. */
function rawRequest(file: string, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const conn = net.connect(file, () => conn.end(text));
    let out = '';
    conn.setEncoding('utf8');
    conn.on('data', (d: string) => (out += d));
    conn.on('end', () => resolve(out));
    conn.on('error', reject);
  });
}

describe('ControlServer', () => {
  it('serves stats, peers and fdb', async () => {
    const overlay = fakeOverlay();
    const file = socketPath();
    await listen(overlay, file);

    const added = await controlRequest(file, { cmd: 'peers.add', peer: { name: 'b', endpoint: '198.18.0.2:4790', macs: ['02:00:00:00:00:02'] } });
    expect(added).toEqual({ name: 'b', endpoint: { address: '198.18.0.2', port: 4790 }, allowedIps: [], macs: ['02:00:00:00:00:02'] });

    const stats = await controlRequest(file, { cmd: 'stats' });
    expect(stats).toEqual(overlay.stats());
    expect(stats.peers.b!.txBytes).toBe(100);

    expect(await controlRequest(file, { cmd: 'peers.list' })).toEqual([{ ...added, learnedMacs: 0 }]);
    expect(await controlRequest(file, { cmd: 'fdb' })).toEqual(overlay.fdb());
    expect(await controlRequest(file, { cmd: 'peers.remove', name: 'nope' })).toEqual({ removed: false });
    expect(await controlRequest(file, { cmd: 'peers.remove', name: 'b' })).toEqual({ removed: true });
    expect(overlay.table).toEqual([]);
  });

  it('serves drops with the cursor it is given, refuses a cursor that is none, and says when an instance records none', async () => {
    const calls: Array<number[] | undefined> = [];
    const answer: RecentDrops = { name: 'fake0', device: { name: 'fake0', layer: 'ethernet' }, underlay: { local: '198.18.0.1' }, drops: [], cursor: [4, 9], missed: 2 };
    const overlay = { ...fakeOverlay(), recentDrops: (since?: number[]) => (calls.push(since), answer) };
    const file = socketPath();
    await listen(overlay, file);
    expect(await controlRequest(file, { cmd: 'drops' })).toEqual(answer);
    expect(await controlRequest(file, { cmd: 'drops', since: [4, 9] })).toEqual(answer);
    expect(calls).toEqual([undefined, [4, 9]]);
    for (const since of [[-1], [1.5], ['3'], 7]) {
      await expect(controlRequest(file, { cmd: 'drops', since } as never)).rejects.toThrow(/"since" must be the "cursor" of an earlier answer/);
    }
    expect(calls).toHaveLength(2);
    const old = socketPath();
    await listen(fakeOverlay(), old);
    await expect(controlRequest(old, { cmd: 'drops' })).rejects.toThrow(/does not record drops/);
  });

  it('propagates validation errors of peers.add as ConfigError with issues', async () => {
    const file = socketPath();
    await listen(fakeOverlay(), file);
    const err = await controlRequest(file, { cmd: 'peers.add', peer: { name: 'b', endpoint: '198.18.0.999', extra: 1 } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).issues).toEqual([
      { path: 'peer.endpoint', message: '"198.18.0.999" is not an IPv4 or IPv6 address' },
      { path: 'peer.extra', message: expect.stringMatching(/unknown key/) },
    ]);
  });

  it('answers bad requests with an error, not a crash', async () => {
    const file = socketPath();
    await listen(fakeOverlay(), file);
    const unknown = await controlRequest(file, { cmd: 'reboot' } as never).catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(ControlError);
    expect((unknown as Error).message).toMatch(/unknown command "reboot"/);
    expect(JSON.parse(await rawRequest(file, 'not json\n'))).toEqual({ ok: false, error: { message: 'request is not valid JSON' } });
    // No trailing newline: the half-close ends the request.
    expect(JSON.parse(await rawRequest(file, '{"cmd":"fdb"}'))).toMatchObject({ ok: true });
    expect(JSON.parse(await rawRequest(file, '{"cmd":"peers.remove"}\n'))).toMatchObject({ ok: false, error: { message: /name/ } });
  });

  it('creates the directory 0755 and the socket 0600, and removes the socket on close', async () => {
    const file = socketPath();
    const server = await ControlServer.listen(fakeOverlay(), file);
    expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o755);
    const st = fs.lstatSync(file);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    await server.close();
    await server.close(); // idempotent
    expect(fs.existsSync(file)).toBe(false);
    await expect(controlRequest(file, { cmd: 'stats' })).rejects.toThrow(`no running instance at ${file}`);
  });

  it('replaces a stale socket file', async () => {
    const file = socketPath();
    fs.mkdirSync(path.dirname(file), { recursive: true });
    // A process that dies while listening leaves its socket file behind.
    try {
      execFileSync(process.execPath, [
        '-e',
        `require('net').createServer().listen(${JSON.stringify(file)}, () => process.kill(process.pid, 'SIGKILL'))`,
      ]);
    } catch {
      // killed, as intended
    }
    expect(fs.lstatSync(file).isSocket()).toBe(true);
    expect(await probeSocket(file)).toBe('stale');
    await expect(controlRequest(file, { cmd: 'stats' })).rejects.toThrow(`no running instance at ${file}`);
    await listen(fakeOverlay(), file);
    expect(await probeSocket(file)).toBe('live');
    expect((await controlRequest(file, { cmd: 'stats' })).name).toBe('fake0');
  });

  it('refuses a second instance on a live socket and leaves the first one alone', async () => {
    const file = socketPath();
    await listen(fakeOverlay(), file);
    await expect(ControlServer.listen(fakeOverlay(), file)).rejects.toThrow(/another instance is running/);
    expect(fs.lstatSync(file).isSocket()).toBe(true);
    expect((await controlRequest(file, { cmd: 'stats' })).name).toBe('fake0');
  });

  it('refuses to replace something that is not a socket', async () => {
    const file = socketPath();
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, 'precious');
    await expect(ControlServer.listen(fakeOverlay(), file)).rejects.toThrow(/not a socket/);
    expect(fs.readFileSync(file, 'utf8')).toBe('precious');
  });
});

describe('controlRequest', () => {
  it('reports "no running instance" for a missing socket', async () => {
    const missing = path.join(tmp, 'nobody.sock');
    await expect(controlRequest(missing, { cmd: 'stats' })).rejects.toThrow(`no running instance at ${missing}`);
  });

  it('times out when nobody answers', async () => {
    const file = path.join(tmp, 'mute.sock');
    const mute = net.createServer(() => {});
    await new Promise<void>((resolve) => mute.listen(file, resolve));
    try {
      const started = Date.now();
      await expect(controlRequest(file, { cmd: 'stats' }, 200)).rejects.toThrow(/no response from .* within 200 ms/);
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      mute.close();
    }
  });
});
