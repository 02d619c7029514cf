// ESP security associations: SPIs, keys, and a peer's `sa: { out, in }`. A key is a secret: no
// message here ever quotes one, nor any value given where a key or an SPI belongs (a key pasted
// into the wrong field stays unprinted).
import { z } from 'zod';
import type { EspCipher, PeerSecurityAssociations } from '../types';
import type { ConfigIssue } from './errors';
import { unknownKeyMessage, type Parsed } from './issues';
import { REDACTED, REDACTED_MESSAGE } from './secrets';

export const ESP_CIPHERS = ['aes-128-gcm', 'aes-256-gcm', 'chacha20-poly1305'] as const;
/** Bytes of the cipher key proper; an SA's key is this followed by a 4-byte salt (RFC 4106 §8.1, RFC 7634 §2). */
export const ESP_CIPHER_KEY_BYTES: Record<EspCipher, number> = { 'aes-128-gcm': 16, 'aes-256-gcm': 32, 'chacha20-poly1305': 32 };
export const ESP_SALT_BYTES = 4;
/** Default grace period of a replaced inbound SA after a rekey (esp.rekeyGraceSeconds). */
export const ESP_REKEY_GRACE_DEFAULT_SECONDS = 30;
/** Inbound SAs a peer may hold at once: the newest and those still in a rekey's grace period. */
export const ESP_MAX_INBOUND_SAS = 4;

export const CIPHER_TEXT = `one of: ${ESP_CIPHERS.join(', ')}`;

/** Bytes of an SA key (cipher key + salt) for `cipher`. */
export function espKeyBytes(cipher: EspCipher): number {
  return ESP_CIPHER_KEY_BYTES[cipher] + ESP_SALT_BYTES;
}

/** The cipher key proper, the salt cut off: what must never serve two SAs (they would repeat nonces). */
export function cipherKeyOf(key: string): string {
  return key.slice(0, -2 * ESP_SALT_BYTES);
}

const SPI_TEXT = 'must be an integer from 1 to 4294967295, or a hex string such as "0x1001"';

/** An SPI: an integer from 1 to 0xFFFFFFFF, or the same as a hex ("0x1001") or decimal string. */
export function parseSpi(v: unknown): Parsed<number> {
  let n: number | undefined;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string' && /^0[xX][0-9a-fA-F]{1,8}$/.test(v)) n = parseInt(v.slice(2), 16);
  else if (typeof v === 'string' && /^[0-9]{1,10}$/.test(v)) n = Number(v);
  if (n === 0) return { ok: false, message: `SPI 0 is reserved (RFC 4303 §2.1): ${SPI_TEXT}` };
  if (n === undefined || !Number.isInteger(n) || n < 1 || n > 0xffffffff) return { ok: false, message: SPI_TEXT };
  return { ok: true, value: n };
}

/** An SPI as shown in messages and listings: 0x00001001. */
export function formatSpi(spi: number): string {
  return `0x${spi.toString(16).padStart(8, '0')}`;
}

/** What an SA key must be, for messages: "a hex string of 20 bytes (40 hex digits: ...)". */
function keyShape(cipher: EspCipher | undefined): string {
  if (!cipher) return 'a hex string (the cipher key followed by a 4-byte salt)';
  const bytes = espKeyBytes(cipher);
  return `a hex string of ${bytes} bytes (${bytes * 2} hex digits: the ${ESP_CIPHER_KEY_BYTES[cipher]}-byte ${cipher} key followed by a ${ESP_SALT_BYTES}-byte salt)`;
}

/**
 * An SA key for `cipher` (undefined: any whole number of bytes), in canonical form: lower-case
 * hex without "0x". The messages say what is expected and never include the value.
 */
export function parseSaKey(v: unknown, cipher: EspCipher | undefined): Parsed<string> {
  const shape = keyShape(cipher);
  if (typeof v !== 'string') return { ok: false, message: `must be ${shape}, quoted in YAML` };
  if (v === REDACTED) return { ok: false, message: REDACTED_MESSAGE };
  const hex = /^0[xX]/.test(v) ? v.slice(2) : v;
  if (!/^[0-9a-fA-F]*$/.test(hex)) return { ok: false, message: `must be ${shape}; it holds characters that are not hex digits` };
  if (cipher && hex.length !== 2 * espKeyBytes(cipher)) return { ok: false, message: `must be ${shape}; got ${hex.length} hex digits` };
  if (hex.length === 0 || hex.length % 2 !== 0) return { ok: false, message: `must be ${shape}; got ${hex.length} hex digits` };
  if (/^0*$/.test(hex)) return { ok: false, message: 'must not be all zeros' };
  return { ok: true, value: hex.toLowerCase() };
}

/** An SA as read in stage 1: the SPI checked, the key still as given (its length depends on encap.cipher). */
export interface SaInput {
  spi: number;
  key: unknown;
}

export interface PeerSaInput {
  out: SaInput;
  in: SaInput[];
  /** `in` was written as a list (paths then say sa.in[i]). */
  inIsList: boolean;
}

/** Records one problem at `path` (relative to the mapping being read). */
export type Report = (message: string, path: PropertyKey[]) => void;

/** `x` as a mapping of the keys `known`, or undefined (reported) when it is not one. */
export function saMapping(x: unknown, path: PropertyKey[], known: readonly string[], report: Report): Record<string, unknown> | undefined {
  if (x === undefined || x === null) {
    report('required', path);
    return undefined;
  }
  if (typeof x !== 'object' || Array.isArray(x)) {
    report(`must be a mapping with ${known.join(' and ')}`, path);
    return undefined;
  }
  // Unknown keys are reported; the known ones are still read, so that their problems show too.
  for (const k of Object.keys(x)) {
    if (!known.includes(k)) report(unknownKeyMessage(k, known), [...path, k]);
  }
  return x as Record<string, unknown>;
}

/** One SA `{ spi, key }`; with `cipher`, the key is checked (and canonicalised) too; with null, only that it is a string. */
export function readSa(x: unknown, path: PropertyKey[], report: Report, cipher?: EspCipher | null): SaInput | undefined {
  const m = saMapping(x, path, ['spi', 'key'], report);
  if (!m) return undefined;
  let ok = true;
  let spi = 0;
  if (m.spi === undefined) {
    report('required', [...path, 'spi']);
    ok = false;
  } else {
    const r = parseSpi(m.spi);
    if (r.ok) spi = r.value;
    else {
      report(r.message, [...path, 'spi']);
      ok = false;
    }
  }
  let key: unknown = m.key;
  if (m.key === undefined) {
    report('required', [...path, 'key']);
    ok = false;
  } else if (cipher !== null) {
    const r = parseSaKey(m.key, cipher);
    if (r.ok) key = r.value;
    else {
      report(r.message, [...path, 'key']);
      ok = false;
    }
  } else if (typeof m.key !== 'string') {
    report(`must be ${keyShape(undefined)}, quoted in YAML`, [...path, 'key']);
    ok = false;
  }
  return ok ? { spi, key } : undefined;
}

/** `sa: { out: {spi, key}, in: {spi, key} | [{spi, key}, ...] }`, keys checked in stage 2. */
function readPeerSa(v: unknown, report: Report): PeerSaInput | undefined {
  const top = saMapping(v, [], ['out', 'in'], report);
  if (!top) return undefined;
  const out = readSa(top.out, ['out'], report, null);
  const inIsList = Array.isArray(top.in);
  let ins: Array<SaInput | undefined>;
  if (Array.isArray(top.in)) {
    ins = top.in.map((x, i) => readSa(x, ['in', i], report, null));
    if (top.in.length === 0) {
      report('must not be empty (one SA, or a list of them, newest first)', ['in']);
      return undefined;
    }
    if (top.in.length > ESP_MAX_INBOUND_SAS) {
      report(`at most ${ESP_MAX_INBOUND_SAS} inbound SAs (the newest first, then those still in a rekey's grace period)`, ['in']);
      return undefined;
    }
  } else {
    ins = [readSa(top.in, ['in'], report, null)];
  }
  if (!out || ins.some((x) => x === undefined)) return undefined;
  return { out, in: ins as SaInput[], inIsList };
}

/** Stage 1 of a peer's `sa`: shape and SPIs (the keys need encap.cipher, known in stage 2). */
export const saSchema = z.unknown().transform((v, ctx): PeerSaInput => {
  let failed = false;
  const sa = readPeerSa(v, (message, path) => {
    failed = true;
    // `input` is never shown; keep the secret out of the issue altogether.
    ctx.issues.push({ code: 'custom', message, input: null, path });
  });
  return failed || !sa ? z.NEVER : sa;
});

/** Whether a resolved peer's `in` was written as a list: error paths then say sa.in[i]. */
const inWrittenAsList = new WeakMap<PeerSecurityAssociations, boolean>();

/** Path of an SA under `prefix` (`peers[0].sa`): `.out`, `.in`, or `.in[i]` when `in` is a list. */
export function saPath(prefix: string, sa: PeerSecurityAssociations, which: 'out' | number): string {
  if (which === 'out') return `${prefix}.out`;
  const list = inWrittenAsList.get(sa) ?? sa.in.length > 1;
  return list ? `${prefix}.in[${which}]` : `${prefix}.in`;
}

/** Stage 2 of `sa`: keys checked against the cipher; no inbound SPI twice within the peer. */
export function resolveSa(input: PeerSaInput, cipher: EspCipher | undefined, at: string, issues: ConfigIssue[]): PeerSecurityAssociations | undefined {
  let ok = true;
  const key = (sa: SaInput, path: string): string => {
    const r = parseSaKey(sa.key, cipher);
    if (r.ok) return r.value;
    issues.push({ path: `${path}.key`, message: r.message });
    ok = false;
    return '';
  };
  const inPath = (i: number) => (input.inIsList ? `${at}.sa.in[${i}]` : `${at}.sa.in`);
  const out = { spi: input.out.spi, key: key(input.out, `${at}.sa.out`) };
  const ins = input.in.map((sa, i) => ({ spi: sa.spi, key: key(sa, inPath(i)) }));
  ins.forEach((sa, i) => {
    const first = ins.findIndex((o) => o.spi === sa.spi);
    if (first !== i) {
      issues.push({ path: `${inPath(i)}.spi`, message: `SPI ${formatSpi(sa.spi)} is listed twice (also sa.in[${first}])` });
      ok = false;
    }
  });
  if (!ok) return undefined;
  const sa: PeerSecurityAssociations = { out, in: ins };
  inWrittenAsList.set(sa, input.inIsList);
  return sa;
}
