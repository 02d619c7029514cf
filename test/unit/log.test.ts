// The structured logs of `overlayfwd up` without a data path: the logger factory (levels, the
// JSON shape, redaction), the pretty lines for a terminal, process warnings as lines, the
// overlay's events as lines (a pretend overlay), the start line's fields, and the peer diff
// behind tableChanged. No root, no addon.
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseConfig, publicPeer } from '../../lib/config';
import { componentLogger, createLogger, isLogLevel, type LogLevel } from '../../lib/log/logger';
import { logOverlay } from '../../lib/log/overlay-log';
import { formatPretty } from '../../lib/log/pretty';
import { routeProcessWarnings } from '../../lib/log/process-warnings';
import { startFields } from '../../lib/log/start-summary';
import type { Overlay } from '../../lib/overlay';
import { diffPeers } from '../../lib/peers';
import type { OverlayStats, ResolvedConfig } from '../../lib/types';
import { fakeDropStats, fakeOffloadStats } from '../helpers/fake-stats';

const KEY_OUT = 'a1'.repeat(36);
const KEY_IN = 'b2'.repeat(36);
const PSK = 'a-planted-pre-shared-key-0123456789';

/** A logger whose lines land in an array. */
function capture(level: LogLevel = 'debug', format: 'json' | 'pretty' = 'json') {
  const lines: string[] = [];
  const logger = createLogger({ instance: 'ovl0', level, format, destination: { write: (l) => void lines.push(l) } });
  return { logger, lines, records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

function espConfig(): ResolvedConfig {
  return parseConfig({
    name: 'esp0',
    device: { type: 'tun', addresses: ['198.19.0.1/24'] },
    encap: { type: 'esp', cipher: 'aes-256-gcm' },
    underlay: { local: '198.18.0.1' },
    ike: { auth: 'psk', psk: PSK },
    peers: [
      { name: 'b', endpoint: '198.18.0.2', allowedIps: ['198.19.0.2/32'], sa: { out: { spi: 0x1001, key: KEY_OUT }, in: { spi: 0x2001, key: KEY_IN } } },
      { name: 'c', endpoint: '198.18.0.3', allowedIps: ['198.19.0.3/32'], ike: {} },
    ],
  });
}

describe('createLogger', () => {
  it('writes one JSON object per line: level by name, ISO time, instance, component, the fields, msg', () => {
    const { logger, lines, records } = capture('info');
    componentLogger(logger, 'peers').info({ peer: 'b', generation: 3 }, 'peer table installed');
    expect(lines).toHaveLength(1);
    expect(lines[0]!.endsWith('\n')).toBe(true);
    const [r] = records();
    expect(r).toEqual({ level: 'info', time: expect.any(String), instance: 'ovl0', component: 'peers', peer: 'b', generation: 3, msg: 'peer table installed' });
    expect(new Date(String(r!['time'])).toISOString()).toBe(r!['time']);
  });

  it('keeps the lines at or above its level: warn by default, silent none, debug all', () => {
    const write = (level: LogLevel | undefined) => {
      const lines: string[] = [];
      const logger = createLogger({ instance: 'x', ...(level ? { level } : {}), destination: { write: (l) => void lines.push(l) } });
      logger.debug('d');
      logger.info('i');
      logger.warn('w');
      logger.error('e');
      return lines.map((l) => (JSON.parse(l) as { msg: string }).msg).join('');
    };
    expect(write(undefined)).toBe('we');
    expect(write('warn')).toBe('we');
    expect(write('error')).toBe('e');
    expect(write('info')).toBe('iwe');
    expect(write('debug')).toBe('diwe');
    expect(write('silent')).toBe('');
    expect(['error', 'warn', 'info', 'debug', 'silent'].every(isLogLevel)).toBe(true);
    expect(isLogLevel('verbose') || isLogLevel('trace') || isLogLevel(3)).toBe(false);
  });

  it('redacts key-like fields at any of the first levels, and nothing else', () => {
    const { logger, lines, records } = capture();
    const peer = { name: 'b', sa: { out: { spi: 0x1001, key: KEY_OUT }, in: [{ spi: 0x2001, key: KEY_IN }] } };
    componentLogger(logger, 'ike').warn(
      { psk: PSK, peer, wrapped: { peer }, child: { inboundKey: 'c3'.repeat(20), outboundKey: 'd4'.repeat(20), skEi: 'e5'.repeat(16) }, password: 'hunter2-planted', suite: { encr: { id: 20, keyLength: 256 } } },
      'a line someone got wrong',
    );
    const text = lines.join('');
    for (const secret of [PSK, KEY_OUT, KEY_IN, 'c3'.repeat(20), 'd4'.repeat(20), 'e5'.repeat(16), 'hunter2-planted']) expect(text).not.toContain(secret);
    const [r] = records() as Array<Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(r!['psk']).toBe('<redacted>');
    expect(r!['password']).toBe('<redacted>');
    expect(r!['peer']).toEqual({ name: 'b', sa: { out: { spi: 0x1001, key: '<redacted>' }, in: [{ spi: 0x2001, key: '<redacted>' }] } });
    expect(r!['wrapped'].peer.sa.in[0].key).toBe('<redacted>');
    expect(r!['child']).toEqual({ inboundKey: '<redacted>', outboundKey: '<redacted>', skEi: '<redacted>' });
    // keyLength is no key; the original object is untouched.
    expect(r!['suite']).toEqual({ encr: { id: 20, keyLength: 256 } });
    expect(peer.sa.out.key).toBe(KEY_OUT);
  });

  it('writes readable lines instead with format pretty', () => {
    const { logger, lines } = capture('info', 'pretty');
    componentLogger(logger, 'datapath').warn({ total: 3, drops: { malformed: 3 }, psk: PSK }, 'packets dropped');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} WARN  ovl0 datapath: packets dropped total=3 drops=\{"malformed":3\} psk=<redacted>\n$/);
  });
});

describe('formatPretty', () => {
  const line = JSON.stringify({ level: 'info', time: '2026-12-02T03:04:05.678Z', instance: 'ovl0', component: 'ike', peer: 'b', note: 'two words', n: 7, ok: true, list: ['x'], msg: 'IKE SA established' });

  it('puts time, level, instance and component first, then the fields as key=value', () => {
    expect(formatPretty(line)).toBe('03:04:05.678 INFO  ovl0 ike: IKE SA established peer=b note="two words" n=7 ok=true list=["x"]\n');
  });

  it('colours the level only when asked', () => {
    expect(formatPretty(line, { color: true })).toBe('03:04:05.678 \x1b[32mINFO \x1b[0m ovl0 ike: IKE SA established peer=b note="two words" n=7 ok=true list=["x"]\n');
    expect(formatPretty(JSON.stringify({ level: 'error', msg: 'x' }), { color: true })).toBe('\x1b[31mERROR\x1b[0m x\n');
  });

  it('passes a line that is not JSON through as it is', () => {
    expect(formatPretty('not json')).toBe('not json\n');
  });
});

describe('routeProcessWarnings', () => {
  it("turns process warnings into log lines instead of Node's own stderr text, until undone", async () => {
    const { logger, records } = capture('warn');
    const before = process.listeners('warning').length;
    const undo = routeProcessWarnings(componentLogger(logger, 'control'));
    process.emitWarning('no machine ID: a random MAC', { code: 'OVERLAYFWD_RANDOM_MAC' });
    await new Promise((r) => setImmediate(r));
    undo();
    expect(records()).toEqual([expect.objectContaining({ level: 'warn', component: 'control', code: 'OVERLAYFWD_RANDOM_MAC', warning: 'Warning', msg: 'no machine ID: a random MAC' })]);
    expect(process.listeners('warning').length).toBe(before);
  });
});

describe('startFields', () => {
  it('summarises the config without a key, a PSK or a GRE key named key', () => {
    const config = espConfig();
    const overlay = {
      config,
      device: { name: 'esp0', mtu: 1438, mac: '', ifindex: 5 },
      registry: null,
      peers: { list: () => config.peers.map(publicPeer) },
      stats: () => ({ offloads: fakeOffloadStats() }),
    } as unknown as Overlay;
    const fields = startFields(overlay, { version: '9.9.9' });
    const text = JSON.stringify(fields);
    for (const secret of [KEY_OUT, KEY_IN, PSK]) expect(text).not.toContain(secret);
    expect(fields).toMatchObject({
      version: '9.9.9',
      device: { name: 'esp0', type: 'tun', mtu: 1438, addresses: ['198.19.0.1/24'] },
      encap: { type: 'esp', cipher: 'aes-256-gcm', port: 4500, udp: true },
      underlay: { local: '198.18.0.1' },
      peers: { count: 2, names: ['b', 'c'], ike: 1 },
      offloads: ['tso', 'udpGso', 'uringWrites'],
    });

    const gre = parseConfig({ name: 'g', device: { type: 'tun' }, encap: { type: 'gre', key: 77 }, underlay: { local: '198.18.0.1' }, peers: [] });
    const greOverlay = { ...overlay, config: gre, peers: { list: () => [] } } as unknown as Overlay;
    expect(startFields(greOverlay).encap).toEqual({ type: 'gre', greKey: 77, checksum: false, sequence: false });
  });
});

describe('logOverlay', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A pretend overlay: events, a config, and stats() whose drops the test sets. */
  function pretendOverlay() {
    const emitter = new EventEmitter();
    let drops = fakeDropStats({});
    let reads = 0;
    const overlay = Object.assign(emitter, {
      config: parseConfig({ name: 'ovl0', device: { type: 'tap' }, encap: { type: 'vxlan', vni: 1 }, underlay: { local: '198.18.0.1' }, offloads: { udpGro: false }, peers: [] }),
      device: { name: 'ovl0', mtu: 1450, mac: '02:00:00:00:00:01', ifindex: 3 },
      registry: null,
      closed: false,
      stats: () => {
        reads++;
        return { ...drops, offloads: { ...fakeOffloadStats(), active: { tso: true, udpGso: false, udpGro: false, uringWrites: true } } } as unknown as OverlayStats;
      },
    });
    return {
      overlay: overlay as unknown as Overlay,
      setDrops: (d: ReturnType<typeof fakeDropStats>) => (drops = d),
      reads: () => reads,
    };
  }

  it('logs the probe, table changes, IKE lines (their level and fields), rekeys, announcements, fallbacks and health', () => {
    const { logger, records } = capture('debug');
    const { overlay } = pretendOverlay();
    const log = logOverlay(overlay, logger, { dropSummaryMs: 60_000 });
    overlay.emit('tableChanged', { generation: 4, cause: 'add', peers: 2, added: ['c'], removed: [], changed: [] });
    const many = Array.from({ length: 25 }, (_, i) => `p${i}`);
    overlay.emit('tableChanged', { generation: 5, cause: 'replace', peers: 25, added: many, removed: ['c'], changed: [] });
    overlay.emit('ike', { level: 'warn', msg: 'IKE_AUTH: peer not authenticated', peer: 'b', role: 'initiator', reason: 'AUTH mismatch' });
    overlay.emit('ike', { level: 'debug', msg: 'retransmitting', peer: 'b', send: 2 });
    overlay.emit('rekeyNeeded', { peer: 'b', spi: 0x1001, sequence: 2n ** 63n, exhausted: false });
    overlay.emit('announce', { address: '198.19.0.1', family: 4, kind: 'gratuitousArp', when: 'start' });
    overlay.emit('announce', { address: '198.19.0.1', family: 4, kind: 'gratuitousArp', when: 'added', error: 'sendto: ENOBUFS' });
    overlay.emit('offloadFallback', { added: 1, total: 1 });
    overlay.emit('healthChanged', { healthy: false, reason: 'a worker lost its device' });
    log.close();
    overlay.emit('tableChanged', { generation: 6, cause: 'remove', peers: 1, added: [], removed: ['b'], changed: [] });

    const strip = (r: Record<string, unknown>) => {
      const { time: _t, instance: _i, ...rest } = r;
      return rest;
    };
    expect(records().map(strip)).toEqual([
      { level: 'info', component: 'datapath', active: ['tso', 'uringWrites'], unavailable: ['udpGso'], disabled: ['udpGro'], msg: 'offloads probed' },
      { level: 'info', component: 'peers', generation: 4, cause: 'add', peers: 2, added: ['c'], msg: 'peer table installed' },
      { level: 'info', component: 'peers', generation: 5, cause: 'replace', peers: 25, added: many.slice(0, 20), addedCount: 25, removed: ['c'], msg: 'peer table installed' },
      { level: 'warn', component: 'ike', peer: 'b', role: 'initiator', reason: 'AUTH mismatch', msg: 'IKE_AUTH: peer not authenticated' },
      { level: 'debug', component: 'ike', peer: 'b', send: 2, msg: 'retransmitting' },
      { level: 'warn', component: 'peers', peer: 'b', spi: '0x00001001', sequence: '9223372036854775808', exhausted: false, msg: 'outbound SA nears the end of its sequence numbers; rekey it' },
      { level: 'info', component: 'device', address: '198.19.0.1', family: 4, kind: 'gratuitousArp', when: 'start', msg: 'address announced' },
      { level: 'warn', component: 'device', address: '198.19.0.1', family: 4, kind: 'gratuitousArp', when: 'added', error: 'sendto: ENOBUFS', msg: 'could not announce 198.19.0.1' },
      { level: 'warn', component: 'datapath', added: 1, total: 1, msg: 'the kernel refused an offload at run time; the data path turned it off' },
      { level: 'error', component: 'datapath', healthy: false, reason: 'a worker lost its device', device: 'ovl0', msg: 'the data path failed (device ovl0 gone?)' },
    ]);
  });

  it('writes a drop summary once per interval when drops grew, from one stats() read per interval, and none otherwise', () => {
    vi.useFakeTimers();
    let clock = 0;
    const { logger, records } = capture('warn');
    const { overlay, setDrops, reads } = pretendOverlay();
    const log = logOverlay(overlay, logger, { dropSummaryMs: 1000, now: () => clock });
    const tick = (ms: number) => {
      clock += ms;
      vi.advanceTimersByTime(ms);
    };
    const readsAtStart = reads();
    tick(3000);
    expect(records()).toEqual([]);
    setDrops(fakeDropStats({ malformed: 5, unknownPeer: 2 }, { b: { malformed: 5 } }));
    tick(1000);
    setDrops(fakeDropStats({ malformed: 6, unknownPeer: 2 }, { b: { malformed: 6 } }));
    tick(1000);
    tick(3000);
    log.close();
    setDrops(fakeDropStats({ malformed: 9, unknownPeer: 2 }, { b: { malformed: 9 } }));
    tick(3000);
    expect(reads() - readsAtStart).toBe(8);
    expect(records().map(({ time: _t, ...r }) => r)).toEqual([
      { level: 'warn', instance: 'ovl0', component: 'datapath', total: 7, drops: { malformed: 5, unknownPeer: 2 }, topPeers: [{ peer: 'b', drops: 5 }], withinSeconds: 1, msg: 'packets dropped' },
      { level: 'warn', instance: 'ovl0', component: 'datapath', total: 1, drops: { malformed: 1 }, topPeers: [{ peer: 'b', drops: 1 }], withinSeconds: 1, msg: 'packets dropped' },
    ]);
  });
});

describe('diffPeers', () => {
  it('names the peers added, removed and changed (endpoint, prefixes, SAs), comparing keys but returning names only', () => {
    const before = espConfig().peers;
    const after = espConfig().peers.map((p) => (p.name === 'b' ? { ...p, sa: { out: { spi: 0x1001, key: KEY_IN }, in: p.sa!.in } } : p));
    after.push({ ...after[1]!, name: 'd', endpoint: { address: '198.18.0.4', port: 4500 } });
    expect(diffPeers(before, after)).toEqual({ added: ['d'], removed: [], changed: ['b'] });
    expect(diffPeers(before, espConfig().peers)).toEqual({ added: [], removed: [], changed: [] });
    expect(diffPeers(before, [before[1]!])).toEqual({ added: [], removed: ['b'], changed: [] });
    expect(JSON.stringify(diffPeers(before, after))).not.toContain(KEY_IN);
  });
});
