// The native core's folders are layers (native/core/README.md): a folder includes only folders
// below it, so that the files show the architecture. This test reads every include in
// native/core and fails on one that runs upward or sideways.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const CORE = path.join(__dirname, '..', '..', 'native', 'core');

// Each folder with the folders it may include (besides itself).
const MAY_INCLUDE: Record<string, readonly string[]> = {
  wire: [],
  base: ['wire'],
  system: ['base', 'wire'],
  offload: ['base', 'wire'],
  'tunnel/esp': ['system', 'base', 'wire'],
  tables: ['tunnel/esp', 'system', 'base', 'wire'],
  tunnel: ['tables', 'tunnel/esp', 'offload', 'system', 'base', 'wire'],
  device: ['offload', 'system', 'base', 'wire'],
  underlay: ['system', 'base', 'wire'],
  datapath: ['tunnel', 'tunnel/esp', 'tables', 'device', 'underlay', 'offload', 'system', 'base', 'wire'],
  '.': ['datapath', 'tunnel', 'tunnel/esp', 'tables', 'device', 'underlay', 'offload', 'system', 'base', 'wire'],
};

function sourcesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourcesUnder(full);
    return /\.(h|cc)$/.test(entry.name) ? [full] : [];
  });
}

const folderOf = (relative: string) => path.posix.dirname(relative);

describe('native/core layout', () => {
  const files = sourcesUnder(CORE).map((file) => path.relative(CORE, file).split(path.sep).join('/'));

  it('has a rule for every folder, and no file over 500 lines', () => {
    for (const file of files) {
      expect(MAY_INCLUDE[folderOf(file)], `folder of ${file}`).toBeDefined();
      const lines = fs.readFileSync(path.join(CORE, file), 'utf8').split('\n').length;
      expect(lines, file).toBeLessThanOrEqual(500);
    }
  });

  it('includes only what exists, by folder path, and never a folder above its own', () => {
    const known = new Set(files);
    const wrong: string[] = [];
    for (const file of files) {
      const folder = folderOf(file);
      const text = fs.readFileSync(path.join(CORE, file), 'utf8');
      for (const [, target] of text.matchAll(/^#include "([^"]+)"/gm)) {
        if (!known.has(target!)) {
          wrong.push(`${file}: includes "${target}", which is not a core file named by its folder path`);
          continue;
        }
        const to = folderOf(target!);
        if (to !== folder && !MAY_INCLUDE[folder]!.includes(to)) wrong.push(`${file} (${folder}/) includes ${target} (${to}/)`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('keeps the mode names inside tunnel/', () => {
    const outside = files.filter((file) => !file.startsWith('tunnel/'));
    for (const file of outside) {
      const text = fs.readFileSync(path.join(CORE, file), 'utf8');
      expect(text, file).not.toMatch(/TunnelMode::/);
    }
  });
});
