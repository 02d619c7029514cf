// A real etcd (Debian's etcd-server) for registry tests and benches: members on loopback with a
// data directory in the lab's temporary folder and free ports, started and stopped by the caller
// and removed with the lab.
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import type { Lab } from './lab';
import { freePorts } from './ports';
import type { LabProcess } from './process';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** TLS for the client port: the member's certificate and key, and the CA its clients must be signed by. */
export interface EtcdTls {
  cert: string;
  key: string;
  ca: string;
}

function httpsHealth(url: string, tls: EtcdTls): Promise<{ health?: string }> {
  return new Promise((resolve, reject) => {
    const request = https.get(
      url,
      { ca: fs.readFileSync(tls.ca), cert: fs.readFileSync(tls.cert), key: fs.readFileSync(tls.key) },
      (response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.on('end', () => {
          try {
            resolve(JSON.parse(body) as { health?: string });
          } catch (err) {
            reject(err);
          }
        });
      },
    );
    request.on('error', reject);
  });
}

export class EtcdServer {
  private process: LabProcess | null = null;
  private tls: EtcdTls | null = null;
  /** name=peer URL of every member of the cluster (just this one for a single member). */
  private cluster = '';

  private constructor(
    private readonly lab: Lab,
    readonly name: string,
    readonly dataDir: string,
    readonly clientPort: number,
    readonly peerPort: number,
  ) {}

  private static make(lab: Lab, name: string, clientPort: number, peerPort: number): EtcdServer {
    const dataDir = path.join(lab.tmpdir(), `${name}.data`);
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    return new EtcdServer(lab, name, dataDir, clientPort, peerPort);
  }

  static async start(lab: Lab, name = 'etcd0', tls?: EtcdTls): Promise<EtcdServer> {
    const [clientPort, peerPort] = await freePorts(2);
    const server = EtcdServer.make(lab, name, clientPort!, peerPort!);
    server.cluster = `${name}=${server.peerUrl}`;
    server.tls = tls ?? null;
    await server.run();
    return server;
  }

  /** A cluster of `size` members on loopback, all started and healthy. */
  static async startCluster(lab: Lab, size: number, stem = 'etcdc'): Promise<EtcdServer[]> {
    const ports = await freePorts(2 * size);
    const members = Array.from({ length: size }, (_, i) => EtcdServer.make(lab, `${stem}${i}`, ports[2 * i]!, ports[2 * i + 1]!));
    const cluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
    for (const m of members) m.cluster = cluster;
    // Members wait for each other: start them all, then wait for each.
    await Promise.all(members.map((m) => m.run()));
    return members;
  }

  get peerUrl(): string {
    return `http://127.0.0.1:${this.peerPort}`;
  }

  get endpoint(): string {
    return `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.clientPort}`;
  }

  get running(): boolean {
    return this.process !== null && this.process.status === null;
  }

  /** Starts the member (again, on the same data and ports) and waits until it answers. */
  async run(): Promise<void> {
    const peer = this.peerUrl;
    this.process = this.lab.spawn(null, 'etcd', [
      '--name', this.name,
      '--data-dir', this.dataDir,
      '--listen-client-urls', this.endpoint,
      '--advertise-client-urls', this.endpoint,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', this.cluster,
      '--log-level', 'error',
      // With TLS, clients must present a certificate signed by the CA.
      ...(this.tls ? ['--cert-file', this.tls.cert, '--key-file', this.tls.key, '--trusted-ca-file', this.tls.ca, '--client-cert-auth'] : []),
    ]);
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (this.process.status) throw new Error(`etcd exited (${JSON.stringify(this.process.status)}): ${this.process.stderr.slice(-2000)}`);
      try {
        const health = this.tls
          ? await httpsHealth(`${this.endpoint}/health`, this.tls)
          : ((await (await fetch(`${this.endpoint}/health`)).json()) as { health?: string });
        if (health.health === 'true') return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`etcd did not become healthy: ${this.process.stderr.slice(-2000)}`);
      await sleep(100);
    }
  }

  /** Stops the member with `signal` (SIGKILL: as a crash) and waits for it to be gone. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = this.process;
    if (!proc || proc.status) return;
    proc.child.kill(signal);
    await proc.exited;
  }
}
