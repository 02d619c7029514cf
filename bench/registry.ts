// Registry bench: how registry mode scales on a real etcd (Debian's etcd-server).
//
//   node dist/bench/registry.js [--hosts N] [--records N] [--changes N]
//
// A private etcd on loopback holds `--records` host records (default 1,000, written straight
// into etcd: endpoints in 198.18.4.0/22 that no traffic is ever sent to). Then `--hosts` real
// overlayfwd hosts (default 3, TUN, gre-udp, each in its own lab network namespace on one bridge)
// start one after the other; for each: the time from Overlay.create() to a complete peer table
// (every record plus the other real hosts). Then `--changes` changes (default 100): one record's
// endpoint moves, and the time until every real host's table has the new endpoint. Reported as
// median and worst. Everything (etcd, namespaces) is removed at the end.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { EtcdServer, Lab } from '../lab';
import { Overlay } from '../lib/overlay';
import { commitLabel, isoStamp, provenance, repoRoot } from './provenance';

interface Options {
  hosts: number;
  records: number;
  changes: number;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { hosts: 3, records: 1000, changes: 100 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split('=');
    const value = Number(inline ?? argv[++i]);
    if (!Number.isInteger(value) || value < 1) throw new Error(`${flag} wants a positive integer`);
    if (flag === '--hosts') options.hosts = value;
    else if (flag === '--records') options.records = Math.min(value, 1000);
    else if (flag === '--changes') options.changes = value;
    else throw new Error(`unknown option ${flag} (--hosts N, --records N up to 1000, --changes N)`);
  }
  return options;
}

/** Resolves when `cond` holds, polling every millisecond; rejects after `timeoutMs`. */
async function until(cond: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

function summary(ms: number[]): { median: number; worst: number; count: number } {
  const sorted = [...ms].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)] ?? 0, worst: sorted[sorted.length - 1] ?? 0, count: sorted.length };
}

const fakeEndpoint = (i: number) => `198.18.${4 + Math.floor(i / 250)}.${(i % 250) + 1}`;

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const lab = await Lab.create();
  const overlays: Overlay[] = [];
  try {
    process.env.OVERLAYFWD_STATE_DIR = path.join(lab.tmpdir(), 'state');
    const etcd = await EtcdServer.start(lab, 'bench');
    const prefix = `/bench-${crypto.randomBytes(4).toString('hex')}`;
    const client = new Etcd3({ hosts: etcd.endpoint });
    const network = { network: '10.64.0.0/12', subnetLength: 24, encap: { type: 'gre-udp', vni: 0, port: 4754, key: null } };
    await client.put(`${prefix}/config`).value(JSON.stringify(network));
    // Records of hosts that are not there: subnets 10.64.0.0/24 onwards, one write each.
    for (let i = 0; i < options.records; i++) {
      const key = `${prefix}/subnets/10.${64 + (i >> 8)}.${i & 255}.0-24`;
      await client.put(key).value(JSON.stringify({ name: `fake${i}`, endpoint: fakeEndpoint(i) }));
    }
    const labels = Array.from({ length: options.hosts }, (_, i) => `h${i}`);
    const hosts = await lab.switched(labels);
    const joinMs: number[] = [];
    for (const host of hosts) {
      const started = performance.now();
      const ov = await Overlay.create({
        name: 'ovl0',
        netns: host.ns,
        device: { type: 'tun', name: 'ovl0' },
        encap: { type: 'gre-udp' },
        underlay: { local: host.underlay },
        workers: 1,
        limits: { maxPeers: options.records + options.hosts + 8 },
        registry: { etcd: { endpoints: [etcd.endpoint], prefix, ttlSeconds: 10 } },
        node: { name: host.label },
        control: { socket: path.join(lab.tmpdir(), `${host.label}.sock`) },
      });
      overlays.push(ov);
      const want = options.records + overlays.length - 1;
      await until(() => ov.peers.list().length === want, `${host.label}'s table`);
      joinMs.push(performance.now() - started);
      process.stderr.write(`# ${host.label}: ${want} peers in ${(performance.now() - started).toFixed(0)} ms\n`);
    }
    // The hosts that came before learn each later one too: wait until every table is complete.
    const complete = options.records + options.hosts - 1;
    await until(() => overlays.every((ov) => ov.peers.list().length === complete), 'every table');

    const changeMs: number[] = [];
    for (let c = 0; c < options.changes; c++) {
      const i = (c * 7919) % options.records;
      const moved = `198.18.${8 + Math.floor(c / 250)}.${(c % 250) + 1}`;
      const started = performance.now();
      await client.put(`${prefix}/subnets/10.${64 + (i >> 8)}.${i & 255}.0-24`).value(JSON.stringify({ name: `fake${i}`, endpoint: moved }));
      await until(
        () => overlays.every((ov) => ov.peers.list().find((p) => p.name === `fake${i}`)?.endpoint.address === moved),
        `change ${c} to reach every table`,
      );
      changeMs.push(performance.now() - started);
    }
    client.close();
    const now = new Date();
    const prov = provenance();
    const result = {
      when: now.toISOString(),
      provenance: prov,
      machine: { cpus: os.cpus().length, node: process.version, commit: commitLabel(prov) },
      options,
      joinToCompleteTableMs: { ...summary(joinMs), each: joinMs.map((x) => Math.round(x)) },
      changeToEveryTableMs: summary(changeMs),
    };
    const file = path.join(repoRoot(), 'bench', 'results', `registry-${isoStamp(now)}.json`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
    const ms = (x: number) => `${x.toFixed(1)} ms`;
    process.stdout.write(
      `registry bench: ${options.records} records, ${options.hosts} hosts, ${options.changes} changes (etcd ${etcd.endpoint})\n` +
        `  start to a complete table: median ${ms(result.joinToCompleteTableMs.median)}, worst ${ms(result.joinToCompleteTableMs.worst)}\n` +
        `  a change to every host's table: median ${ms(result.changeToEveryTableMs.median)}, worst ${ms(result.changeToEveryTableMs.worst)}\n` +
        `results: ${path.relative(process.cwd(), file)}\n`,
    );
  } finally {
    for (const ov of overlays) await ov.close().catch(() => {});
    await lab.destroy();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`registry bench: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
