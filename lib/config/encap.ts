// encap: one mapping per mode, a discriminated union on `type`. Step 1 reads each field on its
// own, whatever the mode, as every other section does (an unknown type and malformed values are
// reported together). Step 2 is the mode's own shape: it takes its fields and refuses another
// mode's with the reason, so that no mode reaches the data path with options it would ignore.
// The output is the resolved section, every field filled in: ResolvedEncap is its type.
import { z } from 'zod';
import type { EncapType } from '../types';
import { intRange, nullToUndefined, section, trueOrFalse } from './fields';
import { DEFAULT_PORTS, ENCAP_TYPES, usesUdp } from './modes';
import { CIPHER_TEXT, ESP_CIPHERS } from './sa';

const MAX_VNI = 0xffffff;

function cipherField(whenAbsent: string) {
  return z.enum(ESP_CIPHERS, {
    error: (iss) => (iss.input === undefined ? whenAbsent : `${JSON.stringify(iss.input)} is not an ESP cipher (${CIPHER_TEXT})`),
  });
}

const greKey = intRange(0, 0xffffffff).optional();

/** The encap fields as the modes that take them read them. */
const field = {
  vni: intRange(0, MAX_VNI).optional(),
  port: intRange(1, 65535).optional(),
  // `key: null` means no key, as absent does.
  key: z.preprocess(nullToUndefined, greKey),
  checksum: trueOrFalse().optional(),
  sequence: trueOrFalse().optional(),
  cipher: cipherField('required').optional(),
  udp: trueOrFalse().optional(),
  esn: trueOrFalse().optional(),
};

/** Step 1: each field on its own. Step 2 runs only once all of them read well (a zod pipe). */
const encapFields = section({
  type: z
    .enum(ENCAP_TYPES, {
      error: (iss) => `${JSON.stringify(iss.input)} is not an encapsulation type (one of: ${ENCAP_TYPES.join(', ')})`,
    })
    .default('vxlan'),
  ...field,
});

/** The keys encap takes in one mode or another, in the order messages list them. */
export const ENCAP_KEYS: readonly string[] = Object.keys(encapFields.shape);

/** A field of other modes (step 1 has read its value): refused unless absent. */
function notUsed(message: string) {
  return z.undefined({ error: message }).optional();
}

/** A switch of other modes: false, its default, asks for nothing and passes too. */
function switchNotUsed(message: string) {
  return z.literal(false, { error: message }).optional();
}

/**
 * Every encap field, refused with the reason `type` does not take it; a mode's own fields replace
 * theirs. Listed in the order their problems are reported: GRE options, VNI, port, ESP options.
 */
function othersOf(type: EncapType) {
  const greOnly = `not used by ${type} (GRE modes only)`;
  const espOnly = `not used by ${type} (esp only)`;
  return {
    key: notUsed(greOnly),
    checksum: switchNotUsed(greOnly),
    sequence: switchNotUsed(greOnly),
    vni: notUsed(`not used by ${type}`),
    port: notUsed(`not used by ${type} (an IP protocol, no UDP port)`),
    cipher: notUsed(espOnly),
    udp: notUsed(espOnly),
    esn: notUsed(espOnly),
  };
}

const vni = (type: EncapType) => intRange(0, MAX_VNI, `required for ${type}`);

// Step 2: the mode's own shape, over the values step 1 read (a null GRE key is absent by now).
const vxlan = section({ ...othersOf('vxlan'), type: z.literal('vxlan'), vni: vni('vxlan'), port: field.port });
const geneve = section({ ...othersOf('geneve'), type: z.literal('geneve'), vni: vni('geneve'), port: field.port });
const gre = section({ ...othersOf('gre'), type: z.literal('gre'), key: greKey, checksum: field.checksum, sequence: field.sequence });
const greUdp = section({
  ...othersOf('gre-udp'),
  type: z.literal('gre-udp'),
  port: field.port,
  key: greKey,
  checksum: field.checksum,
  sequence: field.sequence,
});
const ipip = section({ ...othersOf('ipip'), type: z.literal('ipip') });
const esp = section({
  ...othersOf('esp'),
  type: z.literal('esp'),
  port: field.port,
  // Required unless IKE negotiates every peer's SAs (resolve.ts checks which).
  cipher: cipherField(`required for esp (${CIPHER_TEXT})`).optional(),
  udp: field.udp,
  esn: field.esn,
}).superRefine(
  (e, ctx) => {
    if (e.udp === false && e.port !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['port'], message: 'not used by esp with udp: false (IP protocol 50, no UDP port)' });
    }
  },
  // Also next to a missing cipher: udp and port are sound, step 1 has read them.
  { when: () => true },
);

const encapByType = z.discriminatedUnion('type', [vxlan, geneve, gre, greUdp, ipip, esp]);

/**
 * Every field filled in; the esp-only ones on esp alone. Written as two object literals rather
 * than spreads: TypeScript then types the other modes' shape with `cipher?: undefined` (and so
 * on), so that `encap.cipher` can be read without first narrowing on the type.
 */
function resolveEncap(e: z.output<typeof encapByType>) {
  /** vxlan, geneve: the VNI; 0 for the other modes. */
  const vni = e.vni ?? 0;
  /** The UDP port; 0 for the modes without one (gre, ipip, esp with udp: false). */
  const port = e.port ?? (usesUdp(e) ? DEFAULT_PORTS[e.type] : null) ?? 0;
  /** GRE modes: the key sent and required (RFC 2890), or null for none. Not a secret. */
  const key = e.key ?? null;
  /** GRE modes: send a checksum, and require one on receipt. */
  const checksum = e.checksum ?? false;
  /** GRE modes: send sequence numbers, require them, and drop packets older than the last accepted (RFC 2890). */
  const sequence = e.sequence ?? false;
  if (e.type !== 'esp') return { type: e.type, vni, port, key, checksum, sequence };
  return {
    type: e.type,
    vni,
    port,
    key,
    checksum,
    sequence,
    /** The AEAD cipher of every SA. */
    cipher: e.cipher,
    /** true = ESP in UDP (RFC 3948, port 4500 by default); false = IP protocol 50, no port. */
    udp: e.udp ?? true,
    /**
     * 64-bit extended sequence numbers (default true, RFC 4303 §2.2.1); false for peers or tools
     * that only know 32-bit ones (the SA then ends after 2^32 - 1 packets).
     */
    esn: e.esn ?? true,
  };
}

export const encapSchema = encapFields.pipe(encapByType).transform(resolveEncap);

/** The resolved encap section: one shape per mode, discriminated by `type`. */
export type ResolvedEncap = z.output<typeof encapSchema>;

/** The encap section with only what its mode takes: the input that resolves to `encap` again. */
export function encapInput(encap: ResolvedEncap): Record<string, unknown> {
  const input: Record<string, unknown> = { type: encap.type };
  if (encap.type === 'vxlan' || encap.type === 'geneve') input['vni'] = encap.vni;
  if (usesUdp(encap)) input['port'] = encap.port;
  if (encap.type === 'esp') {
    input['cipher'] = encap.cipher;
    input['udp'] = encap.udp ?? true;
    input['esn'] = encap.esn ?? true;
  }
  if (encap.type === 'gre' || encap.type === 'gre-udp') {
    if (encap.key !== null) input['key'] = encap.key;
    input['checksum'] = encap.checksum;
    input['sequence'] = encap.sequence;
  }
  return input;
}
