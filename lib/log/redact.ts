// The second line of defence against a secret in a log line: pino's redact replaces the value
// of any key-like field, at the top level and up to five levels down (a peer's sa.in[0].key
// is four). The first line is that no caller ever passes a secret: log lines are built from
// names, SPIs, addresses and counts, never from config objects spread whole.

/** Field names whose values are secret wherever they appear. */
export const SECRET_FIELDS = [
  'key',
  'keys',
  'psk',
  'secret',
  'password',
  'passphrase',
  'privateKey',
  'token',
  // IKE Child SA key material (lib/ike/child.ts) and the IKE SA's SK_* keys (RFC 7296 §2.14).
  'inboundKey',
  'outboundKey',
  'skD',
  'skAi',
  'skAr',
  'skEi',
  'skEr',
  'skPi',
  'skPr',
] as const;

/** How many levels below the top a secret field is still found. */
const DEPTH = 5;

export const CENSOR = '<redacted>';

/** The redact paths for pino: every secret field at the top level and under up to DEPTH wildcards. */
export function redactPaths(): string[] {
  const paths: string[] = [];
  for (const field of SECRET_FIELDS) {
    let prefix = '';
    for (let depth = 0; depth <= DEPTH; depth++) {
      paths.push(`${prefix}${field}`);
      prefix += '*.';
    }
  }
  return paths;
}
