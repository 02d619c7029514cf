// The IKE bench's UDP relay: runs inside the initiators' lab namespace and moves IKE datagrams
// between real UDP sockets there and the bench process (which runs the initiator sessions),
// over a unix stream socket (a unix socket path is not network-namespaced).
//
//   node dist/bench/ike-relay.js SOCKET ADDRESS...
//
// For each ADDRESS (an initiator, "slot" = its index) it binds UDP 500 and UDP 4500. On 4500
// IKE travels behind the 4-byte non-ESP marker (RFC 3948 §2.2): the relay adds it on the way out
// and strips it on the way in (anything else on 4500, ESP, is dropped: no data is sent). Frames
// both ways: u32 length of the rest | u8 slot | u8 port (0: 500, 1: 4500) | IPv4 address (4
// bytes) | u16 port | the IKE message; towards the bench the address and port are the sender's,
// towards the relay the destination's. Prints "ready" once every socket is bound.
import dgram from 'node:dgram';
import net from 'node:net';

const HEADER = 12;
const MARKER = Buffer.alloc(4);

function frame(slot: number, kind: number, address: string, port: number, data: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEADER + data.length);
  out.writeUInt32BE(HEADER - 4 + data.length, 0);
  out[4] = slot;
  out[5] = kind;
  const parts = address.split('.');
  for (let i = 0; i < 4; i++) out[6 + i] = Number(parts[i]);
  out.writeUInt16BE(port, 10);
  data.copy(out, HEADER);
  return out;
}

async function main(): Promise<void> {
  const [socketPath, ...addresses] = process.argv.slice(2);
  if (!socketPath || addresses.length === 0 || addresses.length > 255) throw new Error('usage: ike-relay SOCKET ADDRESS... (1 to 255 addresses)');
  const conn = net.connect(socketPath);
  await new Promise<void>((resolve, reject) => {
    conn.once('connect', resolve);
    conn.once('error', reject);
  });
  conn.setNoDelay?.(true);
  const sockets: dgram.Socket[][] = [];
  for (const [slot, address] of addresses.entries()) {
    const pair: dgram.Socket[] = [];
    for (const [kind, port] of [500, 4500].entries()) {
      const s = dgram.createSocket('udp4');
      s.on('message', (msg, rinfo) => {
        let data = msg;
        if (kind === 1) {
          if (msg.length < 4 || msg.readUInt32BE(0) !== 0) return;
          data = msg.subarray(4);
        }
        conn.write(frame(slot, kind, rinfo.address, rinfo.port, data));
      });
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.bind({ address, port, exclusive: true }, () => {
          s.off('error', reject);
          resolve();
        });
      });
      s.on('error', (e) => process.stderr.write(`ike-relay: ${address}:${port}: ${e.message}\n`));
      pair.push(s);
    }
    sockets.push(pair);
  }
  let pending: Buffer = Buffer.alloc(0);
  conn.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let at = 0;
    while (pending.length - at >= 4) {
      const len = pending.readUInt32BE(at);
      if (pending.length - at < 4 + len) break;
      const slot = pending[at + 4]!;
      const kind = pending[at + 5]!;
      const address = `${pending[at + 6]}.${pending[at + 7]}.${pending[at + 8]}.${pending[at + 9]}`;
      const port = pending.readUInt16BE(at + 10);
      const data = pending.subarray(at + HEADER, at + 4 + len);
      const s = sockets[slot]?.[kind];
      if (s) s.send(kind === 1 ? [MARKER, data] : data, port, address);
      at += 4 + len;
    }
    pending = at === pending.length ? Buffer.alloc(0) : Buffer.from(pending.subarray(at));
  });
  conn.on('close', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
  process.stdout.write('ready\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`ike-relay: ${(e as Error).message}\n`);
  process.exit(1);
});
