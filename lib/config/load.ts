// Reading a config file: YAML (JSON is a subset), every problem a ConfigError at `(file)`.
import fs from 'node:fs';
import YAML from 'yaml';
import type { ResolvedConfig } from '../types';
import { ConfigError } from './errors';
import { parseConfig } from './resolve';

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
  const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => ({ path: '(file)', message: `${file}: ${(e.message.split('\n')[0] ?? e.message).replace(/:$/, '')}` })),
    );
  }
  const data: unknown = doc.toJS({ maxAliasCount: 100 });
  if (data === null || data === undefined) {
    throw new ConfigError([{ path: '(file)', message: `${file} is empty` }]);
  }
  return parseConfig(data);
}
