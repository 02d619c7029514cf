// Warnings (lib/config/warnings.ts: printed by check and up, never failing) and the errors that
// name the real cause (lib/config/rules.ts; lib/preflight.ts at up). Each test fails without the
// warning or error it is about.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, parsePeer } from '../../lib/config';
import { configWarnings, parseCpuList } from '../../lib/config/warnings';
import { explainSetupError, parseProcNetUdp, preflight } from '../../lib/preflight';
import type { ResolvedConfig } from '../../lib/types';
import { CLI_MAIN, ensureCliBuilt } from '../helpers/cli';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ovlwarn-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const KEY = 'a'.repeat(72);
const KEY2 = 'b'.repeat(72);
const NO_HOST = { cpus: null, cwd: '/srv', modeOf: () => null };

function tun(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'ovl0',
    device: { type: 'tun', addresses: ['198.19.0.1/24'] },
    encap: { type: 'gre-udp' },
    underlay: { local: '198.18.0.1' },
    peers: [{ name: 'b', endpoint: '198.18.0.2', allowedIps: ['198.19.0.2/32'] }],
    ...extra,
  };
}

function esp(): Record<string, unknown> {
  return {
    ...tun(),
    encap: { type: 'esp', cipher: 'aes-256-gcm' },
    peers: [{ name: 'b', endpoint: '198.18.0.2', allowedIps: ['198.19.0.2/32'], sa: { out: { spi: 0x1001, key: KEY }, in: { spi: 0x2001, key: KEY2 } } }],
  };
}

function issues(input: unknown): string[] {
  try {
    parseConfig(input);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues.map((i) => `${i.path}: ${i.message}`);
  }
  return [];
}

const lines = (w: Array<{ path: string; message: string }>) => w.map((i) => `${i.path}: ${i.message}`);

describe('warnings', () => {
  it('a config file holding keys that group or others can read (as wg-quick warns); not when 0600, nor without keys', () => {
    const config = parseConfig(esp());
    expect(lines(configWarnings(config, { name: 'esp.yaml', mode: 0o100644 }, NO_HOST))).toEqual([
      '(file): esp.yaml holds keys (peers[0].sa) and group or others may read it (mode 0644); chmod 600 esp.yaml',
    ]);
    expect(configWarnings(config, { name: 'esp.yaml', mode: 0o100640 }, NO_HOST)).toHaveLength(1);
    expect(configWarnings(config, { name: 'esp.yaml', mode: 0o100600 }, NO_HOST)).toEqual([]);
    expect(configWarnings(config, null, NO_HOST)).toEqual([]); // stdin: no file mode to speak of
    expect(configWarnings(parseConfig(tun()), { name: 'tun.yaml', mode: 0o100644 }, NO_HOST)).toEqual([]);
    const psk = parseConfig({ ...tun(), encap: { type: 'esp' }, ike: { auth: 'psk', psk: 'x'.repeat(20) }, peers: [{ name: 'b', endpoint: '198.18.0.2', allowedIps: ['198.19.0.2/32'] }] });
    expect(lines(configWarnings(psk, { name: 'ike.yaml', mode: 0o100604 }, NO_HOST))[0]).toMatch(/^\(file\): ike\.yaml holds keys \(ike\.psk\) and group or others may read it \(mode 0604\)/);
  });

  it('a pskFile, a private key or an etcd client key that others can read', () => {
    const pskFile = path.join(tmp, 'psk');
    fs.writeFileSync(pskFile, 'x'.repeat(20), { mode: 0o644 });
    fs.chmodSync(pskFile, 0o644);
    const config = parseConfig({ ...tun(), encap: { type: 'esp' }, ike: { auth: 'psk', pskFile }, peers: [{ name: 'b', endpoint: '198.18.0.2', allowedIps: ['198.19.0.2/32'] }] });
    expect(lines(configWarnings(config, { name: 'c.yaml', mode: 0o100600 }, { cpus: null }))).toEqual([
      `ike.pskFile: ${pskFile} holds a key and group or others may read it (mode 0644); chmod 600 ${pskFile}`,
    ]);
    fs.chmodSync(pskFile, 0o600);
    expect(configWarnings(config, null, { cpus: null })).toEqual([]);
    // The other key files, by their field (modes given: the files need not exist for this).
    const withKeys = { ...config, ike: { ...config.ike!, privateKey: '/etc/k.pem' }, registry: { etcd: { tls: { ca: '/ca', cert: '/c', key: '/etcd.key' } } } } as unknown as ResolvedConfig;
    const modes: Record<string, number> = { [pskFile]: 0o100600, '/etc/k.pem': 0o100640, '/etcd.key': 0o100600 };
    expect(lines(configWarnings(withKeys, null, { cpus: null, modeOf: (f) => modes[f] ?? null }))).toEqual([
      'ike.privateKey: /etc/k.pem holds a key and group or others may read it (mode 0640); chmod 600 /etc/k.pem',
    ]);
  });

  it('cpuAffinity naming CPUs this process may not run on (its worker runs unpinned)', () => {
    const config = parseConfig(tun({ cpuAffinity: [0, 1, 7, 4095] }));
    expect(lines(configWarnings(config, null, { cpus: [0, 1, 2, 3], cwd: '/' }))).toEqual([
      'cpuAffinity[2]: CPU 7 is not one this process may run on (0-3): a worker meant for it runs unpinned',
      'cpuAffinity[3]: CPU 4095 is not one this process may run on (0-3): a worker meant for it runs unpinned',
    ]);
    expect(configWarnings(config, null, { cpus: [0, 1, 7, 4095] })).toEqual([]);
    // This host's own: CPU 4095 is beyond any machine this runs on.
    expect(lines(configWarnings(config, null)).some((l) => l.startsWith('cpuAffinity[3]: CPU 4095'))).toBe(true);
    expect(parseCpuList('0-3,8,10-11')).toEqual([0, 1, 2, 3, 8, 10, 11]);
    expect(parseCpuList('0-')).toBeNull();
  });

  it('allowedIps on a TAP peer (they route nothing there)', () => {
    const config = parseConfig({ ...tun(), device: { type: 'tap' }, encap: { type: 'vxlan', vni: 1 } });
    expect(lines(configWarnings(config, null, NO_HOST))).toEqual([
      'peers[0].allowedIps: used only with device.type tun: a tap device forwards by MAC (macs, learning), so these prefixes route nothing',
    ]);
    expect(configWarnings(parseConfig(tun()), null, NO_HOST)).toEqual([]);
  });

  it('a relative control socket path', () => {
    const config = parseConfig(tun({ control: { socket: 'run/ovl0.sock' } }));
    expect(lines(configWarnings(config, null, NO_HOST))).toEqual([
      'control.socket: "run/ovl0.sock" is relative: up puts it in the directory it runs in (/srv/run/ovl0.sock now), and overlayfwd -s must name it from there; give an absolute path',
    ]);
  });

  it('an allowedIps prefix (routed by the kernel with device.routes auto) that holds an underlay address', () => {
    const config = parseConfig(tun({ peers: [{ name: 'b', endpoint: '198.18.0.2', allowedIps: ['198.19.0.2/32', '198.18.0.0/15', '0.0.0.0/0'] }] }));
    expect(lines(configWarnings(config, null, NO_HOST))).toEqual([
      "peers[0].allowedIps[1]: 198.18.0.0/15 holds underlay.local 198.18.0.1 and peer b's endpoint 198.18.0.2: the kernel route device.routes installs for it sends traffic to those addresses into ovl0 (tunnel packets among it: dropped as loop) unless the underlay has a more specific route there; narrow the prefix, or set device.routes: off and route by hand",
      "peers[0].allowedIps[2]: 0.0.0.0/0 holds underlay.local 198.18.0.1 and peer b's endpoint 198.18.0.2: the kernel route device.routes installs for it sends traffic to those addresses into ovl0 (tunnel packets among it: dropped as loop) unless the underlay has a more specific route there; narrow the prefix, or set device.routes: off and route by hand",
    ]);
    const off = parseConfig(tun({ device: { type: 'tun', addresses: ['198.19.0.1/24'], routes: 'off' }, peers: [{ name: 'b', endpoint: '198.18.0.2', allowedIps: ['0.0.0.0/0'] }] }));
    expect(configWarnings(off, null, NO_HOST)).toEqual([]);
  });
});

describe('errors that name the real cause', () => {
  it('a device address whose prefix holds the underlay address is an error (it would blackhole the underlay)', () => {
    expect(issues(tun({ device: { type: 'tun', addresses: ['198.18.0.9/16'] }, peers: [] }))).toEqual([
      "device.addresses[0]: 198.18.0.9/16 holds underlay.local 198.18.0.1: the overlay device would have a route to the underlay address, and the tunnel's own packets could be sent into the tunnel (a loop that blackholes the underlay); overlay and underlay addresses must not overlap",
    ]);
    // The peers are checked first (as every peer problem is): a peer's endpoint inside it too.
    expect(issues(tun({ device: { type: 'tun', addresses: ['198.18.0.9/16'] } }))).toEqual([
      "peers[0].endpoint: 198.18.0.2 is inside device.addresses[0] 198.18.0.9/16: the overlay device would have a route to the underlay address, and the tunnel's own packets could be sent into the tunnel (a loop that blackholes the underlay); overlay and underlay addresses must not overlap",
    ]);
    // A peer added later with its endpoint in the overlay's prefix: refused the same way.
    const config = parseConfig(tun());
    expect(() => parsePeer({ name: 'c', endpoint: '198.19.0.77', allowedIps: ['10.3.0.0/16'] }, 'peer', config)).toThrow(/^peer\.endpoint: 198\.19\.0\.77 is inside device\.addresses\[0\] 198\.19\.0\.1\/24: /);
    // IPv6 alike.
    expect(issues(tun({ device: { type: 'tun', addresses: ['fd00::1/8'] }, underlay: { local: 'fd00:198:18::1' }, peers: [] }))[0]).toMatch(/^device\.addresses\[0\]: fd00::1\/8 holds underlay\.local fd00:198:18::1: /);
  });

  it('an IPv6 device address with device.mtu below 1280', () => {
    expect(issues(tun({ device: { type: 'tun', mtu: 1200, addresses: ['198.19.0.1/24', 'fd00:198:19::1/64'] } }))).toEqual([
      'device.addresses[1]: fd00:198:19::1/64 is IPv6, which needs an MTU of at least 1280 (RFC 8200), and device.mtu is 1200: raise device.mtu or leave the IPv6 address out',
    ]);
    expect(issues(tun({ device: { type: 'tun', mtu: 1280, addresses: ['fd00:198:19::1/64'] } }))).toEqual([]);
  });

  it('at up: an IPv6 device address with mtu auto below 1280, given the underlay interface', () => {
    const config = parseConfig(tun({ device: { type: 'tun', addresses: ['198.19.0.1/24', 'fd00:198:19::1/64'] } }));
    const native = (mtu: number) => ({ interfaceWithAddress: () => ({ name: 'eth0', mtu }) });
    expect(() => preflight(config, [], native(1312))).not.toThrow(); // 1312 - 32 = 1280
    let error: ConfigError | undefined;
    try {
      preflight(config, [], native(1300));
    } catch (e) {
      error = e as ConfigError;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.issues).toEqual([
      {
        path: 'device.addresses[1]',
        message:
          'fd00:198:19::1/64 is IPv6, which needs an MTU of at least 1280 (RFC 8200), and the device would get 1268: the MTU of the underlay interface eth0 (1300) minus 32 bytes of gre-udp overhead; raise the underlay MTU, or set device.mtu to 1280 or more (larger inner packets then get Packet Too Big / Fragmentation Needed)',
      },
    ]);
  });

  it('at up: an underlay address on no interface of the namespace is a config error that says where to run', () => {
    const absent = () => {
      throw Object.assign(new Error('EADDRNOTAVAIL: getifaddrs failed'), { code: 'EADDRNOTAVAIL', errno: -99, syscall: 'getifaddrs' });
    };
    const here = parseConfig(tun());
    expect(() => preflight(here, [], { interfaceWithAddress: absent })).toThrow(
      'underlay.local: 198.18.0.1 is not an address of any interface in the network namespace this process runs in: run up in the namespace that has it (ip netns exec NAME overlayfwd up ...) or name that namespace with netns:',
    );
    const there = parseConfig(tun({ netns: 'blue' }));
    expect(() => preflight(there, [], { interfaceWithAddress: absent })).toThrow(
      'underlay.local: 198.18.0.1 is not an address of any interface in network namespace blue (netns:): is it the right namespace, and is the address assigned there (ip -n blue addr)?',
    );
  });

  it('at up: a port in use says by whom, from /proc/net/udp and the owner\'s fds', () => {
    expect(
      parseProcNetUdp(
        '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n' +
          '  12: 010012C6:12B5 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17\n' +
          '  13: 00000000:01F4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 0 2 0000000000000000 0\n',
      ),
    ).toEqual([
      { address: '198.18.0.1', port: 4789, inode: 4242, drops: 17 },
      { address: '0.0.0.0', port: 500, inode: 0, drops: 0 },
    ]);
    expect(parseProcNetUdp('  sl ...\n   0: 000000FD000000000000000001000000:12B5 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 777 2 x 0\n')).toEqual([
      { address: 'fd00::1', port: 4789, inode: 777, drops: 0 },
    ]);
    // A socket no process holds: a kernel tunnel device's.
    const err = Object.assign(new Error('EADDRINUSE: bind failed: Address already in use (198.18.0.1:4789)'), {
      code: 'EADDRINUSE',
      errno: -98,
      syscall: 'bind',
      detail: '198.18.0.1:4789',
    });
    const table = '  sl header\n   0: 00000000:12B5 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 999999999 2 x 0\n';
    const explained = explainSetupError(err, parseConfig(tun({ netns: 'blue' })), { readProcNet: (_ns, name) => (name === 'udp' ? table : '') }) as Error;
    expect(explained).toBe(err);
    expect(explained.message).toBe(
      "EADDRINUSE: bind failed: Address already in use (198.18.0.1:4789): UDP port 4789 on 198.18.0.1 in network namespace blue is in use by a socket that no process has open (0.0.0.0:4789; a kernel tunnel device's, such as vxlan, geneve or fou: see ip -d link)",
    );
    expect((explained as Error & { code: string }).code).toBe('EADDRINUSE');
  });
});

describe('check and up print the warnings', () => {
  beforeAll(async () => {
    await ensureCliBuilt({ tolerateTypeErrors: true });
  }, 180_000);

  const run = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [CLI_MAIN, ...args], { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });

  it('check: exit 0, the config on stdout, one line per warning on stderr', async () => {
    const file = path.join(tmp, 'esp.yaml');
    fs.writeFileSync(file, JSON.stringify({ ...esp(), control: { socket: 'ovl0.sock' } }));
    fs.chmodSync(file, 0o644);
    const r = await run(['check', '-c', file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/: valid/);
    expect(r.stderr.split('\n')).toEqual([
      `overlayfwd: warning: ${file} holds keys (peers[0].sa) and group or others may read it (mode 0644); chmod 600 ${file}`,
      `overlayfwd: warning: control.socket: "ovl0.sock" is relative: up puts it in the directory it runs in (${path.join(fs.realpathSync(tmp), 'ovl0.sock')} now), and overlayfwd -s must name it from there; give an absolute path`,
      '',
    ]);
    fs.chmodSync(file, 0o600);
    expect((await run(['check', '-c', file])).stderr).not.toMatch(/holds keys/);
  });

  it('up: the warnings first, then an underlay address this namespace lacks is a config error (exit 2), nothing made', async () => {
    const file = path.join(tmp, 'absent.yaml');
    fs.writeFileSync(file, JSON.stringify({ ...tun({ underlay: { local: '198.18.213.77' }, cpuAffinity: [4095] }), control: { socket: path.join(tmp, 'absent.sock') } }));
    const r = await run(['up', '-c', file]);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')).toEqual([
      expect.stringMatching(/^overlayfwd: warning: cpuAffinity\[0\]: CPU 4095 is not one this process may run on \(/),
      `overlayfwd: invalid config ${file}:`,
      '  underlay.local: 198.18.213.77 is not an address of any interface in the network namespace this process runs in: run up in the namespace that has it (ip netns exec NAME overlayfwd up ...) or name that namespace with netns:',
      '',
    ]);
  });
});
