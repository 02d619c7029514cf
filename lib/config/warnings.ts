// Warnings: what a valid config may still hold that a user would want to hear about. They have the
// shape of ConfigIssues (the field's path and what is wrong), but nothing fails: `check` prints
// them after validating, `up` before it starts. Some look at the host (file modes, CPUs, the
// working directory); what they see is passed in (HostFacts) so that tests can say it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ResolvedConfig } from '../types';
import { prefixBits, prefixContains } from './addresses';
import type { ConfigIssue } from './errors';

/** The file a config was read from: its name and st_mode (null: stdin, a FIFO, a device, or built in code). */
export interface ConfigSource {
  name: string;
  mode: number | null;
}

/** What the warnings look at on the host; each defaults to this host's own. */
export interface HostFacts {
  /** The CPUs this process may run on (its affinity mask); null: unknown. */
  cpus?: readonly number[] | null;
  /** The directory a relative control socket path is resolved against. */
  cwd?: string;
  /** st_mode of a file named by the config, or null when it cannot be stat'ed. */
  modeOf?: (file: string) => number | null;
}

/** "0-3,8,10-11" (a kernel CPU list) → [0, 1, 2, 3, 8, 10, 11]; null when it is not one. */
export function parseCpuList(text: string): number[] | null {
  const cpus: number[] = [];
  for (const part of text.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) return null;
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from || to - from > 65536) return null;
    for (let c = from; c <= to; c++) cpus.push(c);
  }
  return cpus;
}

/** The CPUs this process may run on: Cpus_allowed_list of /proc/self/status (its affinity mask, cgroups' cpusets included). */
export function allowedCpus(): number[] | null {
  try {
    const m = /^Cpus_allowed_list:\s*(\S+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return parseCpuList(m[1]!);
  } catch {
    // not Linux's /proc: fall through
  }
  const n = os.cpus().length;
  return n > 0 ? Array.from({ length: n }, (_, i) => i) : null;
}

function statMode(file: string): number | null {
  try {
    return fs.statSync(file).mode;
  } catch {
    return null; // unreadable or missing: the config checks say so where it matters
  }
}

/** "0644" */
function octal(mode: number): string {
  return (mode & 0o777).toString(8).padStart(4, '0');
}

/** "0-3,8" */
function cpuListText(cpus: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < cpus.length; i++) {
    let j = i;
    while (j + 1 < cpus.length && cpus[j + 1] === cpus[j]! + 1) j++;
    parts.push(i === j ? String(cpus[i]) : `${cpus[i]}-${cpus[j]}`);
    i = j;
  }
  return parts.join(',');
}

/** The fields of `config` that hold a key themselves (not a file name). */
function inlineSecrets(config: ResolvedConfig): string[] {
  const fields: string[] = [];
  const topPsk = config.ike?.pskFile === undefined ? config.ike?.psk : undefined;
  if (topPsk !== undefined) fields.push('ike.psk');
  config.peers.forEach((p, i) => {
    if (p.sa) fields.push(`peers[${i}].sa`);
    if (p.ike?.psk !== undefined && p.ike.pskFile === undefined && p.ike.psk !== topPsk) fields.push(`peers[${i}].ike.psk`);
  });
  if (config.registry?.etcd.password) fields.push('registry.etcd.password');
  return fields;
}

/** The files `config` names that hold keys, by field: pre-shared keys and private keys. */
function keyFiles(config: ResolvedConfig): Array<{ path: string; file: string }> {
  const out: Array<{ path: string; file: string }> = [];
  const seen = new Set<string>();
  const add = (at: string, file: string | null | undefined) => {
    if (!file || seen.has(file)) return;
    seen.add(file);
    out.push({ path: at, file });
  };
  add('ike.pskFile', config.ike?.pskFile);
  add('ike.privateKey', config.ike?.privateKey);
  config.peers.forEach((p, i) => {
    add(`peers[${i}].ike.pskFile`, p.ike?.pskFile);
    add(`peers[${i}].ike.privateKey`, p.ike?.privateKey);
  });
  add('registry.etcd.tls.key', config.registry?.etcd.tls?.key);
  return out;
}

/**
 * The warnings for `config` read from `source` (when it came from a file). Each names the field
 * (or `(file)`) and says what to do. Nothing here throws.
 */
export function configWarnings(config: ResolvedConfig, source?: ConfigSource | null, host: HostFacts = {}): ConfigIssue[] {
  const warnings: ConfigIssue[] = [];
  // With user:, a reload re-reads the files as that user: its group may read them (0640).
  const tolerated = config.user !== undefined ? 0o040 : 0;
  const readableByOthers = (mode: number | null): mode is number => mode !== null && (mode & 0o077 & ~tolerated) !== 0;
  const tightMode = config.user !== undefined ? '640' : '600';

  // Keys that others can read, as wg-quick warns about its config file.
  const secrets = inlineSecrets(config);
  if (source && secrets.length > 0 && readableByOthers(source.mode)) {
    warnings.push({
      path: '(file)',
      message: `${source.name} holds keys (${secrets.join(', ')}) and group or others may read it (mode ${octal(source.mode)}); chmod ${tightMode} ${source.name}`,
    });
  }
  const modeOf = host.modeOf ?? statMode;
  for (const { path: at, file } of keyFiles(config)) {
    const mode = modeOf(file);
    if (readableByOthers(mode)) {
      warnings.push({ path: at, message: `${file} holds a key and group or others may read it (mode ${octal(mode)}); chmod ${tightMode} ${file}` });
    }
  }

  // CPUs the host lacks: pinning a worker there fails, and it runs unpinned.
  const cpus = host.cpus === undefined ? allowedCpus() : host.cpus;
  if (cpus && cpus.length > 0) {
    const allowed = new Set(cpus);
    config.cpuAffinity.forEach((cpu, i) => {
      if (!allowed.has(cpu)) {
        warnings.push({
          path: `cpuAffinity[${i}]`,
          message: `CPU ${cpu} is not one this process may run on (${cpuListText(cpus)}): a worker meant for it runs unpinned`,
        });
      }
    });
  }

  // allowedIps route nothing on an Ethernet device: it forwards by MAC.
  if (config.device.type !== 'tun') {
    config.peers.forEach((p, i) => {
      if (p.allowedIps.length > 0) {
        warnings.push({
          path: `peers[${i}].allowedIps`,
          message: `used only with device.type tun: a ${config.device.type} device forwards by MAC (macs, learning), so these prefixes route nothing`,
        });
      }
    });
  }

  // A kernel route (device.routes auto) for a prefix holding an underlay address could send the
  // tunnel's own packets into the tunnel.
  if (config.device.type === 'tun' && config.device.routes !== 'off') {
    const underlay = [
      { what: `underlay.local ${config.underlay.local}`, address: config.underlay.local },
      ...config.peers.map((p) => ({ what: `peer ${p.name}'s endpoint ${p.endpoint.address}`, address: p.endpoint.address })),
    ].map((u) => ({ ...u, bits: prefixBits(u.address) }));
    config.peers.forEach((p, i) => {
      p.allowedIps.forEach((cidr, j) => {
        const prefix = prefixBits(cidr);
        const held = underlay.filter((u) => prefixContains(prefix, u.bits));
        if (held.length === 0) return;
        warnings.push({
          path: `peers[${i}].allowedIps[${j}]`,
          message:
            `${cidr} holds ${held.map((u) => u.what).join(' and ')}: the kernel route device.routes installs for it sends traffic to ` +
            `${held.length === 1 ? 'that address' : 'those addresses'} into ${config.device.name} (tunnel packets among it: dropped as loop) ` +
            'unless the underlay has a more specific route there; narrow the prefix, or set device.routes: off and route by hand',
        });
      });
    });
  }

  // A relative socket path depends on the directory up runs in.
  if (!path.isAbsolute(config.control.socket)) {
    const cwd = host.cwd ?? process.cwd();
    warnings.push({
      path: 'control.socket',
      message: `${JSON.stringify(config.control.socket)} is relative: up puts it in the directory it runs in (${path.resolve(cwd, config.control.socket)} now), and overlayfwd -s must name it from there; give an absolute path`,
    });
  }
  return warnings;
}
