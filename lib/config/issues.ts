// Turning zod's issues into ConfigIssues: field paths as users write them, messages for unknown
// keys that suggest the key meant, and one ConfigError for everything found.
import type { z } from 'zod';
import { ConfigError, type ConfigIssue } from './errors';

/** `['peers', 1, 'endpoint']` → `peers[1].endpoint` (after `prefix`, when given). */
export function formatPath(items: readonly PropertyKey[], prefix = ''): string {
  let out = prefix;
  for (const item of items) {
    if (typeof item === 'number') out += `[${item}]`;
    else out += out === '' ? String(item) : `.${String(item)}`;
  }
  return out;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

/** Names the key most likely meant (same letters but case and - _, or a typo or two away), else lists them all. */
export function unknownKeyMessage(key: string, known: readonly string[]): string {
  const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, '');
  const guess =
    known.find((k) => norm(k) === norm(key)) ??
    known.find((k) => editDistance(k.toLowerCase(), key.toLowerCase()) <= 2);
  return guess ? `unknown key (did you mean "${guess}"?)` : `unknown key (known: ${known.join(', ')})`;
}

/** The keys a mapping takes, given the path of the mapping and the prefix its issues are reported under. */
export type KnownKeys = (items: readonly PropertyKey[], prefix: string) => readonly string[];

/** Appends the issues of `error` to `out`, their paths under `prefix`. */
export function collectIssues(error: z.ZodError, knownKeys: KnownKeys, out: ConfigIssue[], prefix = ''): void {
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeys(issue.path, prefix);
      for (const key of issue.keys) {
        out.push({ path: formatPath([...issue.path, key], prefix), message: unknownKeyMessage(key, known) });
      }
      continue;
    }
    out.push({ path: formatPath(issue.path, prefix) || '(config)', message: issue.message });
  }
}

/** Generic messages for issues without a field-specific one. */
export function defaultMessage(iss: { code?: string; input?: unknown; expected?: unknown }): string | undefined {
  if (iss.code === 'invalid_type') {
    if (iss.input === undefined) return 'required';
    const got = iss.input === null ? 'null' : Array.isArray(iss.input) ? 'a list' : typeof iss.input;
    const expected = iss.expected === 'object' ? 'a mapping (key: value)' : `a ${String(iss.expected)}`;
    return `must be ${expected}, got ${got}`;
  }
  return undefined;
}

function dedupe(issues: ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const k = `${i.path}\n${i.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Throws one ConfigError with every issue, each once. */
export function fail(issues: ConfigIssue[]): never {
  throw new ConfigError(dedupe(issues));
}

/** What a value parser returns: the canonical value, or the text of what is wrong with it. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };
