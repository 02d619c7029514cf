// Prometheus metrics of one or more overlays (prom-client), and the small HTTP server that
// serves them (/metrics) with the data path's health (/healthz). `overlayfwd up` runs the server
// when the config has `metrics: { listen }`; library users call createMetricsServer().
//
// Every metric is a collector: a scrape reads each overlay's stats() once (the counters block in
// shared memory, summed over the workers) and sets every series from that one reading. Nothing
// calls into native code per counter, and nothing runs between scrapes.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry } from 'prom-client';
import { formatListen, parseListen, type ListenAddress } from './config/metrics';
import { DROP_REASONS, OFFLOAD_COUNTERS, type OverlayStats } from './types';

/** What metrics are read from: an Overlay, or anything shaped like one. */
export interface MetricsSource {
  /** The instance name: the `instance_name` label of every series. */
  readonly name: string;
  /** Read once per scrape. */
  stats(): OverlayStats;
  /** Answers /healthz (default: stats().healthy). */
  readonly healthy?: boolean;
  /** For overlayfwd_info's labels, when present. */
  readonly config?: { device: { type: string }; encap: { type: string } };
}

/** What an extra collector gets: the registry to add metrics to, and this scrape's stats. */
export interface MetricsContext {
  readonly registry: Registry;
  /** The overlays being exported. */
  sources(): readonly MetricsSource[];
  /** `source`'s stats for the scrape under way: one stats() per overlay per scrape, shared by every collector. */
  stats(source: MetricsSource): OverlayStats;
}

/**
 * Adds metrics of its own (e.g. IKE SAs or registry state) to `ctx.registry`, typically
 * prom-client Gauges or Counters whose `collect()` reads `ctx.stats()` or the overlay's own state.
 */
export type ExtraCollector = (ctx: MetricsContext) => void;

export interface OverlayMetricsOptions {
  /** The registry to register in (default: a new one; prom-client's global registry is never used). */
  registry?: Registry;
  /** More collectors, registered after the overlay's own. */
  extraCollectors?: readonly ExtraCollector[];
}

type Emit = (labels: Record<string, string>, value: number) => void;

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  /** Beyond instance_name, which every family has. */
  labels: readonly string[];
  collect(stats: OverlayStats, source: MetricsSource, emit: Emit): void;
}

/** camelCase → snake_case: txGsoSends → tx_gso_sends. */
function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

type CounterField = 'txPackets' | 'txBytes' | 'rxPackets' | 'rxBytes' | 'floodPackets' | 'txWireBytes' | 'rxWireBytes';

/** Field, metric name suffix, help, and the per-peer help where it says something else. */
const COUNTER_FIELDS: ReadonlyArray<readonly [CounterField, string, string, string?]> = [
  ['txPackets', 'tx_packets_total', 'Inner packets encapsulated and sent toward peers (a flooded frame counts once per peer).'],
  ['txBytes', 'tx_bytes_total', 'Inner bytes encapsulated and sent toward peers.'],
  ['rxPackets', 'rx_packets_total', 'Inner packets decapsulated and delivered to the device.'],
  ['rxBytes', 'rx_bytes_total', 'Inner bytes decapsulated and delivered to the device.'],
  [
    'floodPackets',
    'flood_packets_total',
    'Frames flooded (head-end replicated) to every peer: broadcast, multicast, unknown unicast; each frame once.',
    'Flooded frames sent toward the peer: broadcast, multicast, unknown unicast, one copy per peer.',
  ],
  ['txWireBytes', 'tx_wire_bytes_total', 'Outer bytes sent toward peers: outer IP and UDP headers, overlay header, inner packet, trailer.'],
  ['rxWireBytes', 'rx_wire_bytes_total', 'Outer bytes received from peers (dropped datagrams included), counted as the sent ones.'],
];

const OFFLOAD_HELP: Record<(typeof OFFLOAD_COUNTERS)[number], string> = {
  txGsoSends: 'UDP GSO sends (one system call carrying several datagrams).',
  txGsoSegments: 'Datagrams sent within UDP GSO sends.',
  rxGroReceives: 'UDP GRO receives (one coalesced buffer holding several datagrams).',
  rxGroSegments: 'Datagrams received within UDP GRO receives.',
  txSuperFrames: 'TSO/USO super-frames read from the device and segmented.',
  rxCoalescedWrites: 'Coalesced TCP super-frames written to the device.',
  rxCoalescedSegments: 'TCP segments merged into coalesced device writes.',
  fallbacks: 'Offloads the kernel refused at run time, after which they were turned off.',
};

function countersFamilies(): Family[] {
  const families: Family[] = [];
  for (const [field, suffix, help, peerHelp] of COUNTER_FIELDS) {
    families.push({
      name: `overlayfwd_${suffix}`,
      help: `${help} All peers.`,
      type: 'counter',
      labels: [],
      collect: (s, _src, emit) => emit({}, s.totals[field] ?? 0),
    });
    families.push({
      name: `overlayfwd_peer_${suffix}`,
      help: peerHelp ?? `${help} Per peer.`,
      type: 'counter',
      labels: ['peer'],
      collect: (s, _src, emit) => {
        for (const [peer, c] of Object.entries(s.peers)) emit({ peer }, c[field] ?? 0);
      },
    });
  }
  return families;
}

const FAMILIES: readonly Family[] = [
  {
    name: 'overlayfwd_info',
    help: 'Always 1; the labels describe the instance: its device, device type and encapsulation.',
    type: 'gauge',
    labels: ['device', 'device_type', 'encap'],
    collect: (s, src, emit) => emit({ device: s.device, device_type: src.config?.device.type ?? '', encap: src.config?.encap.type ?? '' }, 1),
  },
  {
    name: 'overlayfwd_healthy',
    help: '1 while the data path runs, 0 once it failed for good (the device deleted under it, a worker failed).',
    type: 'gauge',
    labels: [],
    collect: (s, _src, emit) => emit({}, s.healthy ? 1 : 0),
  },
  {
    name: 'overlayfwd_workers',
    help: 'Data-path worker threads (one per device queue).',
    type: 'gauge',
    labels: [],
    collect: (s, _src, emit) => emit({}, s.workers),
  },
  {
    name: 'overlayfwd_peers',
    help: 'Peers in the table (configured, added at run time, or from the registry).',
    type: 'gauge',
    labels: [],
    collect: (s, _src, emit) => emit({}, Object.keys(s.peers).length),
  },
  {
    name: 'overlayfwd_table_generation',
    help: 'Peer-table snapshots installed since start (1 is the first); it moves on every peer, route or SA change.',
    type: 'gauge',
    labels: [],
    collect: (s, _src, emit) => {
      if (s.tableGeneration !== undefined) emit({}, s.tableGeneration);
    },
  },
  {
    name: 'overlayfwd_fdb_entries',
    help: 'L2 forwarding entries, by kind (learned, static).',
    type: 'gauge',
    labels: ['kind'],
    collect: (s, _src, emit) => {
      emit({ kind: 'learned' }, s.fdb.learned);
      emit({ kind: 'static' }, s.fdb.static);
    },
  },
  {
    name: 'overlayfwd_fdb_refused_total',
    help: 'New source MACs not learned because the learned entries were at fdb.maxEntries (their frames are still delivered).',
    type: 'counter',
    labels: [],
    collect: (s, _src, emit) => emit({}, s.fdb.refused ?? 0),
  },
  ...countersFamilies(),
  {
    name: 'overlayfwd_drops_total',
    help: 'Packets dropped, by reason (the keys of stats().totals.drops); every reason is present.',
    type: 'counter',
    labels: ['reason'],
    collect: (s, _src, emit) => {
      for (const reason of DROP_REASONS) emit({ reason }, s.totals.drops[reason] ?? 0);
    },
  },
  {
    name: 'overlayfwd_peer_drops_total',
    help: "Packets dropped that were charged to a peer, by peer and reason; a series appears at the peer's first drop of that reason.",
    type: 'counter',
    labels: ['peer', 'reason'],
    collect: (s, _src, emit) => {
      for (const [peer, c] of Object.entries(s.peers)) {
        for (const reason of DROP_REASONS) {
          const n = c.drops[reason] ?? 0;
          if (n > 0) emit({ peer, reason }, n);
        }
      }
    },
  },
  {
    name: 'overlayfwd_ike_sessions',
    help: 'esp with IKE: IKE SAs held (established, being set up, half open).',
    type: 'gauge',
    labels: [],
    collect: (s, _src, emit) => {
      if (s.ike) emit({}, s.ike.sessions);
    },
  },
  {
    name: 'overlayfwd_ike_half_open',
    help: 'esp with IKE: responder IKE SAs between IKE_SA_INIT and IKE_AUTH (past 16, initiators must return a COOKIE).',
    type: 'gauge',
    labels: [],
    collect: (s, _src, emit) => {
      if (s.ike) emit({}, s.ike.halfOpen);
    },
  },
  {
    name: 'overlayfwd_ike_peers_established',
    help: 'esp with IKE: peers with an established IKE SA and a Child SA in use.',
    type: 'gauge',
    labels: [],
    collect: (s, _src, emit) => {
      if (s.ike) emit({}, s.ike.established);
    },
  },
  {
    name: 'overlayfwd_ike_child_sas_total',
    help: 'esp with IKE: Child SAs installed (the first of each peer, and every rekey).',
    type: 'counter',
    labels: [],
    collect: (s, _src, emit) => {
      if (s.ike) emit({}, s.ike.childSas);
    },
  },
  {
    name: 'overlayfwd_ike_messages_dropped_total',
    help: 'esp with IKE: IKE messages dropped or refused, by reason.',
    type: 'counter',
    labels: ['reason'],
    collect: (s, _src, emit) => {
      for (const [reason, n] of Object.entries(s.ike?.drops ?? {})) emit({ reason }, n);
    },
  },
  {
    name: 'overlayfwd_offload_active',
    help: 'Offloads in use after probing (1) or not (0): tso, udpGso, udpGro, uringWrites.',
    type: 'gauge',
    labels: ['offload'],
    collect: (s, _src, emit) => {
      for (const [offload, on] of Object.entries(s.offloads.active)) emit({ offload }, on ? 1 : 0);
    },
  },
  ...OFFLOAD_COUNTERS.map(
    (name): Family => ({
      name: `overlayfwd_offload_${snake(name)}_total`,
      help: OFFLOAD_HELP[name],
      type: 'counter',
      labels: [],
      collect: (s, _src, emit) => emit({}, s.offloads[name]),
    }),
  ),
  {
    name: 'overlayfwd_icmp_too_big_sent_total',
    help: 'ICMP Fragmentation Needed / Packet Too Big messages the data path sent back through the device.',
    type: 'counter',
    labels: [],
    collect: (s, _src, emit) => emit({}, s.generated.icmpTooBig),
  },
  {
    name: 'overlayfwd_nat_keepalives_total',
    help: 'NAT keepalives (RFC 3948, one byte 0xFF) accepted on the ESP UDP port.',
    type: 'counter',
    labels: [],
    collect: (s, _src, emit) => {
      if (s.control) emit({}, s.control.natKeepalives);
    },
  },
  {
    name: 'overlayfwd_control_rx_datagrams_total',
    help: 'Control datagrams (IKE) the data path passed up to the control channel.',
    type: 'counter',
    labels: [],
    collect: (s, _src, emit) => {
      if (s.control) emit({}, s.control.controlRx);
    },
  },
  {
    name: 'overlayfwd_control_tx_datagrams_total',
    help: 'Control datagrams (IKE) sent by the control channel.',
    type: 'counter',
    labels: [],
    collect: (s, _src, emit) => {
      if (s.control) emit({}, s.control.controlTx);
    },
  },
  {
    name: 'overlayfwd_mss_clamped_total',
    help: 'TCP SYNs whose MSS option the data path lowered (mssClamp).',
    type: 'counter',
    labels: [],
    collect: (s, _src, emit) => emit({}, s.generated.mssClamped),
  },
  {
    name: 'overlayfwd_neighbor_announcements_total',
    help: 'Gratuitous ARPs and unsolicited Neighbor Advertisements sent on the TAP device for its addresses.',
    type: 'counter',
    labels: [],
    collect: (s, _src, emit) => {
      if (s.generated.announcements !== undefined) emit({}, s.generated.announcements);
    },
  },
  {
    name: 'overlayfwd_neighbor_announce_failures_total',
    help: 'Announcements of the TAP device\'s addresses that could not be sent.',
    type: 'counter',
    labels: [],
    collect: (s, _src, emit) => {
      if (s.generated.announceFailures !== undefined) emit({}, s.generated.announceFailures);
    },
  },
];

/** The names of the metrics OverlayMetrics exports (before any extra collector's). */
export const METRIC_NAMES: readonly string[] = FAMILIES.map((f) => f.name);

/**
 * The metrics of one or more overlays in a prom-client Registry. Each overlay's series carry
 * `instance_name`; a peer's also `peer`, a drop's `reason`.
 */
export class OverlayMetrics {
  readonly registry: Registry;
  private readonly list: MetricsSource[] = [];
  /** The scrape under way: the stats read for it, and the families that have collected in it. */
  private scrape: { stats: Map<MetricsSource, OverlayStats>; collected: Set<string> } | null = null;

  constructor(sources: MetricsSource | readonly MetricsSource[] = [], options: OverlayMetricsOptions = {}) {
    this.registry = options.registry ?? new Registry();
    for (const source of Array.isArray(sources) ? sources : [sources as MetricsSource]) this.add(source);
    for (const family of FAMILIES) this.register(family);
    const ctx: MetricsContext = {
      registry: this.registry,
      sources: () => [...this.list],
      stats: (source) => this.statsOf(source),
    };
    for (const extra of options.extraCollectors ?? []) extra(ctx);
  }

  /** Exports another overlay too; its name must differ from the others'. */
  add(source: MetricsSource): void {
    if (this.list.includes(source)) return;
    if (this.list.some((s) => s.name === source.name)) throw new Error(`metrics: an overlay named ${source.name} is exported already`);
    this.list.push(source);
  }

  /** Stops exporting an overlay (e.g. once it is closed). */
  remove(source: MetricsSource): boolean {
    const i = this.list.indexOf(source);
    if (i < 0) return false;
    this.list.splice(i, 1);
    return true;
  }

  sources(): readonly MetricsSource[] {
    return [...this.list];
  }

  /** The Prometheus text exposition of every metric in the registry. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** /healthz: every overlay exported is healthy (and there is at least one). */
  healthy(): boolean {
    return this.list.length > 0 && this.list.every((s) => s.healthy ?? s.stats().healthy);
  }

  /**
   * One stats() per overlay per scrape. prom-client calls each metric's collect() once per
   * scrape, all in one synchronous run, so a scrape is over when a family collects a second time,
   * or at the latest when the event loop turns (an HTTP request is a turn of its own).
   */
  private beginCollect(family: string): void {
    if (this.scrape && !this.scrape.collected.has(family)) {
      this.scrape.collected.add(family);
      return;
    }
    this.newScrape().collected.add(family);
  }

  private newScrape(): { stats: Map<MetricsSource, OverlayStats>; collected: Set<string> } {
    const scrape = { stats: new Map<MetricsSource, OverlayStats>(), collected: new Set<string>() };
    this.scrape = scrape;
    setImmediate(() => {
      if (this.scrape === scrape) this.scrape = null;
    }).unref();
    return scrape;
  }

  private statsOf(source: MetricsSource): OverlayStats {
    const scrape = this.scrape ?? this.newScrape();
    let stats = scrape.stats.get(source);
    if (!stats) {
      stats = source.stats();
      scrape.stats.set(source, stats);
    }
    return stats;
  }

  private register(family: Family): void {
    const labelNames = ['instance_name', ...family.labels];
    const collectInto = (emit: (labels: Record<string, string>, value: number) => void) => {
      this.beginCollect(family.name);
      for (const source of this.list) {
        const instance = source.name;
        family.collect(this.statsOf(source), source, (labels, value) => emit({ instance_name: instance, ...labels }, value));
      }
    };
    if (family.type === 'counter') {
      new Counter({
        name: family.name,
        help: family.help,
        labelNames,
        registers: [this.registry],
        collect(this: Counter<string>) {
          // Absolute values from the counters block: start from nothing, so that a peer that left goes too.
          this.reset();
          collectInto((labels, value) => this.inc(labels, value));
        },
      });
    } else {
      new Gauge({
        name: family.name,
        help: family.help,
        labelNames,
        registers: [this.registry],
        collect(this: Gauge<string>) {
          this.reset();
          collectInto((labels, value) => this.set(labels, value));
        },
      });
    }
  }
}

export interface MetricsServer {
  readonly metrics: OverlayMetrics;
  /** Where it listens (the port the kernel chose, when asked for port 0). */
  readonly address: { address: string; port: number };
  /** http://host:port */
  readonly url: string;
  /** Stops listening and drops open connections. Idempotent. */
  close(): Promise<void>;
}

export interface MetricsServerOptions extends OverlayMetricsOptions {
  /** The config field the address came from, named in errors (default 'metrics.listen'). */
  field?: string;
}

/** An error of the listening socket, in words that say what to change. */
function listenError(err: NodeJS.ErrnoException, field: string, where: string): Error {
  const why: Record<string, string> = {
    EADDRINUSE: 'address already in use: another process listens there (stop it, or choose another port)',
    EADDRNOTAVAIL: 'the address is not one of this host (or of this network namespace)',
    EACCES: 'permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)',
  };
  const e: NodeJS.ErrnoException = new Error(`${field} ${where}: cannot listen: ${why[err.code ?? ''] ?? err.message}${err.code ? ` (${err.code})` : ''}`);
  if (err.code !== undefined) e.code = err.code;
  if (err.errno !== undefined) e.errno = err.errno;
  return e;
}

/**
 * Serves `GET /metrics` (the Prometheus text format) and `GET /healthz` (200 "ok" while the
 * overlay is healthy, 503 once its data path failed) on `listen` ("127.0.0.1:9469", "[::1]:0",
 * or `{ address, port }`). Throws on a bad address or when the port cannot be bound.
 */
export async function createMetricsServer(
  source: MetricsSource | readonly MetricsSource[] | OverlayMetrics,
  listen: string | { address: string; port: number },
  options: MetricsServerOptions = {},
): Promise<MetricsServer> {
  const field = options.field ?? 'metrics.listen';
  const parsed = parseListen(typeof listen === 'string' ? listen : formatListen(listen), true);
  if (!parsed.ok) throw new TypeError(`${field}: ${parsed.message}`);
  const at: ListenAddress = parsed.value;
  const metrics = source instanceof OverlayMetrics ? source : new OverlayMetrics(source, options);

  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    const route = url.split('?', 1)[0];
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8', extra: Record<string, string> = {}) => {
      res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store', ...extra });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(405, 'only GET and HEAD\n', undefined, { Allow: 'GET, HEAD' });
      return;
    }
    if (route === '/metrics') {
      metrics.metrics().then(
        (text) => send(200, text, metrics.contentType),
        (err: unknown) => send(500, `metrics: ${err instanceof Error ? err.message : String(err)}\n`),
      );
    } else if (route === '/healthz') {
      let healthy = false;
      try {
        healthy = metrics.healthy();
      } catch {
        // a source that cannot say is not healthy
      }
      send(healthy ? 200 : 503, healthy ? 'ok\n' : 'unhealthy: the data path failed\n');
    } else if (route === '/') {
      const names = metrics.sources().map((s) => s.name).join(', ');
      send(200, `overlayfwd ${names}: /metrics (Prometheus), /healthz\n`);
    } else {
      send(404, 'not found: /metrics, /healthz\n');
    }
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;

  const where = formatListen(at);
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(listenError(err, field, where));
    server.once('error', onError);
    server.listen({ host: at.address, port: at.port, exclusive: true }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  // Metrics are not on the packet path: an error of the listening socket later (out of fds on
  // accept) must not take the overlay down with it. Each request's own errors stay with it.
  server.on('error', () => {});
  const bound = server.address() as AddressInfo;
  const address = { address: bound.address, port: bound.port };
  let closing: Promise<void> | null = null;
  return {
    metrics,
    address,
    url: `http://${formatListen(address)}`,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
