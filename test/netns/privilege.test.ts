// Least privilege: `overlayfwd up` run inside a namespace (ip netns exec) as a non-root user
// holding only CAP_NET_ADMIN and CAP_NET_RAW (ambient, as a systemd unit grants them), and as
// root with `user:` in the config. After setup every task of the process
// (/proc/PID/task/TID/status) holds what docs/configuration.md says: the main thread what table
// swaps need, the data-path workers nothing, Node's threads nothing; traffic, stats, peer
// changes (with their kernel routes), announcements and reload still work; the control socket
// is root's and the configured group's only.
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, execIn, overlayAddress } from '../../lab';
import type { Host, LabProcess } from '../../lab';
import type { Overlay } from '../../lib/overlay';
import { CAPABILITY_NAMES } from '../../lib/privileges';
import { CLI_MAIN, ensureCliBuilt } from '../helpers/cli';
import { describeNetns, ROOT, waitFor } from '../helpers/env';
import { startForwarder } from '../helpers/overlay';

const NOBODY = 65534;
const NOGROUP = 65534;
const cap = (name: string) => CAPABILITY_NAMES.indexOf(name);
const NET_ADMIN = cap('CAP_NET_ADMIN');
const NET_RAW = cap('CAP_NET_RAW');

interface Task {
  tid: number;
  name: string;
  effective: bigint;
  permitted: bigint;
  inheritable: bigint;
  bounding: bigint;
  ambient: bigint;
  noNewPrivs: boolean;
  uids: number[];
  gids: number[];
  blocked: bigint;
}

const mask = (...caps: number[]) => caps.reduce((m, c) => m | (1n << BigInt(c)), 0n);
const names = (m: bigint) => CAPABILITY_NAMES.filter((_, i) => (m >> BigInt(i)) & 1n);
/** The real-time signal the main thread asks the other threads with (SIGRTMIN + 4: 38 with glibc). */
const RESTRICT_SIGNAL = 38;

/** Every task of `pid`, as the kernel reports it. */
function tasks(pid: number): Task[] {
  return fs.readdirSync(`/proc/${pid}/task`).map((tid) => {
    const text = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    const field = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(text)?.[1] ?? '';
    const hex = (k: string) => BigInt(`0x${field(k)}`);
    return {
      tid: Number(tid),
      name: fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim(),
      effective: hex('CapEff'),
      permitted: hex('CapPrm'),
      inheritable: hex('CapInh'),
      bounding: hex('CapBnd'),
      ambient: hex('CapAmb'),
      noNewPrivs: field('NoNewPrivs') === '1',
      uids: field('Uid').split(/\s+/).map(Number),
      gids: field('Gid').split(/\s+/).map(Number),
      blocked: hex('SigBlk'),
    };
  });
}

const describeTask = (t: Task) =>
  `${t.tid} ${t.name}: eff [${names(t.effective)}] prm [${names(t.permitted)}] bnd [${names(t.bounding).length} caps] amb [${names(t.ambient)}] nnp ${t.noNewPrivs} uid ${t.uids.join(' ')}`;

/** The user and its group, for setpriv. */
const ACCOUNTS = { nobody: 'nogroup', daemon: 'daemon' } as const;

function cli(args: string[], asUser?: keyof typeof ACCOUNTS) {
  const argv = [CLI_MAIN, ...args];
  if (!asUser) return execIn(null, process.execPath, argv, { timeoutMs: 30_000, allowFailure: true, cwd: ROOT });
  return execIn(null, 'setpriv', [`--reuid=${asUser}`, `--regid=${ACCOUNTS[asUser]}`, '--clear-groups', process.execPath, ...argv], { timeoutMs: 30_000, allowFailure: true, cwd: ROOT });
}

/** A directory the given user owns, inside the lab's (which only root may enter until opened). */
function ownedDir(lab: Lab, name: string, uid: number, gid: number): string {
  fs.chmodSync(lab.tmpdir(), 0o755);
  const dir = path.join(lab.tmpdir(), name);
  fs.mkdirSync(dir, { mode: 0o750 });
  fs.chownSync(dir, uid, gid);
  return dir;
}

/** `up`'s stderr lines (JSON). */
const logLines = (up: LabProcess) =>
  up.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

async function startUp(lab: Lab, host: Host, file: string, sock: string, wrapper: string[]): Promise<LabProcess> {
  const up = lab.spawn(host, wrapper[0]!, [...wrapper.slice(1), process.execPath, CLI_MAIN, 'up', '-c', file, '--log-level', 'info'], { cwd: ROOT });
  await waitFor(() => !up.running || logLines(up).some((l) => l.msg === 'privileges dropped' || l.msg === 'started'), 'up to drop its privileges', 30_000);
  expect(up.running, `overlayfwd up exited early:\n${up.stderr}${up.stdout}`).toBe(true);
  expect(fs.existsSync(sock)).toBe(true);
  return up;
}

/** Connecting as `user` (not root, not in the socket's group) is refused by the file's mode. */
async function connectAs(user: keyof typeof ACCOUNTS, sock: string) {
  return cli(['stats', '--json', '-s', sock], user);
}

describeNetns('least privilege', { tools: ['setpriv'] }, () => {
  describe('as a non-root user with ambient CAP_NET_ADMIN and CAP_NET_RAW (tun, kernel routes)', () => {
    let lab: Lab;
    let a: Host;
    let b: Host;
    let up: LabProcess;
    let file: string;
    let sock: string;
    let base: Record<string, unknown>;
    const writeConfig = (peers: unknown[], extra: Record<string, unknown> = {}) => {
      fs.writeFileSync(file, YAML.stringify({ ...base, ...extra, peers }), { mode: 0o600 });
      fs.chownSync(file, NOBODY, NOGROUP);
    };
    const peerB = () => ({ name: 'b', endpoint: b.underlay, allowedIps: [`${overlayAddress(2)}/32`, '10.90.0.0/16'] });
    const routesInA = async () => (await execIn(a.ns, 'ip', ['-4', 'route', 'show', 'table', 'all', 'proto', '79'])).stdout;

    beforeAll(async () => {
      await ensureCliBuilt();
      lab = await Lab.create();
      [a, b] = await lab.pair('a', 'b');
      const dir = ownedDir(lab, 'run', NOBODY, NOGROUP);
      sock = path.join(dir, 'ovl0.sock');
      file = path.join(dir, 'ovl0.yaml');
      base = {
        name: 'ovl0',
        device: { type: 'tun', name: 'ovl0', addresses: [`${overlayAddress(1)}/24`] },
        encap: { type: 'gre-udp' },
        underlay: { local: a.underlay },
        workers: 2,
        // Its own user and group: no switch (it is that user already), the socket 0660 for the group.
        user: 'nobody',
        group: 'nogroup',
        control: { socket: sock },
      };
      writeConfig([peerB()]);
      await startForwarder(lab, {
        host: b,
        address: `${overlayAddress(2)}/24`,
        peers: [],
        extra: {
          device: { type: 'tun', name: 'ovl0', addresses: [`${overlayAddress(2)}/24`] },
          encap: { type: 'gre-udp' },
          peers: [{ name: 'a', endpoint: a.underlay, allowedIps: [`${overlayAddress(1)}/32`] }],
        },
      });
      // A TUN/TAP device needs /dev/net/tun open to the user (udev makes it 0666). Where the host
      // has it root-only, a node of our own is bound over it in a mount namespace of the process's.
      const tun = path.join(lab.tmpdir(), 'tun');
      await execIn(null, 'mknod', ['-m', '666', tun, 'c', '10', '200']);
      const privateTun = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /dev/net/tun && exec "$@"', tun];
      const caps = '+net_admin,+net_raw';
      up = await startUp(lab, a, file, sock, [...privateTun, 'setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', `--inh-caps=${caps}`, `--ambient-caps=${caps}`, `--bounding-set=-all,${caps}`]);
    }, 240_000);
    afterAll(async () => {
      await lab?.destroy();
    });

    it('moves traffic, and its kernel route, as that user', async () => {
      expect((await lab.ping(a, overlayAddress(2), { count: 3, intervalSec: 0.05 })).received).toBe(3);
      expect(await routesInA()).toMatch(/10\.90\.0\.0\/16 dev ovl0/);
    });

    it('every task holds what the documentation says', () => {
      const all = tasks(up.pid!);
      const report = all.map(describeTask).join('\n');
      const start = mask(NET_ADMIN, NET_RAW);
      for (const t of all) {
        expect(t.uids, report).toEqual([NOBODY, NOBODY, NOBODY, NOBODY]);
        expect(t.gids, report).toEqual([NOGROUP, NOGROUP, NOGROUP, NOGROUP]);
        // Without CAP_SETPCAP no thread can narrow the bounding set: it stays what setpriv gave.
        expect(t.bounding, report).toBe(start);
        expect(t.inheritable & ~start, report).toBe(0n);
      }
      const main = all.find((t) => t.tid === up.pid)!;
      expect(main.effective, report).toBe(mask(NET_ADMIN));
      expect(main.permitted, report).toBe(mask(NET_ADMIN));
      expect(main.ambient, report).toBe(0n);
      expect(main.noNewPrivs, report).toBe(true);
      const workers = all.filter((t) => t.name.startsWith('ovl-worker-'));
      expect(workers.length, report).toBe(2);
      for (const t of all.filter((x) => x.tid !== up.pid)) {
        if ((t.blocked >> BigInt(RESTRICT_SIGNAL - 1)) & 1n && !t.name.startsWith('ovl-worker-')) {
          // Node's SIGUSR1 watcher blocks every signal: it keeps what the process started with.
          expect(t.effective & ~start, report).toBe(0n);
          continue;
        }
        expect({ tid: t.tid, name: t.name, effective: t.effective, permitted: t.permitted, ambient: t.ambient, noNewPrivs: t.noNewPrivs }, report).toEqual({
          tid: t.tid,
          name: t.name,
          effective: 0n,
          permitted: 0n,
          ambient: 0n,
          noNewPrivs: true,
        });
      }
      // Only that one thread could not be reached; `up` says which and what it holds.
      const dropped = logLines(up).find((l) => l.msg === 'privileges dropped')!;
      expect(dropped, up.stderr).toMatchObject({ kept: ['CAP_NET_ADMIN'] });
      expect((dropped.unreached as unknown[]).length, JSON.stringify(dropped)).toBe(1);
    });

    it('stats, peers add and remove (with their routes) and reload work after the drop', async () => {
      const stats = await cli(['stats', '--json', '-s', sock]);
      expect(stats.code, stats.stderr).toBe(0);
      expect((JSON.parse(stats.stdout) as ReturnType<Overlay['stats']>).peers.b!.txPackets).toBeGreaterThan(0);

      const add = await cli(['peers', 'add', '-s', sock, '--name', 'c', '--endpoint', '198.18.7.2', '--allowed-ip', '10.91.0.0/16']);
      expect(add.code, add.stderr).toBe(0);
      await waitFor(async () => /10\.91\.0\.0\/16 dev ovl0/.test(await routesInA()), 'the route of peer c', 5_000);
      const remove = await cli(['peers', 'remove', '-s', sock, '--name', 'c']);
      expect(remove.code, remove.stderr).toBe(0);
      expect(await routesInA()).not.toMatch(/10\.91\.0\.0/);

      writeConfig([peerB(), { name: 'd', endpoint: '198.18.7.3', allowedIps: ['10.92.0.0/16'] }]);
      const reload = await cli(['reload', '--json', '-s', sock]);
      expect(reload.code, reload.stderr).toBe(0);
      expect(JSON.parse(reload.stdout)).toMatchObject({ added: ['d'], applied: true });
      expect(await routesInA()).toMatch(/10\.92\.0\.0\/16 dev ovl0/);
      // No route failed for want of a capability.
      expect(up.stderr).not.toMatch(/EPERM|EACCES/);
      expect((await lab.ping(a, overlayAddress(2), { count: 2, intervalSec: 0.05 })).received).toBe(2);
    });

    it('the control socket is the user\'s and its group\'s: another user cannot connect', async () => {
      const st = fs.statSync(sock);
      expect({ uid: st.uid, gid: st.gid, mode: (st.mode & 0o777).toString(8) }).toEqual({ uid: NOBODY, gid: NOGROUP, mode: '660' });
      const other = await connectAs('daemon', sock);
      expect(other.code).toBe(1);
      expect(other.stderr).toMatch(/permission denied/);
    });

    it('a SIGUSR1 does not open the inspector', async () => {
      up.kill('SIGUSR1');
      await waitFor(() => logLines(up).some((l) => l.msg === 'SIGUSR1 ignored (the inspector stays closed)'), 'the SIGUSR1 line', 5_000);
      expect(up.stderr).not.toMatch(/Debugger listening/);
      expect(up.running).toBe(true);
    });
  });

  describe('as root with user: and group: (tap)', () => {
    let lab: Lab;
    let a: Host;
    let b: Host;
    let up: LabProcess;
    let file: string;
    let sock: string;
    let base: Record<string, unknown>;
    const writeConfig = (peers: unknown[], extra: Record<string, unknown> = {}) => {
      fs.writeFileSync(file, YAML.stringify({ ...base, ...extra, peers }), { mode: 0o640 });
      // Root's file, readable by the group the instance runs as: what a reload needs.
      fs.chownSync(file, 0, NOGROUP);
    };
    const peerB = () => ({ name: 'b', endpoint: b.underlay });

    beforeAll(async () => {
      await ensureCliBuilt();
      lab = await Lab.create();
      [a, b] = await lab.pair('a', 'b');
      const dir = ownedDir(lab, 'run', 0, NOGROUP);
      sock = path.join(dir, 'ovl0.sock');
      file = path.join(dir, 'ovl0.yaml');
      base = {
        name: 'ovl0',
        device: { type: 'tap', name: 'ovl0', addresses: [`${overlayAddress(1)}/24`] },
        encap: { type: 'vxlan', vni: 42 },
        underlay: { local: a.underlay },
        workers: 2,
        user: 'nobody',
        group: NOGROUP,
        control: { socket: sock },
      };
      writeConfig([peerB()]);
      await startForwarder(lab, { host: b, address: `${overlayAddress(2)}/24`, peers: [{ name: 'a', endpoint: a.underlay }] });
      up = await startUp(lab, a, file, sock, ['env']);
    }, 240_000);
    afterAll(async () => {
      await lab?.destroy();
    });

    it('every task runs as the user, with no capability and an empty bounding set but for what it could not reach', () => {
      const all = tasks(up.pid!);
      const report = all.map(describeTask).join('\n');
      for (const t of all) {
        expect(t.uids, report).toEqual([NOBODY, NOBODY, NOBODY, NOBODY]);
        expect(t.gids, report).toEqual([NOGROUP, NOGROUP, NOGROUP, NOGROUP]);
        // The uid change emptied every thread's sets; only the main thread keeps any (none here: tap).
        expect({ name: t.name, effective: t.effective, permitted: t.permitted, ambient: t.ambient }, report).toEqual({ name: t.name, effective: 0n, permitted: 0n, ambient: 0n });
      }
      const reachable = all.filter((t) => t.name.startsWith('ovl-worker-') || !((t.blocked >> BigInt(RESTRICT_SIGNAL - 1)) & 1n));
      expect(all.length - reachable.length, report).toBe(1);
      for (const t of reachable) {
        expect({ name: t.name, bounding: t.bounding, noNewPrivs: t.noNewPrivs }, report).toEqual({ name: t.name, bounding: 0n, noNewPrivs: true });
      }
      expect(logLines(up).find((l) => l.msg === 'privileges dropped'), up.stderr).toMatchObject({ kept: [], user: 'nobody', group: 'nogroup', uid: NOBODY, gid: NOGROUP });
    });

    it('moves traffic, announces an address added later, and serves stats, peer changes and reload', async () => {
      expect((await lab.ping(a, overlayAddress(2), { count: 3, intervalSec: 0.05 })).received).toBe(3);
      const statsOf = async () => {
        const r = await cli(['stats', '--json', '-s', sock]);
        expect(r.code, r.stderr).toBe(0);
        return JSON.parse(r.stdout) as ReturnType<Overlay['stats']>;
      };
      const before = (await statsOf()).generated;
      // Announced through the AF_PACKET socket opened at start: CAP_NET_RAW is gone by now.
      await execIn(a.ns, 'ip', ['addr', 'add', `${overlayAddress(101)}/24`, 'dev', 'ovl0']);
      await waitFor(async () => ((await statsOf()).generated.announcements ?? 0) > (before.announcements ?? 0), 'the announcement of the added address', 5_000);
      expect((await statsOf()).generated.announceFailures).toBe(before.announceFailures);

      const add = await cli(['peers', 'add', '-s', sock, '--name', 'c', '--endpoint', '198.18.7.2', '--mac', '02:00:00:00:00:0c']);
      expect(add.code, add.stderr).toBe(0);
      const remove = await cli(['peers', 'remove', '-s', sock, '--name', 'c']);
      expect(remove.code, remove.stderr).toBe(0);

      writeConfig([peerB(), { name: 'd', endpoint: '198.18.7.3' }]);
      const reload = await cli(['reload', '--json', '-s', sock]);
      expect(reload.code, reload.stderr).toBe(0);
      expect(JSON.parse(reload.stdout)).toMatchObject({ added: ['d'], applied: true });
      expect((await lab.ping(a, overlayAddress(2), { count: 2, intervalSec: 0.05 })).received).toBe(2);
    });

    it('a reload that changes the user is refused', async () => {
      writeConfig([peerB()], { user: 'daemon' });
      const r = await cli(['reload', '-s', sock]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/user: the user the instance runs as cannot change while the instance runs/);
      writeConfig([peerB()]);
    });

    it('the control socket is root\'s and the group\'s (0660): another user cannot connect', async () => {
      const st = fs.statSync(sock);
      expect({ uid: st.uid, gid: st.gid, mode: (st.mode & 0o777).toString(8) }).toEqual({ uid: 0, gid: NOGROUP, mode: '660' });
      const other = await connectAs('daemon', sock);
      expect(other.code).toBe(1);
      expect(other.stderr).toMatch(/permission denied/);
      // A member of the group may (the user itself here).
      const member = await connectAs('nobody', sock);
      expect(member.code, member.stderr).toBe(0);
    });

    it('stops cleanly; the next start (as root) replaces the socket file the user could not remove', async () => {
      up.kill('SIGTERM');
      const st = await up.wait(20_000);
      expect({ code: st.code, signal: st.signal }, up.stderr).toEqual({ code: 0, signal: null });
      up = await startUp(lab, a, file, sock, ['env']);
      expect((await lab.ping(a, overlayAddress(2), { count: 2, intervalSec: 0.05 })).received).toBe(2);
    });
  });

  it('an unknown user is a config error naming the field (exit 2); a non-root process cannot switch (exit 1)', async () => {
    const lab = await Lab.create();
    try {
      const file = path.join(ownedDir(lab, 'cfg', NOBODY, NOGROUP), 'c.yaml');
      const write = (extra: Record<string, unknown>) => {
        fs.writeFileSync(file, YAML.stringify({ name: 'ovl9', underlay: { local: '198.18.0.1' }, encap: { type: 'vxlan', vni: 1 }, ...extra }));
        fs.chmodSync(file, 0o644);
      };
      write({ user: 'no-such-user-here' });
      const unknown = await cli(['up', '-c', file]);
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toMatch(/user: there is no user "no-such-user-here" on this host/);
      write({ user: 'daemon' });
      const refused = await cli(['up', '-c', file], 'nobody');
      expect(refused.code, refused.stderr).toBe(1);
      expect(refused.stderr).toMatch(/user: switching to daemon:daemon \(1:1\) needs root/);
    } finally {
      await lab.destroy();
    }
  }, 60_000);
});
