// Hostile IKE input against an overlayfwd host with an established IKE SA (RFC 7296).
//
// Hosts a and b: two overlayfwd overlays, ESP in UDP keyed by IKE (IKE_SA_INIT on 500, then
// 4500 behind the non-ESP marker), established before anything else. A knows a third IKE peer,
// c (passive, its own PSK), at a second address of b's underlay veth: the attacker. Datagrams
// leave b's namespace through lab/helpers/udp-relay.py (UDP sockets driven from this process),
// from c's address, from b's own address (other ports than B's overlay) and from addresses that
// are no peer of A. Every case is one row of a table with the outcome it must have:
//
//   drop    counted by A's IKE manager under exactly that reason (OverlayStats.ike.drops), no reply
//   native  counted by the native data path (a runt is no IKE message), nothing passed up
//   notify  answered unprotected, as §2.5/§2.6/§1.2 say: one IKE_SA_INIT response, one Notify
//   init    answered with a normal IKE_SA_INIT response (SA, KE, Nonce): the lie was one to ignore
//   sealed  answered inside the IKE SA (protected), with the payloads the row names
//   cached  answered with the bytes of the response A sent before (a retransmitted request, §2.1)
//
// Four phases, then the checks: unprotected messages; a flood of IKE_SA_INIT from 240 source
// ports of two peer addresses and 30 addresses that are no peer (the half-open count stays at
// the COOKIE threshold, the rest is answered with a COOKIE, strangers with nothing); a
// legitimate initiator (lib/ike's own IkeSession, in this process, as peer c) that answers the
// COOKIE and gets through; then attacks inside that IKE SA, built with its keys. The session
// keeps its keys private, so this file wraps deriveIkeKeys (vi.mock, a pass-through) to record
// the keys of each IKE SA the process derives, by SPIs; the test picks its own session's. After
// the barrage: the IKE SA and Child SA between A and B are the ones from before, a ping that ran
// throughout lost nothing, pings both ways count no drop, both overlays are healthy, the event
// loop was never held up, and the sessions A holds fall back to what it had.
import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Lab, overlayAddress, type LabProcess } from '../../lab';
import { createKeyExchange, createSkCipher } from '../../lib/ike/crypto';
import { COOKIE_THRESHOLD } from '../../lib/ike/manager';
import { decodeMessage, encodeMessage, Reason } from '../../lib/ike/message';
import { defaultProposals, parseProposals } from '../../lib/ike/proposals';
import { selectorsFromCidrs } from '../../lib/ike/selectors';
import { IkeSession } from '../../lib/ike/session';
import { openMessage, sealMessage, SkReason } from '../../lib/ike/sk';
import { PROTOCOL_ESP, PROTOCOL_IKE } from '../../lib/ike/transforms';
import type { IkeHeader, IkeKeys, Payload, SkCipher } from '../../lib/ike/types';
import { Exchange, NotifyType, PayloadType, ProtocolId } from '../../lib/ike/wire';
import { parseIdentity } from '../../lib/ike/auth';
import type { Overlay } from '../../lib/overlay';
import type { DropReason, IkeStats } from '../../lib/types';
import { describeNetns, sleep, waitFor } from '../helpers/env';
import {
  bodyOf,
  initHeader,
  initPayloads,
  initRequest,
  NON_ESP_MARKER,
  raw,
  rawInitPayloads,
  rawMessage,
  rawPayloads,
  sealRaw,
  ZERO_SPI,
  type Header,
  type RawPayload,
} from '../helpers/ike-craft';
import { delta, peerCounters } from '../helpers/overlay';
import { movedDrops, overlayPair, pingsBothWays, type Pair } from '../helpers/pair';
import { UdpRelay, type RelayDatagram } from '../helpers/udp';

// Every IKE SA key derivation of this process (A's, B's and the test's own), by "SPIi/SPIr".
const derived = vi.hoisted(() => new Map<string, IkeKeys>());
vi.mock('../../lib/ike/crypto', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../lib/ike/crypto')>();
  return {
    ...real,
    deriveIkeKeys: (...args: Parameters<typeof real.deriveIkeKeys>) => {
      const keys = real.deriveIkeKeys(...args);
      derived.set(`${args[4].toString('hex')}/${args[5].toString('hex')}`, keys);
      return keys;
    },
  };
});

const PSK = 'overlayfwd-hostile-psk-0123456789';
const PSK_C = 'overlayfwd-hostile-psk-of-peer-c';
const IKE_PORT = 500;
const NATT_PORT = 4500;
/** After a drop was counted, how long a reply still has to show up (none may). */
const GRACE_MS = 150;
/** Retransmissions: 1 s doubling, 3 sends; a half-open SA goes after 1 s * 2^3 = 8 s. */
const RETRANSMIT = { retransmitTimeoutMs: 1000, retransmitTries: 3 };
const HALF_OPEN_MS = 8000;
/** An unknown payload type (private use is 128-255, §3.2). */
const UNKNOWN_TYPE = 200;
const COOKIE_DROP = 'IKE_SA_INIT without a valid COOKIE (answered with one)';

type Source = 'c' | 'b' | 'stranger';

interface Shot {
  /** Relay socket to send from (replies are looked for there). */
  socket: string;
  port: typeof IKE_PORT | typeof NATT_PORT;
  data: Buffer;
  /** Sends of the same bytes (default 1). */
  times?: number;
}

type Outcome =
  | { kind: 'drop'; reason: string }
  | { kind: 'native'; reason: DropReason }
  | { kind: 'notify'; type: number; data?: Buffer | ((data: Buffer) => void); counted?: string }
  | { kind: 'init'; replies?: number }
  | { kind: 'sealed'; id: number; exchange?: number; payloads: (p: Payload[]) => void }
  | { kind: 'cached'; bytes: () => Buffer };

interface Case {
  name: string;
  shot: () => Promise<Shot> | Shot;
  expect: Outcome;
  /** More checks once the outcome is in. */
  after?: () => void | Promise<void>;
}

describeNetns('IKEv2 under hostile input (overlayfwd with an established IKE SA)', { tools: ['ping'] }, () => {
  let lab: Lab;
  let p: Pair;
  let relay: UdpRelay;
  let C: string;
  const strangers: string[] = [];
  let session: IkeSession;
  let sock500: string;
  let sock4500: string;
  /** What the test's session sent, in order. */
  const sessionSent: Buffer[] = [];
  let background: LabProcess;
  const lag = monitorEventLoopDelay({ resolution: 10 });
  let start: { a: ReturnType<typeof ikeSaOf>; b: ReturnType<typeof ikeSaOf>; statsA: ReturnType<Overlay['stats']>; statsB: ReturnType<Overlay['stats']> };
  let maxHalfOpen = 0;
  let maxSessions = 0;
  let halfOpenPoll: NodeJS.Timeout | undefined;

  // The test's IKE SA with A (phase 4), once established.
  let spis: { initiator: Buffer; responder: Buffer };
  let toA: SkCipher;
  let fromA: SkCipher;
  let reflected: SkCipher;

  const A = () => p.underlayA;
  const ike = (ov: Overlay): IkeStats => ov.stats().ike!;

  function ikeSaOf(ov: Overlay, peer: string) {
    const s = ov.peers.list().find((x) => x.name === peer)?.ikeSa;
    return { state: s?.state, spis: s?.spis, child: s?.child && { inboundSpi: s.child.inboundSpi, outboundSpi: s.child.outboundSpi } };
  }

  function dropsSince(before: IkeStats): Record<string, number> {
    const now = ike(p.A).drops;
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(now)) if (v !== (before.drops[k] ?? 0)) out[k] = v - (before.drops[k] ?? 0);
    return out;
  }

  async function socketAt(source: Source): Promise<string> {
    const address = source === 'c' ? C : source === 'b' ? p.underlayB : strangers[0]!;
    return (await relay.open(address)).id;
  }

  function send(shot: Shot): void {
    const bytes = shot.port === NATT_PORT ? Buffer.concat([NON_ESP_MARKER, shot.data]) : shot.data;
    for (let i = 0; i < (shot.times ?? 1); i++) relay.send(shot.socket, A(), shot.port, bytes);
  }

  /** A reply as IKE: the marker checked and stripped when it came from 4500. */
  function unwrap(d: RelayDatagram): Buffer {
    if (d.port !== NATT_PORT) return d.data;
    expect(d.data.subarray(0, 4), 'non-ESP marker in front of IKE from 4500').toEqual(NON_ESP_MARKER);
    return d.data.subarray(4);
  }

  function header(data: Buffer): IkeHeader {
    const m = decodeMessage(data);
    if (!m.ok) throw new Error(`reply does not decode: ${m.reason}`);
    return m.value.header;
  }

  /** waitFor, with the state at the time it gave up in the message. */
  async function until(cond: () => boolean, what: () => string): Promise<void> {
    try {
      await waitFor(cond, 'the outcome', 5000, 10);
    } catch {
      throw new Error(`timed out waiting for ${what()}`);
    }
  }

  async function run(c: Case): Promise<void> {
    const shot = await c.shot();
    const before = ike(p.A);
    const nativeBefore = p.A.stats();
    const mark = relay.inbox.length;
    send(shot);
    const replies = () => relay.received(shot.socket, mark);
    const state = () => `drops ${JSON.stringify(dropsSince(before))}, native ${JSON.stringify(movedDrops(delta(p.A.stats().totals, nativeBefore.totals)))}, ${replies().length} replies`;
    const o = c.expect;
    switch (o.kind) {
      case 'drop': {
        const n = shot.times ?? 1;
        await until(() => (dropsSince(before)[o.reason] ?? 0) >= n, () => `drop "${o.reason}" (${state()})`);
        await sleep(GRACE_MS);
        expect(dropsSince(before)).toEqual({ [o.reason]: n });
        expect(replies()).toEqual([]);
        break;
      }
      case 'native': {
        await until(() => delta(p.A.stats().totals, nativeBefore.totals).drops[o.reason] >= 1, () => `native drop ${o.reason} (${state()})`);
        await sleep(GRACE_MS);
        expect(movedDrops(delta(p.A.stats().totals, nativeBefore.totals))).toEqual({ [o.reason]: 1 });
        expect(dropsSince(before)).toEqual({});
        expect(replies()).toEqual([]);
        break;
      }
      case 'notify': {
        await until(() => replies().length >= 1, () => `a reply (${state()})`);
        await sleep(GRACE_MS);
        expect(replies()).toHaveLength(1);
        const reply = replies()[0]!;
        expect(reply.port).toBe(shot.port);
        const data = unwrap(reply);
        const m = decodeMessage(data);
        if (!m.ok) throw new Error(`reply does not decode: ${m.reason}`);
        const sent = decodeMessage(shot.data);
        const spiI = sent.ok ? sent.value.header.initiatorSpi : shot.data.subarray(0, 8);
        expect(m.value.header).toMatchObject({ initiatorSpi: spiI, responderSpi: ZERO_SPI, version: 0x20, exchange: Exchange.IKE_SA_INIT, response: true, initiator: false, messageId: 0 });
        expect(m.value.sk).toBeUndefined();
        const data0 = typeof o.data === 'function' ? (m.value.payloads[0] as { data?: Buffer } | undefined)?.data : undefined;
        expect(m.value.payloads).toEqual([{ type: 'notify', critical: false, protocol: 0, spi: Buffer.alloc(0), notifyType: o.type, data: data0 ?? o.data ?? Buffer.alloc(0) }]);
        if (typeof o.data === 'function') o.data(data0!);
        expect(dropsSince(before)).toEqual(o.counted ? { [o.counted]: 1 } : {});
        break;
      }
      case 'init': {
        const n = o.replies ?? 1;
        await until(() => replies().length >= n, () => `${n} IKE_SA_INIT responses (${state()})`);
        await sleep(GRACE_MS);
        expect(replies()).toHaveLength(n);
        const first = unwrap(replies()[0]!);
        for (const r of replies()) expect(unwrap(r), 'a retransmission gets the same response').toEqual(first);
        const m = decodeMessage(first);
        if (!m.ok) throw new Error(`reply does not decode: ${m.reason}`);
        expect(m.value.header).toMatchObject({ exchange: Exchange.IKE_SA_INIT, response: true, initiator: false });
        expect(m.value.header.responderSpi.equals(ZERO_SPI)).toBe(false);
        expect(m.value.payloads.map((x) => x.type).slice(0, 3)).toEqual(['sa', 'ke', 'nonce']);
        expect(dropsSince(before)).toEqual({});
        expect(ike(p.A).halfOpen).toBe(before.halfOpen + 1);
        break;
      }
      case 'sealed': {
        await until(() => replies().length >= 1, () => `a protected reply (${state()})`);
        await sleep(GRACE_MS);
        expect(replies()).toHaveLength(1);
        const data = unwrap(replies()[0]!);
        const m = decodeMessage(data);
        if (!m.ok) throw new Error(`reply does not decode: ${m.reason}`);
        expect(m.value.header).toMatchObject({ initiatorSpi: spis.initiator, responderSpi: spis.responder, exchange: o.exchange ?? Exchange.INFORMATIONAL, response: true, initiator: false, messageId: o.id });
        const opened = openMessage(data, m.value, fromA);
        if (!opened.ok) throw new Error(`reply does not open: ${opened.reason}`);
        o.payloads(opened.value);
        expect(dropsSince(before)).toEqual({});
        break;
      }
      case 'cached': {
        await until(() => replies().length >= 1, () => `a reply (${state()})`);
        await sleep(GRACE_MS);
        expect(replies()).toHaveLength(1);
        expect(unwrap(replies()[0]!)).toEqual(o.bytes());
        expect(dropsSince(before)).toEqual({});
        break;
      }
    }
    await c.after?.();
  }

  /** A fresh socket at `source`, sending `data` to `port`. */
  const from =
    (source: Source, port: Shot['port'], data: () => Buffer, times?: number) =>
    async (): Promise<Shot> => ({ socket: await socketAt(source), port, data: data(), ...(times ? { times } : {}) });

  beforeAll(async () => {
    lab = await Lab.create({ prefix: 'ikeh' });
    p = await overlayPair(lab, {
      device: 'tun',
      encap: { type: 'esp', udp: true },
      extra: { ike: { auth: 'psk', psk: PSK, rekeySeconds: 3600, ...RETRANSMIT } },
      extraPeersA: async (_a, b) => [
        {
          name: 'c',
          endpoint: b.underlay.replace(/\.\d+$/, '.3'),
          allowedIps: [`${overlayAddress(3)}/32`],
          ike: { psk: PSK_C, start: 'passive', dpdSeconds: 0 },
        },
      ],
    });
    C = p.b.underlay.replace(/\.\d+$/, '.3');
    const prefix = p.b.links[0]!.prefixLength;
    await lab.ip(p.b, ['addr', 'add', `${C}/${prefix}`, 'dev', p.b.underlayDev]);
    for (let i = 100; i < 130; i++) strangers.push(p.b.underlay.replace(/\.\d+$/, `.${i}`));
    for (const s of strangers) await lab.ip(p.b, ['addr', 'add', `${s}/${prefix}`, 'dev', p.b.underlayDev]);
    await waitFor(() => {
      const a = ikeSaOf(p.A, 'b');
      const b = ikeSaOf(p.B, 'a');
      return a.state === 'established' && !!a.child && b.state === 'established' && !!b.child;
    }, 'the IKE SA between A and B', 20_000);
    relay = UdpRelay.start(lab, p.b);
    lab.onDestroy(() => relay.stop());
    sock500 = (await relay.open(C, IKE_PORT)).id;
    sock4500 = (await relay.open(C, NATT_PORT)).id;
    // Both initiated: the duplicate IKE SA is deleted (manager.ts onEstablished); one each is left.
    await waitFor(() => ike(p.A).sessions === 1 && ike(p.B).sessions === 1, 'one IKE SA on each host');
    start = { a: ikeSaOf(p.A, 'b'), b: ikeSaOf(p.B, 'a'), statsA: p.A.stats(), statsB: p.B.stats() };
    expect(ike(p.A).halfOpen).toBe(0);
    background = lab.spawn(p.a, 'ping', ['-n', '-i', '0.2', '-W', '2', overlayAddress(2)]);
    halfOpenPoll = setInterval(() => {
      const s = ike(p.A);
      maxHalfOpen = Math.max(maxHalfOpen, s.halfOpen);
      maxSessions = Math.max(maxSessions, s.sessions);
    }, 20);
    lag.enable();
  }, 90_000);

  afterAll(async () => {
    if (halfOpenPoll) clearInterval(halfOpenPoll);
    lag.disable();
    session?.close('test over');
    await lab?.destroy();
  });

  // ---- 1. Unprotected messages ---------------------------------------------------------------

  const x25519Only = () => parseProposals(['aes256gcm16-prfsha256-x25519'], PROTOCOL_IKE);
  const unprotected: Case[] = [
    { name: 'a runt on 500 (12 bytes)', shot: from('c', IKE_PORT, () => randomBytes(12)), expect: { kind: 'native', reason: 'malformed' } },
    { name: 'a runt behind the non-ESP marker on 4500', shot: from('c', NATT_PORT, () => randomBytes(20)), expect: { kind: 'native', reason: 'malformed' } },
    {
      name: 'header only: an IKE_SA_INIT request without payloads',
      shot: from('c', IKE_PORT, () => encodeMessage(initHeader(), [])),
      expect: { kind: 'notify', type: NotifyType.INVALID_SYNTAX },
    },
    {
      name: 'truncated: the Length field says more than the datagram holds',
      shot: from('c', IKE_PORT, () => initRequest().subarray(0, 100)),
      expect: { kind: 'drop', reason: Reason.lengthMismatch },
    },
    {
      name: 'garbage after the message: the Length field says less than the datagram',
      shot: from('c', IKE_PORT, () => Buffer.concat([initRequest(), randomBytes(16)])),
      expect: { kind: 'drop', reason: Reason.lengthMismatch },
    },
    {
      name: 'a Length field of 0xffffffff',
      shot: from('c', IKE_PORT, () => {
        const m = initRequest();
        m.writeUInt32BE(0xffffffff, 24);
        return m;
      }),
      expect: { kind: 'drop', reason: Reason.lengthMismatch },
    },
    {
      name: 'a Length field below the 28-byte header',
      shot: from('c', IKE_PORT, () => {
        const m = initRequest();
        m.writeUInt32BE(20, 24);
        return m;
      }),
      expect: { kind: 'drop', reason: Reason.lengthBelowHeader },
    },
    {
      name: 'a Payload Length below 4',
      shot: from('c', IKE_PORT, () => {
        const [sa, ke, nonce] = rawInitPayloads() as [RawPayload, RawPayload, RawPayload];
        const chain = rawPayloads([sa, { ...ke, length: 2 }, nonce]);
        return rawMessage(initHeader(), chain.first, chain.bytes);
      }),
      expect: { kind: 'drop', reason: Reason.payloadLength },
    },
    {
      name: 'a Payload Length that runs past the message',
      shot: from('c', IKE_PORT, () => {
        const items = rawInitPayloads();
        const last = items[2]!;
        items[2] = { ...last, length: 4 + last.body.length + 40 };
        const chain = rawPayloads(items);
        return rawMessage(initHeader(), chain.first, chain.bytes);
      }),
      expect: { kind: 'drop', reason: Reason.payloadOverrun },
    },
    {
      name: 'bytes after the last payload (inside the Length)',
      shot: from('c', IKE_PORT, () => {
        const chain = rawPayloads(rawInitPayloads());
        return rawMessage(initHeader(), chain.first, Buffer.concat([chain.bytes, Buffer.alloc(8)]));
      }),
      expect: { kind: 'drop', reason: Reason.trailingBytes },
    },
    {
      name: 'a Next Payload with only 2 bytes left for its header',
      shot: from('c', IKE_PORT, () => {
        const items = rawInitPayloads();
        items[2] = { ...items[2]!, next: PayloadType.Notify };
        const chain = rawPayloads(items);
        return rawMessage(initHeader(), chain.first, Buffer.concat([chain.bytes, Buffer.alloc(2)]));
      }),
      expect: { kind: 'drop', reason: Reason.payloadTruncated },
    },
    {
      name: 'a Proposal Length that runs past the SA payload',
      shot: from('c', IKE_PORT, () => {
        const items = rawInitPayloads();
        // One proposal, so that the lie cannot land inside the next one.
        const body = bodyOf({ type: 'sa', critical: false, proposals: x25519Only() });
        body.writeUInt16BE(body.readUInt16BE(2) + 40, 2);
        const chain = rawPayloads([{ ...items[0]!, body }, items[1]!, items[2]!]);
        return rawMessage(initHeader(), chain.first, chain.bytes);
      }),
      expect: { kind: 'drop', reason: Reason.proposalLength },
    },
    {
      name: 'a transform count that lies',
      shot: from('c', IKE_PORT, () => {
        const items = rawInitPayloads();
        const body = Buffer.from(items[0]!.body);
        body[7]! += 1;
        const chain = rawPayloads([{ ...items[0]!, body }, items[1]!, items[2]!]);
        return rawMessage(initHeader(), chain.first, chain.bytes);
      }),
      expect: { kind: 'drop', reason: Reason.transformCount },
    },
    {
      name: 'a nonce of 8 bytes (§2.10: at least 16)',
      shot: from('c', IKE_PORT, () => {
        const items = rawInitPayloads();
        const chain = rawPayloads([items[0]!, items[1]!, { type: PayloadType.Nonce, body: randomBytes(8) }]);
        return rawMessage(initHeader(), chain.first, chain.bytes);
      }),
      expect: { kind: 'drop', reason: Reason.nonceSize },
    },
    {
      name: '65 payloads',
      shot: from('c', IKE_PORT, () => {
        const chain = rawPayloads([...rawInitPayloads(), ...Array.from({ length: 62 }, () => ({ type: PayloadType.Vendor, body: randomBytes(8) }))]);
        return rawMessage(initHeader(), chain.first, chain.bytes);
      }),
      expect: { kind: 'drop', reason: Reason.tooManyPayloads },
    },
    {
      name: 'an SK payload that is not the last',
      shot: from('c', IKE_PORT, () => {
        const chain = rawPayloads([{ type: PayloadType.SK, body: randomBytes(40), next: PayloadType.Notify }, raw(PayloadType.Notify, notify(NotifyType.INITIAL_CONTACT))]);
        return rawMessage(initHeader(randomBytes(8), { exchange: Exchange.INFORMATIONAL, responderSpi: randomBytes(8) }), chain.first, chain.bytes);
      }),
      expect: { kind: 'drop', reason: Reason.skNotLast },
    },
    {
      name: 'an encrypted fragment (SKF, RFC 7383, never announced)',
      shot: from('c', NATT_PORT, () => {
        const chain = rawPayloads([{ type: PayloadType.SKF, body: Buffer.concat([Buffer.from([0, 1, 0, 2]), randomBytes(60)]), next: PayloadType.IDi }]);
        return rawMessage(initHeader(randomBytes(8), { exchange: Exchange.IKE_AUTH, responderSpi: randomBytes(8), messageId: 1 }), chain.first, chain.bytes);
      }),
      expect: { kind: 'drop', reason: Reason.fragment },
    },
    {
      name: 'major version 3 on 500 (§2.5)',
      shot: from('c', IKE_PORT, () => rawMessage(initHeader(), PayloadType.SA, rawPayloads(rawInitPayloads()).bytes, { version: 0x30 })),
      expect: { kind: 'notify', type: NotifyType.INVALID_MAJOR_VERSION, counted: Reason.majorVersion },
    },
    {
      name: 'major version 3 behind the marker on 4500',
      shot: from('c', NATT_PORT, () => rawMessage(initHeader(), PayloadType.SA, rawPayloads(rawInitPayloads()).bytes, { version: 0x3f })),
      expect: { kind: 'notify', type: NotifyType.INVALID_MAJOR_VERSION, counted: Reason.majorVersion },
    },
    {
      name: 'IKEv1 Main Mode (major version 1: lower, dropped)',
      shot: from('c', IKE_PORT, () => rawMessage(initHeader(randomBytes(8), { exchange: 2 }), 1, randomBytes(52), { version: 0x10, flags: 0 })),
      expect: { kind: 'drop', reason: Reason.majorVersion },
    },
    {
      name: 'major version 1 with the IKE_SA_INIT exchange type (lower: dropped, not answered)',
      shot: from('c', IKE_PORT, () => rawMessage(initHeader(), PayloadType.SA, rawPayloads(rawInitPayloads()).bytes, { version: 0x10 })),
      expect: { kind: 'drop', reason: Reason.majorVersion },
    },
    {
      name: 'major version 3 in a response (never answered)',
      shot: from('c', IKE_PORT, () => rawMessage(initHeader(randomBytes(8), { responderSpi: randomBytes(8), response: true, initiator: false }), PayloadType.SA, rawPayloads(rawInitPayloads()).bytes, { version: 0x30 })),
      expect: { kind: 'drop', reason: Reason.majorVersion },
    },
    {
      name: 'an unknown critical payload in IKE_SA_INIT on 500 (§2.5)',
      shot: from('c', IKE_PORT, () => initRequest(randomBytes(8), [...initPayloads(), { type: 'unknown', critical: true, payloadType: UNKNOWN_TYPE, data: randomBytes(12) }])),
      expect: { kind: 'notify', type: NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, data: Buffer.from([UNKNOWN_TYPE]), counted: Reason.criticalPayload },
    },
    {
      name: 'an unknown critical payload in IKE_SA_INIT on 4500',
      shot: from('c', NATT_PORT, () => initRequest(randomBytes(8), [{ type: 'unknown', critical: true, payloadType: UNKNOWN_TYPE + 1, data: Buffer.alloc(0) }, ...initPayloads()])),
      expect: { kind: 'notify', type: NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, data: Buffer.from([UNKNOWN_TYPE + 1]), counted: Reason.criticalPayload },
    },
    {
      name: 'an unknown critical payload in an IKE_SA_INIT response (never answered)',
      shot: from('c', IKE_PORT, () =>
        encodeMessage(initHeader(randomBytes(8), { responderSpi: randomBytes(8), response: true, initiator: false }), [...initPayloads(), { type: 'unknown', critical: true, payloadType: UNKNOWN_TYPE, data: Buffer.alloc(4) }]),
      ),
      expect: { kind: 'drop', reason: Reason.criticalPayload },
    },
    {
      name: 'a KE of another group than the chosen proposal (§1.2)',
      shot: from('c', IKE_PORT, () => initRequest(randomBytes(8), initPayloads({ proposals: x25519Only(), ke: { group: 19, data: createKeyExchange(19).publicKey } }))),
      expect: { kind: 'notify', type: NotifyType.INVALID_KE_PAYLOAD, data: Buffer.from([0, 31]) },
    },
    {
      name: 'only algorithms A does not run (3DES, MD5, modp1024)',
      shot: from('c', IKE_PORT, () =>
        initRequest(
          randomBytes(8),
          initPayloads({
            proposals: [{ number: 1, protocol: ProtocolId.IKE, spi: Buffer.alloc(0), transforms: [{ type: 1, id: 3 }, { type: 2, id: 1 }, { type: 3, id: 1 }, { type: 4, id: 2 }] }],
            ke: { group: 2, data: randomBytes(128) },
          }),
        ),
      ),
      expect: { kind: 'notify', type: NotifyType.NO_PROPOSAL_CHOSEN },
    },
    {
      name: 'an x25519 KE of 33 bytes',
      shot: from('c', IKE_PORT, () => initRequest(randomBytes(8), initPayloads({ proposals: x25519Only(), ke: { group: 31, data: randomBytes(33) } }))),
      expect: { kind: 'notify', type: NotifyType.INVALID_SYNTAX },
    },
    {
      name: 'an x25519 KE of low order (all zeros: RFC 8031 §2)',
      shot: from('c', IKE_PORT, () => initRequest(randomBytes(8), initPayloads({ proposals: x25519Only(), ke: { group: 31, data: Buffer.alloc(32) } }))),
      expect: { kind: 'notify', type: NotifyType.INVALID_SYNTAX },
    },
    {
      name: 'an IKE_SA_INIT request that names a responder SPI',
      shot: from('c', IKE_PORT, () => encodeMessage(initHeader(randomBytes(8), { responderSpi: randomBytes(8) }), initPayloads())),
      expect: { kind: 'drop', reason: 'IKE_SA_INIT request with a responder SPI' },
    },
    {
      name: 'IKE_SA_INIT from an address that is no peer',
      shot: from('stranger', IKE_PORT, () => initRequest()),
      expect: { kind: 'drop', reason: 'IKE_SA_INIT from an address that is no peer' },
    },
    {
      name: 'an IKE_SA_INIT response to a request A never sent',
      shot: from('b', IKE_PORT, () => encodeMessage(initHeader(randomBytes(8), { responderSpi: randomBytes(8), response: true, initiator: false }), initPayloads())),
      expect: { kind: 'drop', reason: 'unknown IKE SPI' },
    },
    {
      name: 'an INFORMATIONAL for an IKE SA that does not exist (4500)',
      shot: from('b', NATT_PORT, () => rawMessage(initHeader(randomBytes(8), { exchange: Exchange.INFORMATIONAL, responderSpi: randomBytes(8), messageId: 7 }), PayloadType.SK, rawPayloads([{ type: PayloadType.SK, body: randomBytes(64) }]).bytes)),
      expect: { kind: 'drop', reason: 'unknown IKE SPI' },
    },
    {
      name: 'oversized: a 65 000-byte message on 500 (IP fragments)',
      shot: from('c', IKE_PORT, () => rawMessage(initHeader(randomBytes(8), { exchange: Exchange.INFORMATIONAL, responderSpi: randomBytes(8), messageId: 3 }), PayloadType.SK, rawPayloads([{ type: PayloadType.SK, body: randomBytes(65000 - 32) }]).bytes)),
      expect: { kind: 'drop', reason: 'unknown IKE SPI' },
    },
    {
      name: 'oversized: a 65 000-byte message behind the marker on 4500',
      shot: from('c', NATT_PORT, () => rawMessage(initHeader(randomBytes(8), { exchange: Exchange.INFORMATIONAL, responderSpi: randomBytes(8), messageId: 3 }), PayloadType.SK, rawPayloads([{ type: PayloadType.SK, body: randomBytes(65000 - 36) }]).bytes)),
      expect: { kind: 'drop', reason: 'unknown IKE SPI' },
    },
    {
      name: 'an unknown payload without the critical bit is skipped (§2.5)',
      shot: from('c', IKE_PORT, () => initRequest(randomBytes(8), [...initPayloads(), { type: 'unknown', critical: false, payloadType: UNKNOWN_TYPE, data: randomBytes(20) }])),
      expect: { kind: 'init' },
    },
    {
      name: 'minor version 2.15 and the V flag are ignored (§2.5, §3.1)',
      shot: from('c', IKE_PORT, () => rawMessage(initHeader(), PayloadType.SA, rawPayloads(rawInitPayloads()).bytes, { version: 0x2f, flags: 0x08 | 0x10 })),
      expect: { kind: 'init' },
    },
    {
      name: 'a retransmitted IKE_SA_INIT gets the same response and makes one SA (§2.1)',
      shot: from('c', NATT_PORT, () => initRequest(), 2),
      expect: { kind: 'init', replies: 2 },
    },
  ];

  describe('1. unprotected messages', () => {
    for (const c of unprotected) it(c.name, () => run(c));
  });

  // ---- 2. A flood of IKE_SA_INIT ------------------------------------------------------------

  /** Cookies A sent in phase 2, with the request each answered. */
  const cookies: { socket: string; address: string; request: Buffer; cookie: Buffer }[] = [];

  let forged: Buffer;
  const cookieCases: Case[] = [
      {
        name: 'a forged COOKIE: answered with a real one, no SA',
        shot: from('c', IKE_PORT, () => initRequest(randomBytes(8), [notify(NotifyType.COOKIE, (forged = randomBytes(33))), ...initPayloads()])),
        expect: { kind: 'notify', type: NotifyType.COOKIE, data: (d) => expect(d.length === 33 && !d.equals(forged)).toBe(true), counted: COOKIE_DROP },
        after: () => expect(ike(p.A).halfOpen).toBe(COOKIE_THRESHOLD),
      },
      {
        name: "another source's COOKIE (from b's address for c's request): answered with a COOKIE, no SA",
        shot: async () => {
          const got = cookies.find((x) => x.address === C)!;
          const m = decodeMessage(got.request);
          if (!m.ok) throw new Error(m.reason);
          return { socket: await socketAt('b'), port: IKE_PORT, data: encodeMessage(m.value.header, [notify(NotifyType.COOKIE, got.cookie), ...m.value.payloads]) };
        },
        expect: { kind: 'notify', type: NotifyType.COOKIE, data: (d) => expect(d).toHaveLength(33), counted: COOKIE_DROP },
        after: () => expect(ike(p.A).halfOpen).toBe(COOKIE_THRESHOLD),
      },
      {
        name: 'a COOKIE returned with another nonce: answered with a COOKIE, no SA',
        shot: () => {
          const got = cookies.find((x) => x.address === C)!;
          const m = decodeMessage(got.request);
          if (!m.ok) throw new Error(m.reason);
          const payloads = m.value.payloads.map((x) => (x.type === 'nonce' ? { ...x, data: randomBytes(32) } : x));
          return { socket: got.socket, port: IKE_PORT, data: encodeMessage(m.value.header, [notify(NotifyType.COOKIE, got.cookie), ...payloads]) };
        },
        expect: { kind: 'notify', type: NotifyType.COOKIE, data: (d) => expect(d).toHaveLength(33), counted: COOKIE_DROP },
        after: () => expect(ike(p.A).halfOpen).toBe(COOKIE_THRESHOLD),
      },
      {
        name: 'the flooder returns its COOKIE (same SPI, nonce and address): accepted, one more half-open SA (a COOKIE proves only the address)',
        shot: () => {
          const got = cookies.find((x) => x.address === C)!;
          const m = decodeMessage(got.request);
          if (!m.ok) throw new Error(m.reason);
          return { socket: got.socket, port: IKE_PORT, data: encodeMessage(m.value.header, [notify(NotifyType.COOKIE, got.cookie), ...m.value.payloads]) };
        },
        expect: { kind: 'init' },
      },
    ];

  describe('2. a flood of IKE_SA_INIT', () => {
    it('the half-open SAs of phase 1 go after the half-open timeout', async () => {
      await waitFor(() => ike(p.A).halfOpen === 0, 'no half-open SA', HALF_OPEN_MS + 5000, 100);
      expect(ike(p.A).sessions).toBe(1);
    }, 30_000);

    it(`240 source ports of two peer addresses: ${COOKIE_THRESHOLD} SAs half open, every other one answered with a COOKIE (§2.6)`, async () => {
      const before = ike(p.A);
      const control = p.A.stats();
      const mark = relay.inbox.length;
      // b's own address first (half-open SAs "of peer b" next to its established one), then c's.
      const sources: { address: string; port: Shot['port'] }[] = [
        ...Array.from({ length: 8 }, () => ({ address: p.underlayB, port: NATT_PORT as Shot['port'] })),
        ...Array.from({ length: 200 }, () => ({ address: C, port: IKE_PORT as Shot['port'] })),
        ...Array.from({ length: 32 }, () => ({ address: p.underlayB, port: NATT_PORT as Shot['port'] })),
      ];
      const shots: { socket: string; address: string; request: Buffer; port: Shot['port'] }[] = [];
      for (const s of sources) shots.push({ socket: (await relay.open(s.address)).id, address: s.address, request: initRequest(), port: s.port });
      for (let i = 0; i < shots.length; i += 20) {
        for (const s of shots.slice(i, i + 20)) send({ socket: s.socket, port: s.port, data: s.request });
        await sleep(10);
      }
      const answered = () => new Set(relay.inbox.slice(mark).map((d) => d.socket)).size;
      await waitFor(() => answered() >= shots.length, `replies to all ${shots.length} sources (${answered()} so far)`, 15_000, 50);
      await sleep(GRACE_MS);
      let inits = 0;
      for (const s of shots) {
        const replies = relay.received(s.socket, mark);
        expect(replies, `one reply to ${s.address}`).toHaveLength(1);
        const m = decodeMessage(unwrap(replies[0]!));
        if (!m.ok) throw new Error(m.reason);
        const first = m.value.payloads[0];
        if (first?.type === 'notify' && first.notifyType === NotifyType.COOKIE) {
          expect(m.value.payloads).toHaveLength(1);
          expect(m.value.header.responderSpi).toEqual(ZERO_SPI);
          cookies.push({ socket: s.socket, address: s.address, request: s.request, cookie: first.data });
        } else {
          expect(m.value.payloads.map((x) => x.type).slice(0, 3)).toEqual(['sa', 'ke', 'nonce']);
          inits++;
        }
      }
      expect(inits).toBe(COOKIE_THRESHOLD);
      expect(cookies).toHaveLength(shots.length - COOKIE_THRESHOLD);
      expect(dropsSince(before)).toEqual({ [COOKIE_DROP]: shots.length - COOKIE_THRESHOLD });
      expect(ike(p.A)).toMatchObject({ halfOpen: COOKIE_THRESHOLD, sessions: 1 + COOKIE_THRESHOLD });
      expect(maxHalfOpen).toBeLessThanOrEqual(COOKIE_THRESHOLD);
      expect(delta(p.A.stats().totals, control.totals).drops.controlQueueFull).toBe(0);
      // The half-open SAs "of b" are no threat to the real one.
      expect(ikeSaOf(p.A, 'b')).toEqual(start.a);
    }, 60_000);

    it('30 addresses that are no peer, twice each: dropped, no state, no answer', async () => {
      const before = ike(p.A);
      const mark = relay.inbox.length;
      const socks: string[] = [];
      for (const s of strangers) socks.push((await relay.open(s)).id);
      for (const s of socks) send({ socket: s, port: IKE_PORT, data: initRequest(), times: 2 });
      const reason = 'IKE_SA_INIT from an address that is no peer';
      await waitFor(() => (dropsSince(before)[reason] ?? 0) >= 2 * socks.length, 'the strangers dropped', 10_000, 20);
      await sleep(GRACE_MS);
      expect(dropsSince(before)).toEqual({ [reason]: 2 * socks.length });
      expect(relay.inbox.slice(mark)).toEqual([]);
      expect(ike(p.A)).toMatchObject({ halfOpen: before.halfOpen, sessions: before.sessions });
    }, 30_000);

    for (const c of cookieCases) it(c.name, () => run(c));
  });

  // ---- 3. A legitimate initiator gets through ------------------------------------------------

  describe('3. a legitimate initiator during the flood', () => {
    it('answers the COOKIE and establishes its IKE SA and Child SA (lib/ike IkeSession as peer c)', async () => {
      expect(ike(p.A).halfOpen).toBeGreaterThanOrEqual(COOKIE_THRESHOLD);
      const mark = relay.inbox.length;
      relay.on((d) => {
        if (d.socket !== sock500 && d.socket !== sock4500) return;
        let data = d.data;
        const localPort = d.socket === sock500 ? IKE_PORT : NATT_PORT;
        if (localPort === NATT_PORT) {
          if (data.length < 4 || data.readUInt32BE(0) !== 0) return;
          data = data.subarray(4);
        }
        const m = decodeMessage(data);
        if (!m.ok) return;
        session.receive(data, { header: m.value.header, payloads: m.value.payloads }, m.value.sk ? m.value : null, { address: d.address, port: d.port }, localPort);
      });
      session = new IkeSession('initiator', {
        local: { address: C, port: IKE_PORT },
        remote: { address: A(), port: IKE_PORT },
        natPort: NATT_PORT,
        auth: { method: 'psk', psk: Buffer.from(PSK_C) },
        localId: parseIdentity(C),
        remoteId: null,
        ikeProposals: defaultProposals(PROTOCOL_IKE),
        espProposals: defaultProposals(PROTOCOL_ESP),
        localTs: selectorsFromCidrs([`${overlayAddress(3)}/32`]),
        remoteTs: selectorsFromCidrs([`${overlayAddress(1)}/32`]),
        timing: { childRekeyMs: 3_600_000, childLifetimeMs: 4_000_000, ikeRekeyMs: 14_400_000, dpdMs: 0, retransmitTimeoutMs: 500, retransmitTries: 4 },
        allocateSpi: () => (randomBytes(4).readUInt32BE(0) | 0x100) >>> 0,
        send: (data, to, fromPort) => {
          sessionSent.push(data);
          relay.send(fromPort === NATT_PORT ? sock4500 : sock500, to.address, to.port, fromPort === NATT_PORT ? Buffer.concat([NON_ESP_MARKER, data]) : data);
        },
      });
      const log: unknown[] = [];
      session.on('log', (l) => log.push(l));
      const up = new Promise<void>((resolve, reject) => {
        session.once('childUp', () => resolve());
        session.once('closed', (reason) => reject(new Error(`the session closed: ${reason}; log: ${JSON.stringify(log)}`)));
      });
      session.start();
      await up;
      // It was asked for a COOKIE first, and the retry carried it.
      const first = relay.received(sock500, mark)[0];
      const m = decodeMessage(first!.data);
      expect(m.ok && m.value.payloads[0]).toMatchObject({ type: 'notify', notifyType: NotifyType.COOKIE });
      const retry = decodeMessage(sessionSent[1]!);
      expect(retry.ok && retry.value.payloads[0]).toMatchObject({ type: 'notify', notifyType: NotifyType.COOKIE });
      expect(session.state).toBe('established');
      await waitFor(() => ikeSaOf(p.A, 'c').state === 'established' && !!ikeSaOf(p.A, 'c').child, "A's IKE SA with c");
      expect(ikeSaOf(p.A, 'c').child).toEqual({ inboundSpi: session.child!.outboundSpi, outboundSpi: session.child!.inboundSpi });
      authResponse = relay.received(sock4500, mark).map((d) => d.data.subarray(4)).find((b) => {
        const h = decodeMessage(b);
        return h.ok && h.value.header.exchange === Exchange.IKE_AUTH && h.value.header.response;
      })!;
      expect(authResponse).toBeDefined();
      spis = session.spis!;
      const keys = derived.get(`${spis.initiator.toString('hex')}/${spis.responder.toString('hex')}`);
      if (!keys) throw new Error('the session derived no keys for its SPIs');
      const suite = session.suite!;
      // The test seals with the initiator's keys, IVs far from the session's own counter (a GCM
      // nonce never repeats under one key, even in a test).
      toA = createSkCipher(suite, keys.skEi, keys.skAi, { firstIv: 1n << 40n });
      fromA = createSkCipher(suite, keys.skEr, keys.skAr);
      reflected = createSkCipher(suite, keys.skEr, keys.skAr, { firstIv: 1n << 41n });
      // b's, c's, and the half-open ones (the threshold's, and the flooder's that returned its COOKIE).
      expect(ike(p.A).sessions).toBe(2 + COOKIE_THRESHOLD + 1);
    }, 30_000);
  });

  // ---- 4. Inside the IKE SA -------------------------------------------------------------------

  function inSa(o: { id: number; exchange?: number; payloads?: Payload[]; response?: boolean; initiator?: boolean; spiI?: Buffer; spiR?: Buffer; cipher?: SkCipher }): Buffer {
    return sealMessage(saHeader(o), o.payloads ?? [], o.cipher ?? toA);
  }

  function saHeader(o: { id: number; exchange?: number; response?: boolean; initiator?: boolean; spiI?: Buffer; spiR?: Buffer }): Header {
    return {
      initiatorSpi: o.spiI ?? spis.initiator,
      responderSpi: o.spiR ?? spis.responder,
      version: 0x20,
      exchange: o.exchange ?? Exchange.INFORMATIONAL,
      initiator: o.initiator ?? true,
      response: o.response ?? false,
      messageId: o.id,
    };
  }

  const viaSa = (data: () => Buffer, port: Shot['port'] = NATT_PORT) => (): Shot => ({ socket: port === NATT_PORT ? sock4500 : sock500, port, data: data() });
  const sent = (exchange: number, i = 0): Buffer => sessionSent.filter((b) => header(b).exchange === exchange)[i]!;
  const noPayloads = (x: Payload[]) => expect(x).toEqual([]);
  const onlyNotify = (type: number, data = Buffer.alloc(0)) => (x: Payload[]) => expect(x).toEqual([{ type: 'notify', critical: false, protocol: 0, spi: Buffer.alloc(0), notifyType: type, data }]);
  const childOfC = () => ikeSaOf(p.A, 'c').child;
  /** The SPI peer b's Child SA is known by to its sender (A's outbound SPI: what a Delete or REKEY_SA names). */
  const spiOfB = () => {
    const spi = Buffer.alloc(4);
    spi.writeUInt32BE(start.a.child!.outboundSpi);
    return spi;
  };
  let cChild: ReturnType<typeof childOfC>;
  let livenessRequest: Buffer;
  /** A's IKE_AUTH response to the test's session, as it came. */
  let authResponse: Buffer;
  let livenessResponse: Buffer;

  const inside: Case[] = [
    {
      name: "a replay of the initiator's IKE_SA_INIT, byte for byte, after IKE_AUTH: ignored (§2.1)",
      shot: viaSa(() => sent(Exchange.IKE_SA_INIT, 1), IKE_PORT),
      expect: { kind: 'drop', reason: 'unexpected IKE_SA_INIT' },
    },
    {
      name: 'a retransmitted IKE_AUTH request: the cached response, no second Child SA',
      shot: () => {
        cChild = childOfC();
        return viaSa(() => sent(Exchange.IKE_AUTH))();
      },
      expect: { kind: 'cached', bytes: () => authResponse },
      after: () => expect(childOfC()).toEqual(cChild),
    },
    {
      name: 'a forged ICV (the last byte flipped)',
      shot: viaSa(() => {
        const m = inSa({ id: 2 });
        m[m.length - 1]! ^= 1;
        return m;
      }),
      expect: { kind: 'drop', reason: SkReason.integrity },
    },
    { name: "sealed with A's own keys (a reflection)", shot: viaSa(() => inSa({ id: 2, cipher: reflected })), expect: { kind: 'drop', reason: SkReason.integrity } },
    {
      name: 'an SK payload shorter than IV and ICV',
      shot: viaSa(() => rawMessage(saHeader({ id: 2 }), PayloadType.SK, rawPayloads([{ type: PayloadType.SK, body: randomBytes(10) }]).bytes)),
      expect: { kind: 'drop', reason: SkReason.tooShort },
    },
    { name: 'a wrong responder SPI', shot: viaSa(() => inSa({ id: 2, spiR: randomBytes(8) })), expect: { kind: 'drop', reason: 'unknown IKE SPI' } },
    { name: 'the right responder SPI with a wrong initiator SPI', shot: viaSa(() => inSa({ id: 2, spiI: randomBytes(8) })), expect: { kind: 'drop', reason: 'unknown IKE SPI' } },
    { name: 'the I flag cleared (posing as the responder)', shot: viaSa(() => inSa({ id: 2, initiator: false })), expect: { kind: 'drop', reason: 'unknown IKE SPI' } },
    {
      name: "an unprotected INFORMATIONAL with the SA's SPIs",
      shot: viaSa(() => encodeMessage(saHeader({ id: 2 }), [{ type: 'delete', critical: false, protocol: ProtocolId.IKE, spis: [] }])),
      expect: { kind: 'drop', reason: 'unprotected message after IKE_SA_INIT' },
    },
    {
      name: 'a response to a request A never sent (valid ICV): nothing back',
      shot: viaSa(() => inSa({ id: 0, response: true })),
      expect: { kind: 'drop', reason: 'response to no request of ours' },
    },
    {
      name: 'a liveness check (empty INFORMATIONAL, ID 2): answered',
      shot: viaSa(() => (livenessRequest = inSa({ id: 2 }))),
      expect: { kind: 'sealed', id: 2, payloads: noPayloads },
      after: () => {
        livenessResponse = unwrap(relay.received(sock4500).at(-1)!);
      },
    },
    { name: 'the same request again (a retransmission): the same response bytes (§2.1)', shot: viaSa(() => livenessRequest), expect: { kind: 'cached', bytes: () => livenessResponse } },
    { name: 'the IKE_AUTH request again, now below the window', shot: viaSa(() => sent(Exchange.IKE_AUTH)), expect: { kind: 'drop', reason: 'message ID outside the window' } },
    { name: 'a message ID ahead of the window (ID 40)', shot: viaSa(() => inSa({ id: 40 })), expect: { kind: 'drop', reason: 'message ID outside the window' } },
    { name: 'message ID 0xffffffff', shot: viaSa(() => inSa({ id: 0xffffffff })), expect: { kind: 'drop', reason: 'message ID outside the window' } },
    {
      name: 'an unknown critical payload inside SK (ID 3): UNSUPPORTED_CRITICAL_PAYLOAD (§2.5)',
      shot: viaSa(() => inSa({ id: 3, payloads: [{ type: 'unknown', critical: true, payloadType: UNKNOWN_TYPE, data: randomBytes(8) }] })),
      expect: { kind: 'sealed', id: 3, payloads: onlyNotify(NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, Buffer.from([UNKNOWN_TYPE])) },
    },
    {
      name: 'an unknown payload without the critical bit inside SK (ID 4): skipped, answered',
      shot: viaSa(() => inSa({ id: 4, payloads: [{ type: 'unknown', critical: false, payloadType: UNKNOWN_TYPE, data: randomBytes(8) }] })),
      expect: { kind: 'sealed', id: 4, payloads: noPayloads },
    },
    {
      name: 'authentic, but a Payload Length inside SK lies (ID 5): INVALID_SYNTAX (§3.10.1)',
      shot: viaSa(() => {
        const chain = rawPayloads([raw(PayloadType.Delete, { type: 'delete', critical: false, protocol: ProtocolId.ESP, spis: [randomBytes(4)] }, { length: 40 })]);
        return sealRaw(saHeader({ id: 5 }), chain.first, chain.bytes, toA);
      }),
      expect: { kind: 'sealed', id: 5, payloads: onlyNotify(NotifyType.INVALID_SYNTAX) },
    },
    {
      name: 'CREATE_CHILD_SA without an SA payload (ID 6): INVALID_SYNTAX',
      shot: viaSa(() => inSa({ id: 6, exchange: Exchange.CREATE_CHILD_SA, payloads: [{ type: 'nonce', critical: false, data: randomBytes(32) }] })),
      expect: { kind: 'sealed', id: 6, exchange: Exchange.CREATE_CHILD_SA, payloads: onlyNotify(NotifyType.INVALID_SYNTAX) },
    },
    {
      name: "CREATE_CHILD_SA rekeying peer b's Child SA (its SPI, ID 7): CHILD_SA_NOT_FOUND, b's untouched",
      shot: viaSa(() => inSa({ id: 7, exchange: Exchange.CREATE_CHILD_SA, payloads: childRequest(spiOfB()) })),
      expect: {
        kind: 'sealed',
        id: 7,
        exchange: Exchange.CREATE_CHILD_SA,
        payloads: (x) => expect(x).toEqual([{ type: 'notify', critical: false, protocol: ProtocolId.ESP, spi: spiOfB(), notifyType: NotifyType.CHILD_SA_NOT_FOUND, data: Buffer.alloc(0) }]),
      },
      after: () => expect(ikeSaOf(p.A, 'b')).toEqual(start.a),
    },
    {
      name: 'CREATE_CHILD_SA for a second Child SA (ID 8): NO_ADDITIONAL_SAS',
      shot: viaSa(() => inSa({ id: 8, exchange: Exchange.CREATE_CHILD_SA, payloads: childRequest(null) })),
      expect: { kind: 'sealed', id: 8, exchange: Exchange.CREATE_CHILD_SA, payloads: onlyNotify(NotifyType.NO_ADDITIONAL_SAS) },
      after: () => expect(childOfC()).toEqual(cChild),
    },
    {
      name: 'IKE_AUTH again inside the established SA (ID 9): INVALID_SYNTAX',
      shot: viaSa(() => inSa({ id: 9, exchange: Exchange.IKE_AUTH, payloads: [{ type: 'idi', critical: false, idType: 1, data: Buffer.from([198, 18, 0, 3]) }, { type: 'auth', critical: false, method: 2, data: randomBytes(32) }] })),
      expect: { kind: 'sealed', id: 9, exchange: Exchange.IKE_AUTH, payloads: onlyNotify(NotifyType.INVALID_SYNTAX) },
    },
    {
      name: 'a Delete of an ESP SPI A never gave out (ID 10): an empty answer, nothing deleted',
      shot: viaSa(() => inSa({ id: 10, payloads: [{ type: 'delete', critical: false, protocol: ProtocolId.ESP, spis: [Buffer.from([0, 0, 0x12, 0x34])] }] })),
      expect: { kind: 'sealed', id: 10, payloads: noPayloads },
      after: () => expect(childOfC()).toEqual(cChild),
    },
    {
      name: "a Delete naming peer b's Child SA (its SPI, ID 11): an empty answer, b's untouched",
      shot: viaSa(() => inSa({ id: 11, payloads: [{ type: 'delete', critical: false, protocol: ProtocolId.ESP, spis: [spiOfB()] }] })),
      expect: { kind: 'sealed', id: 11, payloads: noPayloads },
      after: () => {
        expect(ikeSaOf(p.A, 'b')).toEqual(start.a);
        expect(childOfC()).toEqual(cChild);
      },
    },
    { name: 'an unknown exchange type (99, ID 12): dropped, the ID stays free', shot: viaSa(() => inSa({ id: 12, exchange: 99 })), expect: { kind: 'drop', reason: 'unknown exchange type' } },
    { name: 'a request on 500 instead of 4500 (ID 12): answered from 500', shot: viaSa(() => inSa({ id: 12 }), IKE_PORT), expect: { kind: 'sealed', id: 12, payloads: noPayloads } },
    {
      name: 'the peer deletes its IKE SA (ID 13): answered, the SA and its Child SA go',
      shot: viaSa(() => inSa({ id: 13, payloads: [{ type: 'delete', critical: false, protocol: ProtocolId.IKE, spis: [] }] })),
      expect: { kind: 'sealed', id: 13, payloads: noPayloads },
      after: async () => {
        // (Half-open SAs from c's address may still show as "connecting" until they time out.)
        await waitFor(() => ikeSaOf(p.A, 'c').state !== 'established' && !ikeSaOf(p.A, 'c').child, "A's IKE SA with c gone");
      },
    },
  ];

  function childRequest(rekeySpi: Buffer | null): Payload[] {
    const esp = defaultProposals(PROTOCOL_ESP).map((x) => ({ ...x, spi: randomBytes(4) }));
    return [
      ...(rekeySpi ? [{ type: 'notify' as const, critical: false, protocol: ProtocolId.ESP, spi: rekeySpi, notifyType: NotifyType.REKEY_SA, data: Buffer.alloc(0) }] : []),
      { type: 'sa', critical: false, proposals: esp },
      { type: 'nonce', critical: false, data: randomBytes(32) },
      { type: 'tsi', critical: false, selectors: selectorsFromCidrs([`${overlayAddress(3)}/32`]) },
      { type: 'tsr', critical: false, selectors: selectorsFromCidrs([`${overlayAddress(1)}/32`]) },
    ];
  }

  describe('4. attacks inside an IKE SA whose keys the attacker holds', () => {
    for (const c of inside) it(c.name, () => run(c));
  });

  // ---- After the barrage ----------------------------------------------------------------------

  describe('5. after the barrage', () => {
    it('the SA between A and B is the one from before and carries pings without a drop; nothing stalled, nothing piled up', async () => {
      expect(ikeSaOf(p.A, 'b')).toEqual(start.a);
      expect(ikeSaOf(p.B, 'a')).toEqual(start.b);
      await pingsBothWays(lab, p, false);
      // The ping that ran through everything.
      await background.stop(3000, 'SIGINT');
      const summary = /(\d+) packets transmitted, (\d+) received/.exec(background.stdout);
      expect(summary, background.stdout).not.toBeNull();
      const [transmitted, received] = [Number(summary![1]), Number(summary![2])];
      console.log(`[ike-hostile] background ping: ${received}/${transmitted}; event loop delay p99 ${(lag.percentile(99) / 1e6).toFixed(1)} ms, max ${(lag.max / 1e6).toFixed(1)} ms; half-open at most ${maxHalfOpen}, sessions at most ${maxSessions}`);
      expect(transmitted).toBeGreaterThan(50);
      expect(received).toBeGreaterThanOrEqual(transmitted - 1);
      // ESP between A and B: not one drop on either side over the whole test.
      expect(movedDrops(delta(peerCounters(p.A.stats(), 'b'), peerCounters(start.statsA, 'b')))).toEqual({});
      expect(movedDrops(delta(peerCounters(p.B.stats(), 'a'), peerCounters(start.statsB, 'a')))).toEqual({});
      expect(delta(p.A.stats().totals, start.statsA.totals).drops.controlQueueFull).toBe(0);
      expect(p.A.healthy && p.B.healthy).toBe(true);
      // Never held up: no callback ran long enough to delay a 10 ms timer by a second.
      expect(lag.max / 1e6).toBeLessThan(1000);
      expect(lag.percentile(99) / 1e6).toBeLessThan(250);
      // Bounded: never more half-open SAs than the threshold, plus the two that came with a valid
      // COOKIE (the flooder's, and the legitimate initiator's until its IKE_AUTH); and all go again.
      expect(maxHalfOpen).toBeLessThanOrEqual(COOKIE_THRESHOLD + 2);
      expect(maxSessions).toBeLessThanOrEqual(2 + COOKIE_THRESHOLD + 1);
      await waitFor(() => ike(p.A).halfOpen === 0, 'the half-open SAs gone', HALF_OPEN_MS + 5000, 100);
      expect(ike(p.A).sessions).toBe(1);
      expect(ike(p.B)).toMatchObject({ sessions: 1, halfOpen: 0 });
      // The drop counters are keyed by fixed reasons: a few dozen at most, whatever was sent.
      // A counted only what the rows name, each under its fixed reason (a counter key never carries what a peer sent).
      console.log(`[ike-hostile] A's IKE drops: ${JSON.stringify(ike(p.A).drops)}`);
      const named = [...unprotected, ...cookieCases, ...inside].flatMap((c) => (c.expect.kind === 'drop' ? [c.expect.reason] : c.expect.kind === 'notify' && c.expect.counted ? [c.expect.counted] : []));
      expect(new Set(Object.keys(ike(p.A).drops))).toEqual(new Set([...named, COOKIE_DROP, 'IKE_SA_INIT from an address that is no peer']));
      expect(unprotected.length + cookieCases.length + inside.length + 3).toBeGreaterThanOrEqual(30);
    }, 60_000);
  });
});

function notify(notifyType: number, data: Buffer = Buffer.alloc(0)): Payload {
  return { type: 'notify', critical: false, protocol: 0, spi: Buffer.alloc(0), notifyType, data };
}
