import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { closeAll, ephemeralLow, freePorts } from '../../lab/ports';

const listening: net.Server[] = [];
afterEach(() => closeAll(listening.splice(0)));

function listen(port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

describe('lab free ports (for etcd members)', () => {
  it('returns distinct ports below the kernel ephemeral range, each free to bind afterwards', async () => {
    for (let round = 0; round < 20; round++) {
      const ports = await freePorts(6);
      expect(new Set(ports).size).toBe(6);
      for (const port of ports) {
        expect(port).toBeGreaterThanOrEqual(10_000);
        expect(port).toBeLessThan(Math.max(ephemeralLow(), 11_000));
      }
      // Every port was released: the caller (etcd) can bind each.
      for (const port of ports) listening.push(await listen(port));
      await closeAll(listening.splice(0));
    }
  });

  it('never returns a port someone else holds', async () => {
    // 200 ports held by another listener: none of them may come back.
    const held = new Set<number>();
    for (const port of await freePorts(200)) {
      listening.push(await listen(port));
      held.add(port);
    }
    for (let round = 0; round < 10; round++) {
      for (const port of await freePorts(10)) expect(held.has(port)).toBe(false);
    }
  });
});
