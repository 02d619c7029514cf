// The peers the registry's hosts make. Each record is validated on its own once (and again only
// when it changes), then the set is checked for clashes with cheap lookups: a change costs one
// validation and a pass over the set, not a validation of every record against every other.
import { ConfigError, parsePeer } from '../config';
import type { ResolvedConfig, ResolvedPeer } from '../types';
import type { NodeRecord } from './records';

type Checked = { peer: ResolvedPeer } | { reason: string };

export class RegistryPeerSet {
  private readonly checked = new Map<string, { revision: string; result: Checked }>();
  private readonly reported = new Map<string, string>();

  constructor(private readonly skipped: (key: string, reason: string) => void) {}

  /**
   * The valid, non-clashing peers of `nodes` (oldest first: a later record that clashes with an
   * earlier one, or with the config's own peers or this host, is the one skipped). A record's
   * reason is reported once, and again only when it changes.
   */
  build(nodes: readonly NodeRecord[], config: ResolvedConfig): ResolvedPeer[] {
    const names = new Set(config.peers.map((p) => p.name));
    const endpoints = new Set(config.peers.map((p) => p.endpoint.address));
    const macs = new Set(config.peers.flatMap((p) => p.macs));
    if (config.node) names.add(config.node.name);
    endpoints.add(config.underlay.local);
    if (config.node) endpoints.add(config.node.endpoint);
    const accepted: ResolvedPeer[] = [];
    const present = new Set<string>();
    for (const node of nodes) {
      present.add(node.key);
      // The limit before the validation: past it, records are skipped without being looked at.
      if (accepted.length + config.peers.length >= config.limits.maxPeers) {
        this.report(node.key, `limits.maxPeers (${config.limits.maxPeers}) reached`);
        continue;
      }
      const result = this.check(node, config);
      let reason: string | null = 'reason' in result ? result.reason : null;
      if ('peer' in result) {
        const { peer } = result;
        if (names.has(peer.name)) reason = `name ${peer.name} is taken (by this host, a configured peer or an earlier record)`;
        else if (endpoints.has(peer.endpoint.address)) reason = `endpoint ${peer.endpoint.address} is taken (by this host, a configured peer or an earlier record)`;
        else if (peer.macs.some((m) => macs.has(m))) reason = `MAC ${peer.macs[0]} is taken`;
        else {
          names.add(peer.name);
          endpoints.add(peer.endpoint.address);
          for (const m of peer.macs) macs.add(m);
          accepted.push(peer);
        }
      }
      this.report(node.key, reason);
    }
    for (const key of [...this.checked.keys()]) {
      if (!present.has(key)) {
        this.checked.delete(key);
        this.reported.delete(key);
      }
    }
    return accepted;
  }

  private check(node: NodeRecord, config: ResolvedConfig): Checked {
    const cached = this.checked.get(node.key);
    if (cached && cached.revision === node.modRevision && node.modRevision !== '') return cached.result;
    const input: Record<string, unknown> = {
      name: node.name,
      endpoint: config.encap.port === 0 ? { address: node.endpoint } : { address: node.endpoint, port: config.encap.port },
      allowedIps: config.device.type === 'tun' ? [node.subnet] : [],
      macs: config.device.type === 'tap' && node.mac ? [node.mac] : [],
    };
    // esp: keyed by IKE with the top-level settings; the host must prove the identity it registered.
    if (config.encap.type === 'esp') input['ike'] = node.ikeId ? { remoteId: node.ikeId } : {};
    let result: Checked;
    try {
      result = { peer: parsePeer(input, `registry ${node.key}`, config, []) };
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      result = { reason: err.message };
    }
    this.checked.set(node.key, { revision: node.modRevision, result });
    return result;
  }

  private report(key: string, reason: string | null): void {
    const last = this.reported.get(key);
    if (reason === null) {
      this.reported.delete(key);
      return;
    }
    if (last === reason) return;
    this.reported.set(key, reason);
    this.skipped(key, reason);
  }
}
