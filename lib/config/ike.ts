// IKEv2 (RFC 7296) for the esp mode: `ike:` at the top gives the defaults of every peer, a
// peer's own `ike:` overrides them field by field. A peer of an esp overlay is keyed either by
// hand (`sa:`) or by IKE. The pre-shared key is a secret: no message here quotes it, and the
// shown config (check, showconf, peers list) carries `psk: (redacted)` at most.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { ConfigIssue } from './errors';
import { parseIdentity } from '../ike/auth';
import { parseProposal } from '../ike/proposals';
import { PROTOCOL_ESP, PROTOCOL_IKE } from '../ike/transforms';
import { err, intRange, list, nullToUndefined, section } from './fields';
import { REDACTED, REDACTED_MESSAGE } from './secrets';

export const IKE_AUTH_METHODS = ['psk', 'certificate'] as const;
export const IKE_START_ACTIONS = ['on-start', 'on-traffic', 'passive'] as const;
export type IkeAuthMethod = (typeof IKE_AUTH_METHODS)[number];
export type IkeStartAction = (typeof IKE_START_ACTIONS)[number];

/** Defaults, as strongSwan's: a Child SA is rekeyed hourly, the IKE SA every four hours. */
export const IKE_DEFAULTS = {
  port: 500,
  rekeySeconds: 3600,
  ikeRekeySeconds: 14400,
  dpdSeconds: 30,
  start: 'on-start' as IkeStartAction,
  retransmitTimeoutMs: 1000,
  retransmitTries: 5,
};
/** A pre-shared key shorter than this is refused: it would fall to an offline dictionary search of one captured handshake. */
export const IKE_PSK_MIN_CHARS = 16;

const text = (what: string) => z.string(err(`must be a string (${what})`)).min(1, `must not be empty (${what})`);

export const ikeSchema = section({
  auth: z.enum(IKE_AUTH_METHODS, err(`must be one of: ${IKE_AUTH_METHODS.join(', ')}`)).optional(),
  psk: z.string(err('must be a string (the pre-shared key)')).refine((v) => v !== REDACTED, REDACTED_MESSAGE).optional(),
  pskFile: text('a file holding the pre-shared key').optional(),
  id: text('our identity: an IP address, @fqdn, fqdn:name, or a DN such as "CN=a, O=x"').optional(),
  remoteId: text("the peer's identity, in the same forms as id").optional(),
  certificate: text('a PEM file: our certificate').optional(),
  privateKey: text('a PEM file: the private key of our certificate').optional(),
  ca: z.preprocess((v) => (typeof v === 'string' ? [v] : v), list(text('a PEM file of a CA certificate'), 'PEM files').min(1, 'must name at least one CA certificate').optional()),
  proposals: list(text('an IKE proposal such as aes256gcm16-prfsha256-x25519'), 'proposals').min(1, 'must not be empty').optional(),
  espProposals: list(text('an ESP proposal such as aes256gcm16-x25519'), 'proposals').min(1, 'must not be empty').optional(),
  rekeySeconds: intRange(10, 7 * 86400).optional(),
  /** Also rekey the Child SA once this many bytes crossed it (both ways); 0: no byte limit. */
  rekeyBytes: z.number(err('must be a whole number of bytes (0: no limit)')).int('must be a whole number of bytes (0: no limit)').min(0, 'must be a whole number of bytes (0: no limit)').optional(),
  // At most 24 days: a longer timer would overflow setTimeout (2^31 ms) and fire at once.
  ikeRekeySeconds: intRange(10, 24 * 86400).optional(),
  lifetimeSeconds: intRange(11, 8 * 86400).optional(),
  dpdSeconds: intRange(0, 3600).optional(),
  start: z.enum(IKE_START_ACTIONS, err(`must be one of: ${IKE_START_ACTIONS.join(', ')}`)).optional(),
  port: intRange(1, 65535).optional(),
  /** The first retransmission after this long, doubling each time (RFC 7296 §2.1); the peer is gone after retransmitTries sends. */
  retransmitTimeoutMs: intRange(100, 60000).optional(),
  retransmitTries: intRange(1, 20).optional(),
});
export type IkeParsed = z.output<typeof ikeSchema>;
export const IKE_KEYS = Object.keys(ikeSchema.shape);
export const optionalIke = z.preprocess(nullToUndefined, ikeSchema.optional());

/** A peer's IKE settings, merged and checked. `psk` is a secret. */
export interface ResolvedIke {
  auth: IkeAuthMethod;
  /** psk: the key itself (from psk or pskFile). A secret: never printed. */
  psk?: string;
  pskFile?: string;
  /** Identity strings as configured; undefined: our underlay address / the peer's endpoint address. */
  id?: string;
  remoteId?: string;
  certificate?: string;
  privateKey?: string;
  ca: string[];
  /** Proposal strings; empty: the built-in defaults (lib/ike/proposals.ts). */
  proposals: string[];
  espProposals: string[];
  rekeySeconds: number;
  /** 0: no byte limit. */
  rekeyBytes: number;
  ikeRekeySeconds: number;
  /** The hard end of a Child SA: past it the SA is deleted even if the rekey failed. */
  lifetimeSeconds: number;
  /** Dead-peer detection: an empty INFORMATIONAL after this long without a message from the peer; 0: off. */
  dpdSeconds: number;
  start: IkeStartAction;
  port: number;
  retransmitTimeoutMs: number;
  retransmitTries: number;
}

/** The shown form: the secret replaced, the file names kept. */
export function publicIke(ike: ResolvedIke): ResolvedIke {
  const { psk, ...rest } = ike;
  return psk !== undefined && ike.pskFile === undefined ? { ...rest, psk: '(redacted)' } : rest;
}

/** The input that resolves to `ike` again (showconf with --show-keys keeps the key). */
export function ikeInput(ike: ResolvedIke, showKeys = false): Record<string, unknown> {
  const input: Record<string, unknown> = { ...(showKeys ? ike : publicIke(ike)) };
  if (ike.pskFile !== undefined) delete input['psk'];
  // Empty lists mean "the defaults": left out, as they would be written.
  for (const k of ['ca', 'proposals', 'espProposals']) if ((input[k] as unknown[]).length === 0) delete input[k];
  return input;
}

/**
 * The effective settings of a peer: `defaults` (top-level ike) overridden by the peer's own
 * fields; undefined when neither is given. Problems are reported under `at` (peers[1].ike) or,
 * for what the defaults hold, under ike.
 */
export function resolveIke(defaults: IkeParsed | undefined, own: IkeParsed | undefined, at: string, issues: ConfigIssue[]): ResolvedIke | undefined {
  if (!defaults && !own) return undefined;
  const merged: IkeParsed = { ...defaults, ...own };
  // A field is reported where it was written: the peer's own block, else the defaults.
  const where = (k: keyof IkeParsed) => (own && own[k] !== undefined ? `${at}.ike.${k}` : defaults && defaults[k] !== undefined ? `ike.${k}` : `${at}.ike.${k}`);
  const before = issues.length;
  const auth = merged.auth;
  if (auth === undefined) issues.push({ path: `${at}.ike.auth`, message: `required (${IKE_AUTH_METHODS.join(' or ')}), here or in the top-level ike` });
  let psk: string | undefined;
  if (auth === 'psk') {
    if (merged.psk !== undefined && merged.pskFile !== undefined) {
      issues.push({ path: where('pskFile'), message: 'give psk or pskFile, not both' });
    } else if (merged.pskFile !== undefined) {
      try {
        psk = readFileSync(merged.pskFile, 'utf8').trim();
      } catch (e) {
        issues.push({ path: where('pskFile'), message: `cannot read ${merged.pskFile}: ${(e as NodeJS.ErrnoException).code ?? 'error'}` });
      }
    } else if (merged.psk !== undefined) {
      psk = merged.psk;
    } else {
      issues.push({ path: `${at}.ike.psk`, message: 'required with auth: psk (or pskFile)' });
    }
    if (psk !== undefined && psk.length < IKE_PSK_MIN_CHARS) {
      issues.push({ path: where(merged.pskFile !== undefined ? 'pskFile' : 'psk'), message: `must be at least ${IKE_PSK_MIN_CHARS} characters (a short key falls to a dictionary search of one captured handshake)` });
    }
    for (const k of ['certificate', 'privateKey'] as const) {
      if (merged[k] !== undefined && own?.[k] !== undefined) issues.push({ path: where(k), message: 'used only with auth: certificate' });
    }
  } else if (auth === 'certificate') {
    for (const k of ['certificate', 'privateKey', 'ca'] as const) {
      if (merged[k] === undefined) issues.push({ path: `${at}.ike.${k}`, message: 'required with auth: certificate' });
    }
    if (own?.psk !== undefined || own?.pskFile !== undefined) issues.push({ path: `${at}.ike.${own.psk !== undefined ? 'psk' : 'pskFile'}`, message: 'used only with auth: psk' });
  }
  // Proposals and identities are read here, so that `check` finds what would fail at start.
  for (const [k, protocol] of [['proposals', PROTOCOL_IKE], ['espProposals', PROTOCOL_ESP]] as const) {
    merged[k]?.forEach((text, i) => {
      try {
        parseProposal(text, protocol);
      } catch (e) {
        issues.push({ path: `${where(k)}[${i}]`, message: (e as Error).message });
      }
    });
  }
  for (const k of ['id', 'remoteId'] as const) {
    const text = merged[k];
    if (text === undefined) continue;
    try {
      parseIdentity(text);
    } catch (e) {
      issues.push({ path: where(k), message: (e as Error).message });
    }
  }
  const rekeySeconds = merged.rekeySeconds ?? IKE_DEFAULTS.rekeySeconds;
  const lifetimeSeconds = merged.lifetimeSeconds ?? Math.ceil(rekeySeconds * 1.1);
  if (lifetimeSeconds <= rekeySeconds) {
    issues.push({ path: where('lifetimeSeconds'), message: `must be above rekeySeconds (${rekeySeconds}): the SA must outlive its rekey` });
  }
  if (issues.length > before || auth === undefined) return undefined;
  return {
    auth,
    ...(psk !== undefined ? { psk } : {}),
    ...(merged.pskFile !== undefined ? { pskFile: merged.pskFile } : {}),
    ...(merged.id !== undefined ? { id: merged.id } : {}),
    ...(merged.remoteId !== undefined ? { remoteId: merged.remoteId } : {}),
    ...(merged.certificate !== undefined ? { certificate: merged.certificate } : {}),
    ...(merged.privateKey !== undefined ? { privateKey: merged.privateKey } : {}),
    ca: merged.ca ?? [],
    proposals: merged.proposals ?? [],
    espProposals: merged.espProposals ?? [],
    rekeySeconds,
    rekeyBytes: merged.rekeyBytes ?? 0,
    ikeRekeySeconds: merged.ikeRekeySeconds ?? IKE_DEFAULTS.ikeRekeySeconds,
    lifetimeSeconds,
    dpdSeconds: merged.dpdSeconds ?? IKE_DEFAULTS.dpdSeconds,
    start: merged.start ?? IKE_DEFAULTS.start,
    port: merged.port ?? IKE_DEFAULTS.port,
    retransmitTimeoutMs: merged.retransmitTimeoutMs ?? IKE_DEFAULTS.retransmitTimeoutMs,
    retransmitTries: merged.retransmitTries ?? IKE_DEFAULTS.retransmitTries,
  };
}
