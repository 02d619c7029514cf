// `metrics: { listen }` against a real Prometheus (Debian's prometheus): `overlayfwd up` runs in
// host a's namespace with its metrics on 127.0.0.1:9469 there, a Prometheus in the same
// namespace scrapes it every second, and a query through Prometheus's HTTP API returns the
// counters the instance's own stats (over its control socket) report. Host b is an in-process
// overlayfwd peer across a vxlan overlay on a veth underlay.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Lab, execIn, overlayAddress } from '../../lab';
import type { Host, LabProcess } from '../../lab';
import { controlRequest } from '../../lib/control';
import type { OverlayStats } from '../../lib/types';
import { ensureCliBuilt, CLI_MAIN } from '../helpers/cli';
import { describeNetns, ROOT, sleep, waitFor } from '../helpers/env';
import { startForwarder } from '../helpers/overlay';

const MAIN = CLI_MAIN;
const METRICS_PORT = 9469;
const PROMETHEUS_PORT = 9090;

/** An HTTP GET from inside `host`'s namespace (its loopback is its own). */
async function httpGet(lab: Lab, host: Host, url: string): Promise<{ status: number; body: string }> {
  const script =
    'fetch(process.argv[1]).then(async (r) => process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() })), ' +
    '(e) => { process.stderr.write(String(e && e.cause ? e.cause : e)); process.exit(1); })';
  const r = await lab.exec(host, process.execPath, ['-e', script, url], { timeoutMs: 20_000 });
  return JSON.parse(r.stdout) as { status: number; body: string };
}

interface PromSample {
  metric: Record<string, string>;
  /** An instant vector's [evaluation time, value]. */
  value: [number, string];
}

interface PromSeries {
  metric: Record<string, string>;
  /** A range vector's samples as scraped: [scrape time, value]. */
  values: Array<[number, string]>;
}

async function api<T>(lab: Lab, host: Host, promql: string): Promise<{ resultType: string; result: T[] }> {
  const r = await httpGet(lab, host, `http://127.0.0.1:${PROMETHEUS_PORT}/api/v1/query?query=${encodeURIComponent(promql)}`);
  expect(r.status, r.body).toBe(200);
  const json = JSON.parse(r.body) as { status: string; data: { resultType: string; result: T[] } };
  expect(json.status).toBe('success');
  return json.data;
}

/** An instant query through Prometheus's HTTP API. */
async function query(lab: Lab, host: Host, promql: string): Promise<PromSample[]> {
  const data = await api<PromSample>(lab, host, promql);
  expect(data.resultType).toBe('vector');
  return data.result;
}

/** A range-vector query (`selector[10s]`): the samples with the times they were scraped at. */
async function queryRange(lab: Lab, host: Host, promql: string): Promise<PromSeries[]> {
  const data = await api<PromSeries>(lab, host, promql);
  expect(data.resultType).toBe('matrix');
  return data.result;
}

const PEER_SERIES = ['tx_packets', 'tx_bytes', 'rx_packets', 'rx_bytes', 'tx_wire_bytes', 'rx_wire_bytes'] as const;
const FIELD: Record<(typeof PEER_SERIES)[number], 'txPackets' | 'txBytes' | 'rxPackets' | 'rxBytes' | 'txWireBytes' | 'rxWireBytes'> = {
  tx_packets: 'txPackets',
  tx_bytes: 'txBytes',
  rx_packets: 'rxPackets',
  rx_bytes: 'rxBytes',
  tx_wire_bytes: 'txWireBytes',
  rx_wire_bytes: 'rxWireBytes',
};

describeNetns('Prometheus metrics (metrics.listen) scraped by a real Prometheus', { tools: ['prometheus', 'promtool'] }, () => {
  let lab: Lab;
  let a: Host;
  let b: Host;
  let dir: string;
  let sock: string;
  let up: LabProcess;
  let prometheus: LabProcess;

  const stats = () => controlRequest(sock, { cmd: 'stats' }) as Promise<OverlayStats>;

  beforeAll(async () => {
    await ensureCliBuilt({ tolerateTypeErrors: true });
    lab = await Lab.create();
    [a, b] = await lab.pair('a', 'b');
    dir = lab.tmpdir();
    sock = path.join(dir, 'ovl0.sock');
    const configFile = path.join(dir, 'ovl0.yaml');
    // No netns: in the config: `up` itself runs in a's namespace, so its metrics listen there.
    fs.writeFileSync(
      configFile,
      YAML.stringify({
        name: 'ovl0',
        device: { type: 'tap', name: 'ovl0', addresses: [`${overlayAddress(1)}/24`] },
        encap: { type: 'vxlan', vni: 42 },
        underlay: { local: a.underlay },
        workers: 1,
        peers: [{ name: 'b', endpoint: b.underlay }],
        control: { socket: sock },
        metrics: { listen: `127.0.0.1:${METRICS_PORT}` },
      }),
    );
    up = lab.spawn(a, process.execPath, [MAIN, 'up', '-c', configFile], { cwd: ROOT });
    await up.waitForOutput(`metrics http://127.0.0.1:${METRICS_PORT}/metrics`, 30_000);

    await startForwarder(lab, { host: b, address: `${overlayAddress(2)}/24`, peers: [{ name: 'a', endpoint: a.underlay }] });

    const promDir = path.join(dir, 'prometheus');
    fs.mkdirSync(path.join(promDir, 'data'), { recursive: true });
    const promConfig = path.join(promDir, 'prometheus.yml');
    fs.writeFileSync(
      promConfig,
      YAML.stringify({
        global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
        scrape_configs: [{ job_name: 'overlayfwd', static_configs: [{ targets: [`127.0.0.1:${METRICS_PORT}`] }] }],
      }),
    );
    const check = await execIn(null, 'promtool', ['check', 'config', promConfig], { allowFailure: true });
    expect(check.code, check.stdout + check.stderr).toBe(0);
    // Our own Prometheus, in a's namespace, on a port of its loopback, with its data in the lab's
    // temporary folder: no system service is involved, and the lab stops it.
    prometheus = lab.spawn(a, 'prometheus', [
      `--config.file=${promConfig}`,
      `--storage.tsdb.path=${path.join(promDir, 'data')}`,
      `--web.listen-address=127.0.0.1:${PROMETHEUS_PORT}`,
      '--log.level=warn',
    ]);
    await waitFor(
      async () => {
        if (!prometheus.running) throw new Error(`prometheus exited (${prometheus.describeStatus()}):\n${prometheus.stderr.slice(-3000)}`);
        const r = await httpGet(lab, a, `http://127.0.0.1:${PROMETHEUS_PORT}/-/ready`).catch(() => null);
        return r?.status === 200;
      },
      'Prometheus to be ready',
      60_000,
      250,
    );
  }, 240_000);

  afterAll(async () => {
    await lab?.destroy();
  });

  it('/metrics and /healthz answer inside the namespace; the exposition passes promtool', async () => {
    expect(up.running, up.stderr).toBe(true);
    const health = await httpGet(lab, a, `http://127.0.0.1:${METRICS_PORT}/healthz`);
    expect(health).toEqual({ status: 200, body: 'ok\n' });
    const m = await httpGet(lab, a, `http://127.0.0.1:${METRICS_PORT}/metrics`);
    expect(m.status).toBe(200);
    expect(m.body).toMatch(/^overlayfwd_healthy\{instance_name="ovl0"\} 1$/m);
    expect(m.body).toMatch(/^overlayfwd_workers\{instance_name="ovl0"\} 1$/m);
    expect(m.body).toMatch(/^overlayfwd_peers\{instance_name="ovl0"\} 1$/m);
    expect(m.body).toMatch(/^overlayfwd_peer_tx_packets_total\{instance_name="ovl0",peer="b"\} \d+$/m);
    // promtool lints names, types and HELP against the Prometheus conventions.
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: m.body, encoding: 'utf8' });
    expect(lint.status, lint.stdout + lint.stderr).toBe(0);
  });

  it("a PromQL query returns the peer counters the instance's stats report", async () => {
    // Traffic across the overlay both ways: b pings a.
    const ping = await lab.ping(b, overlayAddress(1), { count: 40, intervalSec: 0.01 });
    expect(ping.received).toBe(40);
    const moved = await stats();
    expect(moved.peers.b!.txPackets).toBeGreaterThanOrEqual(40);
    expect(moved.peers.b!.rxPackets).toBeGreaterThanOrEqual(40);

    // Prometheus scrapes every second. Read the stats, wait for a scrape taken after that read,
    // query it, read the stats again: the scraped value lies between the two reads, and equals
    // them when nothing moved in between (which, with the pings over, is the rule).
    const names = PEER_SERIES.map((s) => `overlayfwd_peer_${s}_total`);
    const selector = `{__name__=~"${names.join('|')}",job="overlayfwd",instance_name="ovl0",peer="b"}`;
    let exact = false;
    for (let attempt = 0; attempt < 10 && !exact; attempt++) {
      const before = (await stats()).peers.b!;
      const readAt = Date.now() / 1000;
      let scraped: Record<string, number> = {};
      await waitFor(
        async () => {
          // The newest sample of each series, and when it was scraped (one scrape carries them all).
          const series = await queryRange(lab, a, `${selector}[10s]`);
          const newest = series.map((s) => ({ name: s.metric.__name__!, sample: s.values[s.values.length - 1]! }));
          if (newest.length !== PEER_SERIES.length || !newest.every((n) => n.sample[0] > readAt)) return false;
          scraped = Object.fromEntries(newest.map((n) => [n.name, Number(n.sample[1])]));
          return true;
        },
        'a Prometheus scrape after the stats were read',
        20_000,
        300,
      );
      const after = (await stats()).peers.b!;
      for (const series of PEER_SERIES) {
        const v = scraped[`overlayfwd_peer_${series}_total`]!;
        expect(v, series).toBeGreaterThanOrEqual(before[FIELD[series]]!);
        expect(v, series).toBeLessThanOrEqual(after[FIELD[series]]!);
      }
      exact = PEER_SERIES.every((s) => before[FIELD[s]] === after[FIELD[s]]);
      if (exact) {
        for (const series of PEER_SERIES) expect(scraped[`overlayfwd_peer_${series}_total`], series).toBe(after[FIELD[series]]);
        expect(after.txPackets).toBeGreaterThanOrEqual(moved.peers.b!.txPackets);
        console.log(`[metrics] Prometheus: ${names.map((n) => `${n}=${scraped[n]}`).join(' ')} (stats: the same)`);
      } else {
        await sleep(500);
      }
    }
    expect(exact, 'the counters never held still for a scrape').toBe(true);

    // The target is up, and the gauges say what the stats say.
    const upSeries = await query(lab, a, 'up{job="overlayfwd"}');
    expect(upSeries.map((s) => s.value[1])).toEqual(['1']);
    const gauges = await query(lab, a, '{__name__=~"overlayfwd_(healthy|workers|peers)",instance_name="ovl0"}');
    expect(Object.fromEntries(gauges.map((s) => [s.metric.__name__, s.value[1]]))).toEqual({
      overlayfwd_healthy: '1',
      overlayfwd_workers: '1',
      overlayfwd_peers: '1',
    });
    const targets = JSON.parse((await httpGet(lab, a, `http://127.0.0.1:${PROMETHEUS_PORT}/api/v1/targets`)).body) as {
      data: { activeTargets: Array<{ health: string; lastError: string; scrapeUrl: string }> };
    };
    expect(targets.data.activeTargets.map((t) => [t.scrapeUrl, t.health, t.lastError])).toEqual([[`http://127.0.0.1:${METRICS_PORT}/metrics`, 'up', '']]);
  });

  it('a metrics port in use at start is a clear error (exit 1), and nothing is left behind', async () => {
    const configFile = path.join(dir, 'ovl1.yaml');
    const sock1 = path.join(dir, 'ovl1.sock');
    fs.writeFileSync(
      configFile,
      YAML.stringify({
        name: 'ovl1',
        device: { type: 'tap', name: 'ovl1' },
        encap: { type: 'vxlan', vni: 43, port: 4790 },
        underlay: { local: a.underlay },
        workers: 1,
        control: { socket: sock1 },
        // Prometheus listens there.
        metrics: { listen: `127.0.0.1:${PROMETHEUS_PORT}` },
      }),
    );
    const r = await lab.exec(a, process.execPath, [MAIN, 'up', '-c', configFile], { cwd: ROOT, allowFailure: true, timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`overlayfwd: metrics.listen 127.0.0.1:${PROMETHEUS_PORT}: cannot listen: address already in use`);
    expect(await lab.links(a)).not.toContain('ovl1');
    expect(fs.existsSync(sock1)).toBe(false);
  });

  it('up stops its metrics server with the instance on SIGTERM', async () => {
    up.kill('SIGTERM');
    const st = await up.wait(20_000);
    expect({ code: st.code, signal: st.signal }, up.stderr).toEqual({ code: 0, signal: null });
    const gone = await lab.exec(a, process.execPath, ['-e', `fetch('http://127.0.0.1:${METRICS_PORT}/healthz').then(() => process.exit(0), () => process.exit(3))`], {
      allowFailure: true,
    });
    expect(gone.code).toBe(3);
  });
});
