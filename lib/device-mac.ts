// A TAP device's MAC address that stays the same from one start to the next, so that a restart
// does not strand the peers' neighbour entries (and their learned forwarding entries) on a MAC
// that no longer exists.
//
// It is derived the way systemd derives an interface's MAC under MACAddressPolicy=persistent
// (net_get_unique_predictable_data: a keyed hash of /etc/machine-id and the interface name,
// its first six bytes, marked locally administered unicast): HMAC-SHA256 keyed with the
// 128-bit machine ID over a fixed application ID and what names this overlay endpoint on the
// machine (instance name, device name, underlay address), the first six bytes taken, and in
// the first octet bit 1 set (locally administered) and bit 0 cleared (unicast). The machine ID
// is only ever a key, so the MAC reveals nothing of it (machine-id(5) asks for this: hash it
// with an application's own ID, as sd_id128_get_machine_app_specific does).
//
// The underlay address is part of the name because one machine (one machine ID) may run
// several endpoints of the same overlay under the same instance name: one per network
// namespace or container. They cannot share an underlay address, so they get different MACs.
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import type { ResolvedConfig } from './types';

/** Fixed: changing it would change every derived MAC. */
export const DEVICE_MAC_APP_ID = 'overlayfwd/device-mac/1';

/** Where the machine ID is read from, in order (the second is D-Bus's copy on hosts without systemd). */
export const MACHINE_ID_FILES: readonly string[] = ['/etc/machine-id', '/var/lib/dbus/machine-id'];

/** What names one overlay endpoint on a machine. */
export interface DeviceMacIdentity {
  /** The instance name (`name:`). */
  instance: string;
  /** The device name (`device.name`, default the instance name). */
  device: string;
  /** `underlay.local`, canonical. */
  underlay: string;
}

/** The 128-bit machine ID of machine-id(5): 32 hex digits, not all zero; null for anything else ("uninitialized", empty). */
export function parseMachineId(text: string): Buffer | null {
  const id = text.trim().toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(id) || /^0+$/.test(id)) return null;
  return Buffer.from(id, 'hex');
}

/** The machine ID from the first of `files` that holds one, or null. */
export function readMachineId(files: readonly string[] = MACHINE_ID_FILES): Buffer | null {
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    const id = parseMachineId(text);
    if (id) return id;
  }
  return null;
}

/** The MAC for `identity` on the machine with `machineId` (16 bytes): aa:bb:cc:dd:ee:ff, locally administered unicast. */
export function deriveDeviceMac(machineId: Buffer, identity: DeviceMacIdentity): string {
  if (machineId.length !== 16) throw new RangeError('a machine ID is 16 bytes');
  const hmac = createHmac('sha256', machineId);
  // NUL-separated: no two different identities give the same message (names hold no NUL).
  hmac.update([DEVICE_MAC_APP_ID, identity.instance, identity.device, identity.underlay].join('\x00'));
  const bytes = hmac.digest().subarray(0, 6);
  bytes[0] = (bytes[0]! & 0xfe) | 0x02;
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

export interface DeviceMacChoice {
  /** The MAC to give the device; null: none is set, the kernel picks a random one. */
  mac: string | null;
  /** `config`: device.mac; `derived`: from the machine ID; `random`: no machine ID; `none`: not a TAP device. */
  source: 'config' | 'derived' | 'random' | 'none';
  /** For `random`: the one-line warning to show. */
  warning?: string;
}

/**
 * The MAC a TAP device of `config` gets: `device.mac` when set, else the derived one, else (no
 * machine ID on this host) none, so the kernel picks a random one as before, with a warning that
 * says what that costs. tun and packet devices: none (no MAC of ours to set).
 */
export function chooseDeviceMac(config: ResolvedConfig, machineIdFiles: readonly string[] = MACHINE_ID_FILES): DeviceMacChoice {
  if (config.device.type !== 'tap') return { mac: null, source: 'none' };
  if (config.device.mac !== null) return { mac: config.device.mac, source: 'config' };
  const machineId = readMachineId(machineIdFiles);
  if (machineId) {
    return { mac: deriveDeviceMac(machineId, { instance: config.name, device: config.device.name, underlay: config.underlay.local }), source: 'derived' };
  }
  return {
    mac: null,
    source: 'random',
    warning:
      `overlay ${config.name}: no machine ID in ${machineIdFiles.join(' or ')}, so device ${config.device.name} gets a random MAC ` +
      'that changes at every start (peers keep the old one until their neighbour entries expire); set device.mac to keep one',
  };
}
