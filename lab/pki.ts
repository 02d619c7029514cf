// Test PKI for IKEv2 certificate authentication, made with strongSwan's `pki` tool
// (strongswan-pki): certification authorities, host certificates with DNS and IP
// subjectAltNames, expired certificates, and certificates of a second, untrusted CA.
//
// Everything is PEM in one directory (a lab's tmpdir() by default, removed with the lab). `pki`
// runs with a private strongswan.conf that names its plugins (openssl does ECDSA and Ed25519),
// so it neither reads the system configuration nor prints plugin warnings.
//
//   const pki = await Pki.create(lab);
//   const ca = await pki.ca('ca');                                      // ECDSA P-256, CN=overlayfwd lab CA ca
//   const a = await pki.host(ca, 'a', { dns: ['a.test'], ips: [host.underlay] });
//   const old = await pki.host(ca, 'old', { dns: ['old.test'], expired: true });
//   const rogue = await pki.ca('rogue');                                // not loaded by the peer: untrusted
//   const evil = await pki.host(rogue, 'evil', { dns: ['b.test'] });
//
// DNs are strongSwan's string form ("C=XX, O=overlayfwd lab, CN=a.test"): what swanctl.conf's
// `id` takes and what charon prints. `dnDer` is the subject's DER (hex), the body of an
// ID_DER_ASN1_DN identification payload.
import fs from 'node:fs';
import path from 'node:path';
import { execIn } from './exec';
import type { Lab } from './lab';

export const PKI_BIN = 'pki';

/** Key types: ECDSA on P-256 (signed with SHA-256), P-384 (SHA-384), Ed25519 (RFC 8410), RSA 2048 (PKCS#1 v1.5 SHA-256). */
export type KeyType = 'ecdsa-p256' | 'ecdsa-p384' | 'ed25519' | 'rsa2048';

/** A key pair with a certificate, as files and as text. */
export interface Credential {
  /** The name given to ca() / host(): file stem and default CN. */
  name: string;
  keyType: KeyType;
  /** Subject DN, strongSwan's string form, e.g. "C=XX, O=overlayfwd lab, CN=a.test". */
  dn: string;
  /** Subject DN as DER, hex (an ID_DER_ASN1_DN identity's data). */
  dnDer: string;
  /** Issuer DN (the CA's subject; the subject itself for a CA). */
  issuerDn: string;
  certPath: string;
  keyPath: string;
  certPem: string;
  /** Private key PEM: SEC1 "EC PRIVATE KEY" for ECDSA, PKCS#8 for Ed25519, PKCS#1 for RSA (node:crypto reads all three). */
  keyPem: string;
  notBefore: Date;
  notAfter: Date;
}

export interface CertAuthority extends Credential {
  readonly isCa: true;
}

export interface HostCredential extends Credential {
  readonly isCa: false;
  /** subjectAltName DNS names. */
  dns: string[];
  /** subjectAltName IP addresses. */
  ips: string[];
}

export interface CaOptions {
  /** Default 'ecdsa-p256'. */
  keyType?: KeyType;
  /** Default "C=XX, O=overlayfwd lab, CN=overlayfwd lab CA NAME". */
  dn?: string;
  /** Default 30 days from an hour ago. */
  lifetimeDays?: number;
}

export interface HostOptions {
  /** Default 'ecdsa-p256'. */
  keyType?: KeyType;
  /** Default "C=XX, O=overlayfwd lab, CN=FIRST-DNS-NAME-OR-NAME". */
  dn?: string;
  /** subjectAltName DNS names (the identities a peer configures as `id = a.test`). */
  dns?: string[];
  /** subjectAltName IP addresses (identities of type ID_IPV4_ADDR / ID_IPV6_ADDR). */
  ips?: string[];
  /** Valid from 10 days ago until yesterday. */
  expired?: boolean;
  /** Explicit validity (overrides `expired` and `lifetimeDays`). */
  notBefore?: Date;
  notAfter?: Date;
  /** Default 30 days from an hour ago. */
  lifetimeDays?: number;
  /** extendedKeyUsage flags (default serverAuth and clientAuth). */
  flags?: ('serverAuth' | 'clientAuth')[];
}

const DAY_MS = 86_400_000;
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/;

/** The plugins `pki` needs to make and sign these keys; openssl provides ECDSA, Ed25519 and RSA. */
const PKI_PLUGINS = 'random nonce openssl pem pkcs1 pkcs8 x509 pubkey sha1 sha2 gmp';

function genArgs(keyType: KeyType): string[] {
  switch (keyType) {
    case 'ecdsa-p256':
      return ['--type', 'ecdsa', '--size', '256'];
    case 'ecdsa-p384':
      return ['--type', 'ecdsa', '--size', '384'];
    case 'ed25519':
      return ['--type', 'ed25519'];
    case 'rsa2048':
      return ['--type', 'rsa', '--size', '2048'];
  }
}

/** `pki --self/--issue --type` of a private key file. */
function privType(keyType: KeyType): string {
  switch (keyType) {
    case 'ecdsa-p256':
    case 'ecdsa-p384':
      return 'ecdsa';
    case 'ed25519':
      return 'ed25519';
    case 'rsa2048':
      return 'rsa';
  }
}

/** Validity as `--not-before/--not-after` in epoch seconds (`--dateform %s`: no time zone involved). */
function validityArgs(notBefore: Date, notAfter: Date): string[] {
  if (!(notAfter.getTime() > notBefore.getTime())) throw new Error(`certificate validity ends (${notAfter.toISOString()}) before it starts (${notBefore.toISOString()})`);
  const s = (d: Date) => String(Math.floor(d.getTime() / 1000));
  return ['--not-before', s(notBefore), '--not-after', s(notAfter), '--dateform', '%s'];
}

export class Pki {
  /** strongswan.conf for `pki` itself. */
  private readonly conf: string;

  private constructor(readonly dir: string) {
    this.conf = path.join(dir, 'pki-strongswan.conf');
    fs.writeFileSync(this.conf, `# written by overlayfwd lab/pki.ts\npki {\n  load = ${PKI_PLUGINS}\n}\n`);
  }

  /** A PKI in `DIR/pki` (DIR: the lab's tmpdir(), removed with the lab, or a directory of your own). */
  static async create(where: Lab | string): Promise<Pki> {
    const base = typeof where === 'string' ? where : where.tmpdir();
    let dir = path.join(base, 'pki');
    for (let i = 2; fs.existsSync(dir); i++) dir = path.join(base, `pki${i}`);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    return new Pki(dir);
  }

  private async run(args: string[], what: string): Promise<string> {
    const res = await execIn(null, PKI_BIN, args, {
      env: { ...process.env, STRONGSWAN_CONF: this.conf },
      timeoutMs: 30_000,
      allowFailure: true,
    });
    if (res.code !== 0) throw new Error(`pki ${what} failed (exit ${res.code}): ${(res.stderr || res.stdout).trim()}`);
    return res.stdout;
  }

  private fresh(name: string): { certPath: string; keyPath: string } {
    if (!NAME_RE.test(name)) throw new Error(`bad credential name ${JSON.stringify(name)}`);
    const certPath = path.join(this.dir, `${name}.cert.pem`);
    const keyPath = path.join(this.dir, `${name}.key.pem`);
    if (fs.existsSync(certPath)) throw new Error(`credential ${name} already exists in ${this.dir}`);
    return { certPath, keyPath };
  }

  private async genKey(keyType: KeyType, keyPath: string): Promise<string> {
    const pem = await this.run(['--gen', ...genArgs(keyType), '--outform', 'pem'], `--gen ${keyType}`);
    fs.writeFileSync(keyPath, pem, { mode: 0o600 });
    return pem;
  }

  private async dnDer(certPath: string): Promise<string> {
    return (await this.run(['--dn', '--in', certPath, '--format', 'hex'], '--dn')).trim().toLowerCase();
  }

  /** A self-signed CA certificate (basicConstraints CA, CRL signing). */
  async ca(name: string, options: CaOptions = {}): Promise<CertAuthority> {
    const keyType = options.keyType ?? 'ecdsa-p256';
    const dn = options.dn ?? `C=XX, O=overlayfwd lab, CN=overlayfwd lab CA ${name}`;
    const { certPath, keyPath } = this.fresh(name);
    const keyPem = await this.genKey(keyType, keyPath);
    const notBefore = new Date(Date.now() - 3600_000);
    const notAfter = new Date(notBefore.getTime() + (options.lifetimeDays ?? 30) * DAY_MS);
    const certPem = await this.run(
      ['--self', '--ca', '--in', keyPath, '--type', privType(keyType), '--dn', dn, ...validityArgs(notBefore, notAfter), '--outform', 'pem'],
      `--self (CA ${name})`,
    );
    fs.writeFileSync(certPath, certPem);
    return { isCa: true, name, keyType, dn, dnDer: await this.dnDer(certPath), issuerDn: dn, certPath, keyPath, certPem, keyPem, notBefore, notAfter };
  }

  /**
   * A host (end-entity) certificate signed by `ca`, with DNS and IP subjectAltNames. A host of a
   * CA the peer does not trust is the "signed by another CA" case; `expired: true` the expired one.
   */
  async host(ca: CertAuthority, name: string, options: HostOptions = {}): Promise<HostCredential> {
    const keyType = options.keyType ?? 'ecdsa-p256';
    const dns = options.dns ?? [];
    const ips = options.ips ?? [];
    const dn = options.dn ?? `C=XX, O=overlayfwd lab, CN=${dns[0] ?? name}`;
    const { certPath, keyPath } = this.fresh(name);
    const keyPem = await this.genKey(keyType, keyPath);
    let notBefore: Date;
    let notAfter: Date;
    if (options.notBefore || options.notAfter) {
      notBefore = options.notBefore ?? new Date(Date.now() - 3600_000);
      notAfter = options.notAfter ?? new Date(notBefore.getTime() + (options.lifetimeDays ?? 30) * DAY_MS);
    } else if (options.expired) {
      notBefore = new Date(Date.now() - 10 * DAY_MS);
      notAfter = new Date(Date.now() - DAY_MS);
    } else {
      notBefore = new Date(Date.now() - 3600_000);
      notAfter = new Date(notBefore.getTime() + (options.lifetimeDays ?? 30) * DAY_MS);
    }
    const flags = options.flags ?? ['serverAuth', 'clientAuth'];
    const certPem = await this.run(
      [
        '--issue', '--cacert', ca.certPath, '--cakey', ca.keyPath,
        '--in', keyPath, '--type', 'priv',
        '--dn', dn,
        ...[...dns, ...ips].flatMap((san) => ['--san', san]),
        ...flags.flatMap((f) => ['--flag', f]),
        ...validityArgs(notBefore, notAfter),
        '--outform', 'pem',
      ],
      `--issue (${name} by ${ca.name})`,
    );
    fs.writeFileSync(certPath, certPem);
    return { isCa: false, name, keyType, dn, dnDer: await this.dnDer(certPath), issuerDn: ca.dn, certPath, keyPath, certPem, keyPem, notBefore, notAfter, dns, ips };
  }

  /** `pki --print` of a certificate (subject, validity, altNames, key type), for diagnostics. */
  print(cred: Credential | string): Promise<string> {
    return this.run(['--print', '--in', typeof cred === 'string' ? cred : cred.certPath], '--print');
  }
}
