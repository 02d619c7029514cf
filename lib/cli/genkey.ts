// overlayfwd genkey [--cipher C] [--spi SPI]: fresh key material for a manual ESP SA, as
// `wg genkey` makes a WireGuard key. The key is the cipher key followed by the 4-byte salt
// (RFC 4106 §8.1, RFC 7634 §2), in hex, from the operating system's CSPRNG; with --spi the line
// is a ready `{ spi, key }` for a config's `sa.out` / `sa.in` or an SA file.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { espKeyBytes, formatSpi, parseSaKey } from '../config';
import type { EspCipher } from '../types';
import { EXIT_OK } from './common';

export const DEFAULT_GENKEY_CIPHER: EspCipher = 'aes-256-gcm';

/** A fresh SA key for `cipher`: lower-case hex of espKeyBytes(cipher) random bytes, one the config accepts. */
export function generateSaKey(cipher: EspCipher): string {
  for (;;) {
    const key = crypto.randomBytes(espKeyBytes(cipher)).toString('hex');
    // All zeros is refused by the config (a sign of a key never filled in); 2^-288 odds, but exact.
    if (parseSaKey(key, cipher).ok) return key;
  }
}

/** The text genkey prints: the key alone, or with an SPI a YAML flow mapping `{ spi: 0x..., key: "..." }`. */
export function genkeyText(key: string, spi?: number): string {
  return spi === undefined ? `${key}\n` : `{ spi: ${formatSpi(spi)}, key: "${key}" }\n`;
}

/** As `wg genkey` does: writing a key into a file others can read deserves a warning. */
function warnIfStdoutReadable(): void {
  try {
    const st = fs.fstatSync(1);
    if (st.isFile() && (st.mode & 0o077) !== 0) {
      process.stderr.write('overlayfwd: warning: writing a key to a file that others can read (run umask 077 first)\n');
    }
  } catch {
    // stdout is not something fstat can describe: nothing to warn about
  }
}

export function runGenkey(opts: { cipher?: EspCipher; spi?: number }): number {
  warnIfStdoutReadable();
  process.stdout.write(genkeyText(generateSaKey(opts.cipher ?? DEFAULT_GENKEY_CIPHER), opts.spi));
  return EXIT_OK;
}
