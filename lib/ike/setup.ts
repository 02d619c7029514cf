// From the resolved config to what the IKE manager runs: per peer the credentials (the PSK, or
// the certificate, its key and the CAs, read and checked once), identities, proposals and
// traffic selectors. A problem is a ConfigError naming the field, found before any traffic.
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError, type ConfigIssue } from '../config/errors';
import type { ResolvedIke } from '../config/ike';
import type { ResolvedConfig, ResolvedPeer } from '../types';
import { certificateIdentity, certificateSubject, formatDn, parseIdentity } from './auth';
import type { IkePeer } from './manager';
import { defaultProposals, parseProposals } from './proposals';
import { selectorsFromCidrs } from './selectors';
import type { Identity, LocalAuth, SessionTiming } from './session';
import { PROTOCOL_ESP, PROTOCOL_IKE } from './transforms';
import type { TrafficSelector } from './types';

const certificates = new Map<string, X509Certificate[]>();

/** The certificates of a PEM file (a bundle may hold several), read once per path. */
function readCertificates(path: string): X509Certificate[] {
  const known = certificates.get(path);
  if (known) return known;
  const pem = readFileSync(path, 'utf8');
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error('holds no PEM certificate');
  const certs = blocks.map((b) => new X509Certificate(b));
  certificates.set(path, certs);
  return certs;
}

function readPrivateKey(path: string): KeyObject {
  return createPrivateKey(readFileSync(path));
}

function localAuthOf(ike: ResolvedIke, at: string, issues: ConfigIssue[]): LocalAuth | undefined {
  if (ike.auth === 'psk') return { method: 'psk', psk: Buffer.from(ike.psk ?? '', 'utf8') };
  const field = (k: string) => `${at}.ike.${k}`;
  let certificate: X509Certificate | undefined;
  let privateKey: KeyObject | undefined;
  const ca: X509Certificate[] = [];
  try {
    certificate = readCertificates(ike.certificate!)[0];
  } catch (e) {
    issues.push({ path: field('certificate'), message: `${ike.certificate}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` });
  }
  try {
    privateKey = readPrivateKey(ike.privateKey!);
  } catch (e) {
    // Never the key's bytes: only that it does not read.
    issues.push({ path: field('privateKey'), message: `${ike.privateKey}: ${(e as NodeJS.ErrnoException).code ?? 'not a PEM private key'}` });
  }
  ike.ca.forEach((path, i) => {
    try {
      ca.push(...readCertificates(path));
    } catch (e) {
      issues.push({ path: `${field('ca')}[${i}]`, message: `${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` });
    }
  });
  if (!certificate || !privateKey) return undefined;
  if (!certificate.checkPrivateKey(privateKey)) {
    issues.push({ path: field('privateKey'), message: `is not the key of ${ike.certificate}` });
    return undefined;
  }
  return { method: 'certificate', certificate, privateKey, ca };
}

function identityOf(text: string | undefined, fallback: () => Identity, path: string, issues: ConfigIssue[]): Identity {
  if (text === undefined) return fallback();
  try {
    return parseIdentity(text);
  } catch (e) {
    issues.push({ path, message: (e as Error).message });
    return fallback();
  }
}

/**
 * Our side of the tunnel: on TUN the device's addresses as hosts, and `localCidrs` (registry
 * mode: this host's subnet) as networks; a TAP device carries every address.
 */
function localSelectors(config: ResolvedConfig, localCidrs: readonly string[]): TrafficSelector[] {
  if (config.device.type !== 'tun') return selectorsFromCidrs(['0.0.0.0/0', '::/0']);
  const hosts = config.device.addresses.map((cidr) => {
    const address = cidr.slice(0, cidr.lastIndexOf('/'));
    return address.includes(':') ? `${address}/128` : `${address}/32`;
  });
  return selectorsFromCidrs([...hosts, ...localCidrs]);
}

function remoteSelectors(config: ResolvedConfig, peer: ResolvedPeer): TrafficSelector[] {
  if (config.device.type !== 'tun') return selectorsFromCidrs(['0.0.0.0/0', '::/0']);
  return selectorsFromCidrs(peer.allowedIps);
}

/**
 * The identity this host proves, as text ike.id takes (for the registry record): ike.id as
 * configured, else with certificates the subject DN, else our underlay address. Undefined
 * when the overlay runs no IKE.
 */
export function localIdentityText(config: ResolvedConfig): string | undefined {
  const ike = config.ike;
  if (config.encap.type !== 'esp' || !ike) return undefined;
  if (ike.id) return ike.id;
  if (ike.auth === 'certificate' && ike.certificate) {
    try {
      return `asn1dn:${formatDn(certificateSubject(readCertificates(ike.certificate)[0]!))}`;
    } catch {
      return undefined;
    }
  }
  return config.underlay.local;
}

/**
 * The IKE peers of `config` (those with `ike`), with their credentials read. `localCidrs`:
 * what our side of the tunnel is (registry mode: this host's subnet). Throws ConfigError.
 */
export function ikePeersOf(config: ResolvedConfig, peers: readonly ResolvedPeer[], localCidrs: readonly string[] = []): IkePeer[] {
  const issues: ConfigIssue[] = [];
  const out: IkePeer[] = [];
  const udp = config.encap.udp !== false;
  peers.forEach((peer) => {
    const ike = peer.ike;
    if (!ike) return;
    const at = `peer "${peer.name}"`;
    const auth = localAuthOf(ike, at, issues);
    if (!auth) return;
    const localId = identityOf(ike.id, () => (auth.method === 'certificate' ? certificateIdentity(auth.certificate) : parseIdentity(config.underlay.local)), `${at}.ike.id`, issues);
    const remoteId = ike.remoteId === undefined ? null : identityOf(ike.remoteId, () => parseIdentity(peer.endpoint.address), `${at}.ike.remoteId`, issues);
    let ikeProposals;
    let espProposals;
    try {
      ikeProposals = ike.proposals.length > 0 ? parseProposals(ike.proposals, PROTOCOL_IKE) : defaultProposals(PROTOCOL_IKE);
    } catch (e) {
      issues.push({ path: `${at}.ike.proposals`, message: (e as Error).message });
    }
    try {
      espProposals = ike.espProposals.length > 0 ? parseProposals(ike.espProposals, PROTOCOL_ESP) : defaultProposals(PROTOCOL_ESP);
    } catch (e) {
      issues.push({ path: `${at}.ike.espProposals`, message: (e as Error).message });
    }
    if (!ikeProposals || !espProposals) return;
    const timing: SessionTiming = {
      childRekeyMs: ike.rekeySeconds * 1000,
      childLifetimeMs: ike.lifetimeSeconds * 1000,
      ikeRekeyMs: ike.ikeRekeySeconds * 1000,
      dpdMs: ike.dpdSeconds * 1000,
      retransmitTimeoutMs: ike.retransmitTimeoutMs,
      retransmitTries: ike.retransmitTries,
    };
    out.push({
      name: peer.name,
      endpoint: { address: peer.endpoint.address, port: ike.port },
      start: ike.start,
      session: {
        local: { address: config.underlay.local, port: ike.port },
        natPort: udp ? config.encap.port : null,
        auth,
        localId,
        remoteId,
        ikeProposals,
        espProposals,
        localTs: localSelectors(config, localCidrs),
        remoteTs: remoteSelectors(config, peer),
        timing,
      },
    });
  });
  if (issues.length > 0) throw new ConfigError(issues);
  return out;
}
