// overlayfwd up -c FILE: start an instance and run it in the foreground until SIGINT/SIGTERM,
// logging through lib/log (JSON lines on stderr, readable ones on a terminal).
import { formatEndpoint, isConfigError } from '../config';
import { sourceName } from '../config/load';
import { ControlError, ControlServer, probeSocket } from '../control';
import type { MetricsServer } from '../metrics';
import type { Overlay } from '../overlay';
import type { ReloadResult, ResolvedConfig } from '../types';
import { DROP_SUMMARY_MIN_MS, dropSummaryInterval } from '../log/drop-summary';
import { componentLogger, createLogger, DEFAULT_LOG_LEVEL, isLogLevel, type Logger } from '../log/logger';
import { logOverlay } from '../log/overlay-log';
import { routeProcessWarnings } from '../log/process-warnings';
import { startFields } from '../log/start-summary';
import { loadNative } from '../native';
import { capabilityName, dropPrivileges, identitySwitchRefusal, readableBy, resolveIdentity, type Identity } from '../privileges';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, packageVersion, plural, printWarnings, readConfig, readConfigWithWarnings, reportError } from './common';

interface StopSignal {
  /** Resolves with the first SIGINT/SIGTERM. */
  readonly received: Promise<NodeJS.Signals>;
  readonly stopped: boolean;
  dispose(): void;
}

/** Catches SIGINT/SIGTERM from now on; a second signal while shutting down exits at once. */
function catchStopSignals(log: Logger): StopSignal {
  let stopped = false;
  let resolveFn: (s: NodeJS.Signals) => void = () => {};
  const received = new Promise<NodeJS.Signals>((resolve) => (resolveFn = resolve));
  const handler = (signal: NodeJS.Signals) => {
    if (stopped) {
      // The logger writes synchronously: the line is out before the process is.
      log.error({ signal }, `${signal} again, exiting without cleanup`);
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

/** The levels --log-level takes, in the order its help lists them. */
const LEVELS_TEXT = ['error', 'warn', 'info', 'debug', 'silent'] as const;

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

/**
 * The reload with a log line for each, asked for by SIGHUP or the control socket: what changed
 * (names only), or why it was refused (the config's issues, which never quote a key). The
 * caller still gets the result or the error.
 */
function loggedReload(reload: () => Promise<ReloadResult>, log: Logger, file: string): (via: 'SIGHUP' | 'control socket') => Promise<ReloadResult> {
  return (via) =>
    reload().then(
      (r) => {
        const { added, removed, changed, settings, applied, tableGeneration } = r;
        log.info({ via, file, applied, added, removed, changed, settings, tableGeneration }, applied ? `reloaded ${file}` : `reloaded ${file}: nothing to change`);
        return r;
      },
      (err: unknown) => {
        const why = isConfigError(err) ? { issues: err.issues.map((i) => ({ path: i.path, message: i.message })) } : { error: err instanceof Error ? err.message : String(err) };
        log.warn({ via, file, ...why }, `reload of ${file} refused; the running config stays`);
        throw err;
      },
    );
}

export async function runUp(opts: { config: string; logLevel?: string }): Promise<number> {
  const level = opts.logLevel ?? DEFAULT_LOG_LEVEL;
  if (!isLogLevel(level)) {
    process.stderr.write(`overlayfwd: --log-level must be one of: ${LEVELS_TEXT.join(', ')}\n`);
    return EXIT_USAGE;
  }
  let config: ResolvedConfig;
  let identity: Identity | null;
  try {
    // -c - reads stdin once: a reload (SIGHUP, `overlayfwd reload`) has no file to read again.
    const read = await readConfigWithWarnings(opts.config);
    config = read.config;
    identity = resolveIdentity(config, loadNative());
    printWarnings(read.warnings);
  } catch (err) {
    return reportError(err, `invalid config ${sourceName(opts.config)}`);
  }
  // Before touching the system: a user that cannot be switched to would fail only after setup.
  const refusal = identity && identitySwitchRefusal(identity);
  if (refusal) {
    process.stderr.write(`overlayfwd: ${refusal}\n`);
    return EXIT_FAILURE;
  }
  if (identity && opts.config !== '-' && !readableBy(opts.config, identity)) {
    // Not fatal: the instance runs; only a reload, which re-reads the file as that user, fails.
    printWarnings([{ path: 'user', message: `${identity.user} cannot read ${opts.config}, so a reload will not either: chgrp ${identity.group} ${opts.config} && chmod 640 ${opts.config}` }]);
  }

  // Until the instance runs, errors are the CLI's plain "overlayfwd: " lines (exit 1 or 2);
  // from the start line on, everything on stderr is a log line.
  const logger = createLogger({ instance: config.name, level });
  const log = componentLogger(logger, 'control');
  const restoreWarnings = routeProcessWarnings(log);
  const signals = catchStopSignals(log);
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
    // At once: the start's announcements and IKE lines are emitted just after create() resolved.
    const interval = dropSummaryInterval();
    const overlayLog = logOverlay(overlay, logger, { dropSummaryMs: interval.ms });

    const reload = loggedReload(fileReloader(opts.config, overlay), log, sourceName(opts.config));
    let control: ControlServer;
    try {
      // With user:, root and the user's group may use the socket (root owns it: created before the switch).
      control = await ControlServer.listen(overlay, config.control.socket, { reload: () => reload('control socket'), ...(identity ? { group: identity.gid } : {}) });
    } catch (err) {
      overlayLog.close();
      await overlay.close().catch(() => {});
      return reportError(err);
    }

    // metrics: { listen }: Prometheus /metrics and /healthz (a port in use is an error, exit 1).
    let metrics: MetricsServer | null = null;
    if (config.metrics) {
      try {
        metrics = await (await import('../metrics')).createMetricsServer(overlay, config.metrics.listen);
      } catch (err) {
        overlayLog.close();
        await control.close().catch(() => {});
        await overlay.close().catch(() => {});
        return reportError(err);
      }
    }

    // Setup is over: from here on the process holds only what table swaps need (lib/privileges.ts).
    try {
      const dropped = dropPrivileges(config, identity, loadNative());
      log.info(
        {
          kept: dropped.kept.map((k) => k.name),
          ...(dropped.identity ? { user: dropped.identity.user, group: dropped.identity.group, uid: dropped.identity.uid, gid: dropped.identity.gid } : {}),
          // Threads that block every signal (Node's SIGUSR1 watcher, the IKE reader): what they hold.
          unreached: dropped.unreached.map((t) => ({ tid: t.tid, name: t.name, effective: t.effective.map(capabilityName) })),
        },
        'privileges dropped',
      );
    } catch (err) {
      overlayLog.close();
      if (metrics) await metrics.close().catch(() => {});
      await control.close().catch(() => {});
      await overlay.close().catch(() => {});
      return reportError(err);
    }
    // A SIGUSR1 would open Node's inspector, which runs any code its client sends with what this
    // process holds, for whoever may signal it (any process of the user it runs as): listening
    // for it keeps the inspector shut.
    const onUsr1 = () => log.warn({ signal: 'SIGUSR1' }, 'SIGUSR1 ignored (the inspector stays closed)');
    process.on('SIGUSR1', onUsr1);

    if (interval.invalid !== undefined) {
      log.warn({ value: interval.invalid, ms: interval.ms }, `OVERLAYFWD_DROP_SUMMARY_MS must be a whole number of ms of at least ${DROP_SUMMARY_MIN_MS}; using ${interval.ms}`);
    }
    // SIGHUP re-reads the config file, as `overlayfwd reload` does (it no longer ends the process).
    const onHangup = () => void reload('SIGHUP').catch(() => {});
    process.on('SIGHUP', onHangup);
    if (metrics) componentLogger(logger, 'metrics').info({ url: `${metrics.url}/metrics` }, 'metrics served');
    log.info(startFields(overlay, { metricsUrl: metrics?.url, version: packageVersion() }), 'started');

    // The data path can fail for good under us (the device deleted by hand): then stop, loudly
    // (the overlay looks once a second; logOverlay writes the error line).
    const failed = new Promise<'failed'>((resolve) => {
      if (!overlay.healthy) resolve('failed');
      overlay.on('healthChanged', (e) => {
        if (!e.healthy) resolve('failed');
      });
    });
    if (!signals.stopped) {
      const active = Object.entries(overlay.stats().offloads.active).filter(([, on]) => on).map(([name]) => name);
      process.stdout.write(`${upLine(overlay.config, overlay.device)}, offloads ${active.length ? active.join(' ') : 'none'}${metrics ? `, metrics ${metrics.url}/metrics` : ''}\n`);
    }
    const reason = await Promise.race([signals.received, failed]);
    process.off('SIGHUP', onHangup);
    process.off('SIGUSR1', onUsr1);
    let code = reason === 'failed' ? EXIT_FAILURE : EXIT_OK;
    log.info({ reason: reason === 'failed' ? 'the data path failed' : reason }, 'stopping');
    overlayLog.close();
    const closing = async (what: string, close: () => Promise<void>) => {
      await close().catch((err: unknown) => {
        log.error({ error: err instanceof Error ? err.message : String(err) }, `could not close the ${what}`);
        code = EXIT_FAILURE;
      });
    };
    if (metrics) await closing('metrics server', () => metrics.close());
    await closing('control socket', () => control.close());
    await closing('overlay', () => overlay.close());
    log.info({ exitCode: code }, 'stopped');
    return code;
  } finally {
    signals.dispose();
    restoreWarnings();
  }
}
