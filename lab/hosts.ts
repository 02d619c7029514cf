// The lab's hosts and their underlay links, and the address plan.
//
// Underlay links get 198.18.N.0/24 (N = link index in the lab), overlay addresses are
// 198.19.0.0/16 (see overlayAddress()). Both ranges are the RFC 2544 benchmarking range;
// interfaces live only inside the lab's namespaces, so traffic never leaves them.

/** Longest Linux interface name (IFNAMSIZ − 1). */
export const MAX_IFNAME = 15;

export const UNDERLAY_NET = '198.18';
export const OVERLAY_NET = '198.19';

/** Overlay address number `i` (1..65534) in 198.19.0.0/16, e.g. overlayAddress(1) = '198.19.0.1'. */
export function overlayAddress(i: number): string {
  if (!Number.isInteger(i) || i < 1 || i > 65534) throw new RangeError(`overlay address index out of range: ${i}`);
  return `${OVERLAY_NET}.${i >> 8}.${i & 0xff}`;
}

export interface HostLink {
  /** Interface name inside the host's namespace. */
  dev: string;
  /** IPv4 address without prefix length. */
  address: string;
  prefixLength: number;
  /** Label of the host (or 'switch') at the other end. */
  peer: string;
}

export interface Host {
  /** Short label given to addHost(), e.g. 'a'. */
  readonly label: string;
  /** Namespace name (/run/netns/NAME): the `netns` of an overlayfwd config. */
  readonly ns: string;
  /** Underlay interfaces in the order they were made. */
  readonly links: HostLink[];
  /** Address of the first underlay link ('' before there is one). */
  readonly underlay: string;
  /** Device of the first underlay link ('' before there is one). */
  readonly underlayDev: string;
}

/** The lab's own Host: Lab appends to `links` as it connects the host. */
export class HostImpl implements Host {
  readonly links: HostLink[] = [];
  constructor(
    readonly label: string,
    readonly ns: string,
  ) {}
  get underlay(): string {
    return this.links[0]?.address ?? '';
  }
  get underlayDev(): string {
    return this.links[0]?.dev ?? '';
  }
}

export interface LinkOptions {
  mtu?: number;
  /** Addresses (without prefix) for the two ends; default 198.18.N.1 and 198.18.N.2. */
  addresses?: [string, string];
  prefixLength?: number;
}

/** The first free `${stem}N` interface name of `host`. */
export function nextDev(host: Host, stem: string): string {
  let i = 0;
  while (host.links.some((l) => l.dev === `${stem}${i}`)) i++;
  const dev = `${stem}${i}`;
  if (dev.length > MAX_IFNAME) throw new Error(`interface name too long: ${dev}`);
  return dev;
}
