// Reading a config file: YAML (JSON is a subset), every problem a ConfigError at `(file)` that
// names the file (or "<stdin>"). A config may hold ESP keys and PSKs: no message here quotes the
// text it read, only positions and what is wrong, and none names the YAML library's own API.
import fs from 'node:fs';
import YAML from 'yaml';
import type { ResolvedConfig } from '../types';
import { ConfigError } from './errors';
import { parseConfig } from './resolve';

/** The limit on alias expansion (uses of an anchor times the aliases within it): a "billion laughs" stops here. */
export const MAX_ALIAS_EXPANSION = 100;

/**
 * The most a config may hold, 16 MiB unless $OVERLAYFWD_MAX_CONFIG_BYTES says otherwise: a file
 * larger is refused unread, a stream (stdin, a FIFO, a device such as /dev/zero) once one byte
 * more was read. Parsing grows with the text (a 30 MB file took a minute and 3.5 GB), and a
 * device never ends.
 */
export const DEFAULT_MAX_CONFIG_BYTES = 16 * 1024 * 1024;
export const MAX_CONFIG_BYTES_ENV = 'OVERLAYFWD_MAX_CONFIG_BYTES';
/** What the limit may be raised to: about the longest string the JavaScript engine holds. */
const MAX_CONFIG_BYTES_CEILING = 512 * 1024 * 1024;

/** The limit in force: $OVERLAYFWD_MAX_CONFIG_BYTES (bytes) when set, else 16 MiB. A bad value is a ConfigError. */
export function maxConfigBytes(env: NodeJS.ProcessEnv = process.env): number {
  const text = env[MAX_CONFIG_BYTES_ENV];
  if (text === undefined || text === '') return DEFAULT_MAX_CONFIG_BYTES;
  const n = /^[0-9]{1,10}$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!(n >= 1 && n <= MAX_CONFIG_BYTES_CEILING)) {
    throw new ConfigError([
      { path: '(environment)', message: `${MAX_CONFIG_BYTES_ENV}=${JSON.stringify(text)}: must be a number of bytes from 1 to ${MAX_CONFIG_BYTES_CEILING}` },
    ]);
  }
  return n;
}

/** 16777216 → "16 MiB"; 1000 → "1000 bytes". */
export function formatByteLimit(n: number): string {
  return n % (1024 * 1024) === 0 ? `${n / (1024 * 1024)} MiB` : n % 1024 === 0 ? `${n / 1024} KiB` : `${n} bytes`;
}

/** The message for a config over `limit` read from `source`. */
export function configTooLarge(source: string, limit: number): ConfigError {
  return new ConfigError([
    { path: '(file)', message: `${source}: larger than ${formatByteLimit(limit)}, the limit on a config (${MAX_CONFIG_BYTES_ENV} sets another); refusing it` },
  ]);
}

/** What readBounded read: the text, and the file's mode bits when it is a regular file. */
export interface BoundedText {
  text: string;
  /** st_mode of a regular file (for the warning about keys others can read); null for a stream or device. */
  mode: number | null;
}

const CHUNK = 64 * 1024;

/**
 * Reads `file` (a regular file, a FIFO, a character device) but never more than `limit` + 1
 * bytes: a regular file whose size is over the limit is refused without reading it. Throws
 * ConfigError at `(file)`: `tooLarge()` when over the limit, else what kept it from being read.
 */
export function readBounded(file: string, limit: number, tooLarge: () => ConfigError = () => configTooLarge(file, limit)): BoundedText {
  const fail = (why: string): never => {
    throw new ConfigError([{ path: '(file)', message: `cannot read ${file}: ${why}` }]);
  };
  const reason = (e: unknown): string => {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (e as Error).message;
  };
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY);
  } catch (e) {
    return fail(reason(e));
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) return fail('is a directory');
    if (st.isFile() && st.size > limit) throw tooLarge();
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      // Never a buffer of the limit's size up front: most configs are a few KiB.
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, limit + 1 - total));
      let n: number;
      try {
        n = fs.readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10); // a non-blocking stream with nothing yet
          continue;
        }
        if ((e as NodeJS.ErrnoException).code === 'EINTR') continue;
        return fail(reason(e));
      }
      if (n === 0) break;
      chunks.push(n === buf.length ? buf : buf.subarray(0, n));
      total += n;
      if (total > limit) throw tooLarge();
    }
    return { text: Buffer.concat(chunks, total).toString('utf8'), mode: st.isFile() ? st.mode : null };
  } finally {
    fs.closeSync(fd);
  }
}

/** What `source` is called in messages: the file name, or "<stdin>" for "-". */
export function sourceName(file: string): string {
  return file === '-' ? '<stdin>' : file;
}

/**
 * What each YAML error code says, in our words: the library's messages quote the text around the
 * problem in some cases (a block scalar header, an escape, a tag: possibly part of a key) and name
 * its own functions in others. Codes not listed keep the library's text, which is a constant.
 */
const YAML_ERRORS: Record<string, string> = {
  MULTIPLE_DOCS: 'a second YAML document starts here ("---"); the file must hold one',
  BAD_DQ_ESCAPE: 'invalid escape sequence in a double-quoted string',
  BAD_SCALAR_START: 'a plain value cannot start with this character (quote the value)',
  BAD_PROP_ORDER: 'anchors and tags must come after the indicator',
  BAD_COLLECTION_TYPE: 'a tag does not fit the collection it is on',
  TAG_RESOLVE_FAILED: 'unknown tag',
  UNEXPECTED_TOKEN: 'unexpected text (not valid YAML here)',
  IMPOSSIBLE: 'not valid YAML',
};

/** A YAML library error as one line: "line 3, column 7: <what>". */
function yamlErrorText(e: YAML.YAMLError, lines: YAML.LineCounter): string {
  const at = lines.linePos(e.pos[0]);
  const what = YAML_ERRORS[e.code] ?? (e.message.split('\n')[0] ?? e.message).replace(/:$/, '');
  return `line ${at.line}, column ${at.col}: ${what}`;
}

/**
 * Parses the text of a YAML (or JSON) document read from `source` (a file name or "<stdin>")
 * into plain data. One document only; alias expansion is bounded by MAX_ALIAS_EXPANSION.
 * Throws ConfigError at `(file)`, every message starting with `source`.
 */
export function parseYamlText(text: string, source: string): unknown {
  const lines = new YAML.LineCounter();
  const doc = YAML.parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter: lines });
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => ({ path: '(file)', message: `${source}: ${yamlErrorText(e, lines)}` })));
  }
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_EXPANSION });
  } catch (e) {
    // The library throws (a ReferenceError) from toJS for the aliases it will not expand.
    const message = e instanceof Error ? e.message : String(e);
    const why = /resource exhaustion|alias count/i.test(message)
      ? `its aliases (*name) expand anchored content more than ${MAX_ALIAS_EXPANSION} times (as a "billion laughs" does); refusing it`
      : /unresolved alias/i.test(message)
        ? 'an alias (*name) refers to no anchor (&name) before it'
        : /alias/i.test(message)
          ? 'an alias (*name) that cannot be expanded'
          : 'cannot be read as data';
    throw new ConfigError([{ path: '(file)', message: `${source}: ${why}` }]);
  }
}

/** Parses config text read from `source` (a file name, or "<stdin>"). Throws ConfigError. */
export function loadConfigText(text: string, source: string): ResolvedConfig {
  const data = parseYamlText(text, source);
  if (data === null || data === undefined) {
    throw new ConfigError([{ path: '(file)', message: `${source} is empty` }]);
  }
  return parseConfig(data);
}

/**
 * Reads a YAML (or JSON, a subset of YAML) file and parses it, refusing one larger than `limit`
 * (maxConfigBytes(): 16 MiB unless $OVERLAYFWD_MAX_CONFIG_BYTES says otherwise) before it parses
 * anything. Throws ConfigError.
 */
export function loadConfigFile(file: string, limit: number = maxConfigBytes()): ResolvedConfig {
  return loadConfigText(readBounded(file, limit).text, file);
}
