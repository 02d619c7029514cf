// Runs the compiled CLI (dist/lib/cli/main.js) as a user would. Needs neither root nor the addon:
// the commands that talk to an instance are pointed at a ControlServer over a fake overlay.
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { loadConfigFile, parseConfig, parsePeer } from '../../lib/config';
import { ControlServer, type OverlayLike } from '../../lib/control';
import { printableConfig, redact } from '../../lib/cli/check';
import { renderRates, renderStats } from '../../lib/cli/stats';
import type { Counters, OverlayStats, ResolvedPeer } from '../../lib/types';
import { fakeCounters, fakeOffloadStats } from '../helpers/fake-stats';

const counters = (n: number): Counters => fakeCounters(n, { tx: 10, rx: 20, flood: n, bytesPerPacket: 150 });


const root = path.resolve(__dirname, '..', '..');
const mainJs = path.join(root, 'dist', 'lib', 'cli', 'main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ovlcli-'));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [mainJs, ...args],
      { cwd: tmp, env: { ...process.env, ...env }, timeout: 20_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function write(name: string, text: string): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, text);
  return file;
}

const GOOD = `name: ovl0
device:
  addresses: [198.19.0.1/24]
encap:
  vni: 42
underlay:
  local: 198.18.0.1
peers:
  - name: b
    endpoint: 198.18.0.2
    macs: [02:00:00:00:00:02]
  - name: c
    endpoint: 198.18.0.3:4790
`;

beforeAll(() => {
  // Compile the whole project. Type errors elsewhere (files being written in parallel) still emit
  // JavaScript, so only a missing output is fatal here.
  try {
    execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
      cwd: root,
      stdio: 'pipe',
    });
  } catch (err) {
    const out = String((err as { stdout?: Buffer }).stdout ?? '');
    if (/lib\/(config|control|cli\/(?!demo)[a-z]+)\.ts/.test(out)) throw new Error(`tsc failed:\n${out}`);
  }
  expect(fs.existsSync(mainJs)).toBe(true);
}, 180_000);

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('overlayfwd check', () => {
  it('prints the effective config with defaults filled in', async () => {
    const file = write('good.yaml', GOOD);
    const r = await run(['check', '-c', file]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (const line of ['type: tap', 'name: ovl0', 'mtu: auto', 'port: 4789', 'sourcePorts: 16', 'udpChecksum: false', 'batchSize: 64', 'ageingSeconds: 300', 'maxPeers: 1024', 'endpoint: 198.18.0.2:4789', 'endpoint: 198.18.0.3:4790', 'socket: /run/overlayfwd/ovl0.sock']) {
      expect(r.stdout).toContain(line);
    }
    expect(r.stdout).toMatch(/overhead 50 bytes/);
    // The output is a config in its own right, and means the same.
    expect(parseConfig(YAML.parse(r.stdout))).toEqual(loadConfigFile(file));
  });

  it('prints JSON with --json', async () => {
    const r = await run(['check', '-c', write('good.yaml', GOOD), '--json']);
    expect(r.code).toBe(0);
    const printed = JSON.parse(r.stdout) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(printed.device.mtu).toBe('auto');
    expect(printed.encap).toEqual({ type: 'vxlan', vni: 42, port: 4789 });
    expect(printed.peers[0].endpoint).toBe('198.18.0.2:4789');
  });

  it.each([
    ['bad vni', GOOD.replace('vni: 42', 'vni: 16777216'), 'encap.vni: must be an integer from 0 to 16777215'],
    ['esp', GOOD.replace('vni: 42', 'type: esp'), 'encap.type: "esp" is not supported yet (supported: vxlan, geneve, gre, gre-udp, ipip)'],
    ['bad endpoint', GOOD.replace('198.18.0.3:4790', '198.18.0.999'), 'peers[1].endpoint: "198.18.0.999" is not an IPv4 or IPv6 address'],
    ['unknown key', `${GOOD}extra: 1\n`, 'extra: unknown key'],
    ['syntax error', 'name: [ovl0\n', '(file): '],
  ])('exits 2 and names the field: %s', async (_what, text, expected) => {
    const file = write('broken.yaml', text);
    const r = await run(['check', '-c', file]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines[0]).toBe(`overlayfwd: invalid config ${file}:`);
    expect(lines.slice(1).some((l) => l.trim().startsWith(expected))).toBe(true);
  });

  it('exits 2 for a missing file', async () => {
    const r = await run(['check', '-c', path.join(tmp, 'missing.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/\(file\): cannot read .*missing.yaml: no such file/);
  });
});

describe('overlayfwd up', () => {
  it('exits 2 on a config error without creating anything', async () => {
    const runDir = path.join(tmp, 'up-run');
    const file = write('up-broken.yaml', `${GOOD.replace('vni: 42', 'vni: -1')}control:\n  socket: ${runDir}/ovl0.sock\n`);
    const r = await run(['up', '-c', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`overlayfwd: invalid config ${file}:\n  encap.vni: must be an integer from 0 to 16777215`);
    expect(r.stdout).toBe('');
    expect(fs.existsSync(runDir)).toBe(false);
  });

  it('needs -c', async () => {
    const r = await run(['up']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/required option '-c, --config <file>'/);
  });
});

describe('usage', () => {
  it.each([
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['check', '-c', 'x.yaml', '--frob'], /unknown option '--frob'/],
    [['stats', '--frob'], /unknown option '--frob'/],
    [['peers', 'add', '--name', 'b'], /required option '--endpoint/],
    [['demo', '--duration', 'soon'], /must be a positive number of seconds/],
    [['check', '-c', 'x.yaml', 'extra'], /too many arguments/],
    [[], /Usage: overlayfwd/],
  ])('%j exits 2', async (args, pattern) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(pattern);
  });

  it('--version prints the package version', async () => {
    const { version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
    const r = await run(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(version);
  });

  it('--help lists the commands', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    for (const cmd of ['up', 'check', 'stats', 'peers', 'demo']) expect(r.stdout).toMatch(new RegExp(`^  ${cmd}\\b`, 'm'));
  });
});

// ---------------------------------------------------------------------------------------------
// Commands that talk to a running instance, against a fake one


function fakeOverlay(name: string): OverlayLike {
  const config = parseConfig({ name, encap: { vni: 1 }, underlay: { local: '198.18.0.1' } });
  const table: ResolvedPeer[] = [parsePeer({ name: 'b', endpoint: '198.18.0.2', macs: ['02:00:00:00:00:02'] })];
  return {
    name,
    stats: (): OverlayStats => ({
      name,
      device: name,
      workers: 2,
      totals: counters(3),
      peers: Object.fromEntries(table.map((p, i) => [p.name, counters(i + 1)])),
      fdb: { learned: 0, static: 1 },
      healthy: true,
      offloads: fakeOffloadStats(),
      generated: { icmpTooBig: 0, mssClamped: 0 },
    }),
    peers: {
      add: (input: unknown) => {
        const peer = parsePeer(input, 'peer', config, table);
        table.push(peer);
        return peer;
      },
      remove: (peer: string) => {
        const i = table.findIndex((p) => p.name === peer);
        if (i >= 0) table.splice(i, 1);
        return i >= 0;
      },
      list: () => table.map((p) => ({ ...p, learnedMacs: 0 })),
    },
    fdb: () => [{ mac: '02:00:00:00:00:02', peer: 'b', static: true, ageSeconds: 0 }],
  };
}

describe('overlayfwd stats / peers against a running instance', () => {
  const runDir = path.join(tmp, 'run');
  const env = { OVERLAYFWD_RUN_DIR: runDir };
  const servers: ControlServer[] = [];
  const start = async (name: string) => {
    const overlay = fakeOverlay(name);
    servers.push(await ControlServer.listen(overlay, path.join(runDir, `${name}.sock`)));
    return overlay;
  };
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  it('stats --json prints the OverlayStats object', async () => {
    const overlay = await start('ovl0');
    const r = await run(['stats', '-s', path.join(runDir, 'ovl0.sock'), '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(overlay.stats());
  });

  it('stats prints a table: one row per peer, totals, non-zero drops', async () => {
    await start('ovl0');
    const r = await run(['stats', '-n', 'ovl0'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^b\s+10\s+1\.50 kB\s+20\s+3\.00 kB\s+wrongVni 1$/m);
    expect(r.stdout).toMatch(/^TOTAL\s+30\s+4\.50 kB\s+60\s+9\.00 kB\s+wrongVni 3$/m);
  });

  it('finds the only running instance, and refuses to guess between several', async () => {
    expect((await run(['stats', '--json'], env)).code).toBe(1);
    await start('ovl0');
    const one = await run(['stats', '--json'], env);
    expect(one.code).toBe(0);
    expect(JSON.parse(one.stdout).name).toBe('ovl0');
    await start('ovl1');
    const two = await run(['stats'], env);
    expect(two.code).toBe(2);
    expect(two.stderr).toMatch(/several instances are running \(ovl0, ovl1\)/);
  });

  it('reports a missing instance with exit 1', async () => {
    const r = await run(['stats', '-n', 'ghost'], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`overlayfwd: no running instance at ${path.join(runDir, 'ghost.sock')}\n`);
  });

  it('stats --watch --json prints a sample per second until interrupted', async () => {
    await start('ovl0');
    const child = execFile(process.execPath, [mainJs, 'stats', '-n', 'ovl0', '--watch', '--json'], { env: { ...process.env, ...env } });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += String(d)));
    // Wait for a second sample (about a second after the first), then interrupt.
    for (let waited = 0; out.split('\n').length < 3 && waited < 15_000; waited += 50) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    const samples = out.trim().split('\n').map((l) => JSON.parse(l) as OverlayStats & { time: string });
    expect(samples.length).toBeGreaterThanOrEqual(2);
    expect(samples[0]!.totals.txPackets).toBe(30);
  });

  it('peers add / list / remove', async () => {
    await start('ovl0');
    const add = await run(['peers', 'add', '-n', 'ovl0', '--name', 'c', '--endpoint', '198.18.0.3:4790', '--mac', '02:00:00:00:00:03', '--allowed-ip', '198.19.0.3/32'], env);
    expect(add.stderr).toBe('');
    expect(add.code).toBe(0);
    expect(add.stdout).toBe('added peer c at 198.18.0.3:4790\n');

    const list = await run(['peers', 'list', '-n', 'ovl0', '--json'], env);
    expect(JSON.parse(list.stdout)).toEqual([
      { name: 'b', endpoint: { address: '198.18.0.2', port: 4789 }, allowedIps: [], macs: ['02:00:00:00:00:02'], learnedMacs: 0 },
      { name: 'c', endpoint: { address: '198.18.0.3', port: 4790 }, allowedIps: ['198.19.0.3/32'], macs: ['02:00:00:00:00:03'], learnedMacs: 0 },
    ]);
    const table = await run(['peers', 'list', '-n', 'ovl0'], env);
    expect(table.stdout).toMatch(/^c\s+198\.18\.0\.3:4790\s+02:00:00:00:00:03\s+0\s+198\.19\.0\.3\/32$/m);

    expect((await run(['peers', 'remove', '-n', 'ovl0', '--name', 'c'], env)).stdout).toBe('removed peer c\n');
    const again = await run(['peers', 'remove', '-n', 'ovl0', '--name', 'c'], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/no peer named "c"/);
  });

  it('peers add prints validation issues from the instance and exits 2', async () => {
    await start('ovl0');
    const r = await run(['peers', 'add', '-n', 'ovl0', '--name', 'b', '--endpoint', '198.18.0.999', '--mac', 'ff:ff:ff:ff:ff:ff'], env);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')).toEqual([
      'overlayfwd: invalid peer b:',
      '  peer.endpoint: "198.18.0.999" is not an IPv4 or IPv6 address',
      '  peer.macs[0]: ff:ff:ff:ff:ff:ff is a multicast/broadcast MAC address (must be unicast)',
      '',
    ]);
  });
});

describe('check helpers', () => {
  it('redact hides every property named key, at any depth', () => {
    const input = { name: 'x', key: 'secret', peers: [{ name: 'b', key: 'k', sa: { key: 'k2', spi: 1 } }], keyring: 'kept' };
    expect(redact(input)).toEqual({
      name: 'x',
      key: '<redacted>',
      peers: [{ name: 'b', key: '<redacted>', sa: { key: '<redacted>', spi: 1 } }],
      keyring: 'kept',
    });
    expect(input.key).toBe('secret');
  });

  it('printableConfig round-trips through parseConfig (IPv6 endpoints included)', () => {
    const config = parseConfig({
      name: 'v6',
      device: { mtu: 1400 },
      encap: { vni: 9 },
      underlay: { local: 'fd00::1' },
      peers: [{ name: 'b', endpoint: '[fd00::2]:4790' }],
    });
    const printed = printableConfig(config);
    expect((printed.peers as Array<{ endpoint: string }>)[0]!.endpoint).toBe('[fd00::2]:4790');
    expect(parseConfig(YAML.parse(YAML.stringify(printed)))).toEqual(config);
    expect(parseConfig(printableConfig({ ...config, device: { ...config.device, mtu: null } })).device.mtu).toBeNull();
  });

  it('renders rates in watch mode', () => {
    const stats = fakeOverlay('ovl0').stats();
    const first = renderRates(stats, undefined, 0);
    expect(first).toMatch(/^TOTAL\s+30\s+-\s+-\s+60\s+-\s+-\s+-\s+wrongVni 3$/m);
    const later: OverlayStats = { ...stats, totals: { ...stats.totals, txPackets: 2030, txBytes: 4500 + 125_000 } };
    expect(renderRates(later, stats, 2)).toMatch(/^TOTAL\s+2030\s+1\.00 kpps\s+500 kbit\/s\s+60\s+0 pps\s+0 bit\/s\s+0 \/s\s+wrongVni 3$/m);
    expect(renderStats(stats)).toContain('flooded: 3 packets');
  });
});
