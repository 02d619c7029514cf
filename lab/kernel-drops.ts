// Packets the kernel itself dropped inside a test's namespaces: UDP receive errors (a socket's
// buffer full, a bad checksum) and every link's rx/tx drops (a TUN/TAP queue its reader did not
// drain in time, a veth backlog). On a busy machine a reader that gets no CPU for a few
// milliseconds loses datagrams there, whatever the forwarder does; a test that counts lost
// datagrams (or a bench that counts them) compares them with these, and reports where they went.
import type { Host } from './hosts';
import type { Lab } from './lab';
import { snmpCounters } from './probes';

export interface KernelDrops {
  /** Udp InErrors, per host label. */
  udpInErrors: Record<string, number>;
  /** rx + tx dropped, per "host/link". */
  links: Record<string, number>;
}

interface LinkJson {
  ifname: string;
  stats64?: { rx?: { dropped?: number }; tx?: { dropped?: number } };
}

export async function kernelDrops(lab: Lab, hosts: readonly Host[]): Promise<KernelDrops> {
  const out: KernelDrops = { udpInErrors: {}, links: {} };
  for (const host of hosts) {
    out.udpInErrors[host.label] = (await snmpCounters(lab, host, 'Udp'))['InErrors'] ?? 0;
    const { stdout } = await lab.exec(host, 'ip', ['-s', '-j', 'link', 'show']);
    for (const l of JSON.parse(stdout) as LinkJson[]) {
      out.links[`${host.label}/${l.ifname}`] = (l.stats64?.rx?.dropped ?? 0) + (l.stats64?.tx?.dropped ?? 0);
    }
  }
  return out;
}

/** after − before: the drops in between, by place (places with none left out), and their sum. */
export function kernelDropsBetween(before: KernelDrops, after: KernelDrops): { total: number; where: Record<string, number> } {
  const where: Record<string, number> = {};
  for (const [k, v] of Object.entries(after.udpInErrors)) {
    const d = v - (before.udpInErrors[k] ?? 0);
    if (d > 0) where[`${k} udp InErrors`] = d;
  }
  for (const [k, v] of Object.entries(after.links)) {
    const d = v - (before.links[k] ?? 0);
    if (d > 0) where[k] = d;
  }
  return { total: Object.values(where).reduce((a, b) => a + b, 0), where };
}
