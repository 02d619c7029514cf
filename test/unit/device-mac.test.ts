// The TAP device's stable MAC: derived from the machine ID and what names the endpoint, the
// same at every call, different for anything that differs, locally administered unicast; an
// explicit device.mac wins; no machine ID falls back to the kernel's random MAC with a warning.
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config';
import { chooseDeviceMac, deriveDeviceMac, DEVICE_MAC_APP_ID, MACHINE_ID_FILES, parseMachineId, readMachineId } from '../../lib/device-mac';

const ID_A = parseMachineId('3d1219c7c4c5404aaa1f6d2a48adfda4\n')!;
const ID_B = parseMachineId('0123456789abcdef0123456789abcdef')!;
const IDENTITY = { instance: 'ovl0', device: 'ovl0', underlay: '198.18.0.1' };

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'overlayfwd-mac-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, text);
  return p;
}

function config(device: Record<string, unknown> = {}, name = 'ovl0') {
  return parseConfig({ name, device: { type: 'tap', addresses: ['198.19.0.1/24'], ...device }, encap: { type: 'vxlan', vni: 42 }, underlay: { local: '198.18.0.1' } });
}

function octets(mac: string): number[] {
  expect(mac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
  return mac.split(':').map((x) => parseInt(x, 16));
}

describe('deriveDeviceMac', () => {
  it('is the same at every call', () => {
    const mac = deriveDeviceMac(ID_A, IDENTITY);
    for (let i = 0; i < 5; i++) expect(deriveDeviceMac(Buffer.from(ID_A), { ...IDENTITY })).toBe(mac);
  });

  it('is HMAC-SHA256 keyed by the machine ID over the app ID and the names, first six bytes, locally administered unicast', () => {
    const digest = createHmac('sha256', ID_A).update([DEVICE_MAC_APP_ID, 'ovl0', 'ovl0', '198.18.0.1'].join('\x00')).digest();
    const expected = [(digest[0]! & 0xfe) | 0x02, ...digest.subarray(1, 6)];
    expect(octets(deriveDeviceMac(ID_A, IDENTITY))).toEqual(expected);
  });

  it('differs by machine ID, instance name, device name and underlay address', () => {
    const macs = new Set([
      deriveDeviceMac(ID_A, IDENTITY),
      deriveDeviceMac(ID_B, IDENTITY),
      deriveDeviceMac(ID_A, { ...IDENTITY, instance: 'ovl1' }),
      deriveDeviceMac(ID_A, { ...IDENTITY, device: 'tap7' }),
      deriveDeviceMac(ID_A, { ...IDENTITY, underlay: '198.18.0.2' }),
      // The separator keeps the fields apart: moving a character across them changes the MAC.
      deriveDeviceMac(ID_A, { ...IDENTITY, instance: 'ovl0o', device: 'vl0' }),
    ]);
    expect(macs.size).toBe(6);
  });

  it('is always locally administered unicast (bit 1 set, bit 0 clear in the first octet)', () => {
    for (let i = 0; i < 512; i++) {
      const [first] = octets(deriveDeviceMac(i % 2 ? ID_A : ID_B, { ...IDENTITY, instance: `n${i}` }));
      expect(first! & 0x01).toBe(0);
      expect(first! & 0x02).toBe(2);
    }
  });

  it('wants a 16-byte machine ID', () => {
    expect(() => deriveDeviceMac(Buffer.alloc(8, 1), IDENTITY)).toThrow(/16 bytes/);
  });
});

describe('machine ID', () => {
  it('is 32 hex digits (machine-id(5)); "uninitialized", all zeros, short or empty are none', () => {
    expect(parseMachineId('3D1219C7C4C5404AAA1F6D2A48ADFDA4\n')).toEqual(ID_A);
    for (const bad of ['', 'uninitialized\n', '0'.repeat(32), 'abc', `${'a'.repeat(31)}g`, 'a'.repeat(33)]) expect(parseMachineId(bad), bad).toBeNull();
  });

  it('is read from the first file that holds one (/etc/machine-id, then D-Bus copy)', () => {
    expect(MACHINE_ID_FILES).toEqual(['/etc/machine-id', '/var/lib/dbus/machine-id']);
    const empty = file('empty', 'uninitialized\n');
    const good = file('good', '0123456789abcdef0123456789abcdef\n');
    expect(readMachineId([path.join(tmp, 'missing'), empty, good])).toEqual(ID_B);
    expect(readMachineId([path.join(tmp, 'missing'), empty])).toBeNull();
  });
});

describe('chooseDeviceMac', () => {
  const idFile = file('machine-id', '3d1219c7c4c5404aaa1f6d2a48adfda4\n');

  it('tap without device.mac: derived from the machine ID, the instance and device names and underlay.local', () => {
    const choice = chooseDeviceMac(config(), [idFile]);
    expect(choice).toEqual({ mac: deriveDeviceMac(ID_A, IDENTITY), source: 'derived' });
    expect(chooseDeviceMac(config(), [idFile])).toEqual(choice);
    expect(chooseDeviceMac(config({ name: 'tap9' }), [idFile]).mac).toBe(deriveDeviceMac(ID_A, { ...IDENTITY, device: 'tap9' }));
    expect(chooseDeviceMac(config({}, 'other'), [idFile]).mac).toBe(deriveDeviceMac(ID_A, { instance: 'other', device: 'other', underlay: '198.18.0.1' }));
  });

  it('an explicit device.mac wins, with or without a machine ID', () => {
    expect(chooseDeviceMac(config({ mac: '02:00:00:00:00:01' }), [idFile])).toEqual({ mac: '02:00:00:00:00:01', source: 'config' });
    expect(chooseDeviceMac(config({ mac: '02:00:00:00:00:01' }), [path.join(tmp, 'missing')])).toEqual({ mac: '02:00:00:00:00:01', source: 'config' });
  });

  it('no machine ID: no MAC set (the kernel picks a random one) and a one-line warning saying how to keep one', () => {
    const choice = chooseDeviceMac(config(), [path.join(tmp, 'missing')]);
    expect(choice.mac).toBeNull();
    expect(choice.source).toBe('random');
    expect(choice.warning).toMatch(/no machine ID in .*missing.*random MAC.*set device\.mac/);
    expect(choice.warning).not.toContain('\n');
  });

  it('tun devices get none', () => {
    const tun = parseConfig({ name: 'ovl0', device: { type: 'tun', addresses: ['198.19.0.1/24'] }, encap: { type: 'gre' }, underlay: { local: '198.18.0.1' } });
    expect(chooseDeviceMac(tun, [idFile])).toEqual({ mac: null, source: 'none' });
  });

  it('the resolved config keeps device.mac as written (null when derived), so showconf and reload see no change', () => {
    expect(config().device.mac).toBeNull();
    expect(config({ mac: '02:AA:00:00:00:01' }).device.mac).toBe('02:aa:00:00:00:01');
  });
});
