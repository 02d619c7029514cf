// overlayfwd up -c FILE: start an instance and run it in the foreground until SIGINT/SIGTERM.
import { formatEndpoint } from '../config';
import { sourceName } from '../config/load';
import { ControlError, ControlServer, probeSocket } from '../control';
import type { MetricsServer } from '../metrics';
import type { Overlay } from '../overlay';
import type { ReloadResult, ResolvedConfig } from '../types';
import { reloadSummary } from './reload';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, plural, readConfig, reportError } from './common';

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

/** The mode as the banner says it: what rides where, with only the options the mode has. */
export function encapLine(config: ResolvedConfig): string {
  const { encap } = config;
  const local = config.underlay.local;
  const ipProto = (n: number, what: string) => `${local} (IP protocol ${n}, ${what})`;
  const greOptions = () =>
    [encap.key !== null && encap.key !== undefined ? `key ${encap.key}` : '', encap.checksum ? 'checksum' : '', encap.sequence ? 'sequence' : ''].filter(Boolean).join(' ');
  switch (encap.type) {
    case 'vxlan':
    case 'geneve':
      return `${encap.type} vni ${encap.vni} on ${formatEndpoint({ address: local, port: encap.port })}`;
    case 'gre-udp':
      return `gre-udp${greOptions() ? ` ${greOptions()}` : ''} on ${formatEndpoint({ address: local, port: encap.port })}`;
    case 'gre':
      return `gre${greOptions() ? ` ${greOptions()}` : ''} on ${ipProto(47, 'GRE')}`;
    case 'ipip':
      // The protocol number names the inner packet: 4 for IPv4 inside, 41 for IPv6 inside.
      return `ipip on ${local} (IP protocols 4 and 41, IPv4 and IPv6 in IP)`;
    case 'esp': {
      const keying = config.peers.some((p) => p.ike) || config.ike ? 'IKEv2' : 'manual SAs';
      const where = encap.udp === false ? ipProto(50, 'ESP') : formatEndpoint({ address: local, port: encap.port });
      return `esp ${encap.cipher ?? 'negotiated'} (${keying}) on ${where}`;
    }
  }
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

/**
 * The reload of `up`: re-reads the file it started from and applies it, one at a time (a
 * SIGHUP during an `overlayfwd reload` waits for it). A config read from stdin cannot be read
 * again: that is refused.
 */
function fileReloader(file: string, overlay: Overlay): () => Promise<ReloadResult> {
  let last: Promise<unknown> = Promise.resolve();
  return () => {
    const run = last.then(async () => {
      if (file === '-') {
        throw new ControlError('this instance read its config from stdin (-c -): there is no file to re-read; restart it, or change peers with peers add|remove');
      }
      return overlay.reload(await readConfig(file));
    });
    last = run.catch(() => {});
    return run;
  };
}

export async function runUp(opts: { config: string; logLevel?: string }): Promise<number> {
  const logLevel = LOG_LEVELS.indexOf((opts.logLevel ?? 'warn') as (typeof LOG_LEVELS)[number]);
  if (logLevel < 0) {
    process.stderr.write(`overlayfwd: --log-level must be one of: ${LOG_LEVELS.join(', ')}\n`);
    return EXIT_USAGE;
  }
  let config: ResolvedConfig;
  try {
    // -c - reads stdin once: a reload (SIGHUP, `overlayfwd reload`) has no file to read again.
    config = await readConfig(opts.config);
  } catch (err) {
    return reportError(err, `invalid config ${sourceName(opts.config)}`);
  }

  const signals = catchStopSignals();
  try {
    // Refuse before touching the system if the control socket is taken.
    if ((await probeSocket(config.control.socket).catch(() => 'absent')) === 'live') {
      // Control sockets live in /run, shared by every network namespace: the same name started
      // in two namespaces meets here. Say how to run both.
      process.stderr.write(
        `overlayfwd: another instance is running (${config.control.socket} is in use), perhaps one of the same name in another network namespace; ` +
          'give this one another name, or its own control.socket\n',
      );
      return EXIT_FAILURE;
    }

    const { Overlay } = await import('../overlay');
    let overlay: Awaited<ReturnType<typeof Overlay.create>>;
    try {
      overlay = await Overlay.create(config);
    } catch (err) {
      return reportError(err, `invalid config ${sourceName(opts.config)}`);
    }

    const reload = fileReloader(opts.config, overlay);
    let control: ControlServer;
    try {
      control = await ControlServer.listen(overlay, config.control.socket, { reload });
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

    // SIGHUP re-reads the config file, as `overlayfwd reload` does (it no longer ends the process).
    const onHangup = () => {
      reload().then(
        (r) => process.stderr.write(`overlayfwd: ${config.name}: reloaded ${sourceName(opts.config)}: ${reloadSummary(r)}\n`),
        (err: unknown) => reportError(err, `reload of ${sourceName(opts.config)} refused; the running config stays`),
      );
    };
    process.on('SIGHUP', onHangup);

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
    process.off('SIGHUP', onHangup);
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
