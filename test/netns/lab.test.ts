// The lab helper on its own, with the kernel's VXLAN device as the overlay: namespaces, veth,
// bridge, processes, the verified transfer helper, and cleanup (destroy, exit, signals, sweep).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, overlayAddress } from '../../lab';
import type { Host } from '../../lab';
import { OWNER_DIR, recordOwner } from '../../lab/namespaces';
import { describeNetns, ROOT, waitFor } from '../helpers/env';
import { verifiedTransfer } from '../helpers/transfer';

function netnsExists(ns: string): boolean {
  return fs.existsSync(`/run/netns/${ns}`);
}

/** Alive and not a zombie (an orphan killed by a dead parent may wait a moment to be reaped). */
function pidAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

describeNetns('lab helper', { addon: false }, () => {
  describe('two hosts joined by veth, kernel VXLAN overlay', () => {
    let lab: Lab;
    let a: Host;
    let b: Host;

    beforeAll(async () => {
      lab = await Lab.create();
      [a, b] = await lab.pair('a', 'b');
      await lab.kernelVxlan(a, { vni: 42, remotes: [b.underlay], addresses: [`${overlayAddress(1)}/24`] });
      await lab.kernelVxlan(b, { vni: 42, remotes: [a.underlay], addresses: [`${overlayAddress(2)}/24`] });
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    it('names namespaces uniquely and keeps interface names short', async () => {
      expect(a.ns).not.toBe(b.ns);
      expect(a.ns).toMatch(new RegExp(`^ovt-a-${process.pid}-\\d+$`));
      expect(netnsExists(a.ns)).toBe(true);
      for (const h of [a, b]) {
        for (const dev of await lab.links(h)) expect(dev.length).toBeLessThanOrEqual(15);
      }
      expect(a.underlay).toMatch(/^198\.18\.\d+\.1$/);
      expect(b.underlay).toMatch(/^198\.18\.\d+\.2$/);
      // Nothing was created in the caller's namespace.
      const own = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' });
      expect(own).not.toContain(a.underlayDev + '@');
    });

    it('pings across the underlay and across the kernel VXLAN overlay, both ways', async () => {
      expect((await lab.ping(a, b.underlay, { count: 2 })).received).toBe(2);
      expect((await lab.ping(a, overlayAddress(2), { count: 3, intervalSec: 0.05 })).received).toBe(3);
      expect((await lab.ping(b, overlayAddress(1), { count: 3, intervalSec: 0.05 })).received).toBe(3);
    });

    it('reports lost pings without throwing', async () => {
      const r = await lab.ping(a, overlayAddress(99), { count: 1, timeoutSec: 1 });
      expect(r).toMatchObject({ transmitted: 1, received: 0 });
    });

    it('moves a verified TCP transfer across the overlay', async () => {
      const r = await verifiedTransfer(lab, { from: a, to: b, address: overlayAddress(2), megabytes: 20 });
      expect(r.received.peer).toBe(overlayAddress(1));
      expect(r.received.bytes).toBe(20 << 20);
    });

    it('runs processes inside a namespace and waits for their output', async () => {
      const { stdout } = await lab.exec(b, 'ip', ['-o', 'addr', 'show', 'dev', 'vx0']);
      expect(stdout).toContain(overlayAddress(2));
      const p = lab.spawn(a, 'python3', ['-u', '-c', 'import time; print("ready", flush=True); time.sleep(60)']);
      await p.waitForOutput('ready');
      expect(p.running).toBe(true);
      const st = await p.stop(1000);
      expect(st.signal).toBe('SIGTERM');
      const bad = await lab.exec(a, 'false', [], { allowFailure: true });
      expect(bad.code).toBe(1);
      await expect(lab.exec(a, 'false')).rejects.toThrow(/exited 1/);
    });
  });

  it('builds a switched underlay with head-end replication (kernel VXLAN, 3 hosts)', async () => {
    const lab = await Lab.create();
    try {
      const hosts = await lab.switched(['a', 'b', 'c']);
      expect(new Set(hosts.map((h) => h.underlay)).size).toBe(3);
      for (const [i, h] of hosts.entries()) {
        const remotes = hosts.filter((x) => x !== h).map((x) => x.underlay);
        await lab.kernelVxlan(h, { vni: 7, remotes, addresses: [`${overlayAddress(i + 1)}/24`] });
      }
      const { stdout } = await lab.exec(hosts[0]!, 'bridge', ['fdb', 'show', 'dev', 'vx0']);
      expect(stdout.match(/00:00:00:00:00:00 dst/g)?.length).toBe(2);
      for (const [i, h] of hosts.entries()) {
        for (const j of [0, 1, 2].filter((x) => x !== i)) {
          expect((await lab.ping(h, overlayAddress(j + 1), { count: 2, intervalSec: 0.05 })).received).toBe(2);
        }
      }
    } finally {
      await lab.destroy();
    }
  });

  it('destroy() kills its processes, deletes its namespaces and temp dir, and is idempotent', async () => {
    const lab = await Lab.create();
    const [a] = await lab.pair('a', 'b');
    const tmp = lab.tmpdir();
    fs.writeFileSync(path.join(tmp, 'x'), 'x');
    const spawned = lab.spawn(a!, 'sleep', ['600']);
    // A process started inside the namespace behind the lab's back is killed too.
    const stray = spawnSync('ip', ['netns', 'exec', a!.ns, 'sh', '-c', 'sleep 600 >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' });
    const strayPid = Number(stray.stdout.trim());
    expect(pidAlive(strayPid)).toBe(true);
    let hookRan = 0;
    lab.onDestroy(() => {
      hookRan++;
    });
    const names = [...lab.namespaceNames];
    await Promise.all([lab.destroy(), lab.destroy()]);
    await lab.destroy();
    expect(hookRan).toBe(1);
    expect(spawned.running).toBe(false);
    await waitFor(() => !pidAlive(strayPid), 'stray process to die', 5000);
    for (const ns of names) expect(netnsExists(ns)).toBe(false);
    expect(fs.existsSync(tmp)).toBe(false);
    expect(() => lab.spawn(null, 'true')).toThrow(/destroyed/);
  });

  it('sweeps namespaces a lab of this PID namespace left behind when its process died', async () => {
    const dead = spawnSync('true');
    const deadPid = dead.pid!;
    const ns = `ovt-stale-${deadPid}-1`;
    execFileSync('ip', ['netns', 'add', ns]);
    try {
      expect(pidAlive(deadPid)).toBe(false);
      recordOwner(ns, { pid: deadPid, startTime: '1', pidNamespace: fs.readlinkSync('/proc/self/ns/pid') });
      const removed = Lab.sweepStale('ovt');
      expect(removed).toContain(ns);
      expect(netnsExists(ns)).toBe(false);
      expect(fs.existsSync(path.join(OWNER_DIR, ns))).toBe(false);
    } finally {
      spawnSync('ip', ['netns', 'del', ns]);
    }
  });

  it("never sweeps a namespace that is not a lab's of this PID namespace, whatever its name says", async () => {
    const deadPid = spawnSync('true').pid!;
    // No owner record: made by someone else (an older lab, a person, another container).
    const unrecorded = `ovt-other-${deadPid}-1`;
    // Recorded from another PID namespace: its PID means nothing here.
    const foreign = `ovt-other-${deadPid}-2`;
    // Recorded by a live process of ours (this one's parent): still in use.
    const live = `ovt-other-${process.ppid}-3`;
    for (const ns of [unrecorded, foreign, live]) execFileSync('ip', ['netns', 'add', ns]);
    try {
      recordOwner(foreign, { pid: deadPid, startTime: '1', pidNamespace: 'pid:[1]' });
      const ppidStart = fs.readFileSync(`/proc/${process.ppid}/stat`, 'utf8');
      recordOwner(live, { pid: process.ppid, startTime: ppidStart.slice(ppidStart.lastIndexOf(')') + 2).split(' ')[19]!, pidNamespace: fs.readlinkSync('/proc/self/ns/pid') });
      const removed = Lab.sweepStale('ovt');
      for (const ns of [unrecorded, foreign, live]) {
        expect(removed).not.toContain(ns);
        expect(netnsExists(ns)).toBe(true);
      }
    } finally {
      for (const ns of [unrecorded, foreign, live]) {
        spawnSync('ip', ['netns', 'del', ns]);
        fs.rmSync(path.join(OWNER_DIR, ns), { force: true });
      }
    }
  });

  describe('cleanup when the process ends', () => {
    let dir: string;
    beforeAll(() => {
      // Compile lab/*.ts alone (it only needs Node builtins) so a plain node child can use it.
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'overlayfwd-labjs-'));
      for (const file of fs.readdirSync(path.join(ROOT, 'lab')).filter((f) => f.endsWith('.ts'))) {
        const src = fs.readFileSync(path.join(ROOT, 'lab', file), 'utf8');
        const out = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } });
        fs.writeFileSync(path.join(dir, file.replace(/\.ts$/, '.js')), out.outputText);
      }
    });
    afterAll(() => {
      fs.rmSync(dir, { recursive: true, force: true });
    });

    const childScript = (ending: string) => `
      const { Lab } = require(${JSON.stringify(path.join('DIR', 'lab.js'))});
      (async () => {
        const lab = await Lab.create();
        const [a] = await lab.pair('a', 'b');
        const p = lab.spawn(a, 'sleep', ['600']);
        await new Promise((r) => setTimeout(r, 200));
        console.log(JSON.stringify({ ns: lab.namespaceNames, pid: p.pid }));
        ${ending}
      })().catch((e) => { console.error(e); process.exit(3); });
    `;

    async function runChild(ending: string, signal?: NodeJS.Signals): Promise<{ ns: string[]; pid: number; code: number | null; sig: string | null }> {
      const lab = await Lab.create({ prefix: 'ovtc' });
      try {
        const p = lab.spawn(null, process.execPath, ['-e', childScript(ending).replace('DIR', dir)]);
        await p.waitForOutput(/"ns":/, 30_000);
        const info = JSON.parse(p.stdout.split('\n').find((l) => l.startsWith('{'))!) as { ns: string[]; pid: number };
        if (signal) p.child.kill(signal);
        const st = await p.wait(20_000);
        return { ...info, code: st.code, sig: st.signal };
      } finally {
        await lab.destroy();
      }
    }

    it('on a normal exit', async () => {
      const r = await runChild('process.exit(0);');
      expect(r.code).toBe(0);
      expect(r.ns.length).toBe(2);
      for (const ns of r.ns) expect(netnsExists(ns)).toBe(false);
      await waitFor(() => !pidAlive(r.pid), 'spawned sleep to die', 5000);
    });

    it('on SIGTERM (and the process still dies of the signal)', async () => {
      const r = await runChild('setInterval(() => {}, 1000);', 'SIGTERM');
      expect(r.sig).toBe('SIGTERM');
      for (const ns of r.ns) expect(netnsExists(ns)).toBe(false);
      await waitFor(() => !pidAlive(r.pid), 'spawned sleep to die', 5000);
    });

    it('on SIGINT', async () => {
      const r = await runChild('setInterval(() => {}, 1000);', 'SIGINT');
      expect(r.sig).toBe('SIGINT');
      for (const ns of r.ns) expect(netnsExists(ns)).toBe(false);
      await waitFor(() => !pidAlive(r.pid), 'spawned sleep to die', 5000);
    });
  });
});
