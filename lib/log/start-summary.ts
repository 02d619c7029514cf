// The fields of the `started` line: what runs, from the resolved config and the overlay, picked
// one by one. Never a config section spread whole: sa, ike and registry.etcd hold secrets.
import { encapInput } from '../config';
import type { Overlay } from '../overlay';

const MAX_NAMES = 20;

export function startFields(overlay: Overlay, extra: { metricsUrl?: string | undefined; version?: string } = {}): Record<string, unknown> {
  const config = overlay.config;
  const peers = overlay.peers.list();
  // A GRE key is no secret (it travels in clear), but a field named `key` is redacted.
  const { key: greKey, ...encap } = encapInput(config.encap);
  const active = overlay.stats().offloads.active as Record<string, boolean>;
  return {
    ...(extra.version ? { version: extra.version } : {}),
    pid: process.pid,
    device: {
      name: overlay.device.name,
      type: config.device.type,
      mtu: overlay.device.mtu,
      ...(config.device.type === 'tap' ? { mac: overlay.device.mac } : {}),
      addresses: config.device.addresses,
    },
    encap: { ...encap, ...(greKey !== undefined ? { greKey } : {}) },
    underlay: { local: config.underlay.local },
    ...(config.netns !== null ? { netns: config.netns } : {}),
    workers: config.workers,
    peers: { count: peers.length, names: peers.slice(0, MAX_NAMES).map((p) => p.name), ike: peers.filter((p) => p.ike).length },
    offloads: Object.keys(active).filter((k) => active[k]),
    control: config.control.socket,
    ...(extra.metricsUrl ? { metrics: extra.metricsUrl } : {}),
    ...(overlay.registry ? { registry: { node: config.node?.name, subnet: overlay.registry.subnetText } } : {}),
  };
}
