// A verified TCP transfer between two lab hosts: N MB of random data written to a file, sent by a
// python3 client in one namespace to a python3 server in another, and the server's sha256 of what
// arrived compared with the file's. The tests' and the bench's sanity check before it measures.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Host } from './hosts';
import type { Lab } from './lab';

const PY_RECV = String.raw`
import hashlib, json, socket, sys
addr, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
srv = socket.socket(socket.AF_INET6 if ':' in addr else socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((addr, port))
srv.listen(1)
srv.settimeout(timeout)
print('LISTENING', flush=True)
conn, peer = srv.accept()
conn.settimeout(timeout)
h, n = hashlib.sha256(), 0
while True:
    b = conn.recv(1 << 20)
    if not b:
        break
    h.update(b)
    n += len(b)
print(json.dumps({'bytes': n, 'sha256': h.hexdigest(), 'peer': peer[0]}), flush=True)
conn.close()
`;

const PY_SEND = String.raw`
import socket, sys
addr, port, path, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
s = socket.create_connection((addr, port), timeout=timeout)
with open(path, 'rb') as f:
    s.sendfile(f)
s.shutdown(socket.SHUT_WR)
s.recv(1)
s.close()
`;

export interface TransferOptions {
  from: Host;
  to: Host;
  /** Address of `to` to connect to (an overlay address, to go through the overlay); IPv4 or IPv6. */
  address: string;
  megabytes: number;
  port?: number;
  timeoutMs?: number;
}

export interface TransferResult {
  bytes: number;
  sha256: string;
  received: { bytes: number; sha256: string; peer: string };
  seconds: number;
  mbitPerSecond: number;
}

let transferCount = 0;

/** Writes `megabytes` of random data to a file and returns its sha256. */
export async function randomFile(file: string, megabytes: number): Promise<string> {
  const hash = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'w');
  try {
    for (let i = 0; i < megabytes; i++) {
      const chunk = crypto.randomBytes(1 << 20);
      hash.update(chunk);
      fs.writeSync(fd, chunk);
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

/** Sends the data and resolves with both hashes; rejects when they differ or anything fails. */
export async function verifiedTransfer(lab: Lab, opts: TransferOptions): Promise<TransferResult> {
  const n = ++transferCount;
  const port = opts.port ?? 15000 + n;
  const timeoutMs = opts.timeoutMs ?? 90_000;
  const file = path.join(lab.tmpdir(), `transfer-${n}.bin`);
  const sha256 = await randomFile(file, opts.megabytes);
  const bytes = opts.megabytes << 20;
  try {
    const server = lab.spawn(opts.to, 'python3', ['-u', '-c', PY_RECV, opts.address, String(port), String(timeoutMs / 1000)]);
    await server.waitForOutput('LISTENING', 15_000);
    const t0 = process.hrtime.bigint();
    await lab.exec(opts.from, 'python3', ['-c', PY_SEND, opts.address, String(port), file, String(timeoutMs / 1000)], { timeoutMs });
    const out = await server.succeed(timeoutMs);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const line = out.split('\n').find((l) => l.startsWith('{'));
    if (!line) throw new Error(`receiver printed no result: ${out}`);
    const received = JSON.parse(line) as TransferResult['received'];
    if (received.bytes !== bytes || received.sha256 !== sha256) {
      throw new Error(`transfer corrupted: sent ${bytes} bytes sha256 ${sha256}, received ${received.bytes} bytes sha256 ${received.sha256}`);
    }
    return { bytes, sha256, received, seconds, mbitPerSecond: (bytes * 8) / seconds / 1e6 };
  } finally {
    fs.rmSync(file, { force: true });
  }
}
