// Free loopback ports for servers the lab starts in the root namespace (etcd), which bind a port
// they are told rather than one the kernel picks.
import fs from 'node:fs';
import net from 'node:net';

// The lowest port the kernel hands out by itself (to listen(0) and to connect()): ports below it
// are taken only by an explicit bind.
export function ephemeralLow(): number {
  try {
    const low = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(low) && low > 1024) return low;
  } catch {
    // not Linux, or no procfs: the kernel's default
  }
  return 32768;
}

/** Closes every server and waits until each has. */
export function closeAll(servers: readonly net.Server[]): Promise<void> {
  return Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve())))).then(() => undefined);
}

function listenOn(server: net.Server, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
}

/**
 * `count` distinct free loopback ports for etcd to bind. Taken at random below the kernel's
 * ephemeral range, so that no connect() or listen(0) of another process (another test file's
 * client, its own probe) can take one between this probe and etcd's bind; and each held open
 * until all are chosen, so that one call never returns a port twice (listen(0) probes, each
 * closed before the next, once returned the same port twice under load: two of a cluster's
 * members got one peer URL, and etcd refused the cluster).
 */
export async function freePorts(count: number): Promise<number[]> {
  const low = 10_000;
  const span = Math.max(ephemeralLow() - low, 1_000);
  const held: net.Server[] = [];
  const ports: number[] = [];
  try {
    for (let misses = 0; ports.length < count; ) {
      const port = low + Math.floor(Math.random() * span);
      const server = ports.includes(port) ? null : net.createServer();
      if (server && (await listenOn(server, port))) {
        held.push(server);
        ports.push(port);
      } else if (++misses > 100 + count) {
        throw new Error(`no ${count} free loopback ports in ${low}-${low + span - 1}`);
      }
    }
    return ports;
  } finally {
    await closeAll(held);
  }
}
