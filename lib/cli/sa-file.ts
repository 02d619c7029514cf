// `peers add --sa-file FILE`: a peer's manual ESP SAs from a file, so that keys never appear on a
// command line (where `ps` and shell history would show them). The file holds what a config
// peer's `sa:` holds, as YAML or JSON:
//
//   out: { spi: 0x1001, key: "<hex>" }    # what we send with
//   in:  { spi: 0x2001, key: "<hex>" }    # what the peer sends with (or a list, newest first)
//
// It is read with the config's YAML rules and checked with the config's own SA code (shape, SPIs,
// hex keys) before anything is sent; the instance then checks the key lengths against its
// cipher, as for a peer in the config. No message quotes a key.
import { ConfigError, formatPath, parseSaKey, type ConfigIssue } from '../config';
import { parseYamlText, sourceName } from '../config/load';
import { saSchema } from '../config/sa';
import { readSmallFile } from './common';

/** An SA file holds two or a few SAs: anything much larger is not one. */
export const MAX_SA_FILE_BYTES = 64 * 1024;

/** Checks `data` as a peer's `sa:` (stage 1: shape, SPIs, keys as hex); issues under `sa`. */
export function checkSaInput(data: unknown): ConfigIssue[] {
  const r = saSchema.safeParse(data);
  if (!r.success) return r.error.issues.map((i) => ({ path: formatPath(i.path, 'sa'), message: i.message }));
  const issues: ConfigIssue[] = [];
  const check = (key: unknown, at: string) => {
    const k = parseSaKey(key, undefined);
    if (!k.ok) issues.push({ path: `${at}.key`, message: k.message });
  };
  check(r.data.out.key, 'sa.out');
  r.data.in.forEach((sa, i) => check(sa.key, r.data.inIsList ? `sa.in[${i}]` : 'sa.in'));
  return issues;
}

/** Reads and checks an SA file ("-": stdin); returns the `sa` to send as read. Throws ConfigError. */
export async function readSaFile(file: string): Promise<unknown> {
  const source = sourceName(file);
  const data = parseYamlText(await readSmallFile(file, MAX_SA_FILE_BYTES), source);
  if (data === null || data === undefined) {
    throw new ConfigError([{ path: '(file)', message: `${source} is empty (it should hold out: { spi, key } and in: { spi, key })` }]);
  }
  const issues = checkSaInput(data);
  if (issues.length > 0) throw new ConfigError(issues);
  return data;
}
