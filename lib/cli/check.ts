// overlayfwd check -c FILE [--json]: validate, and print the effective config with defaults filled in.
import YAML from 'yaml';
import { encapInput, formatEndpoint, formatSpi, overheadFor } from '../config';
import { sourceName } from '../config/load';
import { registryInput } from '../config/registry';
import type { ResolvedConfig } from '../types';
import { EXIT_OK, printWarnings, readConfigWithWarnings, reportError } from './common';

const REDACTED = '<redacted>';

/** Property names whose values are secrets and never printed. */
const SECRET_KEYS = new Set(['key', 'keys', 'secret', 'psk', 'privateKey', 'password']);

/** Fields named like a secret that are not one: a GRE key travels in clear in every packet. */
const PUBLIC_FIELDS = new Set(['encap.key']);

/** A deep copy of `value` with every property named like a secret (`key`, ...) replaced by "<redacted>". */
export function redact(value: unknown, at = ''): unknown {
  if (Array.isArray(value)) return value.map((v, i) => redact(v, `${at}[${i}]`));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const path = at ? `${at}.${k}` : k;
      out[k] = SECRET_KEYS.has(k) && !PUBLIC_FIELDS.has(path) ? REDACTED : redact(v, path);
    }
    return out;
  }
  return value;
}

/** The resolved config in input form (it parses back to the same config): mtu null → "auto", endpoints as text. */
export function printableConfig(config: ResolvedConfig): Record<string, unknown> {
  return {
    ...config,
    // Only what the mode takes (a VNI, a port, GRE options), so that it parses back.
    encap: encapInput(config.encap),
    // A packet device is somebody else's interface: it has no MTU, addresses or MAC of ours.
    device:
      config.device.type === 'packet'
        ? { type: config.device.type, interface: config.device.interface }
        : { ...config.device, mtu: config.device.mtu ?? 'auto' },
    // ESP keys are secrets: shown as <redacted> (redact() would catch them too; this does not depend on it).
    peers: config.peers.map((p) => ({
      ...p,
      // Port 0: an IP-protocol mode (gre, ipip, esp with udp: false), whose endpoints take no port.
      endpoint: p.endpoint.port === 0 ? p.endpoint.address : formatEndpoint(p.endpoint),
      ...(p.sa
        ? {
            sa: {
              out: { spi: formatSpi(p.sa.out.spi), key: REDACTED },
              in: p.sa.in.length === 1 ? { spi: formatSpi(p.sa.in[0]!.spi), key: REDACTED } : p.sa.in.map((x) => ({ spi: formatSpi(x.spi), key: REDACTED })),
            },
          }
        : {}),
    })),
    ...(config.registry ? { registry: registryInput(config.registry) } : {}),
  };
}

/** check -c FILE ("-": stdin). */
export async function runCheck(opts: { config: string; json?: boolean }): Promise<number> {
  let config: ResolvedConfig;
  try {
    const read = await readConfigWithWarnings(opts.config);
    config = read.config;
    printWarnings(read.warnings);
  } catch (err) {
    return reportError(err, `invalid config ${sourceName(opts.config)}`);
  }
  const printable = redact(printableConfig(config));
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(printable, null, 2)}\n`);
  } else {
    let overhead = '';
    try {
      overhead = `; ${config.encap.type} overhead ${overheadFor(config)} bytes`;
    } catch {
      // no fixed overhead for this mode
    }
    const secrets = config.encap.type === 'esp' ? '; SA keys not shown' : '';
    process.stdout.write(`# ${sourceName(opts.config)}: valid${overhead}${secrets}\n`);
    process.stdout.write(YAML.stringify(printable, { lineWidth: 0 }));
  }
  return EXIT_OK;
}
