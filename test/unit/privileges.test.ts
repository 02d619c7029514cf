// user: and group: (lib/config, lib/privileges.ts): what the parser takes and refuses, naming the
// field; the lookup on this host (a fake user database: the native one is tested in
// native/test/system/privileges_test.cc and test/netns/privilege.test.ts); that a reload cannot
// change them; what the main thread keeps after setup for each kind of config; and the keys
// warning, which lets the group read a file when a reload re-reads it as that group.
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../lib/config';
import { planReload } from '../../lib/config/reload';
import { configWarnings } from '../../lib/config/warnings';
import { configToInput } from '../../lib/overlay';
import { identitySwitchRefusal, keptCapabilities, resolveIdentity } from '../../lib/privileges';
import type { NativePrivileges } from '../../lib/native';
import type { ResolvedConfig } from '../../lib/types';

const BASE = { name: 'ovl0', underlay: { local: '198.18.0.1' }, encap: { type: 'vxlan', vni: 42 } };

function issuesOf(input: Record<string, unknown>): string[] {
  try {
    parseConfig({ ...BASE, ...input });
  } catch (e) {
    if (e instanceof ConfigError) return e.issues.map((i) => `${i.path}: ${i.message}`);
    throw e;
  }
  return [];
}

/** A user database of two users and three groups. */
const fakeNative: { privileges: Pick<NativePrivileges, 'findUser' | 'findGroup'> } = {
  privileges: {
    findUser: (s) => ({ overlayfwd: { uid: 990, gid: 990, name: 'overlayfwd' }, '990': { uid: 990, gid: 990, name: 'overlayfwd' }, root: { uid: 0, gid: 0, name: 'root' } })[s] ?? null,
    findGroup: (s) => ({ overlayfwd: { gid: 990, name: 'overlayfwd' }, '990': { gid: 990, name: 'overlayfwd' }, netops: { gid: 991, name: 'netops' }, '991': { gid: 991, name: 'netops' } })[s] ?? null,
  },
};
const identityOf = (input: Record<string, unknown>) => resolveIdentity(parseConfig({ ...BASE, ...input }), fakeNative as never);
const configIssues = (fn: () => unknown): string[] => {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e.issues.map((i) => `${i.path}: ${i.message}`);
    throw e;
  }
  return [];
};

describe('user and group in the config', () => {
  it('take names and numeric ids, and keep them as given', () => {
    const c = parseConfig({ ...BASE, user: 'overlayfwd', group: 991 });
    expect([c.user, c.group]).toEqual(['overlayfwd', 991]);
    expect(parseConfig(BASE).user).toBeUndefined();
    // Through configToInput (peers add, showconf) they stay.
    expect(parseConfig(configToInput(c))).toMatchObject({ user: 'overlayfwd', group: 991 });
  });

  it('refuse what cannot be an account, root, and a group without a user, naming the field', () => {
    expect(issuesOf({ user: '-rf' })[0]).toMatch(/^user: must be a user name .* or a numeric uid/);
    expect(issuesOf({ user: 1.5 })[0]).toMatch(/^user: must be a user name/);
    expect(issuesOf({ user: 'overlayfwd', group: ['a'] })[0]).toMatch(/^group: must be a group name .* or a numeric gid/);
    expect(issuesOf({ group: 'netops' })).toEqual([expect.stringMatching(/^group: needs user/)]);
    expect(issuesOf({ user: 'root' })).toEqual([expect.stringMatching(/^user: is root: leave user out/)]);
    expect(issuesOf({ user: 0 })).toEqual([expect.stringMatching(/^user: is root/)]);
  });

  it('a reload that changes either is refused, naming it', () => {
    const running = parseConfig({ ...BASE, user: 'overlayfwd' });
    const plan = planReload(running, parseConfig({ ...BASE, user: 'overlayfwd', group: 'netops' }), () => null);
    expect(plan.restartNeeded).toEqual([{ path: 'group', message: expect.stringMatching(/^the group the instance runs as cannot change while the instance runs/) }]);
    expect(planReload(running, parseConfig(BASE), () => null).restartNeeded.map((i) => i.path)).toEqual(['user']);
  });
});

describe('resolveIdentity', () => {
  it('looks the user up, its primary group by default or the group given', () => {
    expect(identityOf({})).toBeNull();
    expect(identityOf({ user: 'overlayfwd' })).toEqual({ uid: 990, gid: 990, user: 'overlayfwd', group: 'overlayfwd' });
    expect(identityOf({ user: 990, group: 'netops' })).toEqual({ uid: 990, gid: 991, user: 'overlayfwd', group: 'netops' });
    // A uid without an entry is allowed with a group; a gid without one too.
    expect(identityOf({ user: 4242, group: 4343 })).toEqual({ uid: 4242, gid: 4343, user: '4242', group: '4343' });
  });

  it('an unknown user or group is a config error at its field', () => {
    expect(configIssues(() => identityOf({ user: 'nosuch' }))).toEqual(['user: there is no user "nosuch" on this host']);
    expect(configIssues(() => identityOf({ user: 'overlayfwd', group: 'nosuch' }))).toEqual(['group: there is no group "nosuch" on this host']);
    expect(configIssues(() => identityOf({ user: 4242 }))).toEqual([expect.stringMatching(/^user: uid 4242 has no entry .*give group: too/)]);
  });

  it('a non-root process may only stay who it is', () => {
    const id = { uid: 990, gid: 990, user: 'overlayfwd', group: 'overlayfwd' };
    expect(identitySwitchRefusal(id, { uid: 0, gid: 0 })).toBeNull();
    expect(identitySwitchRefusal(id, { uid: 990, gid: 990 })).toBeNull();
    expect(identitySwitchRefusal(id, { uid: 65534, gid: 65534 })).toMatch(/^user: switching to overlayfwd:overlayfwd \(990:990\) needs root, and this process runs as 65534:65534/);
  });
});

describe('keptCapabilities', () => {
  const kept = (input: Record<string, unknown>) => keptCapabilities(parseConfig({ ...BASE, ...input }) as ResolvedConfig).map((k) => k.name);
  it('is CAP_NET_ADMIN for the kernel routes of a tun device, CAP_SYS_ADMIN on top with netns, else nothing', () => {
    const tun = { device: { type: 'tun' }, encap: { type: 'gre-udp' } };
    expect(kept({})).toEqual([]);
    expect(kept(tun)).toEqual(['CAP_NET_ADMIN']);
    expect(kept({ ...tun, device: { type: 'tun', routes: 'off' } })).toEqual([]);
    expect(kept({ ...tun, netns: 'blue' })).toEqual(['CAP_NET_ADMIN', 'CAP_SYS_ADMIN']);
    expect(kept({ netns: 'blue' })).toEqual(['CAP_SYS_ADMIN']);
    expect(kept({ encap: { type: 'esp', cipher: 'aes-256-gcm', udp: false }, device: { type: 'tun' } })).toEqual(['CAP_NET_ADMIN']);
  });
});

describe('the keys warning with user:', () => {
  const KEY = '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef11223344';
  const esp = (extra: Record<string, unknown>) =>
    parseConfig({
      ...BASE,
      ...extra,
      device: { type: 'tun' },
      encap: { type: 'esp', cipher: 'aes-256-gcm' },
      peers: [{ name: 'b', endpoint: '198.18.0.2', allowedIps: ['198.19.0.2/32'], sa: { out: { spi: 1, key: KEY }, in: { spi: 2, key: KEY.replace('0', '1') } } }],
    });
  it('lets the group read the file (a reload re-reads it as that user), not others', () => {
    expect(configWarnings(esp({}), { name: 'esp.yaml', mode: 0o100640 }, { modeOf: () => null })).toHaveLength(1);
    expect(configWarnings(esp({ user: 'overlayfwd' }), { name: 'esp.yaml', mode: 0o100640 }, { modeOf: () => null })).toEqual([]);
    const others = configWarnings(esp({ user: 'overlayfwd' }), { name: 'esp.yaml', mode: 0o100644 }, { modeOf: () => null });
    expect(others.map((w) => w.message)).toEqual([expect.stringMatching(/chmod 640 esp\.yaml$/)]);
  });
});
