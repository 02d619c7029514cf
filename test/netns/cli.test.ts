// The `overlayfwd` CLI as an operator runs it: `up -c FILE` in the background (config with
// `netns:`), `stats --json -s SOCK`, SIGTERM, and a broken config.
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Lab, execIn, overlayAddress } from '../../lab';
import type { Host } from '../../lab';
import type { OverlayStats } from '../../lib/types';
import { describeNetns, ROOT, waitFor } from '../helpers/env';
import { checkCountersShape } from '../helpers/overlay';

const MAIN = path.join(ROOT, 'dist', 'lib', 'cli', 'main.js');

/** Compiles the TypeScript when dist/ is missing or older than a source file. */
async function ensureBuilt(): Promise<void> {
  const newest = (dir: string): number => {
    let t = 0;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) t = Math.max(t, newest(p));
      else if (e.name.endsWith('.ts')) t = Math.max(t, fs.statSync(p).mtimeMs);
    }
    return t;
  };
  if (fs.existsSync(MAIN) && fs.statSync(MAIN).mtimeMs >= newest(path.join(ROOT, 'lib'))) return;
  await execIn(null, process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(ROOT, 'tsconfig.json')], { timeoutMs: 180_000, cwd: ROOT });
}

function cli(args: string[], timeoutMs = 30_000) {
  return execIn(null, process.execPath, [MAIN, ...args], { timeoutMs, allowFailure: true, cwd: ROOT });
}

describeNetns('overlayfwd CLI', {}, () => {
  let lab: Lab;
  let a: Host;
  let b: Host;
  let dir: string;
  let sock: string;
  let configFile: string;

  beforeAll(async () => {
    if (!fs.existsSync(path.join(ROOT, 'lib', 'cli', 'main.ts'))) throw new Error('lib/cli/main.ts does not exist yet');
    await ensureBuilt();
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
});
