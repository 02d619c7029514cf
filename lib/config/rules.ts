// Stage 2 of validation: rules across fields and sections, once each field is valid on its own.
import type { DeviceType, EncapType, EspCipher, PeerSecurityAssociations, ResolvedPeer } from '../types';
import { formatEndpoint, isMulticast, isUnspecified, networkOf, prefixBits, prefixContains } from './addresses';
import { defaultWorkers } from './defaults';
import type { ConfigIssue } from './errors';
import { DEVICE_LAYERS, ENCAP_TYPES, MODES, usesUdp, type DeviceLayer } from './modes';
import { checkRegistry } from './registry';
import { resolveIke, type IkeParsed, type ResolvedIke } from './ike';
import { cipherKeyOf, formatSpi, resolveSa, saPath } from './sa';
import type { PeerParsed, RootParsed } from './schema';

/** What a peer is checked against: the rest of the config, as far as it is known (valid). */
export interface PeerContext {
  /** Default endpoint port (encap.port); 0 for the IP-protocol modes. */
  port: number;
  /** The mode (a port on the endpoint of an IP-protocol mode is an error); undefined when unknown. */
  encapType?: EncapType;
  /** esp: the cipher (SA keys are checked against its key length); undefined when unknown. */
  cipher?: EspCipher;
  /** esp: encap.udp (false: IP protocol 50, endpoints without a port). */
  udp?: boolean;
  /** tun routes by allowedIps; tap forwards by MAC. */
  deviceType?: DeviceType;
  /** underlay.local, canonical; omitted when unknown (invalid). */
  local?: { address: string; family: 4 | 6 };
  deviceMac?: string | null;
  /** esp: the top-level ike (every peer's defaults). */
  ikeDefaults?: IkeParsed;
  /** device.addresses (CIDR): an endpoint inside one of them would be routed into the overlay itself. */
  deviceAddresses?: readonly string[];
}

/** The minimum MTU of a link that carries IPv6 (RFC 8200 §5): the kernel refuses IPv6 below it. */
export const IPV6_MIN_MTU = 1280;

/**
 * Why an underlay address inside the overlay's own prefix is an error, not a warning: the
 * device's connected route then claims it too, and whether the kernel sends the encapsulated
 * packets to the underlay or back into the device depends on prefix lengths and the order the
 * routes came in. When it picks the device, every tunnel packet loops (dropped as `loop`) and
 * the underlay is blackholed without a word. No working overlay needs the two to overlap.
 */
const OVERLAP = 'the overlay device would have a route to the underlay address, and the tunnel\'s own packets could be sent into the tunnel (a loop that blackholes the underlay); overlay and underlay addresses must not overlap';

/** The first of `cidrs` (device.addresses) that holds `address`, with its index. */
export function deviceAddressHolding(cidrs: readonly string[], address: string): { cidr: string; index: number } | null {
  const inner = prefixBits(address);
  const index = cidrs.findIndex((c) => prefixContains(prefixBits(c), inner));
  return index < 0 ? null : { cidr: cidrs[index]!, index };
}

/** How a mode without a port is described in messages. */
function ipProtocolName(encap: { type: EncapType; udp?: boolean | undefined }): string {
  return encap.type === 'esp' ? 'esp with udp: false has no UDP port (IP protocol 50)' : `${encap.type} has no UDP port (an IP protocol)`;
}

/** One peer against `ctx`, its defaults filled in (the endpoint port) and its SA keys checked. */
export function resolvePeer(p: PeerParsed, ctx: PeerContext, at: string, issues: ConfigIssue[]): ResolvedPeer {
  const ep = p.endpoint;
  if (ctx.local) {
    if (ep.family !== ctx.local.family) {
      issues.push({
        path: `${at}.endpoint`,
        message: `${ep.address} is IPv${ep.family} but underlay.local ${ctx.local.address} is IPv${ctx.local.family}`,
      });
    } else if (ep.address === ctx.local.address) {
      issues.push({ path: `${at}.endpoint`, message: `${ep.address} is underlay.local itself` });
    }
  }
  if (isUnspecified(ep.address, ep.family) || isMulticast(ep.address, ep.family)) {
    issues.push({ path: `${at}.endpoint`, message: `${ep.address} is not a unicast address` });
  }
  const inside = ctx.deviceAddresses ? deviceAddressHolding(ctx.deviceAddresses, ep.address) : null;
  if (inside) {
    issues.push({ path: `${at}.endpoint`, message: `${ep.address} is inside device.addresses[${inside.index}] ${inside.cidr}: ${OVERLAP}` });
  }
  if (ctx.encapType && !usesUdp({ type: ctx.encapType, udp: ctx.udp }) && ep.port !== undefined) {
    issues.push({ path: `${at}.endpoint`, message: `${ipProtocolName({ type: ctx.encapType, udp: ctx.udp })}; give the address alone` });
  }
  let sa: PeerSecurityAssociations | undefined;
  let ike: ResolvedIke | undefined;
  // A peer's own ike wins over the top-level defaults; manual SAs opt a peer out of IKE.
  const ikeDefaults = p.sa === undefined ? ctx.ikeDefaults : undefined;
  if (ctx.encapType === 'esp' && p.sa === undefined && p.ike === undefined && ikeDefaults === undefined) {
    issues.push({
      path: `${at}.sa`,
      message: 'required for esp: { out: { spi, key }, in: { spi, key } } (the SA we send with, and the one the peer sends with), unless ike negotiates them',
    });
  } else if (ctx.encapType !== undefined && ctx.encapType !== 'esp' && (p.sa !== undefined || p.ike !== undefined)) {
    const field = p.sa !== undefined ? 'sa' : 'ike';
    issues.push({ path: `${at}.${field}`, message: `used only with encap.type esp (${ctx.encapType} is not encrypted)` });
  } else if (p.sa !== undefined && p.ike !== undefined) {
    issues.push({ path: `${at}.ike`, message: 'give sa (manual keys) or ike (negotiated), not both' });
  } else if (p.sa !== undefined) {
    sa = resolveSa(p.sa, ctx.cipher, at, issues);
  } else if (ctx.encapType === 'esp') {
    ike = resolveIke(ikeDefaults, p.ike, at, issues);
  }
  if (ctx.deviceType === 'tun' && p.macs.length > 0) {
    issues.push({ path: `${at}.macs`, message: 'used only with device.type tap (a tun device routes by allowedIps)' });
  }
  for (const [field, values] of [
    ['allowedIps', p.allowedIps.map((c) => networkOf(c.cidr))],
    ['macs', p.macs],
  ] as const) {
    // A map, not indexOf: a peer may hold tens of thousands of prefixes.
    const firstIndex = new Map<string, number>();
    values.forEach((v, i) => {
      const first = firstIndex.get(v);
      if (first === undefined) firstIndex.set(v, i);
      else issues.push({ path: `${at}.${field}[${i}]`, message: `${v} is listed twice (also ${field}[${first}])` });
    });
  }
  p.macs.forEach((m, i) => {
    if (ctx.deviceMac && m === ctx.deviceMac) {
      issues.push({ path: `${at}.macs[${i}]`, message: `${m} is the device's own MAC (device.mac)` });
    }
  });
  return {
    name: p.name,
    endpoint: { address: ep.address, port: ep.port ?? ctx.port },
    allowedIps: p.allowedIps.map((c) => c.cidr),
    macs: [...p.macs],
    ...(sa ? { sa } : {}),
    ...(ike ? { ike } : {}),
  };
}

export interface PlacedPeer {
  peer: ResolvedPeer;
  /** Path of the entry, e.g. `peers[2]`, or a description for an existing peer. */
  at: string;
}

const placedNetworks = new WeakMap<PlacedPeer, string[]>();

/** The networks of a peer's allowedIps, computed once per placed peer. */
function networksOf(p: PlacedPeer): string[] {
  let nets = placedNetworks.get(p);
  if (!nets) {
    nets = p.peer.allowedIps.map(networkOf);
    placedNetworks.set(p, nets);
  }
  return nets;
}

/** Uniqueness of names, endpoints, MACs and routes of `added` against `existing` and each other. */
export function checkUnique(existing: PlacedPeer[], added: PlacedPeer[], issues: ConfigIssue[]): void {
  const names = new Map<string, PlacedPeer>();
  const endpoints = new Map<string, PlacedPeer>();
  const macs = new Map<string, PlacedPeer>();
  const routes = new Map<string, PlacedPeer>();
  // ESP: inbound SPIs pick the SA (and so the peer) of a received packet; a cipher key used by
  // two SAs would repeat nonces (both count sequence numbers, the IVs, from 1).
  const inboundSpis = new Map<number, PlacedPeer>();
  const keys = new Map<string, { p: PlacedPeer; path: string }>();
  const describe = (p: PlacedPeer) => `peer "${p.peer.name}"${p.at ? ` (${p.at})` : ''}`;
  const saEntries = (p: PlacedPeer): Array<{ sa: { spi: number; key: string }; path: string; inbound: boolean }> => {
    const sa = p.peer.sa;
    if (!sa) return [];
    const prefix = p.at ? `${p.at}.sa` : `peer "${p.peer.name}" sa`;
    return [
      { sa: sa.out, path: saPath(prefix, sa, 'out'), inbound: false },
      ...sa.in.map((x, i) => ({ sa: x, path: saPath(prefix, sa, i), inbound: true })),
    ];
  };
  const rememberSa = (p: PlacedPeer, e: ReturnType<typeof saEntries>[number]) => {
    if (e.inbound && !inboundSpis.has(e.sa.spi)) inboundSpis.set(e.sa.spi, p);
    if (!keys.has(cipherKeyOf(e.sa.key))) keys.set(cipherKeyOf(e.sa.key), { p, path: e.path });
  };
  const remember = (p: PlacedPeer) => {
    if (!names.has(p.peer.name)) names.set(p.peer.name, p);
    const ep = formatEndpoint(p.peer.endpoint);
    if (!endpoints.has(ep)) endpoints.set(ep, p);
    for (const m of p.peer.macs) if (!macs.has(m)) macs.set(m, p);
    for (const net of networksOf(p)) if (!routes.has(net)) routes.set(net, p);
  };
  existing.forEach((p) => {
    remember(p);
    for (const e of saEntries(p)) rememberSa(p, e);
  });
  for (const p of added) {
    const sameName = names.get(p.peer.name);
    if (sameName) {
      const where = sameName.at ? `also ${sameName.at}` : 'a peer of that name exists';
      issues.push({ path: `${p.at}.name`, message: `duplicate peer name "${p.peer.name}" (${where})` });
    }
    const ep = formatEndpoint(p.peer.endpoint);
    const sameEp = endpoints.get(ep);
    if (sameEp) issues.push({ path: `${p.at}.endpoint`, message: `${ep} is already the endpoint of ${describe(sameEp)}` });
    p.peer.macs.forEach((m, i) => {
      const owner = macs.get(m);
      if (owner && owner !== p) issues.push({ path: `${p.at}.macs[${i}]`, message: `${m} is already assigned to ${describe(owner)}` });
    });
    networksOf(p).forEach((net, i) => {
      const owner = routes.get(net);
      if (owner && owner !== p) issues.push({ path: `${p.at}.allowedIps[${i}]`, message: `${net} is already routed to ${describe(owner)}` });
    });
    for (const e of saEntries(p)) {
      const spiOwner = e.inbound ? inboundSpis.get(e.sa.spi) : undefined;
      if (spiOwner && spiOwner !== p) {
        issues.push({
          path: `${e.path}.spi`,
          message: `SPI ${formatSpi(e.sa.spi)} is already an inbound SPI of ${describe(spiOwner)} (inbound SPIs must be unique: the SPI tells whose packet it is)`,
        });
      }
      const keyOwner = keys.get(cipherKeyOf(e.sa.key));
      if (keyOwner) {
        issues.push({
          path: `${e.path}.key`,
          message: `the same key as ${keyOwner.path}.key: every SA needs a key of its own (a shared key would repeat nonces)`,
        });
      }
      rememberSa(p, e);
    }
    remember(p);
  }
}

const LAYER_TEXT: Record<DeviceLayer, string> = { ethernet: 'Ethernet frames', ip: 'IP packets' };
const DEVICE_FOR_LAYER: Record<DeviceLayer, DeviceType> = { ethernet: 'tap', ip: 'tun' };

/** Rules across the sections of a config whose fields are each valid (the number of peers is checked before them, in resolve.ts). */
export function checkConfig(root: RootParsed, issues: ConfigIssue[]): void {
  // What the device carries must be what the encapsulation carries (a packet device: below).
  const mode = MODES[root.encap.type];
  if (root.device.type !== 'packet' && !mode.carries.includes(DEVICE_LAYERS[root.device.type])) {
    const carried = mode.carries[0]!;
    issues.push({ path: 'encap.type', message: `${mode.name} carries ${LAYER_TEXT[carried]}: it needs device.type ${DEVICE_FOR_LAYER[carried]}` });
  }
  checkPacketDevice(root, issues);
  checkRegistry(root, issues);
  if (root.group !== undefined && root.user === undefined) {
    issues.push({ path: 'group', message: 'needs user: the process switches to the group together with a user (to run as a group of your own, name the user too)' });
  }
  if (root.user === 0 || root.user === 'root') {
    issues.push({ path: 'user', message: 'is root: leave user out to keep running as the user that started overlayfwd' });
  }
  if (root.esp !== undefined && root.encap.type !== 'esp') {
    issues.push({ path: 'esp', message: `used only with encap.type esp (this config runs ${root.encap.type})` });
  }
  // RFC 2890 receivers drop a packet older than the last one seen: every packet of the tunnel must
  // leave in sequence order, which several workers sending at once cannot promise.
  if (root.encap.sequence === true && (root.workers ?? defaultWorkers()) > 1) {
    issues.push({ path: 'encap.sequence', message: 'needs workers: 1 (several workers would send sequence numbers out of order)' });
  }
  if (root.device.type === 'tun' && root.device.mac !== undefined) {
    issues.push({ path: 'device.mac', message: 'a tun device has no MAC address' });
  }
  if (root.device.type !== 'tun') {
    for (const field of ['routes', 'routeTable', 'routeMetric'] as const) {
      if (root.device[field] !== undefined) {
        issues.push({ path: `device.${field}`, message: `used only with device.type tun (kernel routes follow the peers' allowedIps; a ${root.device.type} device forwards by MAC)` });
      }
    }
  }
  const addresses = root.device.addresses.map((a) => a.cidr);
  addresses.forEach((a, i) => {
    const first = addresses.indexOf(a);
    if (first !== i) issues.push({ path: `device.addresses[${i}]`, message: `${a} is listed twice (also device.addresses[${first}])` });
  });
  const local = root.underlay.local.address;
  const holding = deviceAddressHolding(addresses, local);
  if (holding) issues.push({ path: `device.addresses[${holding.index}]`, message: `${holding.cidr} holds underlay.local ${local}: ${OVERLAP}` });
  const mtu = root.device.mtu;
  if (mtu !== undefined && mtu < IPV6_MIN_MTU) {
    root.device.addresses.forEach((a, i) => {
      if (a.family === 6) {
        issues.push({ path: `device.addresses[${i}]`, message: `${a.cidr} is IPv6, which needs an MTU of at least ${IPV6_MIN_MTU} (RFC 8200), and device.mtu is ${mtu}: raise device.mtu or leave the IPv6 address out` });
      }
    });
  }
}

/** The modes a packet device can run: those that carry Ethernet frames, but esp (not supported there yet). */
const PACKET_DEVICE_MODES = ENCAP_TYPES.filter((t) => MODES[t].carries.includes('ethernet') && t !== 'esp');

/** "a, b or c" */
function orList(items: readonly string[]): string {
  return items.length < 2 ? items.join('') : `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`;
}

/**
 * device.type packet attaches an existing interface as it is: it needs device.interface, and
 * nothing that would change the interface (name, mtu, addresses, mac) may be given; it bridges
 * Ethernet frames, so the mode must carry them. device.interface means nothing to tap and tun.
 */
function checkPacketDevice(root: RootParsed, issues: ConfigIssue[]): void {
  const device = root.device;
  if (device.type !== 'packet') {
    if (device.interface !== undefined) {
      issues.push({ path: 'device.interface', message: `used only with device.type packet (a ${device.type} device is created by overlayfwd)` });
    }
    return;
  }
  if (device.interface === undefined) {
    issues.push({ path: 'device.interface', message: 'required for device.type packet (the existing interface to attach, e.g. eth1)' });
  }
  const untouched = 'overlayfwd attaches the interface as it is and never changes it';
  // The resolved config names the device after the interface: that much is allowed back in.
  if (device.name !== undefined && device.name !== device.interface) {
    issues.push({ path: 'device.name', message: `not used by device.type packet: the device is device.interface itself (${untouched})` });
  }
  if (device.mtu !== undefined) {
    issues.push({ path: 'device.mtu', message: `not used by device.type packet: the interface keeps its own MTU (${untouched})` });
  }
  if (device.addresses.length > 0) {
    issues.push({ path: 'device.addresses', message: `not used by device.type packet: no addresses are assigned (${untouched})` });
  }
  if (device.mac !== undefined) {
    issues.push({ path: 'device.mac', message: `not used by device.type packet: the interface keeps its own MAC (${untouched})` });
  }
  if (!MODES[root.encap.type].carries.includes('ethernet')) {
    issues.push({
      path: 'encap.type',
      message: `${root.encap.type} carries IP packets: device.type packet bridges Ethernet frames (use ${orList(PACKET_DEVICE_MODES)})`,
    });
  }
  if (root.encap.type === 'esp') {
    issues.push({ path: 'encap.type', message: 'esp on device.type packet is not supported yet (use device.type tap or tun)' });
  }
}
