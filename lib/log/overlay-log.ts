// What a running overlay says, as log lines: the overlay's events (and its registry's) each
// become one line of their component, and the drop summary reads stats() once per interval.
// The library emits the events; this glue (used by `overlayfwd up`) is the one place that turns
// them into lines. Each line is built field by field from names, SPIs, addresses and counts.
import type { Overlay, OverlayEvents } from '../overlay';
import type { TableChange } from '../types';
import { DropSummary } from './drop-summary';
import { componentLogger, type Logger } from './logger';

/** At most this many names in a line; the count says how many there were. */
const MAX_NAMES = 20;

export interface OverlayLogOptions {
  /** The drop summary's interval (default: a minute; see dropSummaryInterval). */
  dropSummaryMs: number;
  /** A monotonic clock in ms (tests). */
  now?: () => number;
}

export interface OverlayLog {
  /** Stops the drop summary and the listeners. */
  close(): void;
}

function hexSpi(spi: number): string {
  return `0x${spi.toString(16).padStart(8, '0')}`;
}

/** Up to MAX_NAMES names, and `Count` beside them when there were more. */
function names(field: string, list: readonly string[]): Record<string, unknown> {
  if (list.length === 0) return {};
  if (list.length <= MAX_NAMES) return { [field]: list };
  return { [field]: list.slice(0, MAX_NAMES), [`${field}Count`]: list.length };
}

export function tableFields(change: TableChange): Record<string, unknown> {
  return {
    generation: change.generation,
    cause: change.cause,
    peers: change.peers,
    ...names('added', change.added),
    ...names('removed', change.removed),
    ...names('changed', change.changed),
  };
}

export function logOverlay(overlay: Overlay, logger: Logger, options: OverlayLogOptions): OverlayLog {
  const log = {
    device: componentLogger(logger, 'device'),
    peers: componentLogger(logger, 'peers'),
    datapath: componentLogger(logger, 'datapath'),
    ike: componentLogger(logger, 'ike'),
    registry: componentLogger(logger, 'registry'),
  };
  const undo: Array<() => void> = [];
  const on = <E extends keyof OverlayEvents>(event: E, listener: (...args: OverlayEvents[E]) => void) => {
    overlay.on(event, listener as never);
    undo.push(() => overlay.off(event, listener as never));
  };

  // Offloads: what the probe at start left in use, and what it (or the config) turned off.
  const requested = overlay.config.offloads as Record<string, boolean>;
  const active = overlay.stats().offloads.active as Record<string, boolean>;
  log.datapath.info(
    {
      active: Object.keys(active).filter((k) => active[k]),
      unavailable: Object.keys(active).filter((k) => requested[k] !== false && !active[k]),
      disabled: Object.keys(active).filter((k) => requested[k] === false),
    },
    'offloads probed',
  );

  on('offloadFallback', (e) => log.datapath.warn({ added: e.added, total: e.total }, 'the kernel refused an offload at run time; the data path turned it off'));
  on('healthChanged', (e) => {
    if (e.healthy) log.datapath.warn({ healthy: true }, 'data path healthy again');
    else log.datapath.error({ healthy: false, reason: e.reason, device: overlay.device.name }, `the data path failed (device ${overlay.device.name} gone?)`);
  });
  on('tableChanged', (e) => log.peers.info(tableFields(e), 'peer table installed'));
  // esp: an SA nearing its limit (SPIs only, never keys).
  on('rekeyNeeded', (e) => {
    const fields = { peer: e.peer, spi: hexSpi(e.spi), sequence: e.sequence.toString(), exhausted: e.exhausted };
    if (e.exhausted) log.peers.warn(fields, `outbound SA has used up its sequence numbers; nothing is sent to ${e.peer} until it is rekeyed`);
    else log.peers.warn(fields, 'outbound SA nears the end of its sequence numbers; rekey it');
  });
  // IKE lines come structured (SPIs, algorithms, reasons; never a key): their fields as they are.
  on('ike', (line) => {
    const { level, msg, ...fields } = line;
    const write = level === 'warn' ? log.ike.warn : level === 'debug' ? log.ike.debug : log.ike.info;
    write.call(log.ike, fields, msg);
  });
  // TAP: the gratuitous ARP / unsolicited NA for each address; a failure is worth a warning.
  on('announce', (e) => {
    const fields = { address: e.address, family: e.family, kind: e.kind, when: e.when };
    if (e.error) log.device.warn({ ...fields, error: e.error }, `could not announce ${e.address || 'the device addresses'}`);
    else log.device.info(fields, 'address announced');
  });

  // Registry mode: hosts coming and going, etcd lost and back, records refused. The way back
  // is logged at the level of the way down, so that who sees one sees the other.
  const registry = overlay.registry;
  if (registry) {
    log.registry.info({ node: overlay.config.node?.name, subnet: registry.subnetText, deviceAddress: registry.deviceAddress }, 'joined the registry');
    const node = (n: { name: string; subnet: string; endpoint: string }) => ({ node: n.name, subnet: n.subnet, endpoint: n.endpoint });
    const listeners = {
      nodeJoined: (n: Parameters<typeof node>[0]) => log.registry.info(node(n), 'node joined'),
      nodeLeft: (n: Parameters<typeof node>[0]) => log.registry.info(node(n), 'node left'),
      nodeChanged: (n: Parameters<typeof node>[0], p: { endpoint: string }) => log.registry.info({ ...node(n), previousEndpoint: p.endpoint }, 'node changed'),
      registryDown: (e: Error) => log.registry.warn({ error: e.message }, 'etcd unreachable; forwarding goes on with the current peers'),
      registryUp: () => log.registry.warn('etcd reachable again'),
      // The etcd key of the record (a path, no secret) as `record`: a field named `key` is redacted.
      recordSkipped: (s: { key: string; reason: string }) => log.registry.warn({ record: s.key, reason: s.reason }, 'record skipped'),
      warning: (w: string) => log.registry.warn(w),
    };
    for (const [event, listener] of Object.entries(listeners)) {
      registry.on(event as never, listener as never);
      undo.push(() => registry.off(event as never, listener as never));
    }
  }

  // The drop summary: one read of the shared counters per interval, a line only when drops grew.
  const now = options.now ?? (() => performance.now());
  const summary = new DropSummary(options.dropSummaryMs, overlay.stats(), now());
  const timer = setInterval(() => {
    if (overlay.closed) return;
    const report = summary.observe(overlay.stats(), now());
    if (report) log.datapath.warn({ ...report }, 'packets dropped');
  }, options.dropSummaryMs);
  timer.unref();
  undo.push(() => clearInterval(timer));

  return {
    close() {
      for (const u of undo.splice(0)) u();
    },
  };
}
