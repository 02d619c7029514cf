// Registry mode on etcd, as flannel keeps its subnet leases: a host claims a subnet of the
// network under an etcd lease it keeps alive, and learns every other host from one watch on the
// prefix. The registry is control plane only: when etcd is unreachable the overlay forwards on
// its last table, nothing is removed, and the host registers again once etcd answers.
//
// Stages of a host's life here:
//   1. open      connect; read PREFIX/config (the network), writing it first when this config
//                brings one and etcd holds none; refuse to join a network of another mode
//   2. claim     grant a lease; take the subnet remembered from the last run when it is free,
//                else a free one from a random start (create-if-absent transactions), or the
//                configured one
//   3. follow    read every subnet record, then watch from that revision; every change hands
//                the whole valid set to the overlay, which swaps its table without a lost packet
//   4. renew     keep the lease alive; when it is lost (an outage longer than the TTL), claim the
//                same subnet again under a new lease, with back-off
import { localIdentityText } from '../ike/setup';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { Etcd3, type IKeyValue, type IOptions, type Lease, type Watcher } from 'etcd3';
import { ConfigError } from '../config/errors';
import type { ResolvedConfig } from '../types';
import { readNetworkRecord, readNodeRecord, type NetworkRecord, type NodeRecord, type NodeRecordBody } from './records';
import {
  candidateOrder,
  contains,
  deviceAddress,
  formatNetwork,
  nthSubnet,
  parseIpv4Network,
  subnetCount,
  subnetKey,
  type Ipv4Network,
} from './subnets';

export interface RegistryEvents {
  nodeJoined: [node: NodeRecord];
  nodeLeft: [node: NodeRecord];
  nodeChanged: [node: NodeRecord, previous: NodeRecord];
  /** etcd stopped answering (the lease's keepalive or the watch failed); forwarding goes on. */
  registryDown: [error: Error];
  /** etcd answers again. */
  registryUp: [];
  /** A record that was not taken into the table, and why. */
  recordSkipped: [skipped: { key: string; reason: string }];
  /** Something an operator should see: a subnet conflict, a failed re-registration. */
  warning: [message: string];
}

export interface RegistryOptions {
  /** Where the claimed subnet is remembered between runs (default: OVERLAYFWD_STATE_DIR or /var/lib/overlayfwd). */
  stateDir?: string;
}

const RECLAIM_BACKOFF_MS = [500, 1000, 2000, 5000];

function stateDirDefault(): string {
  return process.env.OVERLAYFWD_STATE_DIR || '/var/lib/overlayfwd';
}

export function clientOptions(config: ResolvedConfig): IOptions {
  const etcd = config.registry!.etcd;
  const options: IOptions = { hosts: etcd.endpoints, dialTimeout: 3000 };
  if (etcd.tls) {
    options.credentials = {
      rootCertificate: fs.readFileSync(etcd.tls.ca),
      ...(etcd.tls.cert ? { certChain: fs.readFileSync(etcd.tls.cert) } : {}),
      ...(etcd.tls.key ? { privateKey: fs.readFileSync(etcd.tls.key) } : {}),
    };
  }
  if (etcd.username) options.auth = { username: etcd.username, password: etcd.password ?? '' };
  return options;
}

/** What every host of a network must agree on: the mode and the fields it puts on the wire. */
function encapFacts(config: ResolvedConfig): NetworkRecord['encap'] {
  return { type: config.encap.type, vni: config.encap.vni, port: config.encap.port, key: config.encap.key };
}

/** The network record a config brings for an empty registry (registry.network), or null. */
export function networkRecordOf(config: ResolvedConfig): NetworkRecord | null {
  const registry = config.registry;
  if (!registry?.network || registry.subnetLength === null) return null;
  const network = parseIpv4Network(registry.network)!;
  return {
    network: formatNetwork(network),
    subnetLength: registry.subnetLength,
    encap: encapFacts(config),
  };
}

// Every host of a network must speak the same encapsulation.
function checkAgreement(record: NetworkRecord, config: ResolvedConfig, prefix: string): void {
  const mine: Record<string, unknown> = encapFacts(config);
  const differ = (Object.keys(record.encap) as (keyof NetworkRecord['encap'])[]).filter(
    (k) => record.encap[k] !== undefined && record.encap[k] !== mine[k],
  );
  if (differ.length > 0) {
    const theirs = differ.map((k) => `${k} ${JSON.stringify(record.encap[k])}`).join(', ');
    const ours = differ.map((k) => `${k} ${JSON.stringify(mine[k])}`).join(', ');
    throw new ConfigError([{ path: 'encap', message: `the registry's network (${prefix}/config) runs ${theirs}; this config has ${ours}` }]);
  }
}

export class Registry extends EventEmitter<RegistryEvents> {
  readonly network: Ipv4Network;
  readonly subnetLength: number;
  /** This host's subnet, and the address its device takes in it (with the network's length). */
  subnet!: Ipv4Network;
  private readonly client: Etcd3;
  private readonly config: ResolvedConfig;
  private readonly prefix: string;
  private readonly stateFile: string;
  private lease: Lease | null = null;
  private watcher: Watcher | null = null;
  private mac: string | null = null;
  private readonly others = new Map<string, NodeRecord>();
  private readonly seen = new Map<string, number>();
  private onChange: ((nodes: NodeRecord[]) => void) | null = null;
  private down = false;
  private closed = false;
  private reclaimTimer: NodeJS.Timeout | null = null;

  /** Connects, reads (or writes) the network and claims this host's subnet. */
  static async open(config: ResolvedConfig, options: RegistryOptions = {}): Promise<Registry> {
    const client = new Etcd3(clientOptions(config));
    try {
      const network = await Registry.readNetwork(client, config);
      const registry = new Registry(client, config, network, path.join(options.stateDir ?? stateDirDefault(), `${config.name}.${config.node!.name}.subnet`));
      await registry.claim();
      return registry;
    } catch (err) {
      client.close();
      if (err instanceof ConfigError) throw err;
      // What gRPC says (a refused certificate, a wrong password, nobody listening), with where.
      const where = config.registry!.etcd.endpoints.join(', ');
      throw new Error(`registry: etcd at ${where}: ${(err as Error).message}`);
    }
  }

  private static async readNetwork(client: Etcd3, config: ResolvedConfig): Promise<{ record: NetworkRecord; network: Ipv4Network }> {
    const key = `${config.registry!.etcd.prefix}/config`;
    let bytes = await client.get(key).buffer();
    const ours = networkRecordOf(config);
    if (bytes === null && ours) {
      // The first host brings the network; a racing host's record wins if it came first.
      await client.if(key, 'Create', '==', 0).then(client.put(key).value(JSON.stringify(ours))).commit();
      bytes = await client.get(key).buffer();
    }
    if (bytes === null) {
      throw new ConfigError([{ path: 'registry', message: `etcd holds no network at ${key}: run overlayfwd registry init, or give registry.network and registry.subnetLength` }]);
    }
    const read = readNetworkRecord(bytes);
    if (!read.ok) throw new ConfigError([{ path: 'registry', message: `${key}: ${read.reason}` }]);
    checkAgreement(read.value.record, config, config.registry!.etcd.prefix);
    return read.value;
  }

  private constructor(client: Etcd3, config: ResolvedConfig, network: { record: NetworkRecord; network: Ipv4Network }, stateFile: string) {
    super();
    this.client = client;
    this.config = config;
    this.prefix = config.registry!.etcd.prefix;
    this.network = network.network;
    this.subnetLength = network.record.subnetLength;
    this.stateFile = stateFile;
  }

  /** The address this host's device takes: the first of its subnet, with the network's length. */
  get deviceAddress(): string {
    return deviceAddress(this.network, this.subnet);
  }

  get subnetText(): string {
    return formatNetwork(this.subnet);
  }

  /** When this host last saw each other host's record change (ms since the epoch), by key. */
  seenAt(key: string): number | undefined {
    return this.seen.get(key);
  }

  /**
   * The other hosts the registry holds (valid records only), oldest first: when two records
   * clash (the same name or endpoint), the host that registered first keeps its place, so a
   * newcomer can never push a working host out of the tables.
   */
  nodes(): NodeRecord[] {
    const age = (n: NodeRecord) => BigInt(n.createRevision || '0');
    return [...this.others.values()].sort((a, b) => (age(a) < age(b) ? -1 : age(a) > age(b) ? 1 : a.key.localeCompare(b.key)));
  }

  private subnetsKey(subnet?: Ipv4Network): string {
    return `${this.prefix}/subnets/${subnet ? subnetKey(subnet) : ''}`;
  }

  private body(): string {
    const body: NodeRecordBody = { name: this.config.node!.name, endpoint: this.config.node!.endpoint };
    if (this.mac) body.mac = this.mac;
    const ikeId = localIdentityText(this.config);
    if (ikeId) body.ikeId = ikeId;
    return JSON.stringify(body);
  }

  private remembered(): Ipv4Network | null {
    try {
      const subnet = parseIpv4Network(fs.readFileSync(this.stateFile, 'utf8').trim());
      return subnet && subnet.length === this.subnetLength && contains(this.network, subnet) ? subnet : null;
    } catch {
      return null;
    }
  }

  private remember(subnet: Ipv4Network): void {
    try {
      fs.mkdirSync(path.dirname(this.stateFile), { recursive: true });
      fs.writeFileSync(this.stateFile, `${formatNetwork(subnet)}\n`);
    } catch (err) {
      this.emit('warning', `could not remember the subnet in ${this.stateFile}: ${(err as Error).message}`);
    }
  }

  private async grantLease(): Promise<string> {
    const lease = this.client.lease(this.config.registry!.etcd.ttlSeconds, { autoKeepAlive: true });
    const id = await lease.grant();
    lease.on('lost', (err) => this.leaseLost(lease, err));
    lease.on('keepaliveSucceeded', () => this.markUp());
    lease.on('keepaliveFailed', () => this.markDown(new Error('the lease keepalive failed')));
    this.lease = lease;
    return id;
  }

  /**
   * Takes `subnet` under `lease`: created when absent, or taken over when it holds this host's
   * own record from an earlier run whose lease has not expired yet. False when another host has it.
   */
  private async take(subnet: Ipv4Network, lease: string): Promise<boolean> {
    const key = this.subnetsKey(subnet);
    const created = await this.client.if(key, 'Create', '==', 0).then(this.client.put(key).value(this.body()).lease(lease)).commit();
    if (created.succeeded) return true;
    const current = await this.client.get(key).buffer();
    if (current === null) return this.take(subnet, lease);
    const read = readNodeRecord(subnetKey(subnet), current, this.network, this.subnetLength, { lease: '', createRevision: '', modRevision: '' });
    if (!read.ok || read.value.name !== this.config.node!.name) return false;
    const swapped = await this.client.if(key, 'Value', '==', current).then(this.client.put(key).value(this.body()).lease(lease)).commit();
    return swapped.succeeded;
  }

  private async claim(): Promise<void> {
    const lease = await this.grantLease();
    const wanted = this.config.node!.subnet;
    if (wanted !== 'auto') {
      const subnet = parseIpv4Network(wanted);
      if (!subnet || subnet.length !== this.subnetLength || !contains(this.network, subnet)) {
        throw new ConfigError([{ path: 'node.subnet', message: `${wanted} is not a /${this.subnetLength} of the registry's network ${formatNetwork(this.network)}` }]);
      }
      if (!(await this.take(subnet, lease))) {
        throw new ConfigError([{ path: 'node.subnet', message: `${wanted} is held by another host in the registry` }]);
      }
      this.subnet = subnet;
      return;
    }
    const taken = new Set(
      (await this.client.getAll().prefix(this.subnetsKey()).keys()).map((k) => k.slice(this.subnetsKey().length)),
    );
    const remembered = this.remembered();
    const count = subnetCount(this.network, this.subnetLength);
    const order = candidateOrder(this.network, this.subnetLength).map((i) => nthSubnet(this.network, this.subnetLength, i));
    const candidates = remembered ? [remembered, ...order.filter((s) => s.base !== remembered.base)] : order;
    for (const subnet of candidates) {
      const mine = remembered !== null && subnet.base === remembered.base;
      if (taken.has(subnetKey(subnet)) && !mine) continue;
      if (await this.take(subnet, lease)) {
        this.subnet = subnet;
        this.remember(subnet);
        return;
      }
    }
    throw new ConfigError([
      { path: 'node.subnet', message: `no free /${this.subnetLength} left in ${formatNetwork(this.network)} (all ${count} are leased)` },
    ]);
  }

  /** Reads every host and follows changes; `onChange` gets the whole valid set after each. */
  async follow(onChange: (nodes: NodeRecord[]) => void): Promise<void> {
    this.onChange = onChange;
    const response = await this.client.getAll().prefix(this.subnetsKey()).exec();
    for (const kv of response.kvs) this.apply('put', kv, false);
    this.publish();
    const watcher = await this.client.watch().prefix(this.subnetsKey()).startRevision(String(BigInt(response.header.revision) + 1n)).create();
    watcher.on('put', (kv) => this.apply('put', kv, true));
    watcher.on('delete', (kv) => this.apply('delete', kv, true));
    watcher.on('disconnected', (err) => this.markDown(err));
    watcher.on('connected', () => this.markUp());
    watcher.on('error', (err) => this.markDown(err));
    this.watcher = watcher;
  }

  /** Adds this host's device MAC to its record (TAP: the other hosts' static FDB entry). */
  async setMac(mac: string): Promise<void> {
    this.mac = mac;
    if (this.lease && !this.closed) await this.client.put(this.subnetsKey(this.subnet)).value(this.body()).lease(await this.lease.grant());
  }

  private apply(kind: 'put' | 'delete', kv: IKeyValue, publish: boolean): void {
    const key = kv.key.toString('utf8').slice(this.subnetsKey().length);
    if (this.subnet && key === subnetKey(this.subnet)) {
      if (kind === 'put') {
        const read = readNodeRecord(key, kv.value, this.network, this.subnetLength, { lease: '', createRevision: '', modRevision: '' });
        if (read.ok && read.value.name !== this.config.node!.name) {
          this.emit('warning', `subnet conflict: ${read.value.name} (${read.value.endpoint}) wrote this host's subnet ${key}; it is not shared`);
        }
      }
      return;
    }
    const previous = this.others.get(key);
    if (kind === 'delete') {
      if (!previous) return;
      this.others.delete(key);
      this.seen.delete(key);
      this.emit('nodeLeft', previous);
    } else {
      const read = readNodeRecord(key, kv.value, this.network, this.subnetLength, { lease: String(kv.lease), createRevision: String(kv.create_revision), modRevision: String(kv.mod_revision) });
      if (!read.ok) {
        this.emit('recordSkipped', { key, reason: read.reason });
        // A record that turned bad is no longer a host we can reach.
        if (previous) {
          this.others.delete(key);
          this.emit('nodeLeft', previous);
        } else {
          return;
        }
      } else {
        this.others.set(key, read.value);
        this.seen.set(key, Date.now());
        if (!previous) this.emit('nodeJoined', read.value);
        else if (previous.endpoint !== read.value.endpoint || previous.mac !== read.value.mac || previous.name !== read.value.name || previous.ikeId !== read.value.ikeId) {
          this.emit('nodeChanged', read.value, previous);
        }
      }
    }
    if (publish) this.publish();
  }

  private publish(): void {
    this.onChange?.(this.nodes());
  }

  private markDown(err: Error): void {
    if (this.down || this.closed) return;
    this.down = true;
    this.emit('registryDown', err);
  }

  private markUp(): void {
    if (!this.down || this.closed) return;
    this.down = false;
    this.emit('registryUp');
  }

  // The lease expired (etcd was out of reach longer than the TTL, or it was revoked): every
  // other host has removed this one by now. Register again under a new lease, same subnet.
  private leaseLost(lease: Lease, err: Error): void {
    if (this.closed || this.lease !== lease) return;
    this.lease = null;
    this.markDown(err);
    this.reclaim(0);
  }

  private reclaim(attempt: number): void {
    if (this.closed) return;
    const delay = RECLAIM_BACKOFF_MS[Math.min(attempt, RECLAIM_BACKOFF_MS.length - 1)]!;
    this.reclaimTimer = setTimeout(() => {
      this.reclaimTimer = null;
      void (async () => {
        try {
          const id = await this.grantLease();
          if (await this.take(this.subnet, id)) {
            this.markUp();
            return;
          }
          this.emit('warning', `subnet conflict: ${subnetKey(this.subnet)} was taken by another host while this one was away; retrying`);
        } catch (e) {
          this.markDown(e as Error);
        }
        this.lease?.release();
        this.lease = null;
        this.reclaim(attempt + 1);
      })();
    }, delay);
    this.reclaimTimer.unref();
  }

  /** Leaves: revokes the lease (the other hosts drop this one at once) and disconnects. */
  async close(options: { revoke?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.reclaimTimer) clearTimeout(this.reclaimTimer);
    try {
      await this.watcher?.cancel();
    } catch {
      // etcd unreachable: nothing to cancel
    }
    const lease = this.lease;
    this.lease = null;
    if (lease) {
      if (options.revoke === false) lease.release();
      else await lease.revoke().catch(() => lease.release());
    }
    this.client.close();
  }
}

