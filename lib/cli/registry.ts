// overlayfwd registry init|show (the network's settings and hosts in etcd) and overlayfwd nodes
// (what a running instance knows of the registry's hosts).
import { Etcd3 } from 'etcd3';
import { ConfigError } from '../config';
import { sourceName } from '../config/load';
import { controlRequest } from '../control';
import { clientOptions, networkRecordOf } from '../registry/registry';
import { readNetworkRecord, readNodeRecord } from '../registry/records';
import { formatNetwork, parseIpv4Network } from '../registry/subnets';
import type { ResolvedConfig } from '../types';
import { EXIT_FAILURE, EXIT_OK, readConfig, reportError, resolveSocket, table, UsageError, type InstanceOptions } from './common';

async function registryConfig(file: string): Promise<ResolvedConfig> {
  const config = await readConfig(file);
  if (!config.registry) throw new ConfigError([{ path: 'registry', message: `${sourceName(file)} has no registry: section` }]);
  return config;
}

export interface RegistryInitOptions {
  config: string;
  network?: string;
  subnetLength?: number;
  force?: boolean;
}

/** Writes the network's settings (network, subnet length, encapsulation) under the prefix. */
export async function runRegistryInit(opts: RegistryInitOptions): Promise<number> {
  let client: Etcd3 | undefined;
  try {
    const config = await registryConfig(opts.config);
    const network = opts.network ?? config.registry!.network;
    const subnetLength = opts.subnetLength ?? config.registry!.subnetLength;
    if (!network || subnetLength === null || subnetLength === undefined) {
      throw new UsageError('registry init needs the network: --network CIDR and --subnet-length N, or registry.network and registry.subnetLength in the config');
    }
    const parsed = parseIpv4Network(network);
    if (!parsed || subnetLength < parsed.length || subnetLength > 30) {
      throw new UsageError(`--network must be an IPv4 CIDR and --subnet-length from its length to 30 (got ${network}, ${subnetLength})`);
    }
    const record = networkRecordOf({ ...config, registry: { ...config.registry!, network: formatNetwork(parsed), subnetLength } })!;
    client = new Etcd3(clientOptions(config));
    const key = `${config.registry!.etcd.prefix}/config`;
    const value = JSON.stringify(record);
    if (opts.force) {
      await client.put(key).value(value);
    } else {
      const created = await client.if(key, 'Create', '==', 0).then(client.put(key).value(value)).commit();
      if (!created.succeeded) {
        process.stderr.write(`overlayfwd: ${key} already holds ${await client.get(key).string()} (--force replaces it)\n`);
        return EXIT_FAILURE;
      }
    }
    process.stdout.write(`${key}: ${value}\n`);
    return EXIT_OK;
  } catch (err) {
    return reportError(err, `invalid config ${sourceName(opts.config)}`);
  } finally {
    client?.close();
  }
}

/** Prints what etcd holds under the prefix: the network and every host record (refused ones with why). */
export async function runRegistryShow(opts: { config: string; json?: boolean }): Promise<number> {
  let client: Etcd3 | undefined;
  try {
    const config = await registryConfig(opts.config);
    const prefix = config.registry!.etcd.prefix;
    client = new Etcd3(clientOptions(config));
    const networkBytes = await client.get(`${prefix}/config`).buffer();
    const network = networkBytes ? readNetworkRecord(networkBytes) : null;
    const subnets = await client.getAll().prefix(`${prefix}/subnets/`).exec();
    const hosts = subnets.kvs.map((kv) => {
      const key = kv.key.toString('utf8').slice(`${prefix}/subnets/`.length);
      if (!network?.ok) return { key, error: 'no valid network record' };
      const read = readNodeRecord(key, kv.value, network.value.network, network.value.record.subnetLength, {
        lease: String(kv.lease),
        createRevision: String(kv.create_revision),
        modRevision: String(kv.mod_revision),
      });
      return read.ok ? { key, name: read.value.name, subnet: read.value.subnet, endpoint: read.value.endpoint, mac: read.value.mac ?? null } : { key, error: read.reason };
    });
    const shown = { prefix, network: network === null ? null : network.ok ? network.value.record : { error: network.reason }, hosts };
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(shown, null, 2)}\n`);
      return EXIT_OK;
    }
    process.stdout.write(`${prefix}: ${network === null ? 'no network (run overlayfwd registry init)' : network.ok ? JSON.stringify(network.value.record) : `bad network record: ${network.reason}`}\n`);
    const rows = hosts.map((h) => ('error' in h ? [h.key, '-', '-', '-', `refused: ${h.error}`] : [h.name!, h.subnet!, h.endpoint!, h.mac ?? '-', 'ok']));
    process.stdout.write(rows.length ? `${table(['NAME', 'SUBNET', 'ENDPOINT', 'MAC', 'RECORD'], rows, new Set([0, 1, 2, 3, 4]))}\n` : 'no hosts\n');
    return EXIT_OK;
  } catch (err) {
    return reportError(err, `invalid config ${sourceName(opts.config)}`);
  } finally {
    client?.close();
  }
}

/** The registry's hosts as a running instance knows them, and whether each is in its table. */
export async function runNodes(opts: InstanceOptions & { json?: boolean }): Promise<number> {
  try {
    const nodes = await controlRequest(await resolveSocket(opts), { cmd: 'nodes' });
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(nodes, null, 2)}\n`);
      return EXIT_OK;
    }
    const { self } = nodes;
    process.stdout.write(`${self.name}: ${self.subnet} of ${nodes.network} at ${self.endpoint}, device ${self.deviceAddress}\n`);
    const rows = nodes.nodes.map((n) => [n.name, n.subnet, n.endpoint, n.mac ?? '-', `${n.ageSeconds}s`, n.inTable ? 'yes' : 'no']);
    process.stdout.write(rows.length ? `${table(['NAME', 'SUBNET', 'ENDPOINT', 'MAC', 'AGE', 'PEER'], rows, new Set([0, 1, 2, 3]))}\n` : 'no other hosts\n');
    return EXIT_OK;
  } catch (err) {
    return reportError(err);
  }
}
