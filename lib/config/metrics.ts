// The `metrics:` section: where `overlayfwd up` serves Prometheus metrics (/metrics) and its
// health (/healthz). Absent (the default), nothing listens.
import { z } from 'zod';
import { isMulticast, parseIp } from './addresses';
import { err, section } from './fields';

/** The listen address `metrics: {}` gets: loopback, the port the design names. */
export const METRICS_LISTEN_DEFAULT = '127.0.0.1:9469';

export const LISTEN_TEXT = 'must be host:port, an IP address and a port from 1 to 65535 ("127.0.0.1:9469", "[::1]:9469", "0.0.0.0:9469")';

export interface ListenAddress {
  address: string;
  family: 4 | 6;
  port: number;
}

/**
 * "127.0.0.1:9469", "[::1]:9469": an IP literal (IPv6 in brackets) and a port. Host names are not
 * taken: what is bound must not depend on a resolver. `anyPort` also accepts port 0 (the kernel
 * picks one), which a library caller can ask for and a config file cannot.
 */
export function parseListen(text: string, anyPort = false): { ok: true; value: ListenAddress } | { ok: false; message: string } {
  const fail = (why?: string) => ({ ok: false as const, message: `${LISTEN_TEXT}${why ? `; ${why}` : ''}, got ${JSON.stringify(text)}` });
  const m = /^\[([^\]]*)\]:([0-9]{1,5})$/.exec(text) ?? /^([^[\]:]*):([0-9]{1,5})$/.exec(text);
  if (!m) return fail();
  const ip = parseIp(m[1]!);
  if (!ip.ok) return fail(ip.message);
  if (isMulticast(ip.value.address, ip.value.family)) return fail('a multicast address cannot be listened on');
  const port = Number(m[2]);
  if (port > 65535 || (port === 0 && !anyPort)) return fail();
  return { ok: true, value: { address: ip.value.address, family: ip.value.family, port } };
}

/** host:port as parseListen reads it back (IPv6 in brackets, canonical). */
export function formatListen(listen: { address: string; port: number }): string {
  return listen.address.includes(':') ? `[${listen.address}]:${listen.port}` : `${listen.address}:${listen.port}`;
}

const listen = z.string(err(LISTEN_TEXT)).transform((s, ctx) => {
  const r = parseListen(s);
  if (!r.ok) {
    ctx.issues.push({ code: 'custom', message: r.message, input: s });
    return z.NEVER;
  }
  return formatListen(r.value);
});

export const metricsSchema = section({
  listen: listen.default(METRICS_LISTEN_DEFAULT),
});

export const METRICS_KEYS = Object.keys(metricsSchema.shape);
