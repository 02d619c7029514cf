// Crafted UDP datagrams sent from inside a lab namespace by a small python3 script, builders
// for VXLAN headers and Ethernet frames, and a relay of UDP sockets inside a namespace.
import type { Host, Lab, LabProcess } from '../../lab';
import { helperPath } from '../../lab/system';

// The kernel's protocol counters are read by the lab (its UDP stream counts drops with them).
// The frame builders are the lab's (the floods bench crafts its floods with them too).
export { ethernetFrame, macBytes, vxlanHeader, type VxlanHeaderFields } from '../../lab/frames';
export { snmpCounters } from '../../lab/probes';

export interface Datagram {
  /** Source address to bind (must be an address of the sending host). */
  src: string;
  payload: Buffer;
  /** How many times to send it (default 1). */
  count?: number;
}

export interface SendOptions {
  /** Datagrams per burst before pausing (default 32). */
  burst?: number;
  /** Pause between bursts in seconds (default 0.002). */
  pause?: number;
  /** Send the datagrams interleaved (round robin) instead of one kind after the other. */
  interleave?: boolean;
}

const PY_SEND = String.raw`
import json, socket, sys, time
spec = json.load(sys.stdin) if sys.argv[1] == '-' else json.loads(sys.argv[1])
socks = {}
def sock(src):
    if src not in socks:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((src, 0))
        socks[src] = s
    return socks[src]
queue = []
if spec['interleave']:
    left = [[d['src'], bytes.fromhex(d['hex']), d['count']] for d in spec['datagrams']]
    while any(x[2] for x in left):
        for x in left:
            if x[2]:
                queue.append((x[0], x[1])); x[2] -= 1
else:
    for d in spec['datagrams']:
        queue += [(d['src'], bytes.fromhex(d['hex']))] * d['count']
dst = (spec['dst'], spec['port'])
sent = 0
for i, (src, data) in enumerate(queue):
    sock(src).sendto(data, dst)
    sent += 1
    if spec['burst'] and (i + 1) % spec['burst'] == 0:
        time.sleep(spec['pause'])
print(sent, flush=True)
`;

/** Sends the datagrams to dst:port from `host`; resolves with the number sent. */
export async function sendDatagrams(lab: Lab, host: Host, dst: string, port: number, datagrams: Datagram[], options: SendOptions = {}): Promise<number> {
  const spec = JSON.stringify({
    dst,
    port,
    burst: options.burst ?? 32,
    pause: options.pause ?? 0.002,
    interleave: options.interleave ?? false,
    datagrams: datagrams.map((d) => ({ src: d.src, hex: d.payload.toString('hex'), count: d.count ?? 1 })),
  });
  const { stdout } = await lab.exec(host, 'python3', ['-c', PY_SEND, spec], { timeoutMs: 120_000 });
  return Number(stdout.trim());
}

export interface ExchangeSpec {
  /** Source address to bind (port: ephemeral). */
  src: string;
  dst: string;
  port: number;
  payload: Buffer;
  /** Replies to wait for (default 1). */
  expect?: number;
  /** Seconds to wait for them (default 3). */
  timeoutSec?: number;
}

export interface ExchangeResult {
  /** The source port the datagram left from. */
  port: number;
  replies: { data: Buffer; address: string; port: number }[];
}

const PY_EXCHANGE = String.raw`
import json, socket, sys, time
spec = json.loads(sys.argv[1])
s = socket.socket(socket.AF_INET6 if ':' in spec['dst'] else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((spec['src'], 0))
s.sendto(bytes.fromhex(spec['hex']), (spec['dst'], spec['port']))
out = {'port': s.getsockname()[1], 'replies': []}
end = time.time() + spec['timeout']
while len(out['replies']) < spec['expect'] and time.time() < end:
    s.settimeout(max(0.001, end - time.time()))
    try:
        data, addr = s.recvfrom(70000)
    except socket.timeout:
        break
    out['replies'].append({'hex': data.hex(), 'address': addr[0], 'port': addr[1]})
print(json.dumps(out), flush=True)
`;

/** Sends one datagram from `host` and collects the replies that come back to its socket. */
export async function exchangeDatagram(lab: Lab, host: Host, spec: ExchangeSpec): Promise<ExchangeResult> {
  const json = JSON.stringify({ src: spec.src, dst: spec.dst, port: spec.port, hex: spec.payload.toString('hex'), expect: spec.expect ?? 1, timeout: spec.timeoutSec ?? 3 });
  const { stdout } = await lab.exec(host, 'python3', ['-c', PY_EXCHANGE, json], { timeoutMs: 60_000 });
  const out = JSON.parse(stdout) as { port: number; replies: { hex: string; address: string; port: number }[] };
  return { port: out.port, replies: out.replies.map((r) => ({ data: Buffer.from(r.hex, 'hex'), address: r.address, port: r.port })) };
}

export interface RelayDatagram {
  /** The relay socket it arrived on. */
  socket: string;
  address: string;
  port: number;
  data: Buffer;
  at: number;
}

/**
 * UDP sockets inside a lab host, driven from this process (lab/helpers/udp-relay.py over
 * stdin/stdout): a protocol endpoint in the test process (an IKE initiator) can send and
 * receive as an address of that host. Every datagram that arrives is kept in `inbox` and
 * passed to the listeners. Stopped by the lab's destroy() at the latest.
 */
export class UdpRelay {
  readonly inbox: RelayDatagram[] = [];
  private readonly listeners = new Set<(d: RelayDatagram) => void>();
  private readonly opening = new Map<string, { resolve: (port: number) => void; reject: (e: Error) => void }>();
  private readonly errors: string[] = [];
  private partial = '';
  private nextId = 0;

  private constructor(private readonly proc: LabProcess) {
    proc.child.stdout!.on('data', (chunk: Buffer) => {
      const lines = (this.partial + chunk.toString('utf8')).split('\n');
      this.partial = lines.pop()!;
      for (const line of lines) this.onLine(line);
    });
  }

  static start(lab: Lab, host: Host): UdpRelay {
    return new UdpRelay(lab.spawn(host, 'python3', [helperPath('udp-relay.py')], { stdin: 'pipe' }));
  }

  private onLine(line: string): void {
    const [what, id = '', a = '', b = '', hex = ''] = line.split(' ');
    if (what === 'opened') {
      this.opening.get(id)?.resolve(Number(a));
      this.opening.delete(id);
    } else if (what === 'recv') {
      const d: RelayDatagram = { socket: id, address: a, port: Number(b), data: Buffer.from(hex, 'hex'), at: Date.now() };
      this.inbox.push(d);
      for (const l of this.listeners) l(d);
    } else if (what === 'error') {
      const text = line.slice(`error ${id} `.length);
      const waiting = this.opening.get(id);
      this.opening.delete(id);
      if (waiting) waiting.reject(new Error(`udp-relay: socket ${id}: ${text}`));
      else this.errors.push(`${id}: ${text}`);
    }
  }

  private write(line: string): void {
    if (!this.proc.running) throw new Error(`udp-relay exited (${this.proc.describeStatus()}): ${this.proc.stderr.slice(-500)}`);
    this.proc.child.stdin!.write(`${line}\n`);
  }

  /** Binds a socket to address:port (0: any port); resolves with its id and port. */
  async open(address: string, port = 0): Promise<{ id: string; port: number }> {
    const id = `s${this.nextId++}`;
    const bound = new Promise<number>((resolve, reject) => this.opening.set(id, { resolve, reject }));
    this.write(`open ${id} ${address} ${port}`);
    return { id, port: await bound };
  }

  send(id: string, address: string, port: number, data: Buffer): void {
    this.write(`send ${id} ${address} ${port} ${data.toString('hex')}`);
  }

  close(id: string): void {
    this.write(`close ${id}`);
  }

  /** Send failures so far (socket id: error). */
  get sendErrors(): readonly string[] {
    return this.errors;
  }

  on(listener: (d: RelayDatagram) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** What arrived on socket `id` (since index `from` of the inbox). */
  received(id: string, from = 0): RelayDatagram[] {
    return this.inbox.slice(from).filter((d) => d.socket === id);
  }

  async stop(): Promise<void> {
    this.proc.child.stdin?.end();
    await this.proc.stop(1000);
  }
}
