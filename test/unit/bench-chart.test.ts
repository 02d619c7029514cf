// The bench's chart (bench/netns/chart.ts) drawn from a committed result: a bar per mode and for
// the ceiling, each as long as its ratio (against the kernel run right before that mode), the
// kernel's line at 1, the ceiling's dashed line at its ratio, and an SVG that XML tools can read.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { chartPanels, renderChart } from '../../bench/netns/chart';
import type { NetnsResult } from '../../bench/netns/types';
import { ROOT } from '../helpers/env';

const RESULT = path.join(ROOT, 'bench', 'results', '20261202T120208Z.json');
const run = (JSON.parse(fs.readFileSync(RESULT, 'utf8')) as { netns: NetnsResult }).netns;

const attributes = (tag: string) => Object.fromEntries([...tag.matchAll(/([\w-]+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));

describe('bench chart', () => {
  it('draws a bar per mode at its paired ratio, and the ceiling', () => {
    const [tcp, udp] = chartPanels(run);
    const expected = [run.overlayfwd!, ...run.modePhases].map((p) => p.tcp!.bitsPerSecond / p.pairedKernel!.bitsPerSecond);
    const bars = tcp!.bars.filter((b) => b.kind === 'overlayfwd');
    expect(bars.map((b) => b.label)).toEqual([
      'overlayfwd vxlan (TAP, IPv4 underlay)',
      'overlayfwd geneve (TUN)',
      'overlayfwd gre-udp (TUN)',
      'overlayfwd esp aes-256-gcm (TUN, UDP 4500)',
    ]);
    bars.forEach((b, i) => expect(b.ratio).toBeCloseTo(expected[i]!, 6));
    const ceiling = run.ceiling!.tcp!.bitsPerSecond / run.kernel!.tcp!.bitsPerSecond;
    expect(tcp!.bars[0]).toMatchObject({ kind: 'ceiling' });
    expect(tcp!.bars[0]!.ratio).toBeCloseTo(ceiling, 6);
    expect(tcp!.ceiling).toBeCloseTo(ceiling, 6);
    expect(udp!.bars.map((b) => b.kind)).toEqual(['ceiling', 'overlayfwd']);
    expect(udp!.bars[1]!.ratio).toBeCloseTo(run.overlayfwd!.udp!.receivedPps / run.kernel!.udp!.receivedPps, 6);
  });

  it('makes each bar as long as its ratio, with the kernel at 1', () => {
    const svg = renderChart(run, 'caption & <more>');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).toContain('caption &amp; &lt;more&gt;');
    // Every element is closed (a well-formed document a browser will draw).
    const opened = (svg.match(/<(svg|text|style)\b/g) ?? []).length;
    const closed = (svg.match(/<\/(svg|text|style)>/g) ?? []).length;
    expect(opened).toBe(closed);
    const rects = [...svg.matchAll(/<rect class="bar [^>]*>/g)].map((m) => attributes(m[0]));
    const panels = chartPanels(run);
    expect(rects.length).toBe(panels.reduce((n, p) => n + p.bars.length, 0));
    const kernel = [...svg.matchAll(/<line class="kernel" [^>]*>/g)].map((m) => Number(attributes(m[0])['x1']));
    expect(kernel.length).toBe(panels.length);
    const left = Number(rects[0]!['x']);
    // width / ratio is one scale for every bar: the kernel's line is where a bar of ratio 1 ends.
    for (const r of rects) {
      const perUnit = Number(r['width']) / Number(r['data-ratio']);
      expect(perUnit).toBeCloseTo(kernel[0]! - left, 0);
    }
    expect(svg.match(/<line class="ceiling"/g)?.length).toBe(2);
  });
});
