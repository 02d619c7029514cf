// `overlayfwd demo` end to end (short), and that it leaves nothing behind.
import { execFileSync } from 'node:child_process';
import { expect, it } from 'vitest';
import { runDemo } from '../../lib/cli/demo';
import { describeNetns } from '../helpers/env';

function demoNamespaces(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(`ovd-`) && n.includes(`-${process.pid}-`));
}

describeNetns('overlayfwd demo', {}, () => {
  it('moves traffic across the overlay, prints live stats and cleans up', async () => {
    const lines: string[] = [];
    const code = await runDemo({ durationSeconds: 4, write: (l) => lines.push(l) });
    const text = lines.join('\n');
    expect(code, text).toBe(0);
    expect(text).toMatch(/ping a -> b .*: 3\/3 replies/);
    // Live lines once a second while iperf3 runs (a busy machine may fire a timer late, so
    // ask for two of each, not for particular seconds).
    expect(text.match(/\[\s*\d+s\] a peer b: tx [\d,]+ pkt/g)?.length ?? 0, text).toBeGreaterThanOrEqual(2);
    expect(text.match(/\[\s*\d+s\] b peer a: .*rx [\d,]+ pkt/g)?.length ?? 0, text).toBeGreaterThanOrEqual(2);
    expect(text).toContain('traffic crossed the overlay: OK');
    expect(demoNamespaces()).toEqual([]);
  });
});
