// IPv4 subnet arithmetic for the registry's leases: the subnets of a network, how a subnet is
// written in an etcd key (flannel's form, 10.100.7.0-24), and the addresses a host takes in it.
import { isIPv4 } from 'node:net';

export interface Ipv4Network {
  /** The network address as an unsigned 32-bit number. */
  base: number;
  length: number;
}

function toNumber(address: string): number {
  return address.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
}

function toAddress(value: number): string {
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 255).join('.');
}

function mask(length: number): number {
  return length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
}

/** "10.100.0.0/16" → { base, length }, host bits cleared; null if it is not an IPv4 CIDR. */
export function parseIpv4Network(cidr: string): Ipv4Network | null {
  const [address, lengthText, extra] = cidr.split('/');
  if (extra !== undefined || address === undefined || !isIPv4(address) || !/^\d{1,2}$/.test(lengthText ?? '')) return null;
  const length = Number(lengthText);
  if (length > 32) return null;
  return { base: (toNumber(address) & mask(length)) >>> 0, length };
}

export function formatNetwork(network: Ipv4Network): string {
  return `${toAddress(network.base)}/${network.length}`;
}

/** The key form of a subnet: 10.100.7.0/24 → "10.100.7.0-24". */
export function subnetKey(subnet: Ipv4Network): string {
  return `${toAddress(subnet.base)}-${subnet.length}`;
}

/** The subnet a key names, or null. */
export function subnetFromKey(key: string): Ipv4Network | null {
  const dash = key.lastIndexOf('-');
  if (dash < 0) return null;
  const subnet = parseIpv4Network(`${key.slice(0, dash)}/${key.slice(dash + 1)}`);
  return subnet && subnetKey(subnet) === key ? subnet : null;
}

/** Whether `inner` lies inside `outer` (equal counts). */
export function contains(outer: Ipv4Network, inner: Ipv4Network): boolean {
  return inner.length >= outer.length && ((inner.base & mask(outer.length)) >>> 0) === outer.base;
}

export function overlaps(a: Ipv4Network, b: Ipv4Network): boolean {
  return contains(a, b) || contains(b, a);
}

/** How many subnets of `length` the network holds. */
export function subnetCount(network: Ipv4Network, length: number): number {
  return 2 ** (length - network.length);
}

/** The i-th subnet of `length` in the network. */
export function nthSubnet(network: Ipv4Network, length: number, index: number): Ipv4Network {
  return { base: (network.base + index * 2 ** (32 - length)) >>> 0, length };
}

/**
 * The order in which a host tries the free subnets: a random start, then onwards, so that hosts
 * starting at the same moment mostly try different ones (each try is a create-if-absent).
 */
export function candidateOrder(network: Ipv4Network, length: number, random: () => number = Math.random): number[] {
  const count = subnetCount(network, length);
  const start = Math.floor(random() * count);
  return Array.from({ length: count }, (_, i) => (start + i) % count);
}

/** The host's own address in its subnet (the first one), with the network's length: the device address. */
export function deviceAddress(network: Ipv4Network, subnet: Ipv4Network): string {
  return `${toAddress(subnet.base + 1)}/${network.length}`;
}
