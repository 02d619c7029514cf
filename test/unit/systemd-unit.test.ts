// examples/systemd/overlayfwd@.service against the code it starts: its command line is one the
// CLI parses, its directories are the ones the CLI uses, its capabilities cover what the data
// path and IKE open, and it survives `systemd-analyze verify` where systemd is installed.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT_USAGE } from '../../lib/cli/common';
import { buildProgram } from '../../lib/cli/main';
import { defaultSocketPath, runDir } from '../../lib/config';
import { IKE_DEFAULTS } from '../../lib/config/ike';

const root = path.resolve(__dirname, '..', '..');
const UNIT = 'examples/systemd/overlayfwd@.service';
const unitText = fs.readFileSync(path.join(root, UNIT), 'utf8');

/** The unit's settings: section → key → values in order (a key may be given more than once). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!kv || !current) throw new Error(`${UNIT}: cannot read line: ${raw}`);
    current.set(kv[1]!, [...(current.get(kv[1]!) ?? []), kv[2]!]);
  }
  return sections;
}

const unit = parseUnit(unitText);
const service = unit.get('Service') ?? new Map<string, string[]>();

/** The one value of a [Service] key. */
function one(key: string): string {
  const values = service.get(key);
  expect(values, `${UNIT}: [Service] ${key}= missing`).toBeDefined();
  expect(values, `${UNIT}: [Service] ${key}= given more than once`).toHaveLength(1);
  return values![0]!;
}

const words = (v: string) => v.split(/\s+/).filter(Boolean);

describe('examples/systemd/overlayfwd@.service', () => {
  it("starts `overlayfwd up` on the instance's config file, as the CLI parses it", async () => {
    const exec = words(one('ExecStart'));
    expect(exec.slice(0, 2)).toEqual(['/usr/bin/env', 'overlayfwd']);
    // %i is the instance name (systemd's specifier); the command line must be one commander takes.
    const args = exec.slice(2).map((w) => w.replace(/%i/g, 'ovl0'));
    const program = buildProgram(() => {});
    let seen: { config?: string } | undefined;
    program.commands.find((c) => c.name() === 'up')!.action((opts: { config: string }) => {
      seen = opts;
    });
    await program.parseAsync(['node', 'overlayfwd', ...args]);
    expect(seen?.config).toBe('/etc/overlayfwd/ovl0.yaml');
  });

  it('reloads with SIGHUP, which `up` handles (unhandled, SIGHUP would end the process)', () => {
    expect(one('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(fs.readFileSync(path.join(root, 'lib/cli/up.ts'), 'utf8')).toMatch(/process\.on\('SIGHUP'/);
  });

  it('restarts on a failure, but not on a config error', () => {
    expect(one('Restart')).toBe('on-failure');
    expect(words(one('RestartPreventExitStatus'))).toContain(String(EXIT_USAGE));
  });

  it("keeps the control sockets in the CLI's run directory, shared by every instance", () => {
    const saved = process.env.OVERLAYFWD_RUN_DIR;
    delete process.env.OVERLAYFWD_RUN_DIR;
    try {
      expect(path.join('/run', one('RuntimeDirectory'))).toBe(runDir());
      expect(path.dirname(defaultSocketPath('ovl0'))).toBe(runDir());
    } finally {
      if (saved !== undefined) process.env.OVERLAYFWD_RUN_DIR = saved;
    }
    // Without it, stopping one instance deletes the directory and every other instance's socket.
    expect(one('RuntimeDirectoryPreserve')).toBe('yes');
    // Registry mode's subnet memory (lib/registry/registry.ts: OVERLAYFWD_STATE_DIR or this).
    const state = path.join('/var/lib', one('StateDirectory'));
    expect(fs.readFileSync(path.join(root, 'lib/registry/registry.ts'), 'utf8')).toContain(`'${state}'`);
  });

  it('runs with the capabilities the data path and IKE need, and no others', () => {
    const ambient = words(one('AmbientCapabilities')).sort();
    const bounding = words(one('CapabilityBoundingSet')).sort();
    expect(bounding).toEqual(ambient);
    expect(bounding).toContain('CAP_NET_ADMIN'); // TUN/TAP, links, addresses
    expect(bounding).toContain('CAP_NET_RAW'); // raw IP modes, AF_PACKET devices
    // IKE binds UDP 500 by default: a privileged port.
    if (IKE_DEFAULTS.port < 1024) expect(bounding).toContain('CAP_NET_BIND_SERVICE');
    expect(bounding).not.toContain('CAP_SYS_ADMIN');
    expect(one('NoNewPrivileges')).toBe('yes');
  });

  it('runs as a user of its own, which setup does not need root for', () => {
    expect(one('User')).toBe('overlayfwd');
    expect(one('Group')).toBe('overlayfwd');
    // Nothing that would let it change ids or take capabilities back.
    expect(words(one('CapabilityBoundingSet'))).not.toEqual(expect.arrayContaining(['CAP_SETUID']));
    expect(words(one('CapabilityBoundingSet'))).not.toEqual(expect.arrayContaining(['CAP_SETPCAP']));
  });

  it('is sandboxed without shutting out what overlayfwd uses', () => {
    expect(one('ProtectSystem')).toBe('strict');
    expect(one('ProtectHome')).toBe('yes');
    expect(one('PrivateTmp')).toBe('yes');
    expect(one('LockPersonality')).toBe('yes');
    // V8's JIT needs memory that is writable and executable.
    expect(one('MemoryDenyWriteExecute')).toBe('no');
    expect(words(one('RestrictAddressFamilies')).sort()).toEqual(['AF_INET', 'AF_INET6', 'AF_NETLINK', 'AF_PACKET', 'AF_UNIX']);
    // TUN/TAP devices are made through /dev/net/tun: an allow-list (or ProtectClock's) must hold it.
    expect(service.has('PrivateDevices') && one('PrivateDevices') === 'yes').toBe(false);
    if (service.has('DevicePolicy') || service.has('DeviceAllow') || service.has('ProtectClock')) {
      expect((service.get('DeviceAllow') ?? []).map((v) => words(v)[0])).toContain('/dev/net/tun');
    }
  });

  const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  it.skipIf(analyze.status !== 0)('passes systemd-analyze verify with no complaint about the unit itself (skipped: no systemd-analyze here)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ovlunit-'));
    try {
      const file = path.join(dir, 'overlayfwd@ovl0.service');
      fs.copyFileSync(path.join(root, UNIT), file);
      const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
      // Lines about other units (a host without network-online.target, say) are not ours.
      const complaints = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => l.includes(file));
      expect(complaints).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
