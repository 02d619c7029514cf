// Input bounds: a config over the size limit (16 MiB, or $OVERLAYFWD_MAX_CONFIG_BYTES) is refused
// at once with exit 2 naming the file, whether it is a file, a device (/dev/zero, which never
// ends), stdin or a FIFO; and limits.maxPeers is checked before any peer is validated.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError, loadConfigFile, parseConfig } from '../../lib/config';
import { DEFAULT_MAX_CONFIG_BYTES, maxConfigBytes, readBounded } from '../../lib/config/load';
import { peerSchema } from '../../lib/config/schema';
import { RegistryPeerSet } from '../../lib/registry/peers';
import type { NodeRecord } from '../../lib/registry/records';
import { CLI_MAIN, ensureCliBuilt } from '../helpers/cli';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ovlbounds-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const GOOD = 'name: ovl0\nencap: { vni: 42 }\nunderlay: { local: 198.18.0.1 }\npeers:\n  - { name: b, endpoint: 198.18.0.2 }\n';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

function run(args: string[], options: { env?: Record<string, string>; stdinFile?: string } = {}): Promise<Run> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const stdin = options.stdinFile ? fs.openSync(options.stdinFile, 'r') : 'ignore';
    const child = spawn(process.execPath, [CLI_MAIN, ...args], { cwd: tmp, env: { ...process.env, ...options.env }, stdio: [stdin, 'pipe', 'pipe'] });
    if (typeof stdin === 'number') fs.closeSync(stdin);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

const tooLarge = (file: string, limit = '16 MiB') =>
  `overlayfwd: invalid config ${file}:\n  (file): ${file}: larger than ${limit}, the limit on a config (OVERLAYFWD_MAX_CONFIG_BYTES sets another); refusing it\n`;

beforeAll(async () => {
  await ensureCliBuilt({ tolerateTypeErrors: true });
}, 180_000);

describe('the size limit on a config', () => {
  it('check -c /dev/zero exits 2 at once, naming the file and the limit (it used to abort the process)', async () => {
    const r = await run(['check', '-c', '/dev/zero']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(tooLarge('/dev/zero'));
    expect(r.ms).toBeLessThan(10_000);
  });

  it('up -c /dev/zero exits 2 the same way, before anything is made', async () => {
    const r = await run(['up', '-c', '/dev/zero']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(tooLarge('/dev/zero'));
  });

  it('a 17 MiB file exits 2 without being read (its size says it all)', async () => {
    const file = path.join(tmp, 'big.yaml');
    const fd = fs.openSync(file, 'w');
    fs.writeSync(fd, GOOD);
    fs.ftruncateSync(fd, 17 * 1024 * 1024); // the rest is NULs: a YAML parse would take long and fail
    fs.closeSync(fd);
    const r = await run(['check', '-c', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(tooLarge(file));
    expect(r.ms).toBeLessThan(10_000);
  });

  it('-c - from /dev/zero (stdin that never ends) exits 2 naming <stdin>', async () => {
    const r = await run(['check', '-c', '-'], { stdinFile: '/dev/zero' });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(tooLarge('<stdin>'));
  });

  it('OVERLAYFWD_MAX_CONFIG_BYTES sets the limit; a bad value is a config error naming the variable', async () => {
    const file = path.join(tmp, 'good.yaml');
    fs.writeFileSync(file, GOOD);
    expect((await run(['check', '-c', file], { env: { OVERLAYFWD_MAX_CONFIG_BYTES: String(GOOD.length) } })).code).toBe(0);
    const small = await run(['check', '-c', file], { env: { OVERLAYFWD_MAX_CONFIG_BYTES: String(GOOD.length - 1) } });
    expect(small.code).toBe(2);
    expect(small.stderr).toBe(tooLarge(file, `${GOOD.length - 1} bytes`));
    const bad = await run(['check', '-c', file], { env: { OVERLAYFWD_MAX_CONFIG_BYTES: '16M' } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe(`overlayfwd: invalid config ${file}:\n  (environment): OVERLAYFWD_MAX_CONFIG_BYTES="16M": must be a number of bytes from 1 to 536870912\n`);
  });

  it('a config through a FIFO (as -c <(...) gives) is read to its end', async () => {
    const fifo = path.join(tmp, 'config.fifo');
    await new Promise<void>((resolve, reject) => execFile('mkfifo', [fifo], (err) => (err ? reject(err) : resolve())));
    const writer = fs.promises.writeFile(fifo, GOOD);
    const r = await run(['check', '-c', fifo]);
    await writer;
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^# .*config\.fifo: valid/);
  });

  it('readBounded stops one byte past the limit on a device, and refuses a regular file by its size unread', () => {
    expect(maxConfigBytes({})).toBe(DEFAULT_MAX_CONFIG_BYTES);
    expect(maxConfigBytes({ OVERLAYFWD_MAX_CONFIG_BYTES: '1024' })).toBe(1024);
    for (const v of ['0', '-1', '1.5', 'x', '999999999999']) expect(() => maxConfigBytes({ OVERLAYFWD_MAX_CONFIG_BYTES: v })).toThrow(ConfigError);
    const readSync = vi.spyOn(fs, 'readSync');
    try {
      expect(() => readBounded('/dev/zero', 100_000)).toThrow(/larger than 100000 bytes/);
      // readSync(fd, buffer, offset, length, position): what was asked for, in all.
      const read = readSync.mock.calls.reduce((n, c) => n + Number((c as unknown[])[3]), 0);
      expect(read).toBe(100_001);
      readSync.mockClear();
      const file = path.join(tmp, 'sized.yaml');
      fs.writeFileSync(file, 'x'.repeat(2048));
      expect(() => loadConfigFile(file, 2047)).toThrow(/larger than 2047 bytes/);
      expect(readSync).not.toHaveBeenCalled();
      expect(readBounded(file, 2048)).toMatchObject({ text: 'x'.repeat(2048), mode: expect.any(Number) as number });
      expect(readBounded('/dev/null', 10)).toEqual({ text: '', mode: null });
    } finally {
      readSync.mockRestore();
    }
  });
});

describe('limits.maxPeers is checked before any peer is validated', () => {
  const config = (peers: unknown[]) => ({ name: 'ovl0', encap: { vni: 42 }, underlay: { local: '198.18.0.1' }, limits: { maxPeers: 3 }, peers });

  it('maxPeers + 1 peers, each one invalid: the limit is the only error, and no peer was looked at', () => {
    const safeParse = vi.spyOn(peerSchema, 'safeParse');
    try {
      let error: ConfigError | undefined;
      try {
        parseConfig(config([1, 2, 3, 4].map((i) => ({ name: `bad name ${i}`, endpoint: 'nowhere', macs: ['x'] }))));
      } catch (e) {
        error = e as ConfigError;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect(error!.issues).toEqual([{ path: 'peers', message: '4 peers exceed limits.maxPeers (3); none of them was validated' }]);
      expect(safeParse).not.toHaveBeenCalled();
      // At the limit the peers are validated as ever (and their own problems reported).
      expect(() => parseConfig(config([1, 2, 3].map((i) => ({ name: `bad name ${i}`, endpoint: '198.18.0.9' }))))).toThrow(/peers\[0\]\.name/);
      expect(safeParse).toHaveBeenCalledTimes(3);
    } finally {
      safeParse.mockRestore();
    }
  });

  it('with limits itself broken, the default limit (1024) still comes first', () => {
    const peers = Array.from({ length: 1025 }, () => ({ name: '?' }));
    const safeParse = vi.spyOn(peerSchema, 'safeParse');
    try {
      let error: ConfigError | undefined;
      try {
        parseConfig({ ...config(peers), limits: { maxPeers: 'many' } });
      } catch (e) {
        error = e as ConfigError;
      }
      expect(error!.issues).toEqual([
        { path: 'limits.maxPeers', message: 'must be an integer from 1 to 65536' },
        { path: 'peers', message: '1025 peers exceed limits.maxPeers (1024); none of them was validated' },
      ]);
      expect(safeParse).not.toHaveBeenCalled();
    } finally {
      safeParse.mockRestore();
    }
  });

  it('registry records past the limit are skipped as such, without being validated', () => {
    const resolved = parseConfig({ name: 'ovl0', device: { type: 'tun' }, encap: { type: 'gre-udp' }, underlay: { local: '198.18.0.1' }, limits: { maxPeers: 1 } });
    const record = (n: number, endpoint: string): NodeRecord => ({
      name: `h${n}`,
      endpoint,
      subnet: `10.100.${n}.0/24`,
      key: `/overlayfwd/subnets/10.100.${n}.0-24`,
      lease: '1',
      createRevision: String(n),
      modRevision: String(n),
    });
    const skipped: Array<[string, string]> = [];
    const set = new RegistryPeerSet((key, reason) => skipped.push([key, reason]));
    const safeParse = vi.spyOn(peerSchema, 'safeParse');
    try {
      const peers = set.build([record(1, '198.18.0.2'), record(2, 'not an address'), record(3, '198.18.0.4')], resolved);
      expect(peers.map((p) => p.name)).toEqual(['h1']);
      expect(skipped).toEqual([
        ['/overlayfwd/subnets/10.100.2.0-24', 'limits.maxPeers (1) reached'],
        ['/overlayfwd/subnets/10.100.3.0-24', 'limits.maxPeers (1) reached'],
      ]);
      expect(safeParse).toHaveBeenCalledTimes(1);
    } finally {
      safeParse.mockRestore();
    }
  });
});

describe('large peers', () => {
  it('a peer with 50,000 allowedIps validates in a fraction of a second (the duplicate check was quadratic: 57 s)', () => {
    const allowedIps = Array.from({ length: 50_000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`);
    const t0 = Date.now();
    const config = parseConfig({ name: 'ovl0', device: { type: 'tun' }, encap: { type: 'gre-udp' }, underlay: { local: '198.18.0.1' }, peers: [{ name: 'b', endpoint: '198.18.0.2', allowedIps: [...allowedIps, '10.200.0.0/16'] }] });
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(config.peers[0]!.allowedIps).toHaveLength(50_001);
    // Duplicates are still found, with the first place named.
    expect(() => parseConfig({ name: 'ovl0', device: { type: 'tun' }, encap: { type: 'gre-udp' }, underlay: { local: '198.18.0.1' }, peers: [{ name: 'b', endpoint: '198.18.0.2', allowedIps: [...allowedIps, '10.200.0.0/16', '10.0.0.7/32'] }] })).toThrow(
      'peers[0].allowedIps[50001]: 10.0.0.7/32 is listed twice (also allowedIps[7])',
    );
  });
});
