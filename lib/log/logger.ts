// The logger of one overlayfwd instance: pino, JSON lines on stderr, or readable lines when
// stderr is a terminal. Every line carries the instance name; each part of the control plane
// logs through a child with its `component`.
import fs from 'node:fs';
import tty from 'node:tty';
import pino, { type DestinationStream, type Logger } from 'pino';
import { prettyDestination } from './pretty';
import { CENSOR, redactPaths } from './redact';

export type { Logger } from 'pino';

/** The levels `--log-level` takes, loudest first; `silent` logs nothing. */
export const LOG_LEVELS = ['silent', 'error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
/** Quiet by default: warnings, errors and the drop summary only. */
export const DEFAULT_LOG_LEVEL: LogLevel = 'warn';

export const COMPONENTS = ['control', 'device', 'peers', 'datapath', 'ike', 'registry', 'metrics'] as const;
export type Component = (typeof COMPONENTS)[number];

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value);
}

export interface LoggerOptions {
  /** The instance name: the `instance` field of every line. */
  instance: string;
  level?: LogLevel;
  /** json | pretty; auto (default): pretty when `fd` is a terminal. */
  format?: 'json' | 'pretty' | 'auto';
  /** Where lines go (default: file descriptor 2, stderr). */
  fd?: number;
  /** Instead of `fd`: a stream that takes each line (tests). */
  destination?: { write(line: string): void };
  /** ANSI colours in pretty output (default: when `fd` is a terminal and NO_COLOR is unset). */
  color?: boolean;
}

export function createLogger(options: LoggerOptions): Logger {
  const fd = options.fd ?? 2;
  const isTty = options.destination === undefined && tty.isatty(fd);
  const pretty = options.format === 'pretty' || ((options.format ?? 'auto') === 'auto' && isTty);
  let destination: DestinationStream;
  if (pretty) {
    const color = options.color ?? (isTty && process.env['NO_COLOR'] === undefined);
    const sink = options.destination ?? { write: (text: string) => writeAll(fd, text) };
    destination = prettyDestination((text) => sink.write(text), { color });
  } else {
    // Synchronous: a line written just before process.exit (a second SIGINT) still gets out,
    // and the volume is a few lines a minute.
    destination = options.destination ?? pino.destination({ fd, sync: true });
  }
  return pino(
    {
      level: options.level ?? DEFAULT_LOG_LEVEL,
      base: { instance: options.instance },
      timestamp: pino.stdTimeFunctions.isoTime,
      // "info", not 30: what the IKE lines of earlier releases had, and what people grep for.
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: redactPaths(), censor: CENSOR },
    },
    destination,
  );
}

/** The child logger of one component (adds `component` to each line). */
export function componentLogger(logger: Logger, component: Component): Logger {
  return logger.child({ component });
}

function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text);
  for (let off = 0; off < buf.length; ) {
    try {
      off += fs.writeSync(fd, buf, off);
    } catch (e) {
      // A terminal in non-blocking mode: try again; anything else loses the line, never the process.
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') return;
    }
  }
}
