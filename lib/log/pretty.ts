// Human-readable log lines for a terminal: the JSON line pino wrote, reformatted in the same
// thread as one line of text. (pino-pretty as a transport would run in a worker thread; this
// process already runs native worker threads and enters network namespaces, and a formatter
// this small is not worth that risk.)

export interface PrettyOptions {
  /** ANSI colours for the level (a terminal that wants them). */
  color?: boolean;
}

const LEVEL_COLORS: Record<string, string> = { fatal: '31', error: '31', warn: '33', info: '32', debug: '90', trace: '90' };
/** Fields every line has, shown in the line's head instead of as key=value. */
const HEAD_FIELDS = new Set(['level', 'time', 'instance', 'component', 'msg']);

/**
 * One JSON log line as text: `12:00:01.250 WARN  ovl0 datapath: packets dropped total=3
 * drops={"malformed":3}`. The time is the clock part of the line's `time` (UTC).
 */
export function formatPretty(line: string, options: PrettyOptions = {}): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const time = typeof record['time'] === 'string' ? (/T(\d\d:\d\d:\d\d(?:\.\d+)?)/.exec(record['time'])?.[1] ?? record['time']) : '';
  const label = String(record['level'] ?? '').toUpperCase().padEnd(5);
  const level = options.color && LEVEL_COLORS[String(record['level'])] ? `\x1b[${LEVEL_COLORS[String(record['level'])]}m${label}\x1b[0m` : label;
  const where = [record['instance'], record['component']].filter((x) => x !== undefined).join(' ');
  const fields = Object.entries(record)
    .filter(([k]) => !HEAD_FIELDS.has(k))
    .map(([k, v]) => `${k}=${formatValue(v)}`);
  const head = [time, level, where ? `${where}:` : '', String(record['msg'] ?? '')].filter((x) => x !== '').join(' ');
  return `${[head, ...fields].join(' ')}\n`;
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? String(value);
}

/** A pino destination that writes each line through formatPretty to `write` (synchronously). */
export function prettyDestination(write: (text: string) => void, options: PrettyOptions = {}): { write(line: string): void } {
  return { write: (line: string) => write(formatPretty(line, options)) };
}
