// Least privilege after setup, for `overlayfwd up`: once the device, the sockets, the workers,
// the control socket and the metrics listener exist, the process keeps only the capabilities
// that later table swaps need, and with `user:` in the config it runs as that user.
//
// Capabilities are per thread in Linux, so each thread drops its own (native/core/system/
// privileges.h): the data-path workers as they start (they parse hostile packets and keep
// nothing), the main thread here (keeping keptCapabilities), and Node's own threads when asked
// through a signal. A thread that blocks every signal cannot be asked: Node's SIGUSR1 watcher
// and the IKE reader. The user switch reaches them all the same: glibc runs setresuid in every
// thread, and the kernel empties the capabilities of each thread whose uids all leave 0.
import fs from 'node:fs';
import { ConfigError } from './config';
import type { NativeBinding, NativeThreadPrivileges } from './native';
import type { ResolvedConfig } from './types';

/** capability(7) numbers, by name (linux/capability.h). */
export const CAPABILITY_NAMES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN',
  'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ',
  'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

export function capabilityName(n: number): string {
  return CAPABILITY_NAMES[n] ?? `cap_${n}`;
}

function capabilityNumber(name: string): number {
  const n = CAPABILITY_NAMES.indexOf(name);
  if (n < 0) throw new TypeError(`unknown capability ${name}`);
  return n;
}

export interface KeptCapability {
  name: string;
  /** What needs it after setup. */
  why: string;
}

/**
 * What the main thread keeps after setup. Everything else was needed only at start: the device
 * (TUNSETIFF, link and address configuration), the raw and packet sockets, SO_RCVBUFFORCE, the
 * IKE port below 1024, setns, and the announcements' AF_PACKET socket, which is opened at start
 * and kept (addresses added later go out through it).
 */
export function keptCapabilities(config: ResolvedConfig): KeptCapability[] {
  const kept: KeptCapability[] = [];
  const routes = config.device.type === 'tun' && config.device.routes !== 'off';
  if (routes) {
    kept.push({ name: 'CAP_NET_ADMIN', why: 'kernel routes follow the peers: every table swap (reload, peers add|remove, the registry) adds and removes them over rtnetlink' });
  }
  // A thread enters the namespace for each of those, and for the address watch of a tap device.
  if (config.netns !== null && (routes || config.device.type === 'tap')) {
    kept.push({ name: 'CAP_SYS_ADMIN', why: `routes and address announcements are made inside netns ${config.netns} (setns); run up inside the namespace instead (ip netns exec, or systemd's NetworkNamespacePath=) to drop it` });
  }
  return kept;
}

/** The user and group `up` runs as after setup, looked up on this host. */
export interface Identity {
  uid: number;
  gid: number;
  user: string;
  group: string;
}

/**
 * The `user:` and `group:` of the config as ids (NSS: names from /etc/passwd, LDAP, systemd
 * users alike); null without `user:`. Throws ConfigError naming the field (exit 2).
 */
export function resolveIdentity(config: ResolvedConfig, native: Pick<NativeBinding, 'privileges'>): Identity | null {
  if (config.user === undefined) return null;
  const issues: { path: string; message: string }[] = [];
  const user = native.privileges.findUser(String(config.user));
  let uid: number | null = user?.uid ?? null;
  if (user === null) {
    if (typeof config.user === 'number') {
      uid = config.user;
      if (config.group === undefined) issues.push({ path: 'user', message: `uid ${config.user} has no entry in this host's user database, so no primary group: give group: too` });
    } else {
      issues.push({ path: 'user', message: `there is no user ${JSON.stringify(config.user)} on this host` });
    }
  }
  if (uid === 0) issues.push({ path: 'user', message: `${JSON.stringify(config.user)} is root (uid 0): leave user out to keep running as the user that started overlayfwd` });
  let gid: number | null = user?.gid ?? null;
  let groupName = '';
  if (config.group !== undefined) {
    const group = native.privileges.findGroup(String(config.group));
    gid = group?.gid ?? (typeof config.group === 'number' ? config.group : null);
    groupName = group?.name ?? String(config.group);
    if (gid === null) issues.push({ path: 'group', message: `there is no group ${JSON.stringify(config.group)} on this host` });
  } else if (gid !== null) {
    groupName = native.privileges.findGroup(String(gid))?.name ?? String(gid);
  }
  if (issues.length > 0 || uid === null || gid === null) throw new ConfigError(issues);
  return { uid, gid, user: user?.name ?? String(uid), group: groupName };
}

/**
 * Why the process cannot take `identity` (null: it can, or is that user already): only root
 * (CAP_SETUID, CAP_SETGID) changes its ids.
 */
export function identitySwitchRefusal(identity: Identity, current = { uid: process.geteuid?.() ?? 0, gid: process.getegid?.() ?? 0 }): string | null {
  if (current.uid === 0) return null;
  if (identity.uid === current.uid && identity.gid === current.gid) return null;
  return (
    `user: switching to ${identity.user}:${identity.group} (${identity.uid}:${identity.gid}) needs root, and this process runs as ` +
    `${current.uid}:${current.gid}; start it as root with user: in the config, or as that user (systemd's User= and Group=) and leave user: out`
  );
}

/** Whether `identity` may read `file` (owner, group or other read bits), for the reload after the switch. */
export function readableBy(file: string, identity: Identity): boolean {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return false;
  }
  if (st.uid === identity.uid) return (st.mode & 0o400) !== 0;
  if (st.gid === identity.gid) return (st.mode & 0o040) !== 0;
  return (st.mode & 0o004) !== 0;
}

export interface PrivilegeDrop {
  kept: KeptCapability[];
  /** The user switched to; null when the process stayed who it was. */
  identity: Identity | null;
  /** Threads that could not be asked to drop (they block every signal), with what they hold now. */
  unreached: NativeThreadPrivileges[];
}

/**
 * Drops what setup needed: every other thread first (while they still hold CAP_SETUID and
 * CAP_SETGID for the switch), then the switch to `identity` if it is another user, then the
 * main thread down to keptCapabilities. Throws a Node-shaped error on a refused call.
 */
export function dropPrivileges(config: ResolvedConfig, identity: Identity | null, native: Pick<NativeBinding, 'privileges'>): PrivilegeDrop {
  const kept = keptCapabilities(config);
  const keep = kept.map((k) => capabilityNumber(k.name));
  const switching = identity !== null && identitySwitchRefusal(identity) === null && (identity.uid !== process.geteuid?.() || identity.gid !== process.getegid?.());
  const unreachedIds = new Set(native.privileges.restrictOtherThreads(switching));
  if (switching) native.privileges.switchIdentity(identity.uid, identity.gid, keep);
  else native.privileges.restrictThread(keep);
  const unreached = native.privileges.threads().filter((t) => unreachedIds.has(t.tid));
  return { kept, identity: switching ? identity : null, unreached };
}
