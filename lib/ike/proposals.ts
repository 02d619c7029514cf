// SA proposals (RFC 7296 §2.7, §3.3): reading strongSwan-style proposal strings from the
// configuration, the defaults, choosing one as responder, checking the responder's choice as
// initiator, and the mapping of a negotiated Child SA onto the native ESP data path.
import { espKeyBytes } from '../config/sa';
import type { EspCipher } from '../types';
import {
  AUTH_NONE,
  DH_NONE,
  ENCR_AES_GCM_16,
  ENCR_CHACHA20_POLY1305,
  ESN_YES,
  PROTOCOL_ESP,
  PROTOCOL_IKE,
  TRANSFORM_DH,
  TRANSFORM_ENCR,
  TRANSFORM_ESN,
  TRANSFORM_INTEG,
  TRANSFORM_KEYWORDS,
  TRANSFORM_PRF,
  allowedTransformTypes,
  isAead,
  prfForInteg,
  sameTransform,
  transformName,
  transformTypeName,
  type OfferedTransform,
  type ProtocolId,
} from './transforms';
import type { ChildSuite, IkeSuite, Proposal, Transform } from './types';

/**
 * Defaults, in order of preference. IKE: AEAD first; the AES-CBC one is there for peers
 * without AEAD in IKE. All four lie within strongSwan 5.9's default IKE proposals (proposal.c:
 * aes128/192/256 with sha256/384/512, and aes128/192/256gcm16 and chacha20poly1305, each with
 * prfsha256/384/512 and ecp256, ..., curve25519, ..., modp2048), so a charon with
 * `proposals = default` always finds one. Note that such a charon as responder prefers its own
 * order, classic suite first, and so picks the AES-CBC one. ESP: only the three AEADs the
 * native data path implements; strongSwan's default ESP proposal is AES-CBC with HMAC, so a
 * charon peer needs `esp_proposals` with one of these.
 */
export const DEFAULT_IKE_PROPOSALS: readonly string[] = [
  'aes256gcm16-prfsha256-x25519',
  'aes128gcm16-prfsha256-ecp256',
  'chacha20poly1305-prfsha256-x25519',
  'aes256-sha256-modp2048',
];
export const DEFAULT_ESP_PROPOSALS: readonly string[] = ['aes256gcm16', 'aes128gcm16', 'chacha20poly1305'];

const TRANSFORM_ORDER = [TRANSFORM_ENCR, TRANSFORM_PRF, TRANSFORM_INTEG, TRANSFORM_DH, TRANSFORM_ESN];

const KNOWN_TEXT =
  'encryption: aes128, aes256, aes128gcm16, aes256gcm16, chacha20poly1305; integrity: sha256, sha384, sha512; ' +
  'PRF: prfsha256, prfsha384, prfsha512; key exchange: modp2048, ecp256, ecp384, x25519; ESP only: esn, noesn, none';

/**
 * One proposal string, strongSwan style: algorithm keywords joined by "-", several of one kind
 * in order of preference ("aes256gcm16-aes128gcm16-prfsha256-x25519-ecp256"). Throws an Error
 * naming the keyword or the rule at fault, for configuration messages.
 *
 * IKE needs encryption, a PRF and a key exchange, plus integrity unless the cipher is an AEAD.
 * Without a PRF, a proposal with integrity gets the PRF of the same hash (sha256 → prfsha256),
 * as in strongSwan. An AEAD proposal without a PRF is an error, not a silent prfsha256: strongSwan
 * rejects it too, so the same string means the same thing in both configurations.
 *
 * ESP takes only the AEAD ciphers (the native data path implements nothing else), an optional
 * PFS group ("none" accepts no PFS beside the groups) and esn/noesn. Without either, both are
 * offered, ESN first, so that 64-bit sequence numbers are used whenever the peer agrees
 * (strongSwan adds only noesn).
 */
export function parseProposal(text: string, protocol: ProtocolId, number = 1): Proposal {
  const where = `proposal "${text}"`;
  const words = text.split('-').map((w) => w.trim());
  if (text.trim() === '' || words.some((w) => w === '')) throw new Error(`${where}: empty algorithm name (keywords are joined by "-")`);
  const transforms: Transform[] = [];
  for (const word of words) {
    const key = word.toLowerCase();
    const t = Object.hasOwn(TRANSFORM_KEYWORDS, key) ? TRANSFORM_KEYWORDS[key] : undefined;
    if (!t) throw new Error(`${where}: "${word}" is not an algorithm this implementation supports (${KNOWN_TEXT})`);
    if (transforms.some((x) => sameTransform(x, t))) throw new Error(`${where}: "${word}" is listed twice`);
    transforms.push({ ...t });
  }
  const ofType = (type: number) => transforms.filter((t) => t.type === type);
  const encr = ofType(TRANSFORM_ENCR);
  const integ = ofType(TRANSFORM_INTEG);
  if (encr.length === 0) throw new Error(`${where}: no encryption algorithm`);
  const aead = encr.filter((t) => isAead(t.id));
  if (aead.length > 0 && aead.length < encr.length) {
    throw new Error(`${where}: AEAD ciphers (${aead.map(transformName).join(', ')}) and classic ones cannot share a proposal (RFC 5282 §8); write two proposals`);
  }
  if (aead.length > 0 && integ.length > 0) {
    throw new Error(`${where}: AEAD ciphers carry their own integrity; drop ${integ.map(transformName).join(', ')}`);
  }
  if (protocol === PROTOCOL_IKE) {
    if (ofType(TRANSFORM_ESN).length > 0) throw new Error(`${where}: esn/noesn belong to ESP proposals`);
    if (ofType(TRANSFORM_DH).some((t) => t.id === DH_NONE)) throw new Error(`${where}: IKE always needs a key exchange; "none" is for ESP proposals`);
    if (ofType(TRANSFORM_DH).length === 0) throw new Error(`${where}: no key exchange method (e.g. x25519, ecp256, modp2048)`);
    if (aead.length === 0 && integ.length === 0) throw new Error(`${where}: ${encr.map(transformName).join(', ')} needs an integrity algorithm (e.g. sha256)`);
    if (ofType(TRANSFORM_PRF).length === 0) {
      if (aead.length > 0) throw new Error(`${where}: an AEAD IKE proposal needs a PRF (e.g. ${transformName(encr[0]!)}-prfsha256-x25519)`);
      for (const i of integ) {
        const prf = prfForInteg(i.id);
        if (prf !== undefined && !transforms.some((t) => t.type === TRANSFORM_PRF && t.id === prf)) transforms.push({ type: TRANSFORM_PRF, id: prf });
      }
    }
  } else {
    if (ofType(TRANSFORM_PRF).length > 0) throw new Error(`${where}: PRFs belong to IKE proposals`);
    if (aead.length === 0) {
      throw new Error(`${where}: ESP proposals take only AEAD ciphers (aes128gcm16, aes256gcm16, chacha20poly1305): the native ESP data path implements nothing else`);
    }
    if (ofType(TRANSFORM_ESN).length === 0) transforms.push({ type: TRANSFORM_ESN, id: ESN_YES }, { type: TRANSFORM_ESN, id: 0 });
  }
  return { number, protocol, spi: Buffer.alloc(0), transforms: sortByType(transforms) };
}

/** Several proposal strings, numbered 1, 2, ... in order (RFC 7296 §3.3.1). */
export function parseProposals(texts: readonly string[], protocol: ProtocolId): Proposal[] {
  if (texts.length === 0) throw new Error('no proposals');
  if (texts.length > 255) throw new Error('at most 255 proposals fit an SA payload');
  return texts.map((text, i) => parseProposal(text, protocol, i + 1));
}

/** The default proposals for `protocol`, parsed. */
export function defaultProposals(protocol: ProtocolId): Proposal[] {
  return parseProposals(protocol === PROTOCOL_IKE ? DEFAULT_IKE_PROPOSALS : DEFAULT_ESP_PROPOSALS, protocol);
}

/** A proposal as a strongSwan-style string, for logs ("aes256gcm16-prfsha256-x25519"). */
export function formatProposal(p: Proposal): string {
  return p.transforms.map(transformName).join('-');
}

/** The same proposals with another SPI (the sender's own, RFC 7296 §3.3.1). */
export function withSpi(proposals: readonly Proposal[], spi: Buffer): Proposal[] {
  return proposals.map((p) => ({ ...p, spi }));
}

/**
 * The same proposals without key exchange transforms: the Child SA offered in IKE_AUTH has no
 * KE payload to go with them (RFC 7296 §1.2: "SHOULD omit the whole transform substructure").
 */
export function withoutDh(proposals: readonly Proposal[]): Proposal[] {
  return proposals.map((p) => ({ ...p, transforms: p.transforms.filter((t) => t.type !== TRANSFORM_DH) }));
}

export interface SelectOptions {
  /**
   * The group of the KE payload that came with the SA payload. A proposal that can be chosen
   * with this group is preferred over any other, in the initiator's order, so that a usable KE
   * is never answered with INVALID_KE_PAYLOAD. For ESP, 0 means no KE payload (prefer no PFS).
   */
  keGroup?: number;
  /**
   * Child SA negotiated in IKE_AUTH: no key exchange happens (RFC 7296 §1.2), so DH transforms
   * are ignored on both sides; suite.dh is then the first PFS group of the matching configured
   * proposal, for the rekeys.
   */
  ignoreDh?: boolean;
}

export interface Selected<S> {
  /**
   * The proposal to send back: the initiator's proposal number and SPI, one transform per
   * type. The response must carry the responder's own SPI instead (withSpi).
   */
  proposal: Proposal;
  suite: S;
}

/**
 * The responder's choice (RFC 7296 §2.7): the first of the initiator's proposals, in the
 * initiator's order, that one of ours (configured) contains, with the initiator's first
 * acceptable transform of each type. The initiator's order wins because the RFC lets the
 * responder pick any and the initiator stated its preference; strongSwan prefers its own
 * configuration order by default, which is the only difference a peer could notice.
 * A proposal with a transform type this protocol does not have is unusable as a whole
 * (RFC 7296 §3.3.6); a transform with an unknown attribute is skipped. null: NO_PROPOSAL_CHOSEN.
 */
export function selectProposal(offered: readonly Proposal[], configured: readonly Proposal[], protocol: typeof PROTOCOL_IKE, options?: SelectOptions): Selected<IkeSuite> | null;
export function selectProposal(offered: readonly Proposal[], configured: readonly Proposal[], protocol: typeof PROTOCOL_ESP, options?: SelectOptions): Selected<ChildSuite> | null;
export function selectProposal(
  offered: readonly Proposal[],
  configured: readonly Proposal[],
  protocol: ProtocolId,
  options: SelectOptions = {},
): Selected<IkeSuite | ChildSuite> | null {
  const passes: (number | undefined)[] = options.keGroup !== undefined && !options.ignoreDh ? [options.keGroup, undefined] : [undefined];
  for (const keGroup of passes) {
    for (const o of offered) {
      if (o.protocol !== protocol || !onlyAllowedTypes(o, protocol)) continue;
      for (const c of configured) {
        if (c.protocol !== protocol) continue;
        const chosen = matchProposal(o, c, protocol, keGroup, options.ignoreDh === true);
        if (!chosen) continue;
        const proposal: Proposal = { number: o.number, protocol, spi: o.spi, transforms: chosen };
        const pfs = options.ignoreDh ? (c.transforms.find((t) => t.type === TRANSFORM_DH && t.id !== DH_NONE)?.id ?? DH_NONE) : undefined;
        return { proposal, suite: suiteOf(chosen, protocol, pfs) };
      }
    }
  }
  return null;
}

export type Checked<S> = { ok: true; suite: S } | { ok: false; reason: string };

/**
 * The initiator's check of the responder's SA payload (RFC 7296 §2.7, §3.3.6): exactly one
 * proposal, numbered as one of ours, one transform of each required type, each of them one we
 * offered in that proposal. Anything else is a protocol error (the SA is not set up); the
 * reason says which, for the log. With ignoreDh (IKE_AUTH), `offered` may be the configured
 * proposals with their PFS groups: DH is left out of the check, and suite.dh is the
 * proposal's first PFS group.
 */
export function verifyChosen(chosen: Proposal | readonly Proposal[], offered: readonly Proposal[], protocol: typeof PROTOCOL_IKE, options?: { ignoreDh?: boolean }): Checked<IkeSuite>;
export function verifyChosen(chosen: Proposal | readonly Proposal[], offered: readonly Proposal[], protocol: typeof PROTOCOL_ESP, options?: { ignoreDh?: boolean }): Checked<ChildSuite>;
export function verifyChosen(
  chosenOrList: Proposal | readonly Proposal[],
  offered: readonly Proposal[],
  protocol: ProtocolId,
  options: { ignoreDh?: boolean } = {},
): Checked<IkeSuite | ChildSuite> {
  const list: readonly Proposal[] = Array.isArray(chosenOrList) ? chosenOrList : [chosenOrList as Proposal];
  if (list.length !== 1) return { ok: false, reason: `the responder's SA payload must hold exactly one proposal (RFC 7296 §3.3), it holds ${list.length}` };
  const chosen = list[0]!;
  if (chosen.protocol !== protocol) return { ok: false, reason: `the responder chose protocol ${chosen.protocol}, we offered ${protocol}` };
  const ours = offered.find((p) => p.number === chosen.number && p.protocol === protocol);
  if (!ours) return { ok: false, reason: `the responder chose proposal ${chosen.number}, which we did not offer` };
  const ignoreDh = options.ignoreDh === true;
  const transforms = (chosen.transforms as OfferedTransform[]).filter((t) => !(ignoreDh && t.type === TRANSFORM_DH));
  for (const t of transforms) {
    if (t.unknownAttribute) return { ok: false, reason: `the responder's ${transformName(t)} carries an unknown attribute` };
    if (!allowedTransformTypes(protocol).includes(t.type)) return { ok: false, reason: `the responder's proposal has a ${transformTypeName(t.type)} transform` };
    // NONE (integrity with an AEAD, or no PFS) may come back for a type we left out entirely.
    const noneForAbsent = t.id === 0 && t.type !== TRANSFORM_ESN && !ours.transforms.some((x) => x.type === t.type);
    if (!noneForAbsent && !ours.transforms.some((x) => sameTransform(x, t))) {
      return { ok: false, reason: `the responder chose ${transformName(t)}, which proposal ${ours.number} did not offer` };
    }
  }
  for (const type of allowedTransformTypes(protocol)) {
    if (transforms.filter((t) => t.type === type).length > 1) return { ok: false, reason: `the responder chose more than one ${transformTypeName(type)} transform` };
  }
  const picked = sortByType(transforms.filter((t) => t.id !== 0 || t.type === TRANSFORM_ESN));
  const missing = missingTypes(picked, protocol);
  if (missing) return { ok: false, reason: `the responder's proposal has no ${missing} transform` };
  if (protocol === PROTOCOL_ESP && !ignoreDh) {
    const offeredDh = ours.transforms.filter((t) => t.type === TRANSFORM_DH);
    const offeredNone = offeredDh.length === 0 || offeredDh.some((t) => t.id === DH_NONE);
    if (!picked.some((t) => t.type === TRANSFORM_DH) && !offeredNone) return { ok: false, reason: 'the responder dropped the PFS group that every option of the proposal requires' };
  }
  const pfs = ignoreDh ? (ours.transforms.find((t) => t.type === TRANSFORM_DH && t.id !== DH_NONE)?.id ?? DH_NONE) : undefined;
  return { ok: true, suite: suiteOf(picked, protocol, pfs) };
}

/** verifyChosen without the reason: the suite, or null for a choice that is not one of ours. */
export function checkChosen(chosen: Proposal | readonly Proposal[], offered: readonly Proposal[], protocol: typeof PROTOCOL_IKE, options?: { ignoreDh?: boolean }): IkeSuite | null;
export function checkChosen(chosen: Proposal | readonly Proposal[], offered: readonly Proposal[], protocol: typeof PROTOCOL_ESP, options?: { ignoreDh?: boolean }): ChildSuite | null;
export function checkChosen(chosen: Proposal | readonly Proposal[], offered: readonly Proposal[], protocol: ProtocolId, options: { ignoreDh?: boolean } = {}): IkeSuite | ChildSuite | null {
  const checked = protocol === PROTOCOL_IKE ? verifyChosen(chosen, offered, PROTOCOL_IKE, options) : verifyChosen(chosen, offered, PROTOCOL_ESP, options);
  return checked.ok ? checked.suite : null;
}

/** The native ESP cipher of a negotiated Child SA (the data path's three AEADs); throws for any other. */
export function childCipherOf(suite: ChildSuite): EspCipher {
  if (suite.encr.id === ENCR_AES_GCM_16 && suite.encr.keyLength === 128 && suite.integ === undefined) return 'aes-128-gcm';
  if (suite.encr.id === ENCR_AES_GCM_16 && suite.encr.keyLength === 256 && suite.integ === undefined) return 'aes-256-gcm';
  if (suite.encr.id === ENCR_CHACHA20_POLY1305 && suite.encr.keyLength === undefined && suite.integ === undefined) return 'chacha20-poly1305';
  throw new Error(`${transformName({ type: TRANSFORM_ENCR, ...suite.encr })} is not one of the native ESP ciphers`);
}

/**
 * KEYMAT bytes per direction for a Child SA (RFC 7296 §2.17): the cipher key with its 4-byte
 * salt (RFC 4106 §8.1, RFC 7634 §2). The native ciphers are AEADs: no integrity key follows.
 */
export function keyBytesOf(suite: ChildSuite): number {
  return espKeyBytes(childCipherOf(suite));
}

/** One direction's KEYMAT as the key of a native SA: hex of key | salt (lib/config/sa.ts). */
export function espSaKey(suite: ChildSuite, keymat: Buffer): string {
  const bytes = keyBytesOf(suite);
  if (keymat.length !== bytes) throw new Error(`ESP keying material for ${childCipherOf(suite)} is ${bytes} bytes, got ${keymat.length}`);
  return keymat.toString('hex');
}

function sortByType(transforms: Transform[]): Transform[] {
  return TRANSFORM_ORDER.flatMap((type) => transforms.filter((t) => t.type === type));
}

function onlyAllowedTypes(p: Proposal, protocol: ProtocolId): boolean {
  const allowed = allowedTransformTypes(protocol);
  return p.transforms.every((t) => allowed.includes(t.type));
}

/** The required transform type absent from a one-per-type list, or undefined. */
function missingTypes(picked: readonly Transform[], protocol: ProtocolId): string | undefined {
  const has = (type: number) => picked.some((t) => t.type === type);
  const encr = picked.find((t) => t.type === TRANSFORM_ENCR);
  const required = protocol === PROTOCOL_IKE ? [TRANSFORM_ENCR, TRANSFORM_PRF, TRANSFORM_DH] : [TRANSFORM_ENCR, TRANSFORM_ESN];
  if (encr && !isAead(encr.id)) required.push(TRANSFORM_INTEG);
  const type = required.find((t) => !has(t));
  return type === undefined ? undefined : transformTypeName(type);
}

/**
 * The transforms of offered proposal `o` chosen against configured proposal `c`, one per type
 * in the initiator's order, or null. A missing DH type counts as NONE for ESP, so that "no PFS"
 * on one side matches "none" on the other (strongSwan's rule).
 */
function matchProposal(o: Proposal, c: Proposal, protocol: ProtocolId, keGroup: number | undefined, ignoreDh: boolean): Transform[] | null {
  const usable = (o.transforms as OfferedTransform[]).filter((t) => !t.unknownAttribute);
  const inConfig = (t: Transform) => c.transforms.some((x) => sameTransform(x, t));
  const pick = (type: number, accept: (t: Transform) => boolean = () => true) =>
    usable.find((t) => t.type === type && accept(t) && inConfig(t));

  const encr = pick(TRANSFORM_ENCR);
  if (!encr) return null;
  const chosen: Transform[] = [encr];
  if (protocol === PROTOCOL_IKE) {
    const prf = pick(TRANSFORM_PRF);
    if (!prf) return null;
    chosen.push(prf);
  }
  // RFC 5282 §8: with an AEAD, integrity is absent or NONE; either way none is chosen.
  if (!isAead(encr.id)) {
    const integ = pick(TRANSFORM_INTEG, (t) => t.id !== AUTH_NONE);
    if (!integ) return null;
    chosen.push(integ);
  }
  if (protocol === PROTOCOL_IKE) {
    const dh = pick(TRANSFORM_DH, (t) => t.id !== DH_NONE && (keGroup === undefined || t.id === keGroup));
    if (!dh) return null;
    chosen.push(dh);
  } else {
    if (!ignoreDh) {
      const dh = choosePfs(usable, c, keGroup);
      if (dh === null) return null;
      if (dh.id !== DH_NONE) chosen.push(dh);
    }
    const esn = pick(TRANSFORM_ESN);
    if (!esn) return null;
    chosen.push(esn);
  }
  return chosen;
}

function choosePfs(usable: readonly Transform[], c: Proposal, keGroup: number | undefined): Transform | null {
  const none: Transform = { type: TRANSFORM_DH, id: DH_NONE };
  const offered = usable.filter((t) => t.type === TRANSFORM_DH);
  const configured = c.transforms.filter((t) => t.type === TRANSFORM_DH);
  const offeredOrNone = offered.length > 0 ? offered : [none];
  const configuredOrNone = configured.length > 0 ? configured : [none];
  return offeredOrNone.find((t) => (keGroup === undefined || t.id === keGroup) && configuredOrNone.some((x) => sameTransform(x, t))) ?? null;
}

function suiteOf(chosen: readonly Transform[], protocol: ProtocolId, pfs: number | undefined): IkeSuite | ChildSuite {
  const get = (type: number) => chosen.find((t) => t.type === type);
  const encr = get(TRANSFORM_ENCR)!;
  const integ = get(TRANSFORM_INTEG);
  const encrSuite = encr.keyLength === undefined ? { id: encr.id } : { id: encr.id, keyLength: encr.keyLength };
  if (protocol === PROTOCOL_IKE) {
    const suite: IkeSuite = { encr: encrSuite, prf: get(TRANSFORM_PRF)!.id, dh: get(TRANSFORM_DH)!.id };
    if (integ) suite.integ = integ.id;
    return suite;
  }
  const suite: ChildSuite = { encr: encrSuite, dh: pfs ?? get(TRANSFORM_DH)?.id ?? DH_NONE, esn: get(TRANSFORM_ESN)!.id === ESN_YES };
  if (integ) suite.integ = integ.id;
  return suite;
}
