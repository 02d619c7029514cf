// Setup failures that name the real cause, against the real kernel (lib/preflight.ts): a port
// already bound says by whom (a process, found through the namespace's /proc/net/udp and its
// fds; or a kernel VXLAN device's socket, which no process holds); an underlay address the
// namespace lacks is a config error that says where up must run; an IPv6 device address with
// mtu auto below 1280 names the underlay interface and the numbers. Nothing is left behind.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../../lab';
import type { Host } from '../../lab';
import { ConfigError } from '../../lib/config';
import { describeNetns, sleep } from '../helpers/env';
import { loadOverlay } from '../helpers/overlay';

describeNetns('setup errors that name the real cause', { tools: ['python3'] }, () => {
  let lab: Lab;
  let a: Host;
  let b: Host;

  const config = (extra: Record<string, unknown> = {}) => ({
    name: 'ovl0',
    netns: a.ns,
    device: { type: 'tap', addresses: ['198.19.0.1/24'] },
    encap: { type: 'vxlan', vni: 42 },
    underlay: { local: a.underlay },
    workers: 1,
    peers: [{ name: 'b', endpoint: b.underlay }],
    control: { socket: `${lab.tmpdir()}/ovl0.sock` },
    ...extra,
  });

  async function createError(input: Record<string, unknown>): Promise<Error> {
    const Overlay = await loadOverlay();
    try {
      const ov = await Overlay.create(input);
      await ov.close();
    } catch (err) {
      return err as Error;
    }
    throw new Error('Overlay.create succeeded');
  }

  async function noDevice(): Promise<void> {
    expect((await lab.ip(a, ['-o', 'link', 'show'])).stdout).not.toMatch(/ ovl0[:@]/);
  }

  beforeAll(async () => {
    lab = await Lab.create();
    [a, b] = await lab.pair('a', 'b');
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('a UDP port held by a process: the error says which (pid and command)', async () => {
    const holder = lab.spawn(a, 'python3', ['-c', `import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('${a.underlay}', 4789))\nprint('bound', flush=True)\ntime.sleep(60)`]);
    await lab.waitForListen(a, 4789, { udp: true });
    const err = (await createError(config())) as Error & { code?: string; syscall?: string };
    expect(err.code).toBe('EADDRINUSE');
    expect(err.syscall).toBe('bind');
    expect(err.message).toMatch(new RegExp(`: UDP port 4789 on ${a.underlay.replace(/\./g, '\\.')} in network namespace ${a.ns} is in use by pid ${holder.pid} \\(python3\\)$`));
    await noDevice();
    holder.kill();
    await holder.wait(5_000).catch(() => {});
  });

  it("a UDP port held by the kernel's own VXLAN device: a socket no process has open", async () => {
    await lab.kernelVxlan(a, { vni: 7, remotes: [b.underlay] });
    await sleep(100);
    const err = await createError(config());
    expect(err.message).toMatch(/: UDP port 4789 on .* is in use by a socket that no process has open \(0\.0\.0\.0:4789; a kernel tunnel device's, such as vxlan, geneve or fou: see ip -d link\)$/);
    await lab.ip(a, ['link', 'del', 'vx0']);
    await noDevice();
  });

  it('an underlay address the namespace does not have: a config error on underlay.local naming the namespace', async () => {
    const err = await createError(config({ underlay: { local: '198.18.213.77' }, peers: [] }));
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).issues).toEqual([
      {
        path: 'underlay.local',
        message: `198.18.213.77 is not an address of any interface in network namespace ${a.ns} (netns:): is it the right namespace, and is the address assigned there (ip -n ${a.ns} addr)?`,
      },
    ]);
    await noDevice();
  });

  it('an IPv6 device address whose derived MTU is below 1280: the underlay interface and the numbers', async () => {
    await lab.ip(a, ['link', 'set', a.underlayDev, 'mtu', '1300']);
    try {
      const err = await createError(config({ device: { type: 'tun', addresses: ['198.19.0.1/24', 'fd00:198:19::1/64'] }, encap: { type: 'gre-udp' }, peers: [] }));
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).issues).toEqual([
        {
          path: 'device.addresses[1]',
          message: `fd00:198:19::1/64 is IPv6, which needs an MTU of at least 1280 (RFC 8200), and the device would get 1268: the MTU of the underlay interface ${a.underlayDev} (1300) minus 32 bytes of gre-udp overhead; raise the underlay MTU, or set device.mtu to 1280 or more (larger inner packets then get Packet Too Big / Fragmentation Needed)`,
        },
      ]);
      await noDevice();
    } finally {
      await lab.ip(a, ['link', 'set', a.underlayDev, 'mtu', '1500']);
    }
  });
});
