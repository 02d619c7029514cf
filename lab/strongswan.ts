// strongSwan's IKE daemon (charon 5.9.x, Debian's strongswan-charon) as a reference IKEv2 peer
// inside a lab host, driven with swanctl over its own vici socket.
//
// How a charon runs here (the recipe the IKE tests rely on):
//
// - ESP in userspace. The lab's kernel may have no ESP transform (XFRM states cannot be
//   installed), so charon loads `kernel-libipsec` BEFORE `kernel-netlink` in an explicit
//   `charon.load` list (no load_modular, no /etc/strongswan.d): the first IPsec backend to
//   register wins, so libipsec owns SAs and policies on any kernel, kernel-netlink only does
//   addresses, routes and rules. libipsec creates a TUN device `ipsec0` (MTU 1400)
//   at start; outbound cleartext is routed into it, it encrypts and sends ESP over charon's own
//   UDP 4500 socket, and it writes decrypted packets back into the TUN. libipsec can only do
//   ESP in UDP (RFC 3948): charon then *always* fakes NAT detection (NAT_DETECTION_SOURCE_IP
//   hashes that never match, logged as "remote host is behind NAT" on both sides), floats IKE
//   to 4500 after IKE_SA_INIT and encapsulates ESP, whether or not the connection says
//   `encap = yes` (which makes it explicit). Tunnel mode only, no ESN, replay window 128, no
//   on-demand (trap) policies: initiate explicitly.
//
// - Routes. For every outbound policy libipsec installs a route for the remote traffic
//   selector into table 220 (`charon.routing_table`), `dev ipsec0 src X`, where X is an address
//   of this host inside the LOCAL traffic selector; kernel-netlink adds the rule
//   `220: from all lookup 220`. So each host needs an address inside its local TS that is not
//   its IKE address: addTunnelAddress() puts a /32 on `lo` (this kernel has no dummy links).
//   With `local_ts = 198.19.1.1/32, remote_ts = 198.19.1.2/32` and those two addresses on the
//   hosts' loopbacks, `ping 198.19.1.2` from the first host leaves by table 220 into ipsec0
//   with source 198.19.1.1, crosses the veth as UDP 4500 ESP, and the peer's libipsec writes
//   it into its ipsec0, where the kernel delivers it locally (rp_filter is off in a lab netns).
//   A remote TS that is exactly the peer's IKE address gets no route ("conflicts with IKE
//   traffic"); one that covers it gets an exclude route. No virtual IPs are needed.
//
// - Separate state per daemon. charon's pid file (/var/run/charon.pid, /var/run -> /run) is
//   fixed, so each one runs as `ip netns exec NS unshare -m --propagation private sh -c
//   'mount --bind DIR/run /run && exec charon'`: a private /run in a private mount namespace.
//   STRONGSWAN_CONF points at DIR/strongswan.conf, whose vici socket is unix://DIR/charon.vici;
//   swanctl runs in the caller's namespace with `--uri unix://DIR/charon.vici` (a unix socket
//   path is not network-namespaced). `threads = 16` (with 8, swanctl was seen to hang).
//   charon logs to DIR/charon.log (log()).
//
// - Cleanup. Charon.start() registers stop() with lab.onDestroy(), and the process is a lab
//   process, so a failing test still stops it (SIGTERM, then SIGKILL) and removes DIR.
//   stop() is a graceful shutdown: charon sends DELETE for its IKE_SAs first. kill() is SIGKILL:
//   nothing is sent, the peer must find out by DPD.
//
// Facing an IKEv2 implementation that is not strongSwan (what the IKE tests need to match):
//
// - charon listens on UDP 500 and 4500 on every address of its host. As responder it accepts
//   IKE_SA_INIT on 500 (or on 4500 behind the non-ESP marker) from the connection's
//   remote_addrs (any address when unset). Its NAT_DETECTION_SOURCE_IP never matches, so the
//   peer must see a NAT and move IKE (from IKE_AUTH on) and ESP to 4500, as RFC 7296 2.23 says;
//   charon sends ESP in UDP from 4500 to the port the peer's IKE comes from. As initiator it
//   sends IKE_SA_INIT to remote_addrs:500 (remotePort) and continues on 4500 by itself.
// - Identities: the peer's IDi (or IDr) must equal `remote.id` as typed (id = a.test is an
//   ID_FQDN, id = 198.18.0.1 an ID_IPV4_ADDR); charon sends `local.id`, and as initiator also
//   an IDr of its `remote.id` (unless %any), which the responder must accept. With `auth = psk` the key
//   is the UTF-8 bytes of the secret string (or the bytes of a Buffer).
// - Proposals: 'aes256gcm16-prfsha256-x25519' is ENCR_AES_GCM_16 (20) with key length 256,
//   PRF_HMAC_SHA2_256 (5), group 31. ESP 'aes256gcm16-x25519' is ENCR 20/256 with ESN "no"
//   only; the group is dropped for the first CHILD_SA (IKE_AUTH) and REQUIRED in every
//   CREATE_CHILD_SA (a KE of group 31): a rekey with PFS against a config without it, or the
//   reverse, is answered NO_PROPOSAL_CHOSEN.
// - Traffic selectors: as responder charon narrows the offered TSi/TSr to its remote_ts /
//   local_ts (TS_UNACCEPTABLE when they do not overlap); as initiator it offers exactly
//   local_ts as TSi and remote_ts as TSr (explicit initiation: no packet-trigger selectors).
// - Besides the required payloads charon sends status notifies to ignore: in IKE_SA_INIT
//   FRAGMENTATION_SUPPORTED, SIGNATURE_HASH_ALGORITHMS, REDIRECT_SUPPORTED (initiator),
//   CHILDLESS_IKEV2_SUPPORTED and MULTIPLE_AUTH_SUPPORTED (responder), CERTREQ with
//   certificates; in IKE_AUTH INITIAL_CONTACT, MULTIPLE_AUTH_SUPPORTED, EAP_ONLY_AUTHENTICATION,
//   IKEV2_MESSAGE_ID_SYNC_SUPPORTED.
// - Certificates: charon sends its CERT only when asked (send_cert = ifasked: the peer sent a
//   CERTREQ; sendCert: 'always' otherwise) and signs with RFC 7427 digital signatures
//   (ECDSA_WITH_SHA256_DER, ED25519) when the peer announced SIGNATURE_HASH_ALGORITHMS.
// - dpd_delay makes charon send empty INFORMATIONAL requests after that long without inbound
//   traffic; terminate() and stop() send an INFORMATIONAL with a Delete payload.
import fs from 'node:fs';
import path from 'node:path';
import { execIn, type ExecResult } from './exec';
import type { Host } from './hosts';
import type { Lab } from './lab';
import type { LabProcess } from './process';
import type { Credential } from './pki';
import { commandExists } from './system';

export const CHARON_BIN = '/usr/lib/ipsec/charon';
export const SWANCTL_BIN = 'swanctl';
const PLUGIN_DIR = '/usr/lib/ipsec/plugins';
/** The TUN device kernel-libipsec makes. */
export const LIBIPSEC_TUN = 'ipsec0';
/** charon.routing_table / routing_table_prio: where libipsec's routes go. */
export const CHARON_ROUTING_TABLE = 220;

/**
 * The plugins charon loads, in priority order. `!` marks a plugin critical (charon refuses to
 * start without it). kernel-libipsec must come before kernel-netlink: charon takes the first IPsec
 * backend that registers, and kernel-netlink's own (XFRM) then "fails to load" on any kernel, so
 * kernel-netlink, still needed for addresses, routes and rules, cannot be marked critical. openssl provides x25519,
 * Ed25519, ChaCha20-Poly1305, AES-GCM, ECDSA and MODP groups (Debian ships no curve25519 or
 * chapoly plugin); counters gives `swanctl --counters`.
 */
export const CHARON_PLUGINS = [
  'random', 'nonce', 'openssl', 'aes', 'sha1', 'sha2', 'hmac', 'gcm', 'kdf', 'mgf1', 'gmp',
  'pem', 'pkcs1', 'pkcs8', 'x509', 'pubkey', 'constraints', 'revocation',
  'kernel-libipsec!', 'kernel-netlink', 'socket-default!', 'vici!', 'counters',
];

/** What swanctl itself needs to parse certificates and keys before it hands them to charon. */
const SWANCTL_PLUGINS = 'random nonce openssl pem pkcs1 pkcs8 x509 pubkey sha1 sha2 gmp';

/** Sub-directories of a swanctl directory (created up front: swanctl complains about missing ones). */
const SWANCTL_SUBDIRS = ['conf.d', 'x509', 'x509ca', 'x509aa', 'x509ocsp', 'x509crl', 'x509ac', 'pubkey', 'private', 'rsa', 'ecdsa', 'bliss', 'pkcs8', 'pkcs12'];

/** Why a charon cannot be started here, or null (binaries, the libipsec plugin, unshare). */
export function strongswanUnavailableReason(): string | null {
  if (!fs.existsSync(CHARON_BIN)) return `${CHARON_BIN} is missing (Debian: strongswan-charon)`;
  if (!commandExists(SWANCTL_BIN)) return 'swanctl is not installed (Debian: strongswan-swanctl)';
  if (!fs.existsSync(path.join(PLUGIN_DIR, 'libstrongswan-kernel-libipsec.so'))) return 'the kernel-libipsec plugin is missing (Debian: libcharon-extra-plugins)';
  if (!fs.existsSync(path.join(PLUGIN_DIR, 'libstrongswan-openssl.so'))) return 'the openssl plugin is missing (Debian: libstrongswan-standard-plugins)';
  if (!fs.existsSync(path.join(PLUGIN_DIR, 'libstrongswan-vici.so'))) return 'the vici plugin is missing (Debian: strongswan-swanctl)';
  if (!commandExists('unshare')) return 'unshare is not installed (util-linux)';
  return null;
}

/**
 * Puts `address` (/32, or /128 for IPv6) on the host's loopback: an address for the inner
 * traffic of a tunnel, inside its local traffic selector, which libipsec's route uses as source.
 */
export async function addTunnelAddress(lab: Lab, host: Host, address: string): Promise<void> {
  const cidr = address.includes('/') ? address : `${address}/${address.includes(':') ? 128 : 32}`;
  await lab.ip(host, ['addr', 'add', cidr, 'dev', 'lo']);
}

// ---------------------------------------------------------------------------------------------
// swanctl.conf

/** A duration: seconds, or strongSwan's own syntax ('90s', '10m', '1h', '1d'). */
export type Duration = number | string;

export interface SwanctlAuth {
  /** 'psk' or 'pubkey' (certificates / raw keys; RFC 7427 signatures where both sides can). */
  auth: 'psk' | 'pubkey' | string;
  /**
   * IKE identity. charon guesses the type from the text: an IPv4/IPv6 address is ID_IPV4_ADDR /
   * ID_IPV6_ADDR, "a@b" ID_RFC822_ADDR, "C=.., CN=.." ID_DER_ASN1_DN, anything else ID_FQDN;
   * prefix with "fqdn:", "email:", "keyid:" ... to force one. Local default: the IKE address,
   * or the certificate's subject with `certs`. Remote default: %any.
   */
  id?: string;
  /** local: certificate files in the swanctl x509/ directory (or Credentials, by file name). */
  certs?: (string | Credential)[];
  /** remote: accept only certificates issued by these CA files (x509ca/); default any loaded CA. */
  cacerts?: (string | Credential)[];
  /** Anything else of the local/remote section, verbatim (e.g. { revocation: 'relaxed' }). */
  extra?: Record<string, string | number | boolean>;
}

export interface SwanctlChild {
  name: string;
  /**
   * Local traffic selectors, e.g. ['198.19.1.1/32'] (an address of this host that is not its
   * IKE address: see addTunnelAddress()). 'dynamic' means the IKE address, which libipsec can
   * route only when the remote TS does not equal the peer's IKE address.
   */
  localTs: string[];
  remoteTs: string[];
  /** e.g. ['aes256gcm16-x25519'] (a DH group here means PFS on rekey); default strongSwan's. */
  espProposals?: string[];
  rekeyTime?: Duration;
  lifeTime?: Duration;
  /** Default strongSwan's (life_time - rekey_time); 0 for exact rekey times. */
  randTime?: Duration;
  rekeyBytes?: number;
  lifeBytes?: number;
  rekeyPackets?: number;
  lifePackets?: number;
  /** What to do when DPD declares the peer dead: 'clear' | 'trap' | 'restart'. */
  dpdAction?: 'clear' | 'trap' | 'restart' | 'none';
  /** 'none' (default: wait for initiate()) | 'start' (initiate on load) | 'trap' (not with libipsec). */
  startAction?: 'none' | 'start' | 'trap';
  closeAction?: 'none' | 'start' | 'trap';
  /** Default 'tunnel' (the only mode libipsec does). */
  mode?: 'tunnel' | 'transport';
  replayWindow?: number;
  extra?: Record<string, string | number | boolean>;
}

export interface SwanctlConnection {
  name: string;
  /** Default 2. */
  version?: 1 | 2;
  /** Local IKE addresses (default %any). */
  localAddrs?: string[];
  /** Remote IKE addresses: the peer to initiate to, and the only one accepted as responder (default %any: respond to anyone). */
  remoteAddrs?: string[];
  localPort?: number;
  /** Port to initiate to (default 500; charon floats to 4500 after IKE_SA_INIT). */
  remotePort?: number;
  local: SwanctlAuth;
  remote: SwanctlAuth;
  /** IKE proposals, e.g. ['aes256gcm16-prfsha256-x25519']; default strongSwan's. */
  proposals?: string[];
  /** Force UDP encapsulation of ESP (libipsec does it anyway: this makes it explicit). */
  encap?: boolean;
  /** Default false (no MOBIKE: a peer without it sees plain RFC 7296). */
  mobike?: boolean;
  /** IKE_SA rekey interval (default 4h); 0 disables. */
  rekeyTime?: Duration;
  /** Hard IKE_SA lifetime = rekey_time (or reauth_time) + over_time (default 10% of it). */
  overTime?: Duration;
  randTime?: Duration;
  reauthTime?: Duration;
  /** Liveness checks (empty INFORMATIONAL) after this long without traffic; 0 = off (default). */
  dpdDelay?: Duration;
  /** Default 1; 0 = forever. */
  keyingtries?: number;
  /** 'no' | 'never' | 'keep' | 'replace' (default 'no'). */
  unique?: 'no' | 'never' | 'keep' | 'replace';
  /** IKEv2 fragmentation (RFC 7383): 'yes' (default) | 'accept' | 'force' | 'no'. */
  fragmentation?: 'yes' | 'accept' | 'force' | 'no';
  /** 'always' | 'ifasked' (default) | 'never'. */
  sendCert?: 'always' | 'ifasked' | 'never';
  /** Default true. */
  sendCertreq?: boolean;
  children: SwanctlChild[];
  extra?: Record<string, string | number | boolean>;
}

export interface SwanctlSecret {
  /** Section name suffix: secrets { ike-NAME { ... } } (default ike-N). */
  name?: string;
  /** Identities the secret is for (both ends' ids; none: any). */
  ids?: string[];
  /** The PSK: a string is used as its UTF-8 bytes; a Buffer is written as 0x hex. */
  secret: string | Buffer;
}

export interface SwanctlConf {
  connections: SwanctlConnection[];
  secrets?: SwanctlSecret[];
}

const PLAIN_VALUE = /^[A-Za-z0-9_.:/%@+,-]+$/;

/** A value for swanctl.conf / strongswan.conf: bare when safe, otherwise double-quoted. */
export function confValue(v: string | number | boolean): string {
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`not a finite number: ${v}`);
    return String(v);
  }
  if (PLAIN_VALUE.test(v)) return v;
  if (/[\n\r]/.test(v)) throw new Error(`line break in a config value: ${JSON.stringify(v)}`);
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function duration(d: Duration): string {
  return typeof d === 'number' ? `${d}s` : d;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
function checkName(kind: string, name: string): string {
  if (!NAME_RE.test(name)) throw new Error(`bad ${kind} name ${JSON.stringify(name)} (want [A-Za-z0-9][A-Za-z0-9_-]*)`);
  return name;
}

const credFile = (c: string | Credential) => (typeof c === 'string' ? c : path.basename(c.certPath));

class ConfWriter {
  private readonly lines: string[] = [];
  private depth = 0;
  open(name: string): void {
    this.lines.push(`${'  '.repeat(this.depth)}${name} {`);
    this.depth++;
  }
  close(): void {
    this.depth--;
    this.lines.push(`${'  '.repeat(this.depth)}}`);
  }
  kv(key: string, value: string | number | boolean | undefined | null): void {
    if (value === undefined || value === null) return;
    this.lines.push(`${'  '.repeat(this.depth)}${key} = ${confValue(value)}`);
  }
  list(key: string, values: readonly (string | number)[] | undefined): void {
    if (!values || values.length === 0) return;
    for (const v of values) if (String(v).includes(',')) throw new Error(`${key}: list item ${JSON.stringify(v)} contains a comma`);
    this.kv(key, values.join(','));
  }
  extra(extra: Record<string, string | number | boolean> | undefined): void {
    for (const [k, v] of Object.entries(extra ?? {})) this.kv(k, v);
  }
  text(): string {
    return this.lines.join('\n') + '\n';
  }
}

/** swanctl.conf text for `conf`: connections { ... } and secrets { ike-* { ... } }. */
export function swanctlConf(conf: SwanctlConf): string {
  const w = new ConfWriter();
  w.open('connections');
  const seen = new Set<string>();
  for (const c of conf.connections) {
    checkName('connection', c.name);
    if (seen.has(c.name)) throw new Error(`duplicate connection ${c.name}`);
    seen.add(c.name);
    w.open(c.name);
    w.kv('version', c.version ?? 2);
    w.list('local_addrs', c.localAddrs);
    w.list('remote_addrs', c.remoteAddrs);
    w.kv('local_port', c.localPort);
    w.kv('remote_port', c.remotePort);
    w.list('proposals', c.proposals);
    w.kv('encap', c.encap);
    w.kv('mobike', c.mobike ?? false);
    if (c.rekeyTime !== undefined) w.kv('rekey_time', duration(c.rekeyTime));
    if (c.overTime !== undefined) w.kv('over_time', duration(c.overTime));
    if (c.randTime !== undefined) w.kv('rand_time', duration(c.randTime));
    if (c.reauthTime !== undefined) w.kv('reauth_time', duration(c.reauthTime));
    if (c.dpdDelay !== undefined) w.kv('dpd_delay', duration(c.dpdDelay));
    w.kv('keyingtries', c.keyingtries);
    w.kv('unique', c.unique);
    w.kv('fragmentation', c.fragmentation);
    w.kv('send_cert', c.sendCert);
    w.kv('send_certreq', c.sendCertreq);
    w.extra(c.extra);
    for (const side of ['local', 'remote'] as const) {
      const a = c[side];
      w.open(side);
      w.kv('auth', a.auth);
      w.kv('id', a.id);
      w.list('certs', a.certs?.map(credFile));
      w.list('cacerts', a.cacerts?.map(credFile));
      w.extra(a.extra);
      w.close();
    }
    w.open('children');
    const children = new Set<string>();
    for (const ch of c.children) {
      checkName('child', ch.name);
      if (children.has(ch.name)) throw new Error(`duplicate child ${ch.name} in ${c.name}`);
      children.add(ch.name);
      w.open(ch.name);
      w.list('local_ts', ch.localTs);
      w.list('remote_ts', ch.remoteTs);
      w.list('esp_proposals', ch.espProposals);
      w.kv('mode', ch.mode ?? 'tunnel');
      if (ch.rekeyTime !== undefined) w.kv('rekey_time', duration(ch.rekeyTime));
      if (ch.lifeTime !== undefined) w.kv('life_time', duration(ch.lifeTime));
      if (ch.randTime !== undefined) w.kv('rand_time', duration(ch.randTime));
      w.kv('rekey_bytes', ch.rekeyBytes);
      w.kv('life_bytes', ch.lifeBytes);
      w.kv('rekey_packets', ch.rekeyPackets);
      w.kv('life_packets', ch.lifePackets);
      w.kv('dpd_action', ch.dpdAction);
      w.kv('start_action', ch.startAction ?? 'none');
      w.kv('close_action', ch.closeAction);
      w.kv('replay_window', ch.replayWindow);
      w.extra(ch.extra);
      w.close();
    }
    w.close();
    w.close();
  }
  w.close();
  if (conf.secrets?.length) {
    w.open('secrets');
    for (const [i, s] of conf.secrets.entries()) {
      w.open(`ike-${checkName('secret', s.name ?? String(i))}`);
      for (const [j, id] of (s.ids ?? []).entries()) w.kv(`id-${j}`, id);
      w.kv('secret', typeof s.secret === 'string' ? s.secret : `0x${s.secret.toString('hex')}`);
      w.close();
    }
    w.close();
  }
  return w.text();
}

// ---------------------------------------------------------------------------------------------
// swanctl's --pretty output

/** A vici message as swanctl --pretty prints it: sections, key/values and lists. */
export interface ViciSection {
  [key: string]: string | string[] | ViciSection;
}

/**
 * Parses `swanctl ... --pretty` output: a sequence of top-level messages ("list-sa event {",
 * "list-sas reply {"), each a tree of `key = value`, `name { ... }` and `key = [` items `]`,
 * one per line (so values may contain spaces and commas, as DNs do).
 */
export function parseViciPretty(text: string): { name: string; body: ViciSection }[] {
  const messages: { name: string; body: ViciSection }[] = [];
  const stack: ViciSection[] = [];
  let list: string[] | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (list) {
      if (line === ']') list = null;
      else list.push(line);
      continue;
    }
    const top = stack[stack.length - 1];
    const listOpen = /^([^\s=]+) = \[$/.exec(line);
    if (listOpen && top) {
      list = [];
      top[listOpen[1]!] = list;
      continue;
    }
    const kv = /^([^\s=]+) = ?(.*)$/.exec(line);
    if (kv && top) {
      top[kv[1]!] = kv[2]!;
    } else if (line.endsWith(' {')) {
      const name = line.slice(0, -2);
      const section: ViciSection = {};
      if (top) top[name] = section;
      else messages.push({ name, body: section });
      stack.push(section);
    } else if (line === '}') {
      stack.pop();
    }
    // Anything else (log lines swanctl printed in between) is not part of a message.
  }
  return messages;
}

export interface ChildSa {
  /** Child config name (c), unlike the section key (c-1). */
  name: string;
  uniqueid: number;
  reqid: number;
  /** INSTALLED, REKEYING, REKEYED, DELETING, ... */
  state: string;
  mode: string;
  protocol: string;
  encap: boolean;
  /** Hex, as swanctl prints them (8 digits). */
  spiIn: string;
  spiOut: string;
  /** e.g. AES_GCM_16, CHACHA20_POLY1305, AES_CBC. */
  encrAlg: string;
  encrKeysize: number | undefined;
  /** e.g. HMAC_SHA2_256_128 (absent with an AEAD). */
  integAlg: string | undefined;
  /** The PFS group of the last (re)key (absent when none was used, e.g. the first child). */
  dhGroup: string | undefined;
  esn: boolean;
  bytesIn: number;
  packetsIn: number;
  bytesOut: number;
  packetsOut: number;
  /** Seconds from now. */
  rekeyTime: number | undefined;
  lifeTime: number | undefined;
  /** Seconds since it was installed. */
  installTime: number | undefined;
  localTs: string[];
  remoteTs: string[];
  raw: ViciSection;
}

export interface IkeSa {
  /** Connection name. */
  name: string;
  uniqueid: number;
  version: number;
  /** CONNECTING, ESTABLISHED, REKEYING, DELETING, ... */
  state: string;
  localHost: string;
  localPort: number;
  localId: string;
  remoteHost: string;
  remotePort: number;
  remoteId: string;
  initiator: boolean;
  initiatorSpi: string;
  responderSpi: string;
  /** NAT seen (or faked, which libipsec always does). */
  natAny: boolean;
  encrAlg: string | undefined;
  encrKeysize: number | undefined;
  integAlg: string | undefined;
  prfAlg: string | undefined;
  dhGroup: string | undefined;
  /** Seconds since establishment. */
  established: number | undefined;
  /** Seconds from now. */
  rekeyTime: number | undefined;
  reauthTime: number | undefined;
  children: ChildSa[];
  raw: ViciSection;
}

const str = (s: ViciSection, k: string): string | undefined => (typeof s[k] === 'string' ? (s[k] as string) : undefined);
const num = (s: ViciSection, k: string): number | undefined => {
  const v = str(s, k);
  return v === undefined || v === '' ? undefined : Number(v);
};
const list = (s: ViciSection, k: string): string[] => (Array.isArray(s[k]) ? (s[k] as string[]) : []);
const section = (s: ViciSection, k: string): ViciSection => {
  const v = s[k];
  return v && typeof v === 'object' && !Array.isArray(v) ? v : {};
};

/** The IKE_SAs of `swanctl --list-sas --pretty` output. */
export function parseSas(text: string): IkeSa[] {
  const sas: IkeSa[] = [];
  for (const msg of parseViciPretty(text)) {
    if (msg.name !== 'list-sa event') continue;
    for (const [name, value] of Object.entries(msg.body)) {
      if (typeof value !== 'object' || Array.isArray(value)) continue;
      const s = value;
      const children: ChildSa[] = [];
      for (const [key, cv] of Object.entries(section(s, 'child-sas'))) {
        if (typeof cv !== 'object' || Array.isArray(cv)) continue;
        children.push({
          name: str(cv, 'name') ?? key.replace(/-\d+$/, ''),
          uniqueid: num(cv, 'uniqueid') ?? 0,
          reqid: num(cv, 'reqid') ?? 0,
          state: str(cv, 'state') ?? '',
          mode: str(cv, 'mode') ?? '',
          protocol: str(cv, 'protocol') ?? '',
          encap: str(cv, 'encap') === 'yes',
          spiIn: str(cv, 'spi-in') ?? '',
          spiOut: str(cv, 'spi-out') ?? '',
          encrAlg: str(cv, 'encr-alg') ?? '',
          encrKeysize: num(cv, 'encr-keysize'),
          integAlg: str(cv, 'integ-alg'),
          dhGroup: str(cv, 'dh-group'),
          esn: str(cv, 'esn') === '1' || str(cv, 'esn') === 'yes',
          bytesIn: num(cv, 'bytes-in') ?? 0,
          packetsIn: num(cv, 'packets-in') ?? 0,
          bytesOut: num(cv, 'bytes-out') ?? 0,
          packetsOut: num(cv, 'packets-out') ?? 0,
          rekeyTime: num(cv, 'rekey-time'),
          lifeTime: num(cv, 'life-time'),
          installTime: num(cv, 'install-time'),
          localTs: list(cv, 'local-ts'),
          remoteTs: list(cv, 'remote-ts'),
          raw: cv,
        });
      }
      sas.push({
        name,
        uniqueid: num(s, 'uniqueid') ?? 0,
        version: num(s, 'version') ?? 0,
        state: str(s, 'state') ?? '',
        localHost: str(s, 'local-host') ?? '',
        localPort: num(s, 'local-port') ?? 0,
        localId: str(s, 'local-id') ?? '',
        remoteHost: str(s, 'remote-host') ?? '',
        remotePort: num(s, 'remote-port') ?? 0,
        remoteId: str(s, 'remote-id') ?? '',
        initiator: str(s, 'initiator') === 'yes',
        initiatorSpi: str(s, 'initiator-spi') ?? '',
        responderSpi: str(s, 'responder-spi') ?? '',
        natAny: str(s, 'nat-any') === 'yes',
        encrAlg: str(s, 'encr-alg'),
        encrKeysize: num(s, 'encr-keysize'),
        integAlg: str(s, 'integ-alg'),
        prfAlg: str(s, 'prf-alg'),
        dhGroup: str(s, 'dh-group'),
        established: num(s, 'established'),
        rekeyTime: num(s, 'rekey-time'),
        reauthTime: num(s, 'reauth-time'),
        children,
        raw: s,
      });
    }
  }
  return sas;
}

/** True when IKE_SA `ike` is ESTABLISHED with an INSTALLED child `child` (when given). */
export function isEstablished(sas: readonly IkeSa[], ike: string, child?: string): boolean {
  return sas.some((s) => s.name === ike && s.state === 'ESTABLISHED' && (child === undefined || s.children.some((c) => c.name === child && c.state === 'INSTALLED')));
}

// ---------------------------------------------------------------------------------------------
// The daemon

export type LogGroup = 'dmn' | 'mgr' | 'ike' | 'chd' | 'job' | 'cfg' | 'knl' | 'net' | 'asn' | 'enc' | 'tnc' | 'imc' | 'imv' | 'pts' | 'tls' | 'esp' | 'lib';

export interface CharonOptions {
  /** Names the state directory and appears in messages ([a-z0-9-], e.g. 'a'). */
  name: string;
  /** Default level of every log group (-1..4, default 1). */
  logLevel?: number;
  /** Per-group levels; default ike 2, cfg 2, knl 2 (IKE and kernel decisions, not packet dumps). */
  logLevels?: Partial<Record<LogGroup, number>>;
  /** More plugins appended to CHARON_PLUGINS (e.g. ['xcbc', 'cmac']). */
  extraPlugins?: string[];
  /** More strongswan.conf text inside `charon { ... }` (e.g. 'make_before_break = yes'). */
  settings?: string;
  /** IKE ports (defaults 500 and 4500). */
  port?: number;
  natPort?: number;
  /**
   * Retransmission of IKE requests (charon defaults: timeout 4 s, 5 tries, base 1.8, about
   * 165 s until a dead peer is given up). Small values make dead-peer tests fast.
   */
  retransmit?: { timeout?: number; tries?: number; base?: number };
  /** How long start() waits for the vici socket to answer (default 15 s). */
  startTimeoutMs?: number;
}

export interface CredentialFiles {
  /** End-entity certificates for swanctl x509/ (own and, optionally, peers'). */
  certs?: (string | Credential)[];
  /** Private keys for swanctl private/ (a Credential contributes its keyPath). */
  keys?: (string | Credential)[];
  /** Trusted CA certificates for swanctl x509ca/. */
  cas?: (string | Credential)[];
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
let charonCounter = 0;
/** The running charon of each namespace: a second one could not bind UDP 500/4500 there. */
const charonByNs = new Map<string, Charon>();

/** The last `lines` lines of `text`. */
function tail(text: string, lines = 40): string {
  const all = text.trimEnd().split('\n');
  return all.slice(-lines).join('\n');
}

export class Charon {
  private proc: LabProcess | null = null;
  private stopping: Promise<void> | null = null;
  private savedLog: string | null = null;
  /** Where swanctl.conf and the credential directories live. */
  readonly swanctlDir: string;
  readonly confPath: string;
  readonly logPath: string;
  readonly viciSocket: string;

  private constructor(
    private readonly lab: Lab,
    readonly host: Host,
    readonly name: string,
    /** The charon's private directory (its /run, strongswan.conf, log, vici socket, swanctl/). */
    readonly dir: string,
  ) {
    this.swanctlDir = path.join(dir, 'swanctl');
    this.confPath = path.join(dir, 'strongswan.conf');
    this.logPath = path.join(dir, 'charon.log');
    this.viciSocket = path.join(dir, 'charon.vici');
  }

  /** `unix://DIR/charon.vici`: swanctl's --uri. */
  get uri(): string {
    return `unix://${this.viciSocket}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get running(): boolean {
    return this.proc !== null && this.proc.running;
  }

  /**
   * Starts charon inside `host` (its own mount namespace, /run, strongswan.conf and vici
   * socket) and waits until it answers over vici with kernel-libipsec loaded. Rejects with the
   * log tail when it exits or does not answer.
   */
  static async start(lab: Lab, host: Host, options: CharonOptions): Promise<Charon> {
    const reason = strongswanUnavailableReason();
    if (reason) throw new Error(`cannot start charon: ${reason}`);
    if (!/^[a-z0-9][a-z0-9-]{0,15}$/.test(options.name)) throw new Error(`bad charon name ${JSON.stringify(options.name)} (want [a-z0-9-], up to 16)`);
    const other = charonByNs.get(host.ns);
    if (other?.running) throw new Error(`cannot start charon ${options.name}: charon ${other.name} already runs in ${host.ns} (one per host: they would share UDP 500/4500)`);
    const dir = path.join(lab.tmpdir(), `charon-${options.name}-${++charonCounter}`);
    const charon = new Charon(lab, host, options.name, dir);
    if (Buffer.byteLength(charon.viciSocket) > 100) throw new Error(`vici socket path too long for a unix socket: ${charon.viciSocket}`);
    fs.mkdirSync(path.join(dir, 'run'), { recursive: true, mode: 0o700 });
    for (const sub of SWANCTL_SUBDIRS) fs.mkdirSync(path.join(charon.swanctlDir, sub), { recursive: true, mode: 0o700 });
    fs.writeFileSync(charon.confPath, charon.strongswanConf(options));
    fs.writeFileSync(path.join(charon.swanctlDir, 'swanctl.conf'), '');
    lab.onDestroy(() => charon.stop());
    charonByNs.set(host.ns, charon);
    // $0 is the private /run, $1 charon: the mount stays inside unshare's mount namespace.
    charon.proc = lab.spawn(host, 'unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /run && exec "$1"', path.join(dir, 'run'), CHARON_BIN], {
      env: { ...process.env, STRONGSWAN_CONF: charon.confPath },
    });
    try {
      await charon.waitUntilReady(options.startTimeoutMs ?? 15_000);
    } catch (err) {
      await charon.stop(1000).catch(() => undefined);
      throw err;
    }
    return charon;
  }

  private strongswanConf(o: CharonOptions): string {
    const levels: Partial<Record<LogGroup, number>> = { ike: 2, cfg: 2, knl: 2, ...o.logLevels };
    const def = o.logLevel ?? 1;
    const rt = o.retransmit ?? {};
    const plugins = [...CHARON_PLUGINS, ...(o.extraPlugins ?? [])];
    return [
      `# written by overlayfwd lab/strongswan.ts for charon ${o.name} in ${this.host.ns}`,
      'charon {',
      `  load = ${plugins.join(' ')}`,
      '  threads = 16',
      `  port = ${o.port ?? 500}`,
      `  port_nat_t = ${o.natPort ?? 4500}`,
      '  install_routes = yes',
      `  routing_table = ${CHARON_ROUTING_TABLE}`,
      `  routing_table_prio = ${CHARON_ROUTING_TABLE}`,
      rt.timeout !== undefined ? `  retransmit_timeout = ${rt.timeout}` : '',
      rt.tries !== undefined ? `  retransmit_tries = ${rt.tries}` : '',
      rt.base !== undefined ? `  retransmit_base = ${rt.base}` : '',
      '  filelog {',
      '    lab {',
      `      path = ${this.logPath}`,
      '      time_format = %H:%M:%S',
      '      ike_name = yes',
      '      append = no',
      '      flush_line = yes',
      `      default = ${def}`,
      ...Object.entries(levels).map(([g, l]) => `      ${g} = ${l}`),
      '    }',
      '  }',
      '  plugins {',
      `    vici { socket = ${this.uri} }`,
      '  }',
      o.settings ? o.settings.split('\n').map((l) => `  ${l}`).join('\n') : '',
      '}',
      'swanctl {',
      `  load = ${SWANCTL_PLUGINS}`,
      '}',
      '',
    ]
      .filter((l) => l !== '')
      .join('\n') + '\n';
  }

  private failure(what: string): Error {
    const status = this.proc && !this.proc.running ? ` (${this.proc.describeStatus()})` : '';
    const stderr = this.proc ? (this.proc.stderr + this.proc.stdout).trim() : '';
    return new Error(
      `charon ${this.name} in ${this.host.ns}${status}: ${what}\n--- ${this.logPath} (tail) ---\n${tail(this.log(), 40)}` + (stderr ? `\n--- output ---\n${tail(stderr, 20)}` : ''),
    );
  }

  private async waitUntilReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      if (!this.proc!.running) throw this.failure('exited during start');
      if (fs.existsSync(this.viciSocket)) {
        const res = await execIn(null, SWANCTL_BIN, ['--stats', '--uri', this.uri], { env: this.swanctlEnv(), allowFailure: true, timeoutMs: 5000 }).catch((e: unknown) => ({ code: -1, stdout: '', stderr: String(e) }));
        if (res.code === 0) {
          if (!/loaded plugins:.*\bkernel-libipsec\b/.test(res.stdout)) throw this.failure(`kernel-libipsec is not loaded:\n${res.stdout}`);
          return;
        }
        last = res.stderr.trim();
      }
      if (Date.now() > deadline) throw this.failure(`no answer on ${this.uri} after ${timeoutMs} ms${last ? ` (${last})` : ''}`);
      await sleep(50);
    }
  }

  private swanctlEnv(): NodeJS.ProcessEnv {
    return { ...process.env, STRONGSWAN_CONF: this.confPath };
  }

  /** Runs `swanctl ARGS --uri unix://DIR/charon.vici`; rejects (with the log tail) on failure. Returns stdout. */
  async swanctl(args: readonly string[], options: { timeoutMs?: number } = {}): Promise<string> {
    const res = await this.swanctlResult(args, options);
    if (res.code !== 0) throw this.failure(`swanctl ${args.join(' ')} failed (exit ${res.code}): ${(res.stdout + res.stderr).trim().split('\n').slice(-10).join('\n')}`);
    return res.stdout;
  }

  /** Like swanctl(), but resolves with the exit code and both outputs whatever happens. */
  async swanctlResult(args: readonly string[], options: { timeoutMs?: number } = {}): Promise<ExecResult> {
    if (!this.running) throw this.failure(`swanctl ${args.join(' ')}: charon is not running`);
    return execIn(null, SWANCTL_BIN, [...args, '--uri', this.uri], { env: this.swanctlEnv(), allowFailure: true, timeoutMs: options.timeoutMs ?? 30_000 });
  }

  /**
   * Writes swanctl.conf (a SwanctlConf or its text) and the credential files into the swanctl
   * directory (x509/, private/, x509ca/), then `swanctl --load-all --clear --noprompt --file`.
   * Connections and secrets not in `conf` are unloaded. Returns swanctl's output.
   */
  async load(conf: SwanctlConf | string, files: CredentialFiles = {}): Promise<string> {
    const text = typeof conf === 'string' ? conf : swanctlConf(conf);
    const copy = (items: (string | Credential)[] | undefined, sub: string, pick: (c: Credential) => string) => {
      for (const item of items ?? []) {
        const src = typeof item === 'string' ? item : pick(item);
        fs.copyFileSync(src, path.join(this.swanctlDir, sub, path.basename(src)));
        if (sub === 'private') fs.chmodSync(path.join(this.swanctlDir, sub, path.basename(src)), 0o600);
      }
    };
    copy(files.certs, 'x509', (c) => c.certPath);
    copy(files.keys, 'private', (c) => c.keyPath);
    copy(files.cas, 'x509ca', (c) => c.certPath);
    const file = path.join(this.swanctlDir, 'swanctl.conf');
    fs.writeFileSync(file, text);
    return this.swanctl(['--load-all', '--clear', '--noprompt', '--file', file]);
  }

  /**
   * Initiates CHILD_SA `child` (and its IKE_SA) of connection `ike` (default: the connection
   * that has the child) and waits until it is up or failed, at most `timeoutSec` (default 15).
   * Rejects with the log tail when it fails. Returns swanctl's output (charon's log of it).
   */
  initiate(child: string, ike?: string, timeoutSec = 15): Promise<string> {
    return this.swanctl(['--initiate', '--child', child, ...(ike ? ['--ike', ike] : []), '--timeout', String(timeoutSec)], { timeoutMs: (timeoutSec + 10) * 1000 });
  }

  /** Deletes IKE_SA `ike` (connection name) with its children, sending DELETE to the peer. */
  terminate(ike: string, timeoutSec = 15): Promise<string> {
    return this.swanctl(['--terminate', '--ike', ike, '--timeout', String(timeoutSec)], { timeoutMs: (timeoutSec + 10) * 1000 });
  }

  /**
   * Starts a rekey of CHILD_SA `child` or IKE_SA `ike` (by name); `reauth` for an IKE
   * reauthentication. swanctl returns once the rekey is queued ("rekey completed successfully"
   * even when the peer then answers NO_PROPOSAL_CHOSEN): waitFor() the new SPIs.
   */
  rekey(target: { child?: string; ike?: string; reauth?: boolean }): Promise<string> {
    const args = ['--rekey'];
    if (target.child) args.push('--child', target.child);
    if (target.ike) args.push('--ike', target.ike);
    if (target.reauth) args.push('--reauth');
    if (args.length === 1) throw new Error('rekey: name a child or an IKE_SA');
    return this.swanctl(args);
  }

  /** The current IKE_SAs with their CHILD_SAs (`swanctl --list-sas --pretty`, parsed). */
  async listSas(): Promise<IkeSa[]> {
    return parseSas(await this.swanctl(['--list-sas', '--pretty']));
  }

  /**
   * Polls listSas() every 100 ms until `predicate` holds; resolves with that list. Rejects
   * after timeoutMs with the last list and the log tail.
   */
  async waitFor(predicate: (sas: IkeSa[]) => boolean, timeoutMs = 10_000, what = 'the SAs to match'): Promise<IkeSa[]> {
    const deadline = Date.now() + timeoutMs;
    let sas: IkeSa[] = [];
    for (;;) {
      sas = await this.listSas();
      if (predicate(sas)) return sas;
      if (Date.now() > deadline) {
        const shown = sas.map((s) => `${s.name} ${s.state} [${s.children.map((c) => `${c.name} ${c.state}`).join(', ')}]`).join('; ') || 'none';
        throw this.failure(`timed out after ${timeoutMs} ms waiting for ${what}; SAs: ${shown}`);
      }
      await sleep(100);
    }
  }

  /** The charon log so far (DIR/charon.log; kept in memory once stop() removed the directory). */
  log(): string {
    if (this.savedLog !== null) return this.savedLog;
    try {
      return fs.readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /** SIGKILL: the daemon vanishes without a DELETE (for dead-peer tests). Its directory stays until stop(). */
  async kill(): Promise<void> {
    if (!this.proc || !this.proc.running) return;
    this.proc.kill('SIGKILL');
    await this.proc.exited;
  }

  /**
   * Graceful shutdown (SIGTERM: charon deletes its IKE_SAs, TUN, routes and rule), SIGKILL after
   * `graceMs`; then removes the directory. Idempotent; also run by the lab's destroy().
   */
  stop(graceMs = 5000): Promise<void> {
    if (!this.stopping) this.stopping = this.doStop(graceMs);
    return this.stopping;
  }

  private async doStop(graceMs: number): Promise<void> {
    if (this.proc?.running) await this.proc.stop(graceMs);
    if (charonByNs.get(this.host.ns) === this) charonByNs.delete(this.host.ns);
    this.savedLog = this.log();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
