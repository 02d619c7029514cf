// What a sanitizer run (test/sanitizers/run-asan.sh) relies on outside native code: OVERLAYFWD_ADDON
// chooses the addon file lib/native.ts loads, and lab children other than node lose the ASan
// runtime from LD_PRELOAD (lab/sanitizer-env.ts) while every other preload stays.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { childEnv } from '../../lab/sanitizer-env';
import { addonOverride } from '../../lib/native';

describe('OVERLAYFWD_ADDON', () => {
  it('is unused when unset or empty', () => {
    expect(addonOverride({})).toBeNull();
    expect(addonOverride({ OVERLAYFWD_ADDON: '' })).toBeNull();
  });

  it('names a file, taken from the current directory when relative', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'overlayfwd-addon-'));
    try {
      const file = path.join(dir, 'overlayfwd.node');
      fs.writeFileSync(file, '');
      expect(addonOverride({ OVERLAYFWD_ADDON: file })).toBe(file);
      expect(addonOverride({ OVERLAYFWD_ADDON: path.relative(process.cwd(), file) })).toBe(file);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('naming a missing file is an ENOENT error that names the variable and the file', () => {
    const missing = path.join(os.tmpdir(), 'overlayfwd-no-such-addon', 'overlayfwd.node');
    let caught: NodeJS.ErrnoException | undefined;
    try {
      addonOverride({ OVERLAYFWD_ADDON: missing });
    } catch (err) {
      caught = err as NodeJS.ErrnoException;
    }
    expect(caught?.code).toBe('ENOENT');
    expect(caught?.path).toBe(missing);
    expect(caught?.message).toContain('OVERLAYFWD_ADDON');
    expect(caught?.message).toContain(missing);
  });
});

describe('the environment of a lab child in a sanitizer run', () => {
  const runtime = '/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.asan-x86_64.so';
  const env = { PATH: '/usr/bin', OVERLAYFWD_SANITIZER_PRELOAD: runtime, LD_PRELOAD: `${runtime}:/opt/other.so` };

  it('keeps the runtime for node', () => {
    expect(childEnv(process.execPath, env)).toEqual(env);
    expect(childEnv('node', env).LD_PRELOAD).toBe(env.LD_PRELOAD);
  });

  it('takes the runtime, and only it, away from other tools', () => {
    expect(childEnv('ip', env)).toEqual({ ...env, LD_PRELOAD: '/opt/other.so' });
    const alone = childEnv('python3', { ...env, LD_PRELOAD: runtime });
    expect(alone).not.toHaveProperty('LD_PRELOAD');
    expect(alone.PATH).toBe('/usr/bin');
  });

  it('changes nothing outside a sanitizer run', () => {
    const plain = { PATH: '/usr/bin', LD_PRELOAD: '/opt/other.so' };
    expect(childEnv('ip', plain)).toBe(plain);
  });
});
