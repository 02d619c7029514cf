// The built CLI, for tests that run `overlayfwd` as a process.
import fs from 'node:fs';
import path from 'node:path';
import { execIn } from '../../lab';
import { ROOT } from './env';

export const CLI_MAIN = path.join(ROOT, 'dist', 'lib', 'cli', 'main.js');

/**
 * Compiles the TypeScript when dist/ is missing or older than a source file. With
 * `tolerateTypeErrors`, type errors elsewhere (files being written in parallel) still count as
 * built when tsc emitted the CLI.
 */
export async function ensureCliBuilt(options: { tolerateTypeErrors?: boolean } = {}): Promise<void> {
  const newest = (dir: string): number => {
    let t = 0;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) t = Math.max(t, newest(p));
      else if (e.name.endsWith('.ts')) t = Math.max(t, fs.statSync(p).mtimeMs);
    }
    return t;
  };
  if (fs.existsSync(CLI_MAIN) && fs.statSync(CLI_MAIN).mtimeMs >= newest(path.join(ROOT, 'lib'))) return;
  await execIn(null, process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(ROOT, 'tsconfig.json')], {
    timeoutMs: 180_000,
    cwd: ROOT,
    allowFailure: options.tolerateTypeErrors === true,
  });
  if (!fs.existsSync(CLI_MAIN)) throw new Error(`${CLI_MAIN} was not built`);
}
