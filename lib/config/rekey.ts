// A rekey of a running peer (overlay.peers.rekey): new SAs checked against the config in use.
import type { ResolvedConfig, SecurityAssociation } from '../types';
import type { ConfigIssue } from './errors';
import { fail, formatPath } from './issues';
import { ESP_MAX_INBOUND_SAS, cipherKeyOf, formatSpi, readSa, saMapping, type Report } from './sa';

/** New SAs for a peer (overlay.peers.rekey): either or both directions. */
export interface SaChange {
  in?: SecurityAssociation;
  out?: SecurityAssociation;
}

/**
 * Validates a rekey of the peer `name` of `config`: `{ in?, out? }`, each `{ spi, key }`, at
 * least one, with paths under `at` (`rekey.in.key`, ...). SPIs and key lengths as in the config;
 * and what makes a new SA new: an inbound SPI that no inbound SA of any peer has (this peer's
 * current and retiring ones included), an outbound SPI other than the current one, and keys no
 * SA in use has. Throws ConfigError; the messages never include a key.
 */
export function parseRekey(input: unknown, config: ResolvedConfig, name: string, at = 'rekey'): SaChange {
  const issues: ConfigIssue[] = [];
  const report: Report = (message, p) => issues.push({ path: formatPath(p, at), message });
  if (config.encap.type !== 'esp' || !config.encap.cipher) fail([{ path: at, message: `needs encap.type esp (this overlay runs ${config.encap.type})` }]);
  const peer = config.peers.find((p) => p.name === name);
  if (!peer?.sa) fail([{ path: at, message: `no peer named ${JSON.stringify(name)}` }]);
  const top = saMapping(input, [], ['in', 'out'], report);
  if (!top) fail(issues);
  if (top.in === undefined && top.out === undefined) fail([{ path: at, message: 'needs in, out or both (each { spi, key })' }, ...issues]);
  const change: SaChange = {};
  for (const dir of ['in', 'out'] as const) {
    if (top[dir] === undefined) continue;
    const sa = readSa(top[dir], [dir], report, config.encap.cipher);
    if (sa) change[dir] = { spi: sa.spi, key: sa.key as string };
  }
  if (issues.length > 0) fail(issues);
  const current = peer.sa;
  if (change.in) {
    const owner = config.peers.find((p) => p.sa?.in.some((x) => x.spi === change.in!.spi));
    if (owner) {
      const whose = owner === peer ? 'this peer (a new SA needs a new SPI)' : `peer "${owner.name}"`;
      issues.push({ path: `${at}.in.spi`, message: `SPI ${formatSpi(change.in.spi)} is already an inbound SPI of ${whose}` });
    }
    if (current.in.length + 1 > ESP_MAX_INBOUND_SAS) {
      issues.push({
        path: `${at}.in`,
        message: `the peer already holds ${current.in.length} inbound SAs, ${current.in.length - 1} of them in a rekey's grace period (at most ${ESP_MAX_INBOUND_SAS}); wait for them to retire`,
      });
    }
  }
  if (change.out && change.out.spi === current.out.spi) {
    issues.push({ path: `${at}.out.spi`, message: `SPI ${formatSpi(change.out.spi)} is the current outbound SPI (a new SA needs a new SPI)` });
  }
  const inUse = new Map<string, string>();
  for (const p of config.peers) {
    if (!p.sa) continue;
    inUse.set(cipherKeyOf(p.sa.out.key), `peer "${p.name}" sa.out`);
    p.sa.in.forEach((x, i) => inUse.set(cipherKeyOf(x.key), `peer "${p.name}" sa.in[${i}]`));
  }
  if (change.in && change.out && cipherKeyOf(change.in.key) === cipherKeyOf(change.out.key)) {
    issues.push({ path: `${at}.out.key`, message: `the same key as ${at}.in.key: every SA needs a key of its own (a shared key would repeat nonces)` });
  }
  for (const dir of ['in', 'out'] as const) {
    const sa = change[dir];
    const owner = sa && inUse.get(cipherKeyOf(sa.key));
    if (owner) issues.push({ path: `${at}.${dir}.key`, message: `the same key as an SA in use (${owner}): every SA needs a key of its own (a shared key would repeat nonces)` });
  }
  if (issues.length > 0) fail(issues);
  return change;
}
