// The structured logs of the real `overlayfwd up`: an ESP instance whose config holds secrets
// (a manual SA's keys, an IKE pre-shared key) runs with --log-level info next to an IKE peer
// (a library overlay in the other namespace). Every stderr line must be a JSON object; the
// start, the IKE exchange, a peer added by `overlayfwd peers add --sa-file` (more keys), a drop
// summary for crafted malformed datagrams (exactly their reason and count, once) and the stop
// must be there; no line may hold a key, a piece of one, the PSK, or even a redacted field
// (that would mean a secret reached the logger). At the default level the same run is silent.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Lab, execIn } from '../../lab';
import type { Host } from '../../lab';
import type { Overlay } from '../../lib/overlay';
import type { OverlayStats, TableChange } from '../../lib/types';
import { CLI_MAIN, ensureCliBuilt } from '../helpers/cli';
import { describeNetns, ROOT, sleep, waitFor } from '../helpers/env';
import { loadOverlay } from '../helpers/overlay';
import { sendDatagrams } from '../helpers/udp';

const PSK = 'logs-test-psk-do-not-print-0123456789';
const SUMMARY_MS = 1000;
const MALFORMED = 5;
const ESP_PORT = 4500;
const inner = (i: number) => `198.19.9.${i}`;

/** Fresh key material for an aes-256-gcm SA: 32 bytes of key and 4 of salt, in hex. */
const freshKey = () => crypto.randomBytes(36).toString('hex');

type Line = Record<string, unknown> & { level: string; msg: string; component?: string };

/** Every line of `text` parsed as JSON; a line that is not JSON fails the test, naming it. */
function parseLines(text: string): Line[] {
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      let record: unknown;
      try {
        record = JSON.parse(l);
      } catch {
        throw new Error(`a stderr line of up is not JSON: ${l}`);
      }
      return record as Line;
    });
}

describeNetns('structured logs of overlayfwd up', {}, () => {
  let lab: Lab;
  let a: Host;
  let b: Host;
  let B: Overlay;
  let dir: string;
  let sock: string;
  let configFile: string;
  const keys = [freshKey(), freshKey(), freshKey(), freshKey()];

  const cli = (args: string[]) => execIn(null, process.execPath, [CLI_MAIN, ...args], { allowFailure: true, cwd: ROOT, timeoutMs: 30_000 });
  const statsOfA = async () => JSON.parse((await cli(['stats', '--json', '-s', sock])).stdout) as OverlayStats;
  const startUp = (args: string[]) =>
    lab.spawn(null, process.execPath, [CLI_MAIN, 'up', '-c', configFile, ...args], { cwd: ROOT, env: { ...process.env, OVERLAYFWD_DROP_SUMMARY_MS: String(SUMMARY_MS) } });

  /** No key, no 16-digit piece of one, no PSK, and no redacted field in `text`. */
  const expectNoSecret = (text: string, where: string) => {
    for (const key of keys) {
      for (let i = 0; i + 16 <= key.length; i += 4) expect(text.includes(key.slice(i, i + 16)), `${where} holds a piece of a key`).toBe(false);
    }
    expect(text.includes(PSK), `${where} holds the PSK`).toBe(false);
    expect(text.includes('<redacted>'), `${where} has a redacted field: a secret reached the logger`).toBe(false);
  };

  beforeAll(async () => {
    await ensureCliBuilt();
    lab = await Lab.create({ prefix: 'logs' });
    [a, b] = await lab.pair('a', 'b');
    dir = lab.tmpdir();
    sock = path.join(dir, 'logs0.sock');
    configFile = path.join(dir, 'logs0.yaml');
    fs.writeFileSync(
      configFile,
      YAML.stringify({
        name: 'logs0',
        netns: a.ns,
        device: { type: 'tun', name: 'logs0', addresses: [`${inner(1)}/24`] },
        encap: { type: 'esp', cipher: 'aes-256-gcm' },
        underlay: { local: a.underlay },
        workers: 1,
        ike: { auth: 'psk', psk: PSK },
        peers: [
          { name: 'b', endpoint: b.underlay, allowedIps: [`${inner(2)}/32`], ike: {} },
          // A manual peer nobody answers for: its keys are in the config, and must stay there.
          { name: 'm', endpoint: b.underlay.replace(/\.\d+$/, '.201'), allowedIps: [`${inner(5)}/32`], sa: { out: { spi: 0x5001, key: keys[0] }, in: { spi: 0x6001, key: keys[1] } } },
        ],
        control: { socket: sock },
      }),
      { mode: 0o600 },
    );
    const OverlayCls = await loadOverlay();
    B = await OverlayCls.create({
      name: 'logsb',
      netns: b.ns,
      device: { type: 'tun', name: 'logsb', addresses: [`${inner(2)}/24`] },
      // The cipher for the manual peers the tableChanged test adds (IKE negotiates its own).
      encap: { type: 'esp', cipher: 'aes-256-gcm' },
      underlay: { local: b.underlay },
      workers: 1,
      ike: { auth: 'psk', psk: PSK, start: 'passive' },
      peers: [{ name: 'a', endpoint: a.underlay, allowedIps: [`${inner(1)}/32`] }],
      control: { socket: path.join(dir, 'logsb.sock') },
    });
    lab.onDestroy(() => B.close());
  }, 240_000);
  afterAll(async () => {
    await lab?.destroy();
  });

  it('is silent at the default level: the banner on stdout, nothing on stderr', async () => {
    const up = startUp([]);
    await waitFor(() => !up.running || up.stdout.includes('logs0 up: device'), 'the up banner', 30_000);
    expect(up.running, `up exited early:\n${up.stderr}`).toBe(true);
    await waitFor(() => B.peers.list()[0]?.ikeSa?.state === 'established', 'the IKE SA with b', 15_000);
    await sleep(2 * SUMMARY_MS);
    up.kill('SIGTERM');
    expect((await up.wait(20_000)).code, up.stderr).toBe(0);
    expect(up.stderr).toBe('');
    expect(up.stdout.split('\n').filter(Boolean)).toHaveLength(1);
  }, 60_000);

  it('at info: JSON lines for start, IKE, a peer added, one exact drop summary and the stop; no secret in any', async () => {
    const up = startUp(['--log-level', 'info']);
    await waitFor(() => !up.running || up.stdout.includes('logs0 up: device'), 'the up banner', 30_000);
    expect(up.running, `up exited early:\n${up.stderr}`).toBe(true);
    await waitFor(() => {
      const s = B.peers.list()[0]?.ikeSa;
      return s?.state === 'established' && !!s.child && B.stats().ike?.sessions === 1;
    }, 'one IKE SA with b and its Child SA', 15_000);

    // A peer with SAs from a file: two more keys that travel through the control socket.
    const saFile = path.join(dir, 'c.sa.yaml');
    fs.writeFileSync(saFile, YAML.stringify({ out: { spi: 0x7001, key: keys[2] }, in: { spi: 0x8001, key: keys[3] } }), { mode: 0o600 });
    const added = await cli(['peers', 'add', '-s', sock, '--name', 'c', '--endpoint', b.underlay.replace(/\.\d+$/, '.202'), '--allowed-ip', `${inner(3)}/32`, '--sa-file', saFile]);
    expect(added.code, added.stderr).toBe(0);
    await waitFor(() => parseLines(up.stderr).some((l) => l.msg === 'peer table installed' && l.cause === 'add'), 'the peer-added line', 5000);

    // Malformed ESP from b's address (too short for an ESP header): counted as malformed, charged to b.
    const before = await statsOfA();
    const mark = parseLines(up.stderr).length;
    await sendDatagrams(lab, b, a.underlay, ESP_PORT, [{ src: b.underlay, payload: Buffer.alloc(6, 0xab), count: MALFORMED }]);
    await waitFor(() => parseLines(up.stderr).slice(mark).some((l) => l.msg === 'packets dropped'), 'the drop summary', 5 * SUMMARY_MS);
    const after = await statsOfA();
    expect(after.totals.drops.malformed - before.totals.drops.malformed).toBe(MALFORMED);
    // Three more intervals without drops: no second summary.
    await sleep(3 * SUMMARY_MS);

    up.kill('SIGTERM');
    const st = await up.wait(20_000);
    expect({ code: st.code, signal: st.signal }, up.stderr).toEqual({ code: 0, signal: null });

    const lines = parseLines(up.stderr);
    for (const l of lines) {
      expect(l, JSON.stringify(l)).toMatchObject({ level: expect.stringMatching(/^(debug|info|warn|error)$/), time: expect.any(String), instance: 'logs0', msg: expect.any(String) });
      expect(['control', 'device', 'peers', 'datapath', 'ike', 'registry', 'metrics']).toContain(l.component);
    }
    const find = (msg: string, where: Partial<Line> = {}) => lines.filter((l) => l.msg === msg && Object.entries(where).every(([k, v]) => JSON.stringify(l[k]) === JSON.stringify(v)));

    expect(find('offloads probed', { component: 'datapath' })).toHaveLength(1);
    expect(find('started', { component: 'control' })).toEqual([
      expect.objectContaining({ level: 'info', device: expect.objectContaining({ name: 'logs0', type: 'tun' }), encap: expect.objectContaining({ type: 'esp', cipher: 'aes-256-gcm' }), peers: { count: 2, names: ['b', 'm'], ike: 1 } }),
    ]);
    expect(lines.some((l) => l.component === 'ike' && l.msg === 'IKE SA established' && l.peer === 'b')).toBe(true);
    expect(lines.some((l) => l.component === 'ike' && l.msg === 'Child SA installed' && typeof l.spiIn === 'string')).toBe(true);
    expect(find('peer table installed', { cause: 'add' })).toEqual([expect.objectContaining({ component: 'peers', level: 'info', peers: 3, added: ['c'] })]);
    // The Child SA going into the table is a table change too.
    expect(find('peer table installed', { cause: 'ike' }).length).toBeGreaterThanOrEqual(1);

    const summaries = find('packets dropped');
    expect(summaries.map(({ time: _t, withinSeconds: _w, ...s }) => s)).toEqual([
      { level: 'warn', instance: 'logs0', component: 'datapath', total: MALFORMED, drops: { malformed: MALFORMED }, topPeers: [{ peer: 'b', drops: MALFORMED }], msg: 'packets dropped' },
    ]);
    expect(summaries[0]!.withinSeconds).toBeLessThanOrEqual((2 * SUMMARY_MS) / 1000);

    expect(find('stopping', { reason: 'SIGTERM' })).toHaveLength(1);
    expect(find('stopped', { exitCode: 0 })).toHaveLength(1);
    expect(lines.at(-1)!.msg).toBe('stopped');

    expectNoSecret(up.stderr, 'stderr');
    expectNoSecret(up.stdout, 'stdout');
    expect(up.stdout.split('\n').filter(Boolean)).toEqual([expect.stringMatching(/^overlayfwd: logs0 up: device logs0 mtu \d+, esp aes-256-gcm \(IKEv2\) on /)]);
  }, 90_000);

  it('the library emits one tableChanged per swap, after the call, with the generation and the names (never keys)', async () => {
    const changes: TableChange[] = [];
    B.on('tableChanged', (c) => changes.push(c));
    const g0 = B.stats().tableGeneration!;
    const x = { name: 'x', endpoint: a.underlay.replace(/\.\d+$/, '.211'), allowedIps: [`${inner(11)}/32`], sa: { out: { spi: 0x9001, key: keys[0] }, in: { spi: 0x9101, key: keys[1] } } };
    B.peers.add(x);
    expect(changes).toEqual([]); // not yet: once the call is done
    await Promise.resolve();
    B.peers.replace([{ name: 'a', endpoint: a.underlay, allowedIps: [`${inner(1)}/32`] }, { ...x, allowedIps: [`${inner(12)}/32`] }, { ...x, name: 'y', endpoint: a.underlay.replace(/\.\d+$/, '.212'), allowedIps: [`${inner(13)}/32`], sa: { out: { spi: 0x9201, key: keys[2] }, in: { spi: 0x9301, key: keys[3] } } }]);
    B.peers.remove('x');
    B.peers.remove('y');
    await Promise.resolve();
    expect(changes).toEqual([
      { generation: g0 + 1, cause: 'add', peers: 2, added: ['x'], removed: [], changed: [] },
      { generation: g0 + 2, cause: 'replace', peers: 3, added: ['y'], removed: [], changed: ['x'] },
      { generation: g0 + 3, cause: 'remove', peers: 2, added: [], removed: ['x'], changed: [] },
      { generation: g0 + 4, cause: 'remove', peers: 1, added: [], removed: ['y'], changed: [] },
    ]);
    expect(B.stats().tableGeneration).toBe(g0 + 4);
    expectNoSecret(JSON.stringify(changes), 'the tableChanged events');
  });

  it('exits 1 when the data path fails (its device deleted), with an error line even at the default level', async () => {
    const up = startUp([]);
    await waitFor(() => !up.running || up.stdout.includes('logs0 up: device'), 'the up banner', 30_000);
    expect(up.running, `up exited early:\n${up.stderr}`).toBe(true);
    await lab.ip(a, ['link', 'del', 'logs0']);
    const st = await up.wait(20_000);
    expect({ code: st.code, signal: st.signal }, up.stderr).toEqual({ code: 1, signal: null });
    expect(parseLines(up.stderr).map(({ time: _t, reason: _r, ...l }) => l)).toEqual([
      { level: 'error', instance: 'logs0', component: 'datapath', healthy: false, device: 'logs0', msg: 'the data path failed (device logs0 gone?)' },
    ]);
  }, 60_000);
});
