// ESP cipher throughput per core: the native ESP codec (seal = esp_encode, open = ICV check and
// decryption) on 1400-byte packets with one keyed context, as a worker holds it per SA, next to
// `openssl speed -evp CIPHER -bytes 1400` on the same machine in the same run. The target:
// AES-256-GCM seal ≥ 90% of openssl speed.
//
// What the two measure differs a little: openssl speed re-keys and sets the nonce for every
// GCM packet (so our keyed-once figure can exceed it), and for ChaCha20-Poly1305 it only streams
// EVP_EncryptUpdate, without nonce setup, AAD or tag (so we cannot reach it there).
import { execFileSync } from 'node:child_process';
import { loadCodecBench } from './codec-addon';

export const ESP_CIPHERS = ['aes-128-gcm', 'aes-256-gcm', 'chacha20-poly1305'] as const;
export const ESP_PACKET_SIZE = 1400;

export interface EspMicroResult {
  cipher: (typeof ESP_CIPHERS)[number];
  sealMBps: number;
  openMBps: number;
  /** openssl speed -evp for the same cipher and size (MB/s, 10^6 bytes), or null without openssl. */
  opensslMBps: number | null;
  /** sealMBps / opensslMBps. */
  ratio: number | null;
}

/** Best of `repeats` native runs, in MB/s (10^6 bytes per second). */
function nativeMBps(op: string, repeats: number): number {
  const native = loadCodecBench();
  let best = 0;
  for (let i = 0; i < repeats; i++) {
    const r = native.codecBench(op, ESP_PACKET_SIZE, 256, 100);
    best = Math.max(best, (r.packets * ESP_PACKET_SIZE) / (r.nanoseconds / 1e9) / 1e6);
  }
  return best;
}

/** openssl speed's figure for one cipher at 1400 bytes (it prints thousands of bytes per second). */
function opensslMBps(cipher: string, seconds: number): number | null {
  try {
    const out = execFileSync('openssl', ['speed', '-evp', cipher, '-bytes', String(ESP_PACKET_SIZE), '-seconds', String(seconds)], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const line = out.trim().split('\n').pop() ?? '';
    const match = /([\d.]+)k\s*$/.exec(line);
    return match ? Number(match[1]) / 1000 : null;
  } catch {
    return null;
  }
}

export function runEspMicro(options: { quick: boolean; log?: (line: string) => void }): EspMicroResult[] {
  const repeats = options.quick ? 3 : 10;
  const seconds = options.quick ? 1 : 3;
  return ESP_CIPHERS.map((cipher) => {
    options.log?.(`esp micro: ${cipher}`);
    const sealMBps = nativeMBps(`esp-seal:${cipher}`, repeats);
    const openMBps = nativeMBps(`esp-open:${cipher}`, repeats);
    const openssl = opensslMBps(cipher, seconds);
    return { cipher, sealMBps, openMBps, opensslMBps: openssl, ratio: openssl ? sealMBps / openssl : null };
  });
}

export function espMicroTable(results: EspMicroResult[]): string {
  const f = (x: number | null) => (x === null ? '–' : x.toFixed(0));
  const lines = [
    `| cipher (${ESP_PACKET_SIZE} B) | seal MB/s | open MB/s | openssl speed -evp MB/s | seal / openssl |`,
    '|---|--:|--:|--:|--:|',
    ...results.map((r) => `| ${r.cipher} | ${f(r.sealMBps)} | ${f(r.openMBps)} | ${f(r.opensslMBps)} | ${r.ratio === null ? '–' : r.ratio.toFixed(2)} |`),
  ];
  return lines.join('\n');
}
