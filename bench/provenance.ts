// What a bench result measured: the commit, whether the work tree had changes, and whether the
// native addon was built after its sources last changed. Every bench that writes a result file
// (run.ts, ike.ts, registry.ts) records provenance() in it.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** The repository root: the nearest directory above this file with a package.json. */
export function repoRoot(): string {
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}

/** ISO 8601 basic format (no colons, safe as a file name everywhere): 20250102T030405Z. */
export function isoStamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

export interface AddonBuild {
  /** build/Release/overlayfwd.node, relative to the repository. */
  file: string;
  builtAt: string;
  /** The most recently modified addon source (native/core, native/addon, binding.gyp, native/sources.gypi). */
  newestSource: { file: string; modifiedAt: string } | null;
  /** Sources modified after the build: the addon may not be the code of `commit`. */
  sourcesNewerThanBuild: number;
}

export interface Provenance {
  /** `git rev-parse HEAD`; null outside a git checkout. */
  commit: string | null;
  branch: string | null;
  /**
   * `git status --porcelain` listed anything (untracked files included), leaving out
   * bench/results/, where the benches write: the tree measured is not exactly `commit`.
   */
  dirty: boolean | null;
  /** Those porcelain lines (at most 50). */
  changes: string[];
  /** null when the addon is not built. */
  addon: AddonBuild | null;
}

const MAX_CHANGES = 50;
/** The benches' own output: not a change to what is measured. */
const RESULTS_DIR = 'bench/results/';

function git(root: string, args: string[]): string {
  return execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

function addonSources(root: string): string[] {
  const files: string[] = [];
  for (const dir of ['native/core', 'native/addon']) {
    const abs = path.join(root, dir);
    if (!fs.existsSync(abs)) continue;
    for (const entry of fs.readdirSync(abs, { recursive: true, withFileTypes: true })) {
      if (entry.isFile()) files.push(path.join(entry.parentPath ?? entry.path, entry.name));
    }
  }
  for (const f of ['binding.gyp', 'native/sources.gypi']) if (fs.existsSync(path.join(root, f))) files.push(path.join(root, f));
  return files;
}

function addonBuild(root: string): AddonBuild | null {
  const file = path.join(root, 'build', 'Release', 'overlayfwd.node');
  let built: number;
  try {
    built = fs.statSync(file).mtimeMs;
  } catch {
    return null;
  }
  let newest: { file: string; mtime: number } | null = null;
  let newer = 0;
  for (const src of addonSources(root)) {
    const mtime = fs.statSync(src).mtimeMs;
    if (mtime > built) newer++;
    if (!newest || mtime > newest.mtime) newest = { file: src, mtime };
  }
  return {
    file: path.relative(root, file),
    builtAt: new Date(built).toISOString(),
    newestSource: newest ? { file: path.relative(root, newest.file), modifiedAt: new Date(newest.mtime).toISOString() } : null,
    sourcesNewerThanBuild: newer,
  };
}

export function provenance(root = repoRoot()): Provenance {
  const out: Provenance = { commit: null, branch: null, dirty: null, changes: [], addon: null };
  try {
    out.commit = git(root, ['rev-parse', 'HEAD']).trim();
    const branch = git(root, ['rev-parse', '--abbrev-ref', 'HEAD']).trim();
    out.branch = branch === 'HEAD' ? null : branch;
    const lines = git(root, ['status', '--porcelain'])
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.slice(3).startsWith(RESULTS_DIR));
    out.dirty = lines.length > 0;
    out.changes = lines.slice(0, MAX_CHANGES);
  } catch {
    /* not a git checkout, or no git: commit stays null */
  }
  try {
    out.addon = addonBuild(root);
  } catch {
    out.addon = null;
  }
  return out;
}

/** The short form the tables and `host.commit` use: "abc1234", "abc1234-dirty", or null. */
export function commitLabel(p: Provenance): string | null {
  if (!p.commit) return null;
  return `${p.commit.slice(0, 7)}${p.dirty ? '-dirty' : ''}`;
}

/** One line for a bench's header: the commit, and a warning when the addon is older than its sources. */
export function provenanceText(p: Provenance): string {
  const parts = [`commit ${commitLabel(p) ?? 'unknown'}`];
  if (p.addon && p.addon.sourcesNewerThanBuild > 0) parts.push(`addon built before ${p.addon.sourcesNewerThanBuild} of its sources changed (rebuild: npm run build)`);
  if (!p.addon) parts.push('addon not built');
  return parts.join('; ');
}
