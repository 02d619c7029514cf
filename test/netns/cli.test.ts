// The `overlayfwd` CLI as an operator runs it: `up -c FILE` in the background (config with
// `netns:`), `stats --json -s SOCK`, SIGTERM, and a broken config; `up -c -` from stdin; YAML
// that is refused (an alias bomb); help; two ESP instances whose peers come from
// `peers add --sa-file` with keys from `genkey`, and the -n that commands changing an instance
// require when several run.
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Lab, execIn, overlayAddress } from '../../lab';
import type { Host } from '../../lab';
import type { OverlayStats } from '../../lib/types';
import { ensureCliBuilt, CLI_MAIN } from '../helpers/cli';
import { describeNetns, ROOT, waitFor } from '../helpers/env';
import { checkCountersShape } from '../helpers/overlay';

const MAIN = CLI_MAIN;

function cli(args: string[], timeoutMs = 30_000, env: NodeJS.ProcessEnv = process.env) {
  return execIn(null, process.execPath, [MAIN, ...args], { timeoutMs, allowFailure: true, cwd: ROOT, env });
}

/** A "billion laughs": nine levels of nine aliases each. */
const ALIAS_BOMB = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
  .concat(['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'].map((k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcdefghi'[i]}`).join(', ')}]`))
  .join('\n');

describeNetns('overlayfwd CLI', {}, () => {
  let lab: Lab;
  let a: Host;
  let b: Host;
  let dir: string;
  let sock: string;
  let configFile: string;

  beforeAll(async () => {
    if (!fs.existsSync(path.join(ROOT, 'lib', 'cli', 'main.ts'))) throw new Error('lib/cli/main.ts does not exist yet');
    await ensureCliBuilt();
    lab = await Lab.create();
    [a, b] = await lab.pair('a', 'b');
    await lab.kernelVxlan(b, { vni: 42, remotes: [a.underlay], addresses: [`${overlayAddress(2)}/24`] });
    dir = lab.tmpdir();
    sock = path.join(dir, 'ovl0.sock');
    configFile = path.join(dir, 'ovl0.yaml');
    fs.writeFileSync(
      configFile,
      YAML.stringify({
        name: 'ovl0',
        netns: a.ns,
        device: { type: 'tap', name: 'ovl0', addresses: [`${overlayAddress(1)}/24`] },
        encap: { type: 'vxlan', vni: 42 },
        underlay: { local: a.underlay },
        workers: 1,
        peers: [{ name: 'b', endpoint: b.underlay, macs: [] }],
        control: { socket: sock },
      }),
    );
  }, 240_000);
  afterAll(async () => {
    await lab?.destroy();
  });

  it('check -c validates the config', async () => {
    const r = await cli(['check', '-c', configFile]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(a.ns);
  });

  it('up runs until SIGTERM, serves stats --json, and removes the device and socket on exit', async () => {
    const up = lab.spawn(null, process.execPath, [MAIN, 'up', '-c', configFile], { cwd: ROOT });
    await waitFor(() => !up.running || fs.existsSync(sock), 'the control socket', 30_000);
    expect(up.running, `overlayfwd up exited early:\n${up.stderr}${up.stdout}`).toBe(true);
    expect(await lab.links(a)).toContain('ovl0');

    expect((await lab.ping(b, overlayAddress(1), { count: 3, intervalSec: 0.05 })).received).toBe(3);

    const r = await cli(['stats', '--json', '-s', sock]);
    expect(r.code, r.stderr).toBe(0);
    const stats = JSON.parse(r.stdout) as OverlayStats;
    checkCountersShape(stats.totals, 'totals');
    checkCountersShape(stats.peers.b, 'peers.b');
    expect(stats.name).toBe('ovl0');
    expect(stats.device).toBe('ovl0');
    expect(stats.workers).toBe(1);
    expect(stats.peers.b!.rxPackets).toBeGreaterThanOrEqual(3);
    expect(stats.peers.b!.txPackets).toBeGreaterThanOrEqual(3);
    expect(stats.totals.rxPackets).toBeGreaterThanOrEqual(stats.peers.b!.rxPackets);

    up.kill('SIGTERM');
    const st = await up.wait(20_000);
    expect({ code: st.code, signal: st.signal }, up.stderr).toEqual({ code: 0, signal: null });
    // Quiet by default: nothing went wrong, so nothing on stderr (the log level is warn).
    expect(up.stderr).toBe('');
    expect(await lab.links(a)).not.toContain('ovl0');
    expect(fs.existsSync(sock)).toBe(false);
  });

  it('up exits 2 on a config error, naming the field', async () => {
    const bad = path.join(dir, 'bad.yaml');
    fs.writeFileSync(
      bad,
      YAML.stringify({
        name: 'ovl0',
        netns: a.ns,
        device: { type: 'tap', name: 'ovl0' },
        encap: { type: 'vxlan', vni: 1 << 24 }, // VNI is 24 bits
        underlay: { local: a.underlay },
        peers: [{ name: 'b', endpoint: b.underlay }],
        control: { socket: path.join(dir, 'bad.sock') },
      }),
    );
    const r = await cli(['up', '-c', bad]);
    expect(r.code).toBe(2);
    expect(r.stderr + r.stdout).toMatch(/vni/i);
    expect(await lab.links(a)).not.toContain('ovl0');

    fs.writeFileSync(path.join(dir, 'syntax.yaml'), 'name: [unclosed\n');
    expect((await cli(['up', '-c', path.join(dir, 'syntax.yaml')])).code).toBe(2);
  });

  it('up -c - reads the config from stdin and runs it', async () => {
    const up = lab.spawn(null, process.execPath, [MAIN, 'up', '-c', '-'], { cwd: ROOT, stdin: 'pipe' });
    try {
      up.child.stdin!.end(fs.readFileSync(configFile, 'utf8'));
      await waitFor(() => !up.running || fs.existsSync(sock), 'the control socket', 30_000);
      expect(up.running, `overlayfwd up -c - exited early:\n${up.stderr}${up.stdout}`).toBe(true);
      // From a: the device is new (a new MAC), which b's neighbour cache learns from a's ARP request.
      expect((await lab.ping(a, overlayAddress(2), { count: 3, intervalSec: 0.05 })).received).toBe(3);
      const r = await cli(['stats', '--json', '-s', sock]);
      expect(r.code, r.stderr).toBe(0);
      expect((JSON.parse(r.stdout) as OverlayStats).peers.b!.rxPackets).toBeGreaterThanOrEqual(3);
    } finally {
      up.kill('SIGTERM');
    }
    expect((await up.wait(20_000)).code, up.stderr).toBe(0);
    expect(await lab.links(a)).not.toContain('ovl0');
  });

  it('up exits 2 at once on an alias bomb or two documents, from a file or stdin, naming it', async () => {
    const good = fs.readFileSync(configFile, 'utf8');
    const bomb = path.join(dir, 'bomb.yaml');
    fs.writeFileSync(bomb, `${good}${ALIAS_BOMB}\n`);
    const two = path.join(dir, 'two.yaml');
    fs.writeFileSync(two, `${good}---\n${good}`);
    for (const [file, what] of [[bomb, /: its aliases \(\*name\) expand anchored content more than 100 times/], [two, /: line \d+, column 1: a second YAML document starts here/]] as const) {
      const started = Date.now();
      const r = await cli(['up', '-c', file]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.split('\n')[0]).toBe(`overlayfwd: invalid config ${file}:`);
      expect(r.stderr).toMatch(what);
      expect(r.stderr).not.toMatch(/maxAliasCount|parseAllDocuments|YAML\.|ReferenceError|resource exhaustion/);
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(await lab.links(a)).not.toContain('ovl0');
    }
    const up = lab.spawn(null, process.execPath, [MAIN, 'up', '-c', '-'], { cwd: ROOT, stdin: 'pipe' });
    up.child.stdin!.end(`${good}${ALIAS_BOMB}\n`);
    const st = await up.wait(20_000);
    expect(st.code, up.stderr).toBe(2);
    expect(up.stderr).toMatch(/^overlayfwd: invalid config <stdin>:\n {2}\(file\): <stdin>: its aliases/);
    expect(await lab.links(a)).not.toContain('ovl0');
  });

  it('help and help COMMAND print to stdout and exit 0', async () => {
    const all = await cli(['help']);
    expect(all.code).toBe(0);
    for (const cmd of ['up', 'check', 'stats', 'peers', 'genkey', 'help']) expect(all.stdout).toMatch(new RegExp(`^  ${cmd}\\b`, 'm'));
    const up = await cli(['help', 'up']);
    expect(up.code).toBe(0);
    expect(up.stdout).toMatch(/-c, --config <file> +config file \(YAML or JSON\); - reads it from stdin/);
    expect((await cli(['help', 'nothing'])).code).toBe(2);
  });

  it('two ESP instances: peers from peers add --sa-file (keys from genkey), -n required to change either', async () => {
    const runDir = path.join(dir, 'run-esp');
    fs.mkdirSync(runDir, { recursive: true });
    const env = { ...process.env, OVERLAYFWD_RUN_DIR: runDir };
    const inner = (i: number) => `198.19.7.${i}`;
    const hosts = [
      { host: a, name: 'espa', addr: inner(1) },
      { host: b, name: 'espb', addr: inner(2) },
    ];
    const ups = hosts.map(({ host, name, addr }) => {
      const file = path.join(dir, `${name}.yaml`);
      fs.writeFileSync(
        file,
        YAML.stringify({
          name,
          netns: host.ns,
          device: { type: 'tun', name: 'esp0', addresses: [`${addr}/24`] },
          encap: { type: 'esp', cipher: 'aes-256-gcm' },
          underlay: { local: host.underlay },
          workers: 1,
          peers: [],
          control: { socket: path.join(runDir, `${name}.sock`) },
        }),
      );
      return lab.spawn(null, process.execPath, [MAIN, 'up', '-c', file], { cwd: ROOT, env });
    });
    for (const [i, { name }] of hosts.entries()) {
      await waitFor(() => !ups[i]!.running || fs.existsSync(path.join(runDir, `${name}.sock`)), `${name}'s control socket`, 30_000);
      expect(ups[i]!.running, `overlayfwd up ${name} exited early:\n${ups[i]!.stderr}`).toBe(true);
    }

    // Keys from genkey, into root-only SA files: a sends with 0x1001 and receives 0x2001, b the mirror.
    const keys: Array<{ spi: number; key: string }> = [];
    for (const spi of ['0x1001', '0x2001']) {
      const g = await cli(['genkey', '--spi', spi]);
      expect(g.code, g.stderr).toBe(0);
      keys.push(YAML.parse(g.stdout) as { spi: number; key: string });
    }
    const saFile = (name: string, out: (typeof keys)[0], inbound: (typeof keys)[0]) => {
      const file = path.join(dir, `${name}.sa.yaml`);
      fs.writeFileSync(file, YAML.stringify({ out, in: inbound }), { mode: 0o600 });
      return file;
    };
    const aFile = saFile('a-to-b', keys[0]!, keys[1]!);
    const bFile = saFile('b-to-a', keys[1]!, keys[0]!);
    const addB = ['peers', 'add', '--name', 'b', '--endpoint', b.underlay, '--allowed-ip', `${inner(2)}/32`, '--sa-file', aFile];

    // Two instances run: a command that changes one must say which; so must a read-only one.
    const unnamed = await cli(addB, 30_000, env);
    expect(unnamed.code).toBe(2);
    expect(unnamed.stderr).toBe('overlayfwd: peers add changes a running instance: name it with -n NAME or -s SOCKET (running here: espa, espb)\n');
    const stats = await cli(['stats', '--json'], 30_000, env);
    expect(stats.code).toBe(2);
    expect(stats.stderr).toMatch(/several instances are running \(espa, espb\): choose one with -n NAME/);
    expect(JSON.parse((await cli(['peers', 'list', '-n', 'espa', '--json'], 30_000, env)).stdout)).toEqual([]);

    const addedB = await cli([...addB.slice(0, 2), '-n', 'espa', ...addB.slice(2), '--json'], 30_000, env);
    expect(addedB.code, addedB.stderr).toBe(0);
    expect(JSON.parse(addedB.stdout)).toMatchObject({ name: 'b', sa: { out: { spi: 0x1001 }, in: [{ spi: 0x2001 }] } });
    const addedA = await cli(['peers', 'add', '-s', path.join(runDir, 'espb.sock'), '--name', 'a', '--endpoint', a.underlay, '--allowed-ip', `${inner(1)}/32`, '--sa-file', bFile], 30_000, env);
    expect(addedA.code, addedA.stderr).toBe(0);
    expect(addedA.stdout).toBe(`added peer a at ${a.underlay}:4500, SAs out 0x00002001 in 0x00001001\n`);

    expect((await lab.ping(a, inner(2), { count: 3, intervalSec: 0.05 })).received).toBe(3);
    const st = JSON.parse((await cli(['stats', '-n', 'espb', '--json'], 30_000, env)).stdout) as OverlayStats;
    expect(st.peers.a!.rxPackets).toBeGreaterThanOrEqual(3);
    expect(st.totals.drops.authFailed).toBe(0);
    const list = await cli(['peers', 'list', '-n', 'espa'], 30_000, env);
    expect(list.stdout).toMatch(/^b\s+.*out 0x00001001 in 0x00002001$/m);
    for (const text of [list.stdout, addedA.stdout, addedB.stdout, unnamed.stderr]) {
      for (const { key } of keys) expect(text).not.toContain(key.slice(0, 16));
    }

    // A key of the wrong length is refused by the instance: exit 2, the field named, no key.
    const shortFile = saFile('short', { spi: 0x3001, key: keys[0]!.key.slice(2) }, { spi: 0x4001, key: keys[1]!.key.slice(2) });
    const short = await cli(['peers', 'add', '-n', 'espa', '--name', 'c', '--endpoint', '198.18.0.99', '--sa-file', shortFile], 30_000, env);
    expect(short.code).toBe(2);
    expect(short.stderr).toMatch(/^overlayfwd: invalid peer c:\n {2}peers?(\[\d+\])?\.sa\.out\.key: must be a hex string of 36 bytes/);
    for (const { key } of keys) expect(short.stderr).not.toContain(key.slice(2, 18));

    const removed = await cli(['peers', 'remove', '-n', 'espa', '--name', 'b', '--json'], 30_000, env);
    expect(removed.code, removed.stderr).toBe(0);
    expect(JSON.parse(removed.stdout)).toEqual({ name: 'b', removed: true });
    expect((await lab.ping(a, inner(2), { count: 2, intervalSec: 0.05, timeoutSec: 1 })).received).toBe(0);

    for (const up of ups) up.kill('SIGTERM');
    for (const up of ups) expect((await up.wait(20_000)).code, up.stderr).toBe(0);
    // Whatever the instances logged, no key is in it.
    for (const up of ups) for (const { key } of keys) expect(up.stderr).not.toContain(key.slice(0, 16));
  });
});
