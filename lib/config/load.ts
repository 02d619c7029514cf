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

/** Reads a YAML (or JSON, a subset of YAML) file and parses it. Throws ConfigError. */
export function loadConfigFile(file: string): ResolvedConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (e as Error).message;
    throw new ConfigError([{ path: '(file)', message: `cannot read ${file}: ${why}` }]);
  }
  return loadConfigText(text, file);
}
