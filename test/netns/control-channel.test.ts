// The native control channel of the esp mode, IKE's way in and out (IKE itself is TypeScript):
// two ESP hosts in network namespaces with manual SAs, A's forwarder with its control channel
// open (openControl, ikePort 500), datagrams crafted on B by python3.
//
// 1. IKE behind the non-ESP marker on A:4500, from B's address (a peer) and from an address that
//    is no peer (a responder hears new initiators): passed up with the marker stripped, localPort
//    4500 and the sender's address and port; the reply sent with sendControl(4500, ...) reaches B
//    from port 4500 with the marker in front.
// 2. IKE on A:500: passed up with localPort 500; the reply comes from 500, without a marker.
// 3. NAT keepalives (one byte 0xFF) on 4500: counted (natKeepalives), nothing passed up or dropped.
// 4. A marked datagram too short for an IKE header, and a runt on 500: malformed, not passed up.
// 5. A burst of 5000 IKE datagrams while ping crosses the overlay: every ping answered, every
//    datagram passed up or counted controlQueueFull (the two add up to what was sent), the event
//    loop responsive; with the JavaScript thread held, the queue overflows and the rest is counted.
//    A UDP_SEGMENT train of IKE, ESP, IKE and a keepalive (one GRO batch on A's socket) is
//    classified datagram by datagram, from a peer and from a stranger.
// 6. The netns option: the IKE socket is in A's namespace, held by this process; a held port fails
//    at bind with a Node-shaped EADDRINUSE; a second openControl is ERR_INVALID_STATE; after
//    closeControl port 500 is closed and IKE on 4500 is dropped as before the channel (unknownSpi
//    from a peer, unknownPeer from a stranger), keepalives still counted.
// Then an IPv6 underlay (4500 and 500), and ESP on IP protocol 50 (IKE on 500 only).
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Lab, overlayAddress } from '../../lab';
import type { NativeControlDatagram, NativeForwarder } from '../../lib/native';
import type { ControlStats, OverlayStats } from '../../lib/types';
import { describeNetns, sleep, waitFor } from '../helpers/env';
import { espPacket, randomSaKey, type EspSa } from '../helpers/esp';
import { delta } from '../helpers/overlay';
import { movedDrops, overlayPair, UNDERLAY6, type Pair } from '../helpers/pair';
import { ipv4Echo } from '../helpers/raw-ip';
import { exchangeDatagram, sendDatagrams } from '../helpers/udp';

const ESP_PORT = 4500;
const IKE_PORT = 500;
const MARKER = Buffer.alloc(4);
const REPLY = Buffer.from('reply:');

/** A fake IKE message: an IKE_SA_INIT request header (RFC 7296 §3.1) and `body` bytes after it. */
function ikeMessage(body = 8, messageId = 0): Buffer {
  const m = Buffer.alloc(28 + body, 0x5a);
  crypto.randomBytes(8).copy(m, 0); // initiator SPI
  m.fill(0, 8, 16); // responder SPI
  m[16] = 33; // next payload: SA
  m[17] = 0x20; // version 2.0
  m[18] = 34; // IKE_SA_INIT
  m[19] = 0x08; // initiator
  m.writeUInt32BE(messageId, 20);
  m.writeUInt32BE(m.length, 24);
  return m;
}

async function espPair(lab: Lab, family: 4 | 6, udp: boolean): Promise<Pair> {
  const ab = { spi: 0x1001, key: randomSaKey('aes-256-gcm') };
  const ba = { spi: 0x2001, key: randomSaKey('aes-256-gcm') };
  return overlayPair(lab, {
    device: 'tun',
    encap: { type: 'esp', cipher: 'aes-256-gcm', udp },
    family,
    peerFields: (self) => ({ sa: self === 1 ? { out: ab, in: ba } : { out: ba, in: ab } }),
  });
}

/** One UDP_SEGMENT train from `src`: the kernel hands it to A's GRO-enabled socket as one batch. */
const PY_TRAIN = String.raw`
import json, socket, sys
spec = json.loads(sys.argv[1])
segments = [bytes.fromhex(h) for h in spec['segments']]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((spec['src'], 0))
s.setsockopt(socket.SOL_UDP, 103, len(segments[0]))  # UDP_SEGMENT
s.sendto(b''.join(segments), (spec['dst'], spec['port']))
print(s.getsockname()[1], flush=True)
`;

function controlDelta(after: OverlayStats, before: OverlayStats): ControlStats {
  return {
    natKeepalives: after.control.natKeepalives - before.control.natKeepalives,
    controlRx: after.control.controlRx - before.control.controlRx,
    controlTx: after.control.controlTx - before.control.controlTx,
  };
}

/** A's control channel: what it passed up, and what the test answers with. */
class Responder {
  readonly inbox: NativeControlDatagram[] = [];
  /** Called for each datagram after it is recorded; default: echo it back behind REPLY. */
  answer: ((d: NativeControlDatagram) => void) | null;

  constructor(readonly forwarder: NativeForwarder) {
    this.answer = (d) => forwarder.sendControl(d.localPort, d.address, d.port, Buffer.concat([REPLY, d.data]));
  }

  open(ikePort: number): void {
    this.forwarder.openControl({
      ikePort,
      onDatagram: (d) => {
        this.inbox.push(d);
        this.answer?.(d);
      },
    });
  }
}

function caught(fn: () => void): Record<string, unknown> {
  try {
    fn();
  } catch (err) {
    return err as Record<string, unknown>;
  }
  throw new Error('did not throw');
}

describeNetns('IKE control channel of the esp mode (ESP in UDP, IPv4 underlay)', { tools: ['ping', 'python3', 'ss'] }, () => {
  let lab: Lab;
  let p: Pair;
  let stranger: string;
  let responder: Responder;

  beforeAll(async () => {
    lab = await Lab.create();
    p = await espPair(lab, 4, true);
    // An address of B's namespace that is no peer of A.
    stranger = p.b.underlay.replace(/\.\d+$/, '.99');
    await lab.ip(p.b, ['addr', 'add', `${stranger}/${p.b.links[0]!.prefixLength}`, 'dev', p.b.underlayDev]);
    responder = new Responder(p.A.nativeForwarder());
    responder.open(IKE_PORT);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('passes IKE on 4500 up with the marker stripped, from a peer and from a stranger; the reply leaves 4500 with the marker', async () => {
    for (const src of [p.underlayB, stranger]) {
      responder.inbox.length = 0;
      const before = p.A.stats();
      const message = ikeMessage(40);
      const r = await exchangeDatagram(lab, p.b, { src, dst: p.underlayA, port: ESP_PORT, payload: Buffer.concat([MARKER, message]) });
      expect(responder.inbox, `from ${src}`).toEqual([{ localPort: ESP_PORT, address: src, port: r.port, data: message }]);
      expect(r.replies).toEqual([{ address: p.underlayA, port: ESP_PORT, data: Buffer.concat([MARKER, REPLY, message]) }]);
      const after = p.A.stats();
      expect(controlDelta(after, before)).toEqual({ natKeepalives: 0, controlRx: 1, controlTx: 1 });
      expect(movedDrops(delta(after.totals, before.totals))).toEqual({});
    }
  });

  it('passes IKE on 500 up with localPort 500; the reply comes from 500 without a marker', async () => {
    for (const src of [p.underlayB, stranger]) {
      responder.inbox.length = 0;
      const before = p.A.stats();
      const message = ikeMessage(300, 7);
      const r = await exchangeDatagram(lab, p.b, { src, dst: p.underlayA, port: IKE_PORT, payload: message });
      expect(responder.inbox, `from ${src}`).toEqual([{ localPort: IKE_PORT, address: src, port: r.port, data: message }]);
      expect(r.replies).toEqual([{ address: p.underlayA, port: IKE_PORT, data: Buffer.concat([REPLY, message]) }]);
      const after = p.A.stats();
      expect(controlDelta(after, before)).toEqual({ natKeepalives: 0, controlRx: 1, controlTx: 1 });
      expect(movedDrops(delta(after.totals, before.totals))).toEqual({});
    }
  });

  it('counts NAT keepalives on 4500 and passes nothing up', async () => {
    responder.inbox.length = 0;
    const before = p.A.stats();
    const keepalive = Buffer.from([0xff]);
    await sendDatagrams(lab, p.b, p.underlayA, ESP_PORT, [{ src: p.underlayB, payload: keepalive, count: 2 }, { src: stranger, payload: keepalive }]);
    await waitFor(() => controlDelta(p.A.stats(), before).natKeepalives >= 3, 'three keepalives counted', 3000).catch(() => undefined);
    await sleep(100);
    const after = p.A.stats();
    expect(controlDelta(after, before)).toEqual({ natKeepalives: 3, controlRx: 0, controlTx: 0 });
    expect(movedDrops(delta(after.totals, before.totals))).toEqual({});
    expect(responder.inbox).toEqual([]);
  });

  it('drops marked datagrams too short for an IKE header, and runts on 500, as malformed', async () => {
    responder.inbox.length = 0;
    const before = p.A.stats();
    const short = Buffer.concat([MARKER, ikeMessage(0).subarray(0, 27)]);
    await sendDatagrams(lab, p.b, p.underlayA, ESP_PORT, [{ src: p.underlayB, payload: short }, { src: stranger, payload: MARKER }]);
    await sendDatagrams(lab, p.b, p.underlayA, IKE_PORT, [{ src: p.underlayB, payload: ikeMessage(0).subarray(0, 27) }]);
    await waitFor(() => delta(p.A.stats().totals, before.totals).drops.malformed >= 3, 'three malformed drops', 3000).catch(() => undefined);
    await sleep(100);
    const after = p.A.stats();
    expect(movedDrops(delta(after.totals, before.totals))).toEqual({ malformed: 3 });
    expect(controlDelta(after, before)).toEqual({ natKeepalives: 0, controlRx: 0, controlTx: 0 });
    expect(responder.inbox).toEqual([]);
  });

  it('takes a burst of 5000 IKE datagrams while ping crosses the overlay: ping unharmed, each passed up or counted, the event loop responsive', async () => {
    responder.inbox.length = 0;
    responder.answer = null;
    const sent = 5000;
    const before = p.A.stats();
    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    const [count, ping] = await Promise.all([
      sendDatagrams(lab, p.b, p.underlayA, ESP_PORT, [{ src: p.underlayB, payload: Buffer.concat([MARKER, ikeMessage(100)]), count: sent }], { burst: 50, pause: 0.01 }),
      lab.ping(p.a, overlayAddress(2), { count: 20, intervalSec: 0.05 }),
    ]);
    const passedOrFull = () => {
      const d = delta(p.A.stats().totals, before.totals);
      return controlDelta(p.A.stats(), before).controlRx + d.drops.controlQueueFull;
    };
    await waitFor(() => passedOrFull() >= sent, 'every datagram passed up or counted', 10_000).catch(() => undefined);
    const rx = controlDelta(p.A.stats(), before).controlRx;
    await waitFor(() => responder.inbox.length >= rx, 'JavaScript to drain the queue', 10_000).catch(() => undefined);
    lag.disable();
    const after = p.A.stats();
    const d = delta(after.totals, before.totals);
    const gro = after.offloads.rxGroSegments - before.offloads.rxGroSegments;
    console.log(
      `[control burst] ${sent} sent: ${rx} passed up, ${d.drops.controlQueueFull} controlQueueFull; ping ${ping.received}/${ping.transmitted}; ${gro} datagrams arrived in GRO batches; event-loop delay max ${(lag.max / 1e6).toFixed(1)} ms, p99 ${(lag.percentile(99) / 1e6).toFixed(1)} ms`,
    );
    expect(count).toBe(sent);
    expect(ping.received).toBe(ping.transmitted);
    expect(rx + d.drops.controlQueueFull).toBe(sent);
    expect(responder.inbox.length).toBe(rx);
    const { controlQueueFull: _full, ...others } = movedDrops(d);
    expect(others).toEqual({});
    expect(lag.max / 1e6).toBeLessThan(250);
    // ESP both ways still, afterwards.
    expect((await lab.ping(p.b, overlayAddress(1), { count: 3, intervalSec: 0.05 })).received).toBe(3);
  });

  it('counts what finds the queue full while the JavaScript thread is held, and delivers the rest', async () => {
    responder.inbox.length = 0;
    let held = false;
    responder.answer = () => {
      if (held) return;
      held = true;
      const until = Date.now() + 1500;
      while (Date.now() < until) {
        // The JavaScript thread does not drain the queue meanwhile.
      }
    };
    const sent = 3000;
    const before = p.A.stats();
    // From the peer: a stranger's datagrams wait in the stranger socket, which one worker reads a
    // batch a millisecond, and what overflows that socket's small buffer the kernel drops (counted
    // as unknownPeer). This test is about the control queue, which is behind both.
    const burst = sendDatagrams(lab, p.b, p.underlayA, ESP_PORT, [{ src: p.underlayB, payload: Buffer.concat([MARKER, ikeMessage(100)]), count: sent }], { burst: 100, pause: 0.001 });
    expect(await burst).toBe(sent);
    const full = () => delta(p.A.stats().totals, before.totals).drops.controlQueueFull;
    await waitFor(() => controlDelta(p.A.stats(), before).controlRx + full() >= sent, 'every datagram passed up or counted', 10_000).catch(() => undefined);
    const rx = controlDelta(p.A.stats(), before).controlRx;
    await waitFor(() => responder.inbox.length >= rx, 'JavaScript to drain the queue', 10_000).catch(() => undefined);
    responder.answer = null;
    console.log(`[control queue full] ${sent} sent while held: ${rx} passed up, ${full()} controlQueueFull`);
    expect(held).toBe(true);
    expect(rx + full()).toBe(sent);
    expect(full()).toBeGreaterThan(0);
    expect(rx).toBeGreaterThanOrEqual(1024); // the queue's depth at least
    expect(responder.inbox.length).toBe(rx);
    const { controlQueueFull: _full, ...others } = movedDrops(delta(p.A.stats().totals, before.totals));
    expect(others).toEqual({});
  });

  it('classifies each datagram of a GRO batch on its own: IKE, ESP and a keepalive in one train, from a peer and from a stranger', async () => {
    responder.inbox.length = 0;
    responder.answer = null;
    // ESP from B, sealed with an inbound SA of its own (B's traffic keeps its SA and replay
    // window), and IKE of the same size; a keepalive last (a train's last datagram may be shorter).
    const extra: EspSa = { spi: 0x2002, key: randomSaKey('aes-256-gcm') };
    p.A.peers.rekey('b', { in: extra }, { graceSeconds: 3600 });
    const esp = espPacket({ cipher: 'aes-256-gcm', sa: extra, sequence: 1, nextHeader: 4, payload: ipv4Echo(overlayAddress(2), overlayAddress(1), { seq: 77 }) });
    const ike = () => Buffer.concat([MARKER, ikeMessage(esp.length - 4 - 28)]);
    const trains: Array<{ src: string; segments: Buffer[] }> = [
      { src: p.underlayB, segments: [ike(), esp, ike(), Buffer.from([0xff])] },
      { src: stranger, segments: [ike(), esp, ike(), Buffer.from([0xff])] },
    ];
    const before = p.A.stats();
    for (const train of trains) {
      const spec = JSON.stringify({ src: train.src, dst: p.underlayA, port: ESP_PORT, segments: train.segments.map((x) => x.toString('hex')) });
      await lab.exec(p.b, 'python3', ['-c', PY_TRAIN, spec]);
    }
    await waitFor(() => responder.inbox.length >= 4, 'four IKE datagrams passed up', 3000).catch(() => undefined);
    await sleep(100);
    const after = p.A.stats();
    const d = delta(after.totals, before.totals);
    // The GRO counters count a peer's batches only (a stranger's is dropped or passed up, segment
    // by segment, before they are counted): B's train arrived as one batch of four.
    const batches = { receives: after.offloads.rxGroReceives - before.offloads.rxGroReceives, segments: after.offloads.rxGroSegments - before.offloads.rxGroSegments };
    console.log(`[control GRO] B's train: ${batches.receives} GRO batch of ${batches.segments} datagrams (udpGro ${after.offloads.active.udpGro})`);
    if (after.offloads.active.udpGro) expect(batches).toEqual({ receives: 1, segments: 4 });
    expect(responder.inbox.map((x) => [x.address, x.data.length])).toEqual([
      [p.underlayB, esp.length - 4],
      [p.underlayB, esp.length - 4],
      [stranger, esp.length - 4],
      [stranger, esp.length - 4],
    ]);
    expect(controlDelta(after, before)).toEqual({ natKeepalives: 2, controlRx: 4, controlTx: 0 });
    // B's ESP packet delivered; the same packet from the stranger is no peer's.
    expect(d.rxPackets).toBe(1);
    expect(movedDrops(d)).toEqual({ unknownPeer: 1 });
  });

  it('opens the IKE socket inside the forwarder namespace (the netns option), held by this process', async () => {
    const { stdout } = await lab.exec(p.a, 'ss', ['-Hulnp', 'sport = :500']);
    expect(stdout).toContain(`${p.underlayA}:500`);
    expect(stdout).toContain(`pid=${process.pid},`);
    // Not in this process's own namespace.
    const own = execFileSync('ss', ['-Hulnp', 'sport = :500'], { encoding: 'utf8' });
    expect(own).not.toContain(`pid=${process.pid},`);
  });

  it('refuses a second openControl, a port without a socket and an address of the other family', () => {
    const forwarder = responder.forwarder;
    expect(caught(() => forwarder.openControl({ ikePort: IKE_PORT, onDatagram: () => undefined }))).toMatchObject({ code: 'ERR_INVALID_STATE' });
    expect(caught(() => forwarder.sendControl(4501, p.underlayB, 500, ikeMessage()))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    expect(caught(() => forwarder.sendControl(IKE_PORT, 'fd00::2', 500, ikeMessage()))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    expect(caught(() => forwarder.sendControl(IKE_PORT, 'not-an-address', 500, ikeMessage()))).toBeInstanceOf(TypeError);
  });

  it('fails with a Node-shaped EADDRINUSE when the IKE port is held, and opens once it is free', async () => {
    const holder = lab.spawn(p.b, 'python3', ['-c', `import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('${p.underlayB}', 500))\nprint('bound', flush=True)\ntime.sleep(60)`]);
    await holder.waitForOutput(/bound/, 10_000);
    const forwarder = p.B.nativeForwarder();
    const error = caught(() => forwarder.openControl({ ikePort: IKE_PORT, onDatagram: () => undefined }));
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({ code: 'EADDRINUSE', errno: -os.constants.errno.EADDRINUSE, syscall: 'bind' });
    expect(String(error['message'])).toContain(`${p.underlayB}:500`);
    await holder.stop(5000);
    // A failed open leaves the channel openable; B's stays open until the overlay closes.
    const inbox: NativeControlDatagram[] = [];
    forwarder.openControl({ ikePort: IKE_PORT, onDatagram: (d) => inbox.push(d) });
    const message = ikeMessage(12);
    await sendDatagrams(lab, p.a, p.underlayB, IKE_PORT, [{ src: p.underlayA, payload: message }]);
    await waitFor(() => inbox.length === 1, 'B to pass the datagram up', 3000);
    expect(inbox[0]).toMatchObject({ localPort: IKE_PORT, address: p.underlayA, data: message });
  });

  it('after closeControl: port 500 is closed, IKE on 4500 is dropped as before the channel, keepalives still counted', async () => {
    responder.inbox.length = 0;
    responder.forwarder.closeControl();
    responder.forwarder.closeControl(); // idempotent
    const { stdout } = await lab.exec(p.a, 'ss', ['-Hulnp', 'sport = :500']);
    expect(stdout.trim()).toBe('');
    const before = p.A.stats();
    const marked = Buffer.concat([MARKER, ikeMessage(40)]);
    await sendDatagrams(lab, p.b, p.underlayA, ESP_PORT, [
      { src: p.underlayB, payload: marked },
      { src: stranger, payload: marked },
      { src: p.underlayB, payload: Buffer.from([0xff]) },
    ]);
    await waitFor(() => Object.keys(movedDrops(delta(p.A.stats().totals, before.totals))).length >= 2, 'two drops', 3000).catch(() => undefined);
    await sleep(100);
    const after = p.A.stats();
    expect(movedDrops(delta(after.totals, before.totals))).toEqual({ unknownSpi: 1, unknownPeer: 1 });
    expect(controlDelta(after, before)).toEqual({ natKeepalives: 1, controlRx: 0, controlTx: 0 });
    expect(responder.inbox).toEqual([]);
    expect(caught(() => responder.forwarder.sendControl(ESP_PORT, p.underlayB, 4500, ikeMessage()))).toMatchObject({ code: 'ERR_INVALID_STATE' });
    expect(caught(() => responder.forwarder.openControl({ ikePort: 0, onDatagram: () => undefined }))).toMatchObject({ code: 'ERR_INVALID_STATE' });
    // ESP goes on.
    expect((await lab.ping(p.a, overlayAddress(2), { count: 3, intervalSec: 0.05 })).received).toBe(3);
  });
});

describeNetns('IKE control channel of the esp mode, IPv6 underlay', { tools: ['ping', 'python3'] }, () => {
  let lab: Lab;
  let p: Pair;
  let responder: Responder;

  beforeAll(async () => {
    lab = await Lab.create();
    p = await espPair(lab, 6, true);
    responder = new Responder(p.A.nativeForwarder());
    responder.open(IKE_PORT);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('passes IKE up from 4500 and 500 and answers from the same ports', async () => {
    for (const [port, prefix] of [[ESP_PORT, MARKER], [IKE_PORT, Buffer.alloc(0)]] as const) {
      responder.inbox.length = 0;
      const message = ikeMessage(64);
      const r = await exchangeDatagram(lab, p.b, { src: UNDERLAY6[1], dst: UNDERLAY6[0], port, payload: Buffer.concat([prefix, message]) });
      expect(responder.inbox).toEqual([{ localPort: port, address: UNDERLAY6[1], port: r.port, data: message }]);
      expect(r.replies).toEqual([{ address: UNDERLAY6[0], port, data: Buffer.concat([prefix, REPLY, message]) }]);
    }
    expect(caught(() => responder.forwarder.sendControl(IKE_PORT, p.b.underlay, 500, ikeMessage()))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    expect((await lab.ping(p.a, overlayAddress(2), { count: 3, intervalSec: 0.05 })).received).toBe(3);
  });
});

describeNetns('IKE control channel of the esp mode on IP protocol 50, IPv4 underlay', { tools: ['ping', 'python3'] }, () => {
  let lab: Lab;
  let p: Pair;
  let responder: Responder;

  beforeAll(async () => {
    lab = await Lab.create();
    p = await espPair(lab, 4, false);
    responder = new Responder(p.A.nativeForwarder());
    responder.open(IKE_PORT);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('has IKE on 500 only: passed up and answered there; no data-path port to send from', async () => {
    const message = ikeMessage(20);
    const r = await exchangeDatagram(lab, p.b, { src: p.underlayB, dst: p.underlayA, port: IKE_PORT, payload: message });
    expect(responder.inbox).toEqual([{ localPort: IKE_PORT, address: p.underlayB, port: r.port, data: message }]);
    expect(r.replies).toEqual([{ address: p.underlayA, port: IKE_PORT, data: Buffer.concat([REPLY, message]) }]);
    expect(caught(() => responder.forwarder.sendControl(ESP_PORT, p.underlayB, 4500, ikeMessage()))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    expect((await lab.ping(p.a, overlayAddress(2), { count: 3, intervalSec: 0.05 })).received).toBe(3);
  });
});
