// The bench's own addon (bench/codec): codec loops timed in native code. Built on first use with
// `npm run bench:addon`, so that the shipped addon carries no benchmark code.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface CodecBenchResult {
  packets: number;
  nanoseconds: number;
}

export interface CodecBenchAddon {
  /** Runs a native codec loop ('vxlan-encap', 'vxlan-decap', 'esp-seal:CIPHER', 'esp-open:CIPHER') over `packets` buffers of `size` bytes, `rounds` times. */
  codecBench(op: string, size: number, packets: number, rounds: number): CodecBenchResult;
}

// dist/bench/codec-addon.js and bench/codec-addon.ts both sit two levels below the repository.
const ROOT = [path.join(__dirname, '..', '..'), path.join(__dirname, '..')].find((dir) =>
  fs.existsSync(path.join(dir, 'bench', 'codec', 'binding.gyp')),
);

let cached: CodecBenchAddon | undefined;

export function loadCodecBench(): CodecBenchAddon {
  if (cached) return cached;
  if (!ROOT) throw new Error('bench/codec not found: the codec bench runs from a checkout of the repository');
  const file = path.join(ROOT, 'bench', 'codec', 'build', 'Release', 'codec_bench.node');
  if (!fs.existsSync(file)) {
    execFileSync('npm', ['run', '--silent', 'bench:addon'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  cached = require(file) as CodecBenchAddon;
  return cached;
}
