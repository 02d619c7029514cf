// Reloading a running `overlayfwd up`: `overlayfwd reload -s SOCK` and SIGHUP re-read the
// config file and apply what changed through the table swap while a UDP stream flows to a peer
// that stays (every datagram counted: none may be lost but what the kernel itself counts
// as dropped, a starved reader on a busy machine); a change that needs a restart,
// or a broken file, is refused with exit 2 naming the field, and the running table stays;
// `showconf` prints the running config, peers added at runtime included, as YAML that `check`
// accepts and that parses back to the same peers.
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Lab, execIn, overlayAddress } from '../../lab';
import type { Host, LabProcess } from '../../lab';
import { parseConfig } from '../../lib/config';
import type { Overlay } from '../../lib/overlay';
import type { PeerInfo } from '../../lib/types';
import { CLI_MAIN, ensureCliBuilt } from '../helpers/cli';
import { describeNetns, ROOT, sleep, waitFor } from '../helpers/env';
import { delta, startForwarder } from '../helpers/overlay';
import { movedDrops } from '../helpers/pair';
import { startUdpStream } from '../helpers/udp-stream';

function cli(args: string[], timeoutMs = 30_000) {
  return execIn(null, process.execPath, [CLI_MAIN, ...args], { timeoutMs, allowFailure: true, cwd: ROOT });
}

describeNetns('reload and showconf', {}, () => {
  let lab: Lab;
  let a: Host;
  let b: Host;
  let B: Overlay;
  let up: LabProcess;
  let dir: string;
  let sock: string;
  let file: string;
  let base: Record<string, unknown>;

  const peerB = () => ({ name: 'b', endpoint: b.underlay, allowedIps: [`${overlayAddress(2)}/32`] });
  const writeConfig = (peers: unknown[], extra: Record<string, unknown> = {}) =>
    fs.writeFileSync(file, YAML.stringify({ ...base, ...extra, peers }), { mode: 0o600 });
  /** `up`'s stderr, every line a JSON log line. */
  const upLog = (): Array<Record<string, unknown>> =>
    up.stderr
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const peerNames = async (): Promise<string[]> => {
    const r = await cli(['peers', 'list', '--json', '-s', sock]);
    expect(r.code, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as PeerInfo[]).map((p) => p.name).sort();
  };

  beforeAll(async () => {
    await ensureCliBuilt();
    lab = await Lab.create();
    [a, b] = await lab.pair('a', 'b');
    dir = lab.tmpdir();
    sock = path.join(dir, 'ovl0.sock');
    file = path.join(dir, 'ovl0.yaml');
    base = {
      name: 'ovl0',
      netns: a.ns,
      device: { type: 'tun', name: 'ovl0', addresses: [`${overlayAddress(1)}/24`] },
      encap: { type: 'gre-udp' },
      underlay: { local: a.underlay },
      workers: 1,
      control: { socket: sock },
    };
    // d's endpoint is an address nothing answers at; the stream only ever goes to b.
    writeConfig([peerB(), { name: 'd', endpoint: '198.18.7.1', allowedIps: ['10.77.0.0/16'] }]);
    B = await startForwarder(lab, {
      host: b,
      address: `${overlayAddress(2)}/24`,
      peers: [],
      extra: {
        device: { type: 'tun', name: 'ovl0', addresses: [`${overlayAddress(2)}/24`] },
        encap: { type: 'gre-udp' },
        peers: [{ name: 'a', endpoint: a.underlay, allowedIps: [`${overlayAddress(1)}/32`] }],
      },
    });
    // At info `up` logs each reload (a JSON line on stderr); refusals are warnings, logged at any level.
    up = lab.spawn(null, process.execPath, [CLI_MAIN, 'up', '-c', file, '--log-level', 'info'], { cwd: ROOT });
    await waitFor(() => !up.running || fs.existsSync(sock), 'the control socket', 30_000);
    expect(up.running, `overlayfwd up exited early:\n${up.stderr}${up.stdout}`).toBe(true);
    expect((await lab.ping(a, overlayAddress(2), { count: 3, intervalSec: 0.05 })).received).toBe(3);
  }, 240_000);
  afterAll(async () => {
    await lab?.destroy();
  });

  it('reload and SIGHUP apply added, removed and changed peers under a UDP stream to a peer that stays: nothing lost', async () => {
    const beforeB = B.stats();
    const before = JSON.parse((await cli(['stats', '--json', '-s', sock])).stdout) as ReturnType<Overlay['stats']>;
    const stream = await startUdpStream(lab, { from: a, to: b, address: overlayAddress(2), port: 5401, pps: 1000 });
    await sleep(700);

    // 1. overlayfwd reload: c added, d moved (changed), b untouched.
    writeConfig([peerB(), { name: 'c', endpoint: '198.18.7.2', allowedIps: ['10.78.0.0/16'] }, { name: 'd', endpoint: '198.18.7.3', allowedIps: ['10.77.0.0/16'] }]);
    const r1 = await cli(['reload', '--json', '-s', sock]);
    expect(r1.code, r1.stderr).toBe(0);
    const result = JSON.parse(r1.stdout) as { added: string[]; removed: string[]; changed: string[]; applied: boolean };
    expect(result).toMatchObject({ added: ['c'], removed: [], changed: ['d'], applied: true });
    expect(await peerNames()).toEqual(['b', 'c', 'd']);
    await sleep(700);

    // 2. SIGHUP: c and d removed. `up` keeps running and says what it did.
    writeConfig([peerB()]);
    up.kill('SIGHUP');
    await waitFor(() => upLog().some((l) => l.msg === `reloaded ${file}` && l.via === 'SIGHUP'), 'the SIGHUP reload line', 10_000);
    expect(upLog().filter((l) => String(l.msg).startsWith('reloaded')).map(({ via, added, removed, changed, applied }) => ({ via, added, removed, changed, applied }))).toEqual([
      { via: 'control socket', added: ['c'], removed: [], changed: ['d'], applied: true },
      { via: 'SIGHUP', added: [], removed: ['c', 'd'], changed: [], applied: true },
    ]);
    expect(up.running).toBe(true);
    expect(await peerNames()).toEqual(['b']);

    await sleep(700);
    const r = await stream.stop();
    const after = JSON.parse((await cli(['stats', '--json', '-s', sock])).stdout) as ReturnType<Overlay['stats']>;
    console.log(`[reload] ${r.lost}/${r.sent} datagrams lost across two reloads; the kernel dropped ${r.kernel.total} ${JSON.stringify(r.kernel.where)}`);
    expect(r.sent).toBeGreaterThan(1500);
    // Nothing lost but what the kernel dropped itself (a reader starved of CPU on a busy
    // machine overflows its socket or device queue, and the kernel counts it there).
    expect(r.lost, `${r.lost} datagrams lost across two reloads, the kernel dropped ${r.kernel.total}: ${JSON.stringify(r.kernel.where)}`).toBeLessThanOrEqual(r.kernel.total);
    expect(movedDrops(delta(after.totals, before.totals))).toEqual({});
    expect(movedDrops(delta(B.stats().totals, beforeB.totals))).toEqual({});
    expect(after.tableGeneration).toBe((before.tableGeneration ?? 0) + 2);
  });

  it('a reload of an unchanged file swaps nothing', async () => {
    const r = await cli(['reload', '--json', '-s', sock]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ applied: false, added: [], removed: [], changed: [] });
  });

  it('refuses a change that needs a restart, naming the field, and keeps the running table', async () => {
    writeConfig([{ name: 'e', endpoint: '198.18.7.4', allowedIps: ['10.79.0.0/16'] }, peerB()], { workers: 2, device: { ...(base.device as object), mtu: 1300 } });
    const r = await cli(['reload', '-s', sock]);
    expect(r.code, r.stdout).toBe(2);
    expect(r.stderr).toMatch(/workers: .*restart/);
    expect(r.stderr).toMatch(/device\.mtu: .*restart/);
    expect(r.stderr).toContain('the running config stays');
    expect(await peerNames()).toEqual(['b']);
    expect((await lab.ping(a, overlayAddress(2), { count: 2, intervalSec: 0.05 })).received).toBe(2);

    // A broken file: refused the same way (SIGHUP too: `up` says so and keeps running).
    fs.writeFileSync(file, 'name: ovl0\npeers: [\n');
    const r2 = await cli(['reload', '-s', sock]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/line \d+, column \d+/);
    up.kill('SIGHUP');
    const refusedBySighup = () => upLog().filter((l) => l.msg === `reload of ${file} refused; the running config stays` && l.via === 'SIGHUP');
    await waitFor(() => refusedBySighup().length > 0, 'the refused SIGHUP line', 10_000);
    expect(refusedBySighup()).toEqual([expect.objectContaining({ level: 'warn', component: 'control', issues: [expect.objectContaining({ message: expect.stringMatching(/line \d+, column \d+/) })] })]);
    // The refusals asked for over the control socket are logged by the instance too, naming the fields.
    const refusedBySocket = upLog().filter((l) => l.msg === `reload of ${file} refused; the running config stays` && l.via === 'control socket');
    expect(refusedBySocket[0]).toMatchObject({
      level: 'warn',
      issues: expect.arrayContaining([
        { path: 'workers', message: expect.stringMatching(/restart/) },
        { path: 'device.mtu', message: expect.stringMatching(/restart/) },
      ]),
    });
    expect(up.running).toBe(true);
    expect(await peerNames()).toEqual(['b']);
  });

  it('showconf prints the running config with runtime peers, as YAML that check accepts', async () => {
    writeConfig([peerB()]);
    expect((await cli(['reload', '-s', sock])).code).toBe(0);
    const add = await cli(['peers', 'add', '-s', sock, '--name', 'f', '--endpoint', '198.18.7.5', '--allowed-ip', '10.80.0.0/16']);
    expect(add.code, add.stderr).toBe(0);
    const shown = await cli(['showconf', '-s', sock]);
    expect(shown.code, shown.stderr).toBe(0);
    const saved = path.join(dir, 'shown.yaml');
    fs.writeFileSync(saved, shown.stdout);
    const check = await cli(['check', '-c', saved]);
    expect(check.code, check.stderr).toBe(0);
    const parsed = parseConfig(YAML.parse(shown.stdout));
    expect(parsed.peers.map((p) => [p.name, p.endpoint.address, p.allowedIps])).toEqual([
      ['b', b.underlay, [`${overlayAddress(2)}/32`]],
      ['f', '198.18.7.5', ['10.80.0.0/16']],
    ]);
    expect(parsed.netns).toBe(a.ns);
    expect(parsed.control.socket).toBe(sock);

    // Reloading what showconf printed changes nothing: it is the running config.
    fs.copyFileSync(saved, file);
    const r = await cli(['reload', '--json', '-s', sock]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ applied: false });
  });

  it('reload needs -n or -s; a second up of the same name says how to run both; a stop after all this is still clean', async () => {
    const r = await cli(['reload']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/reload changes a running instance: name it with -n NAME or -s SOCKET/);
    // The same name again (as from another network namespace): refused, saying how to run both.
    const twin = await cli(['up', '-c', file]);
    expect(twin.code).toBe(1);
    expect(twin.stderr).toMatch(/another instance is running .*another network namespace; give this one another name, or its own control\.socket/);
    up.kill('SIGTERM');
    const st = await up.wait(20_000);
    expect({ code: st.code, signal: st.signal }, up.stderr).toEqual({ code: 0, signal: null });
    expect(fs.existsSync(sock)).toBe(false);
  });
});

// Manual ESP SAs rotated by reloading both ends' configs in the make-before-break order (new
// inbound SA next to the old one, then the new outbound SA, then the old inbound one gone),
// while a UDP stream flows: the new SAs carry it and nothing is lost.
describeNetns('reload rotates manual ESP SAs', {}, () => {
  let lab: Lab;
  let a: Host;
  let b: Host;
  let A: Overlay;
  let B: Overlay;
  const key = (byte: string) => byte.repeat(36);
  const OLD = { ab: { spi: 0x1001, key: key('1a') }, ba: { spi: 0x2001, key: key('2b') } };
  const NEW = { ab: { spi: 0x1002, key: key('3c') }, ba: { spi: 0x2002, key: key('4d') } };
  let configs: { a: (sa: unknown) => Record<string, unknown>; b: (sa: unknown) => Record<string, unknown> };

  beforeAll(async () => {
    lab = await Lab.create();
    [a, b] = await lab.pair('a', 'b');
    const end = (self: Host, other: Host, n: number) => (sa: unknown) => ({
      name: 'ovl0',
      netns: self.ns,
      device: { type: 'tun', name: 'ovl0', addresses: [`${overlayAddress(n)}/24`] },
      encap: { type: 'esp', cipher: 'aes-256-gcm' },
      underlay: { local: self.underlay },
      workers: 1,
      control: { socket: path.join(lab.tmpdir(), `${self.label}.sock`) },
      peers: [{ name: other.label, endpoint: other.underlay, allowedIps: [`${overlayAddress(3 - n)}/32`], sa }],
    });
    configs = { a: end(a, b, 1), b: end(b, a, 2) };
    const OverlayCls = (await import('../../lib/overlay')).Overlay;
    A = await OverlayCls.create(configs.a({ out: OLD.ab, in: OLD.ba }));
    lab.onDestroy(() => A.close());
    B = await OverlayCls.create(configs.b({ out: OLD.ba, in: OLD.ab }));
    lab.onDestroy(() => B.close());
    expect((await lab.ping(a, overlayAddress(2), { count: 2, intervalSec: 0.05 })).received).toBe(2);
  }, 120_000);
  afterAll(async () => {
    await lab?.destroy();
  });

  it('in, then out, then the old in retired: three reloads per end under a UDP stream, nothing lost, the new SAs in use', async () => {
    const before = { a: A.stats().totals, b: B.stats().totals };
    const stream = await startUdpStream(lab, { from: a, to: b, address: overlayAddress(2), port: 5402, pps: 1000 });
    await sleep(300);
    const step = async (sa: { a: unknown; b: unknown }) => {
      expect(A.reload(configs.a(sa.a)).changed).toEqual(['b']);
      expect(B.reload(configs.b(sa.b)).changed).toEqual(['a']);
      await sleep(300);
    };
    // 1. Each end accepts the new inbound SA next to the old one; both still send with the old.
    await step({ a: { out: OLD.ab, in: [NEW.ba, OLD.ba] }, b: { out: OLD.ba, in: [NEW.ab, OLD.ab] } });
    // 2. Both send with the new SAs (the other end accepts them already).
    await step({ a: { out: NEW.ab, in: [NEW.ba, OLD.ba] }, b: { out: NEW.ba, in: [NEW.ab, OLD.ab] } });
    // 3. The old inbound SAs go.
    await step({ a: { out: NEW.ab, in: NEW.ba }, b: { out: NEW.ba, in: NEW.ab } });
    const r = await stream.stop();
    console.log(`[reload esp] ${r.lost}/${r.sent} datagrams lost across six reloads; the kernel dropped ${r.kernel.total} ${JSON.stringify(r.kernel.where)}`);
    expect(r.sent).toBeGreaterThan(600);
    expect(r.lost, JSON.stringify(r.kernel.where)).toBeLessThanOrEqual(r.kernel.total);
    expect(movedDrops(delta(A.stats().totals, before.a))).toEqual({});
    expect(movedDrops(delta(B.stats().totals, before.b))).toEqual({});
    // Only the new SAs remain, and they carry traffic.
    expect(A.peers.list()[0]!.sa).toEqual({ out: { spi: NEW.ab.spi }, in: [{ spi: NEW.ba.spi }] });
    const rxBefore = B.stats().peers['a']!.rxPackets;
    expect((await lab.ping(a, overlayAddress(2), { count: 3, intervalSec: 0.05 })).received).toBe(3);
    expect(B.stats().peers['a']!.rxPackets).toBeGreaterThanOrEqual(rxBefore + 3);
  });
});
