// The running or effective config as a user may see it (check, showconf): input form, so that
// it parses back to the same config, with every secret replaced unless the keys were asked for.
import { formatEndpoint } from './addresses';
import { encapInput } from './encap';
import { ikeInput } from './ike';
import { registryInput } from './registry';
import { formatSpi } from './sa';
import type { ResolvedConfig, ResolvedPeer } from '../types';

import { REDACTED } from './secrets';

export { REDACTED } from './secrets';

/** Property names whose values are secrets and never printed. */
const SECRET_KEYS = new Set(['key', 'keys', 'secret', 'psk', 'privateKey', 'password']);

/**
 * Fields named like a secret that are not one: a GRE key travels in clear in every packet, and
 * these name files (whose contents stay where they are): hiding them would only stop the
 * printed config from parsing back.
 */
const PUBLIC_FIELDS = new Set(['encap.key', 'registry.etcd.tls.key', 'ike.privateKey']);
const PUBLIC_PEER_FIELD = /^peers\[\d+\]\.ike\.privateKey$/;

/** A deep copy of `value` with every property named like a secret (`key`, ...) replaced by "<redacted>". */
export function redact(value: unknown, at = ''): unknown {
  if (Array.isArray(value)) return value.map((v, i) => redact(v, `${at}[${i}]`));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const path = at ? `${at}.${k}` : k;
      out[k] = SECRET_KEYS.has(k) && !PUBLIC_FIELDS.has(path) && !PUBLIC_PEER_FIELD.test(path) ? REDACTED : redact(v, path);
    }
    return out;
  }
  return value;
}

function printablePeer(p: ResolvedPeer, showKeys: boolean): Record<string, unknown> {
  const sa = (x: { spi: number; key: string }) => ({ spi: formatSpi(x.spi), key: showKeys ? x.key : REDACTED });
  return {
    ...p,
    // Port 0: an IP-protocol mode (gre, ipip, esp with udp: false), whose endpoints take no port.
    endpoint: p.endpoint.port === 0 ? p.endpoint.address : formatEndpoint(p.endpoint),
    // ESP keys are secrets: replaced here, whatever redact() would catch after.
    ...(p.sa ? { sa: { out: sa(p.sa.out), in: p.sa.in.length === 1 ? sa(p.sa.in[0]!) : p.sa.in.map(sa) } } : {}),
    ...(p.ike ? { ike: ikeInput(p.ike, showKeys) } : {}),
  };
}

/**
 * The resolved config in input form (it parses back to the same config): mtu null → "auto",
 * endpoints as text. Secrets are replaced by "<redacted>" unless `showKeys`.
 */
export function printableConfig(config: ResolvedConfig, options: { showKeys?: boolean } = {}): Record<string, unknown> {
  const showKeys = options.showKeys === true;
  const printable = {
    ...config,
    // Only what the mode takes (a VNI, a port, GRE options), so that it parses back.
    encap: encapInput(config.encap),
    // A packet device is somebody else's interface: it has no MTU, addresses or MAC of ours.
    device:
      config.device.type === 'packet'
        ? { type: config.device.type, interface: config.device.interface }
        : { ...config.device, mtu: config.device.mtu ?? 'auto' },
    peers: config.peers.map((p) => printablePeer(p, showKeys)),
    ...(config.registry ? { registry: registryInput(config.registry) } : {}),
  };
  return showKeys ? printable : (redact(printable) as Record<string, unknown>);
}
