// Prometheus metrics from a stats object: names, labels and values (lib/metrics.ts), the HTTP
// server (/metrics, /healthz), and the `metrics:` config section. No root, no addon.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { Gauge } from 'prom-client';
import { ConfigError, parseConfig } from '../../lib/config';
import { printableConfig, runCheck } from '../../lib/cli/check';
import { configToInput } from '../../lib/overlay';
import { createMetricsServer, METRIC_NAMES, OverlayMetrics, type MetricsServer, type MetricsSource } from '../../lib/metrics';
import { DROP_REASONS, OFFLOAD_COUNTERS, type Counters, type DropReason, type OverlayStats } from '../../lib/types';
import { commandExists } from '../../lab';

function counters(base: number, drops: Partial<Record<DropReason, number>> = {}): Counters {
  const all = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
  return {
    txPackets: base + 1,
    txBytes: base + 2,
    rxPackets: base + 3,
    rxBytes: base + 4,
    floodPackets: base + 5,
    txWireBytes: base + 6,
    rxWireBytes: base + 7,
    drops: { ...all, ...drops },
  };
}

function sampleStats(name = 'ovl0'): OverlayStats {
  return {
    name,
    device: `${name}dev`,
    healthy: true,
    workers: 3,
    totals: counters(1000, { wrongVni: 7, noRoute: 9, replay: 2 }),
    peers: {
      b: counters(100, { replay: 2 }),
      'c.east-1': counters(200),
    },
    fdb: { learned: 4, static: 2, refused: 3 },
    offloads: {
      active: { tso: true, udpGso: false, udpGro: true, uringWrites: false },
      txGsoSends: 11,
      txGsoSegments: 12,
      rxGroReceives: 13,
      rxGroSegments: 14,
      txSuperFrames: 15,
      rxCoalescedWrites: 16,
      rxCoalescedSegments: 17,
      fallbacks: 18,
    },
    generated: { icmpTooBig: 21, mssClamped: 22 },
    control: { natKeepalives: 31, controlRx: 32, controlTx: 33 },
    tableGeneration: 5,
  };
}

/** A source whose stats() is counted; `mutate` changes what the next call returns. */
function fakeSource(name = 'ovl0'): MetricsSource & { calls: number; current: OverlayStats } {
  const source = {
    name,
    calls: 0,
    current: sampleStats(name),
    stats() {
      source.calls++;
      return structuredClone(source.current);
    },
    get healthy() {
      return source.current.healthy;
    },
    config: { device: { type: 'tap' }, encap: { type: 'vxlan' } },
  };
  return source;
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The text exposition format, enough of it for these tests: HELP, TYPE and samples. */
function parseExposition(text: string): { types: Map<string, string>; help: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (m) {
      types.set(m[1]!, m[2]!);
      continue;
    }
    m = /^# HELP (\S+) (.*)$/.exec(line);
    if (m) {
      help.set(m[1]!, m[2]!);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { types, help, samples };
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} series`);
  return found[0]?.value;
}

async function scrape(metrics: OverlayMetrics) {
  return parseExposition(await metrics.metrics());
}

describe('OverlayMetrics: names and labels', () => {
  it('every family has HELP and TYPE; counters end in _total, gauges do not; every series has instance_name', async () => {
    const { types, help, samples } = await scrape(new OverlayMetrics(fakeSource()));
    expect([...types.keys()].sort()).toEqual([...METRIC_NAMES].sort());
    for (const name of METRIC_NAMES) {
      expect(help.get(name), name).toBeTruthy();
      expect(name).toMatch(/^overlayfwd_[a-z0-9_]+$/);
      if (types.get(name) === 'counter') expect(name).toMatch(/_total$/);
      else expect([types.get(name), name]).toEqual(['gauge', expect.not.stringMatching(/_total$/)]);
    }
    for (const s of samples) expect(s.labels.instance_name, s.name).toBe('ovl0');
    // Label names are snake_case and never `instance` (Prometheus sets that one for the target).
    for (const s of samples) for (const l of Object.keys(s.labels)) expect(l).toMatch(/^(instance_name|peer|reason|offload|kind|device|device_type|encap)$/);
  });

  it('names the design asks for', () => {
    expect(METRIC_NAMES).toEqual(
      expect.arrayContaining([
        'overlayfwd_peer_tx_packets_total',
        'overlayfwd_peer_tx_bytes_total',
        'overlayfwd_peer_rx_packets_total',
        'overlayfwd_peer_rx_bytes_total',
        'overlayfwd_peer_tx_wire_bytes_total',
        'overlayfwd_peer_rx_wire_bytes_total',
        'overlayfwd_tx_wire_bytes_total',
        'overlayfwd_rx_wire_bytes_total',
        'overlayfwd_peer_drops_total',
        'overlayfwd_drops_total',
        'overlayfwd_workers',
        'overlayfwd_healthy',
        'overlayfwd_peers',
        'overlayfwd_table_generation',
        ...OFFLOAD_COUNTERS.map((c) => `overlayfwd_offload_${c.replace(/[A-Z]/g, (x) => `_${x.toLowerCase()}`)}_total`),
      ]),
    );
  });

  it.skipIf(!commandExists('promtool'))('promtool check metrics finds nothing to lint', async () => {
    const text = await new OverlayMetrics(fakeSource()).metrics();
    // Exits non-zero and prints the problems when a name, unit or HELP breaks the conventions.
    const out = execFileSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(out.trim()).toBe('');
  });
});

describe('OverlayMetrics: values from a stats object', () => {
  it('per-peer and total tx/rx packets and bytes, wire bytes, floods', async () => {
    const source = fakeSource();
    const { samples } = await scrape(new OverlayMetrics(source));
    const stats = source.current;
    for (const [peer, c] of Object.entries(stats.peers)) {
      const l = { instance_name: 'ovl0', peer };
      expect(value(samples, 'overlayfwd_peer_tx_packets_total', l)).toBe(c.txPackets);
      expect(value(samples, 'overlayfwd_peer_tx_bytes_total', l)).toBe(c.txBytes);
      expect(value(samples, 'overlayfwd_peer_rx_packets_total', l)).toBe(c.rxPackets);
      expect(value(samples, 'overlayfwd_peer_rx_bytes_total', l)).toBe(c.rxBytes);
      expect(value(samples, 'overlayfwd_peer_flood_packets_total', l)).toBe(c.floodPackets);
      expect(value(samples, 'overlayfwd_peer_tx_wire_bytes_total', l)).toBe(c.txWireBytes);
      expect(value(samples, 'overlayfwd_peer_rx_wire_bytes_total', l)).toBe(c.rxWireBytes);
    }
    expect(samples.filter((s) => s.name === 'overlayfwd_peer_tx_packets_total').map((s) => s.labels.peer).sort()).toEqual(['b', 'c.east-1']);
    expect(value(samples, 'overlayfwd_tx_packets_total')).toBe(stats.totals.txPackets);
    expect(value(samples, 'overlayfwd_tx_bytes_total')).toBe(stats.totals.txBytes);
    expect(value(samples, 'overlayfwd_rx_packets_total')).toBe(stats.totals.rxPackets);
    expect(value(samples, 'overlayfwd_rx_bytes_total')).toBe(stats.totals.rxBytes);
    expect(value(samples, 'overlayfwd_flood_packets_total')).toBe(stats.totals.floodPackets);
    expect(value(samples, 'overlayfwd_tx_wire_bytes_total')).toBe(stats.totals.txWireBytes);
    expect(value(samples, 'overlayfwd_rx_wire_bytes_total')).toBe(stats.totals.rxWireBytes);
  });

  it('wire bytes of an instance older than them read as 0', async () => {
    const source = fakeSource();
    delete source.current.peers.b!.txWireBytes;
    delete source.current.totals.rxWireBytes;
    const { samples } = await scrape(new OverlayMetrics(source));
    expect(value(samples, 'overlayfwd_peer_tx_wire_bytes_total', { peer: 'b' })).toBe(0);
    expect(value(samples, 'overlayfwd_rx_wire_bytes_total')).toBe(0);
  });

  it('drops: every reason in the totals (zeros too), a peer\'s only once counted', async () => {
    const { samples } = await scrape(new OverlayMetrics(fakeSource()));
    const totals = samples.filter((s) => s.name === 'overlayfwd_drops_total');
    expect(totals.map((s) => s.labels.reason).sort()).toEqual([...DROP_REASONS].sort());
    expect(value(samples, 'overlayfwd_drops_total', { reason: 'wrongVni' })).toBe(7);
    expect(value(samples, 'overlayfwd_drops_total', { reason: 'noRoute' })).toBe(9);
    expect(value(samples, 'overlayfwd_drops_total', { reason: 'malformed' })).toBe(0);
    const perPeer = samples.filter((s) => s.name === 'overlayfwd_peer_drops_total');
    expect(perPeer).toEqual([{ name: 'overlayfwd_peer_drops_total', labels: { instance_name: 'ovl0', peer: 'b', reason: 'replay' }, value: 2 }]);
  });

  it('workers, health, peers, table generation, FDB, offloads, generated and control packets, info', async () => {
    const { samples } = await scrape(new OverlayMetrics(fakeSource()));
    expect(value(samples, 'overlayfwd_workers')).toBe(3);
    expect(value(samples, 'overlayfwd_healthy')).toBe(1);
    expect(value(samples, 'overlayfwd_peers')).toBe(2);
    expect(value(samples, 'overlayfwd_table_generation')).toBe(5);
    expect(value(samples, 'overlayfwd_fdb_entries', { kind: 'learned' })).toBe(4);
    expect(value(samples, 'overlayfwd_fdb_entries', { kind: 'static' })).toBe(2);
    expect(value(samples, 'overlayfwd_fdb_refused_total', {})).toBe(3);
    expect(value(samples, 'overlayfwd_offload_active', { offload: 'tso' })).toBe(1);
    expect(value(samples, 'overlayfwd_offload_active', { offload: 'udpGso' })).toBe(0);
    expect(value(samples, 'overlayfwd_offload_active', { offload: 'udpGro' })).toBe(1);
    expect(value(samples, 'overlayfwd_offload_active', { offload: 'uringWrites' })).toBe(0);
    expect(value(samples, 'overlayfwd_offload_tx_gso_sends_total')).toBe(11);
    expect(value(samples, 'overlayfwd_offload_tx_gso_segments_total')).toBe(12);
    expect(value(samples, 'overlayfwd_offload_rx_gro_receives_total')).toBe(13);
    expect(value(samples, 'overlayfwd_offload_rx_gro_segments_total')).toBe(14);
    expect(value(samples, 'overlayfwd_offload_tx_super_frames_total')).toBe(15);
    expect(value(samples, 'overlayfwd_offload_rx_coalesced_writes_total')).toBe(16);
    expect(value(samples, 'overlayfwd_offload_rx_coalesced_segments_total')).toBe(17);
    expect(value(samples, 'overlayfwd_offload_fallbacks_total')).toBe(18);
    expect(value(samples, 'overlayfwd_icmp_too_big_sent_total')).toBe(21);
    expect(value(samples, 'overlayfwd_mss_clamped_total')).toBe(22);
    expect(value(samples, 'overlayfwd_nat_keepalives_total')).toBe(31);
    expect(value(samples, 'overlayfwd_control_rx_datagrams_total')).toBe(32);
    expect(value(samples, 'overlayfwd_control_tx_datagrams_total')).toBe(33);
    expect(samples.filter((s) => s.name === 'overlayfwd_info')).toEqual([
      { name: 'overlayfwd_info', labels: { instance_name: 'ovl0', device: 'ovl0dev', device_type: 'tap', encap: 'vxlan' }, value: 1 },
    ]);
  });

  it('one stats() per scrape, whatever the number of metrics; each scrape reads afresh; a peer that left is gone', async () => {
    const source = fakeSource();
    const metrics = new OverlayMetrics(source);
    await metrics.metrics();
    expect(source.calls).toBe(1);
    source.current.peers.b!.txPackets = 123_456_789_012;
    delete source.current.peers['c.east-1'];
    source.current.healthy = false;
    const { samples } = await scrape(metrics);
    expect(source.calls).toBe(2);
    expect(value(samples, 'overlayfwd_peer_tx_packets_total', { peer: 'b' })).toBe(123_456_789_012);
    expect(samples.some((s) => s.labels.peer === 'c.east-1')).toBe(false);
    expect(value(samples, 'overlayfwd_peers')).toBe(1);
    expect(value(samples, 'overlayfwd_healthy')).toBe(0);
    // Scrapes that overlap, or follow each other within one turn of the event loop, read once each.
    await Promise.all([metrics.metrics(), metrics.metrics()]);
    expect(source.calls).toBe(4);
    // So does a single metric read on its own, again and again.
    await metrics.registry.getSingleMetricAsString('overlayfwd_peers');
    await metrics.registry.getSingleMetricAsString('overlayfwd_peers');
    expect(source.calls).toBe(6);
  });

  it('several overlays in one registry, told apart by instance_name; a second of the same name is refused', async () => {
    const a = fakeSource('ovl0');
    const b = fakeSource('ovl1');
    b.current.peers = { z: counters(5) };
    const metrics = new OverlayMetrics([a, b]);
    const { samples } = await scrape(metrics);
    expect(value(samples, 'overlayfwd_peer_tx_packets_total', { instance_name: 'ovl1', peer: 'z' })).toBe(6);
    expect(value(samples, 'overlayfwd_peer_tx_packets_total', { instance_name: 'ovl0', peer: 'b' })).toBe(101);
    expect(samples.filter((s) => s.name === 'overlayfwd_workers')).toHaveLength(2);
    expect(() => metrics.add(fakeSource('ovl0'))).toThrow(/ovl0 is exported already/);
    expect(metrics.remove(b)).toBe(true);
    const after = await scrape(metrics);
    expect(after.samples.some((s) => s.labels.instance_name === 'ovl1')).toBe(false);
  });

  it('an extra collector adds metrics of its own from the same reading (the hook for IKE and registry state)', async () => {
    const source = fakeSource();
    const metrics = new OverlayMetrics(source, {
      extraCollectors: [
        (ctx) => {
          new Gauge({
            name: 'overlayfwd_test_extra',
            help: 'A metric an extra collector adds.',
            labelNames: ['instance_name'],
            registers: [ctx.registry],
            collect() {
              this.reset();
              for (const s of ctx.sources()) this.set({ instance_name: s.name }, ctx.stats(s).workers * 10);
            },
          });
        },
      ],
    });
    const { samples } = await scrape(metrics);
    expect(value(samples, 'overlayfwd_test_extra')).toBe(30);
    expect(source.calls).toBe(1);
  });
});

describe('createMetricsServer', () => {
  const servers: MetricsServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  it('serves /metrics in the Prometheus text format and /healthz from healthy', async () => {
    const source = fakeSource();
    const server = await createMetricsServer(source, '127.0.0.1:0');
    servers.push(server);
    expect(server.address.address).toBe('127.0.0.1');
    expect(server.address.port).toBeGreaterThan(0);
    const r = await fetch(`${server.url}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const { samples } = parseExposition(await r.text());
    expect(value(samples, 'overlayfwd_peer_rx_bytes_total', { peer: 'b' })).toBe(104);

    let h = await fetch(`${server.url}/healthz`);
    expect([h.status, await h.text()]).toEqual([200, 'ok\n']);
    source.current.healthy = false;
    h = await fetch(`${server.url}/healthz`);
    expect(h.status).toBe(503);
    expect(await h.text()).toMatch(/unhealthy/);

    expect((await fetch(`${server.url}/nope`)).status).toBe(404);
    const post = await fetch(`${server.url}/metrics`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    const head = await fetch(`${server.url}/metrics`, { method: 'HEAD' });
    expect(head.status).toBe(200);
  });

  it('listens on IPv6 loopback', async () => {
    const server = await createMetricsServer(fakeSource(), { address: '::1', port: 0 });
    servers.push(server);
    expect(server.url).toMatch(/^http:\/\/\[::1\]:\d+$/);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  it('a port in use is an error that names the field, the address and the cause', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const err = await createMetricsServer(fakeSource(), `127.0.0.1:${port}`).then(
        () => null,
        (e: NodeJS.ErrnoException) => e,
      );
      expect(err?.message).toBe(
        `metrics.listen 127.0.0.1:${port}: cannot listen: address already in use: another process listens there (stop it, or choose another port) (EADDRINUSE)`,
      );
      expect(err?.code).toBe('EADDRINUSE');
    } finally {
      blocker.close();
    }
  });

  it('refuses a listen address that is not host:port', async () => {
    await expect(createMetricsServer(fakeSource(), 'localhost:9469')).rejects.toThrow(/^metrics\.listen: must be host:port/);
    await expect(createMetricsServer(fakeSource(), '127.0.0.1')).rejects.toThrow(/^metrics\.listen: must be host:port/);
  });

  it('stops on close(), idempotently', async () => {
    const server = await createMetricsServer(fakeSource(), '127.0.0.1:0');
    await server.close();
    await server.close();
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
  });
});

describe('config: metrics', () => {
  const base = { name: 'ovl0', encap: { vni: 42 }, underlay: { local: '198.18.0.1' } };
  const issues = (input: unknown) => {
    try {
      parseConfig(input);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).issues.map((i) => `${i.path}: ${i.message}`);
    }
    throw new Error('expected a ConfigError');
  };

  it('is off unless configured; {} listens on 127.0.0.1:9469', () => {
    expect(parseConfig(base).metrics).toBeUndefined();
    expect(parseConfig({ ...base, metrics: null }).metrics).toBeUndefined();
    expect(parseConfig({ ...base, metrics: {} }).metrics).toEqual({ listen: '127.0.0.1:9469' });
    expect(parseConfig({ ...base, metrics: { listen: '0.0.0.0:9100' } }).metrics).toEqual({ listen: '0.0.0.0:9100' });
    expect(parseConfig({ ...base, metrics: { listen: '[0:0::1]:9469' } }).metrics).toEqual({ listen: '[::1]:9469' });
  });

  it('names the field on every bad value', () => {
    const bad = ['localhost:9469', '127.0.0.1', '127.0.0.1:0', '127.0.0.1:65536', '::1:9469', '[::1]', '224.0.0.1:9469', '127.0.0.1:94a', ''];
    for (const listen of bad) {
      const found = issues({ ...base, metrics: { listen } });
      expect(found, listen).toHaveLength(1);
      expect(found[0], listen).toMatch(/^metrics\.listen: must be host:port, an IP address and a port from 1 to 65535 .*, got /);
    }
    expect(issues({ ...base, metrics: { listen: 9469 } })).toEqual([
      'metrics.listen: must be host:port, an IP address and a port from 1 to 65535 ("127.0.0.1:9469", "[::1]:9469", "0.0.0.0:9469")',
    ]);
    expect(issues({ ...base, metrics: { port: 9469 } })[0]).toMatch(/^metrics\.port: /);
    expect(issues({ ...base, metrics: '127.0.0.1:9469' })[0]).toMatch(/^metrics: must be a mapping/);
  });

  it('survives the round trips: check prints it back, peer changes keep it', () => {
    const config = parseConfig({ ...base, metrics: { listen: '[::1]:9469' } });
    expect(parseConfig(printableConfig(config)).metrics).toEqual({ listen: '[::1]:9469' });
    expect(parseConfig(configToInput(config)).metrics).toEqual({ listen: '[::1]:9469' });
  });

  describe('overlayfwd check', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ovlmetrics-'));
    afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

    it('exits 2 on a bad metrics.listen, naming the field', async () => {
      const file = path.join(tmp, 'bad.yaml');
      fs.writeFileSync(file, 'name: ovl0\nencap: { vni: 42 }\nunderlay: { local: 198.18.0.1 }\nmetrics: { listen: "9469" }\n');
      const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
      let code: number;
      let text: string;
      try {
        code = await runCheck({ config: file });
        text = stderr.mock.calls.map((c) => String(c[0])).join('');
      } finally {
        stderr.mockRestore();
      }
      expect(code).toBe(2);
      expect(text).toContain('metrics.listen: must be host:port');
    });
  });
});
