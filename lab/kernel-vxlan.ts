// The Linux kernel's own VXLAN device as a reference peer, and transmit checksum offload (which
// a veth never completes) switched off.
import type { Host } from './hosts';
import { MAX_IFNAME } from './hosts';
import type { Lab } from './lab';
import { commandExists, helperPath } from './system';

export const VXLAN_PORT = 4789;

export interface KernelVxlanOptions {
  /** Device name (default 'vx0'). */
  name?: string;
  vni: number;
  /** Local underlay address (default: the host's first underlay address). */
  local?: string;
  /** Remote VTEPs. One: `remote X`; several: head-end replication via all-zero FDB entries. */
  remotes: string[];
  /** Underlay device (default: the host's first underlay device). */
  dev?: string;
  port?: number;
  /** CIDRs assigned to the VXLAN device, e.g. ['198.19.0.2/24']. */
  addresses?: string[];
  mtu?: number;
  mac?: string;
  /** MAC learning from received frames (default true). */
  learning?: boolean;
  /**
   * Keep the device's transmit checksum offload (default false: turned off). Over veth nothing
   * ever completes an offloaded checksum, so the inner TCP/UDP checksums of frames the kernel
   * encapsulates would reach a userspace VTEP (overlayfwd's UDP socket) unfinished and be dropped
   * by the receiving stack; a kernel VTEP is not affected because the skb keeps its csum state.
   */
  checksumOffload?: boolean;
}

/** Lab.kernelVxlan(): see there. Returns the device name. */
export async function addKernelVxlan(lab: Lab, host: Host, options: KernelVxlanOptions): Promise<string> {
  const name = options.name ?? 'vx0';
  if (name.length > MAX_IFNAME) throw new Error(`interface name too long: ${name}`);
  const local = options.local ?? host.underlay;
  const dev = options.dev ?? host.underlayDev;
  if (!local || !dev) throw new Error(`host ${host.label} has no underlay link`);
  if (options.remotes.length === 0) throw new Error('kernelVxlan needs at least one remote');
  const args = ['link', 'add', name];
  if (options.mac) args.push('address', options.mac);
  args.push('type', 'vxlan', 'id', String(options.vni), 'local', local);
  if (options.remotes.length === 1) args.push('remote', options.remotes[0]!);
  args.push('dstport', String(options.port ?? VXLAN_PORT), 'dev', dev);
  if (options.learning === false) args.push('nolearning');
  await lab.ip(host, args);
  if (options.remotes.length > 1) {
    for (const r of options.remotes) {
      await lab.exec(host, 'bridge', ['fdb', 'append', '00:00:00:00:00:00', 'dst', r, 'dev', name]);
    }
  }
  if (options.mtu) await lab.ip(host, ['link', 'set', name, 'mtu', String(options.mtu)]);
  if (!options.checksumOffload) await disableTxChecksumOffload(lab, host, name);
  for (const cidr of options.addresses ?? []) await lab.addAddress(host, name, cidr);
  await lab.ip(host, ['link', 'set', name, 'up']);
  return name;
}

/** Lab.disableTxChecksumOffload(): `ethtool -K DEV tx off`, or lab/helpers/tx-csum-off.py without ethtool. */
export async function disableTxChecksumOffload(lab: Lab, where: Host | string, dev: string): Promise<void> {
  if (commandExists('ethtool')) {
    await lab.exec(where, 'ethtool', ['-K', dev, 'tx', 'off']);
  } else {
    await lab.exec(where, 'python3', [helperPath('tx-csum-off.py'), dev]);
  }
}
