// overlayfwd up -c FILE: start an instance and run it in the foreground until SIGINT/SIGTERM.
import { formatEndpoint } from '../config';
import { sourceName } from '../config/load';
import { ControlServer, probeSocket } from '../control';
import type { MetricsServer } from '../metrics';
import { describeRouteEvent } from '../routes';
import type { ResolvedConfig } from '../types';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, plural, printWarnings, readConfigWithWarnings, reportError } from './common';

interface StopSignal {
  /** Resolves with the first SIGINT/SIGTERM. */
  readonly received: Promise<NodeJS.Signals>;
  readonly stopped: boolean;
  dispose(): void;
}

/** Catches SIGINT/SIGTERM from now on; a second signal while shutting down exits at once. */
function catchStopSignals(): StopSignal {
  let stopped = false;
  let resolveFn: (s: NodeJS.Signals) => void = () => {};
  const received = new Promise<NodeJS.Signals>((resolve) => (resolveFn = resolve));
  const handler = (signal: NodeJS.Signals) => {
    if (stopped) {
      process.stderr.write(`overlayfwd: ${signal} again, exiting without cleanup\n`);
      process.exit(EXIT_FAILURE);
    }
    stopped = true;
    resolveFn(signal);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    received,
    get stopped() {
      return stopped;
    },
    dispose() {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}

function encapLine(config: ResolvedConfig): string {
  if (config.encap.type === 'esp') {
    const where = config.encap.udp === false ? `${config.underlay.local} (IP protocol 50)` : formatEndpoint({ address: config.underlay.local, port: config.encap.port });
    return `esp ${config.encap.cipher ?? ''} on ${where}`;
  }
  return `${config.encap.type} vni ${config.encap.vni} on ${formatEndpoint({ address: config.underlay.local, port: config.encap.port })}`;
}

function upLine(config: ResolvedConfig, device: { name: string; mtu: number }): string {
  const names = config.peers.map((p) => p.name);
  const peers =
    names.length === 0 ? 'no peers' : `${plural(names.length, 'peer')} (${names.length <= 6 ? names.join(', ') : `${names.slice(0, 6).join(', ')}, ...`})`;
  return (
    `overlayfwd: ${config.name} up: device ${device.name} mtu ${device.mtu}, ` +
    `${encapLine(config)}, ` +
    `${peers}, ${plural(config.workers, 'worker')}, control ${config.control.socket}`
  );
}

const LOG_LEVELS = ['warn', 'info', 'debug'] as const;

export async function runUp(opts: { config: string; logLevel?: string }): Promise<number> {
  const logLevel = LOG_LEVELS.indexOf((opts.logLevel ?? 'warn') as (typeof LOG_LEVELS)[number]);
  if (logLevel < 0) {
    process.stderr.write(`overlayfwd: --log-level must be one of: ${LOG_LEVELS.join(', ')}\n`);
    return EXIT_USAGE;
  }
  let config: ResolvedConfig;
  try {
    // -c - reads stdin once: a reload (SIGHUP, `overlayfwd reload`) has no file to read again.
    const read = await readConfigWithWarnings(opts.config);
    config = read.config;
    printWarnings(read.warnings);
  } catch (err) {
    return reportError(err, `invalid config ${sourceName(opts.config)}`);
  }

  const signals = catchStopSignals();
  try {
    // Refuse before touching the system if the control socket is taken.
    if ((await probeSocket(config.control.socket).catch(() => 'absent')) === 'live') {
      process.stderr.write(`overlayfwd: another instance is running (${config.control.socket} is in use)\n`);
      return EXIT_FAILURE;
    }

    const { Overlay } = await import('../overlay');
    let overlay: Awaited<ReturnType<typeof Overlay.create>>;
    try {
      overlay = await Overlay.create(config);
    } catch (err) {
      return reportError(err, `invalid config ${sourceName(opts.config)}`);
    }
    // TUN kernel routes (device.routes): a refused one is a warning; every change at info. Before
    // any other await: the start's events come right after create() resolved.
    overlay.on('route', (e) => {
      if (e.kind === 'exists' || e.kind === 'failed') process.stderr.write(`overlayfwd: ${config.name}: warning: ${describeRouteEvent(e)}\n`);
      else if (logLevel >= LOG_LEVELS.indexOf('info')) process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), instance: config.name, component: 'routes', level: 'info', msg: describeRouteEvent(e), ...e })}\n`);
    });

    let control: ControlServer;
    try {
      control = await ControlServer.listen(overlay, config.control.socket);
    } catch (err) {
      await overlay.close().catch(() => {});
      return reportError(err);
    }

    // metrics: { listen }: Prometheus /metrics and /healthz (a port in use is an error, exit 1).
    let metrics: MetricsServer | null = null;
    if (config.metrics) {
      try {
        metrics = await (await import('../metrics')).createMetricsServer(overlay, config.metrics.listen);
      } catch (err) {
        await control.close().catch(() => {});
        await overlay.close().catch(() => {});
        return reportError(err);
      }
    }

    // esp: an SA nearing its limit is worth a line (SPIs only, never keys).
    overlay.on('rekeyNeeded', (e) => {
      const spi = `0x${e.spi.toString(16).padStart(8, '0')}`;
      process.stderr.write(
        e.exhausted
          ? `overlayfwd: ${config.name}: peer ${e.peer}: outbound SA ${spi} has used up its sequence numbers; nothing is sent to ${e.peer} until it is rekeyed\n`
          : `overlayfwd: ${config.name}: peer ${e.peer}: outbound SA ${spi} nears the end of its sequence numbers; rekey it\n`,
      );
    });
    // IKE: one JSON line per exchange and state change at info, warnings always (never a key:
    // the session logs SPIs, algorithms and reasons only).
    overlay.on('ike', (line) => {
      if (LOG_LEVELS.indexOf(line.level) > logLevel) return;
      process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), instance: config.name, component: 'ike', ...line })}\n`);
    });
    // TAP: the gratuitous ARP / unsolicited NA for each address; a failure is worth a line.
    overlay.on('announce', (e) => {
      if (e.error) process.stderr.write(`overlayfwd: ${config.name}: could not announce ${e.address || 'the device addresses'}: ${e.error}\n`);
      else if (logLevel >= LOG_LEVELS.indexOf('info')) process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), instance: config.name, component: 'device', level: 'info', msg: 'address announced', ...e })}\n`);
    });
    // Registry mode: hosts coming and going, etcd lost and back, records refused.
    const registry = overlay.registry;
    if (registry) {
      const line = (text: string) => process.stderr.write(`overlayfwd: ${config.name}: registry: ${text}\n`);
      line(`joined as ${config.node!.name} with subnet ${registry.subnetText}, device ${registry.deviceAddress}`);
      registry.on('nodeJoined', (n) => line(`${n.name} joined (${n.subnet} at ${n.endpoint})`));
      registry.on('nodeLeft', (n) => line(`${n.name} left (${n.subnet})`));
      registry.on('nodeChanged', (n, p) => line(`${n.name} changed (${p.endpoint} -> ${n.endpoint})`));
      registry.on('registryDown', (e) => line(`etcd unreachable (${e.message}); forwarding goes on with the current peers`));
      registry.on('registryUp', () => line('etcd reachable again'));
      registry.on('recordSkipped', (s) => line(`skipped record ${s.key}: ${s.reason}`));
      registry.on('warning', (w) => line(w));
    }
    if (!signals.stopped) {
      const active = Object.entries(overlay.stats().offloads.active).filter(([, on]) => on).map(([name]) => name);
      process.stdout.write(`${upLine(overlay.config, overlay.device)}, offloads ${active.length ? active.join(' ') : 'none'}${metrics ? `, metrics ${metrics.url}/metrics` : ''}\n`);
    }
    // The data path can fail for good under us (the device deleted by hand): then stop, loudly.
    let healthTimer: NodeJS.Timeout | undefined;
    const failed = new Promise<'failed'>((resolve) => {
      healthTimer = setInterval(() => {
        if (!overlay.healthy) resolve('failed');
      }, 1000);
    });
    const reason = await Promise.race([signals.received, failed]);
    clearInterval(healthTimer);
    let code = EXIT_OK;
    if (reason === 'failed') {
      process.stderr.write(`overlayfwd: ${config.name}: the data path failed (device ${overlay.device.name} gone?); shutting down\n`);
      code = EXIT_FAILURE;
    } else {
      process.stderr.write(`overlayfwd: ${reason}: shutting down ${config.name}\n`);
    }
    await metrics?.close();
    await control.close().catch((err: unknown) => {
      code = reportError(err);
    });
    await overlay.close().catch((err: unknown) => {
      code = reportError(err);
    });
    return code;
  } finally {
    signals.dispose();
  }
}
