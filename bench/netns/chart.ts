// The netns bench as a picture: one SVG of ratios to the kernel VXLAN device, from one run's
// result. A bar per overlayfwd mode (single-stream TCP, each against the kernel run right before
// it) and for the ceiling forwarder; a line at 1 for the kernel and a dashed one at the
// ceiling's ratio; then 64-byte UDP packets per second, the same way. The README shows the one
// drawn from the run its tables come from (bench/results/<stamp>.svg).
import { MODE_SPECS } from './modes';
import { headline, kernelReference, vxlanPhase } from './report';
import type { NetnsResult, PhaseResult } from './types';

export interface ChartBar {
  label: string;
  ratio: number;
  kind: 'ceiling' | 'overlayfwd';
}

export interface ChartPanel {
  title: string;
  bars: ChartBar[];
  /** The ceiling's ratio, drawn as a dashed line too; null without a ceiling phase. */
  ceiling: number | null;
}

const finite = (x: number | null | undefined): x is number => typeof x === 'number' && Number.isFinite(x) && x > 0;

/** A phase's TCP ÷ the kernel: against the kernel run right before it, else the run's reference. */
function tcpRatio(r: NetnsResult, p: PhaseResult): number | null {
  const bps = p.tcp?.bitsPerSecond;
  const paired = p.pairedKernel?.bitsPerSecond;
  const ref = kernelReference(r).bitsPerSecond;
  if (finite(bps) && finite(paired)) return bps / paired;
  if (finite(bps) && finite(ref)) return bps / ref;
  return null;
}

/** What the chart draws, as data (the unit test reads it as the SVG does). */
export function chartPanels(r: NetnsResult): ChartPanel[] {
  const h = r.headline ?? headline(r);
  const ceilingTcp = h?.tcpGbps.ceilingOverKernel ?? null;
  const tcp: ChartBar[] = [];
  if (finite(ceilingTcp)) tcp.push({ label: 'ceiling forwarder (bench/ceiling)', ratio: ceilingTcp, kind: 'ceiling' });
  const vx = vxlanPhase(r);
  const phases = [...(vx ? [vx] : []), ...r.modePhases.filter((p) => p !== vx)];
  for (const p of phases) {
    const ratio = tcpRatio(r, p);
    if (ratio !== null) tcp.push({ label: `overlayfwd ${MODE_SPECS[p.mode ?? 'vxlan'].label}`, ratio, kind: 'overlayfwd' });
  }
  const panels: ChartPanel[] = [{ title: 'TCP, 1 stream: throughput ÷ the kernel VXLAN device', bars: tcp, ceiling: finite(ceilingTcp) ? ceilingTcp : null }];
  const udp: ChartBar[] = [];
  const ceilingUdp = h?.udp64Kpps.ceilingOverKernel ?? null;
  if (finite(ceilingUdp)) udp.push({ label: 'ceiling forwarder (bench/ceiling)', ratio: ceilingUdp, kind: 'ceiling' });
  const ovlUdp = h?.udp64Kpps.overlayfwdOverKernel ?? null;
  if (finite(ovlUdp)) udp.push({ label: 'overlayfwd vxlan (TAP, IPv4 underlay)', ratio: ovlUdp, kind: 'overlayfwd' });
  if (udp.length) panels.push({ title: '64-byte UDP: packets/s received ÷ the kernel VXLAN device', bars: udp, ceiling: finite(ceilingUdp) ? ceilingUdp : null });
  return panels;
}

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const WIDTH = 900;
const LABEL_WIDTH = 350;
const PLOT_WIDTH = WIDTH - LABEL_WIDTH - 70;
const BAR = 20;
const GAP = 8;
const COLORS = { overlayfwd: '#2f6db5', ceiling: '#9a9a9a', kernel: '#c0392b' };

/** The SVG of a run's chart; `caption` goes under the title (the commit and the date, say). */
export function renderChart(r: NetnsResult, caption: string): string {
  const panels = chartPanels(r);
  const most = Math.max(1, ...panels.flatMap((p) => p.bars.map((b) => b.ratio)));
  const scale = Math.ceil(most * 5) / 5; // the axis ends at the next 0.2 past the largest ratio
  const x = (ratio: number) => LABEL_WIDTH + (ratio / scale) * PLOT_WIDTH;
  const out: string[] = [];
  let y = 56;
  for (const panel of panels) {
    out.push(`<text x="10" y="${y}" class="panel">${escape(panel.title)}</text>`);
    y += 12;
    const top = y;
    for (const bar of panel.bars) {
      const w = Math.max(1, x(bar.ratio) - LABEL_WIDTH);
      out.push(
        `<text x="${LABEL_WIDTH - 8}" y="${y + BAR - 6}" text-anchor="end">${escape(bar.label)}</text>`,
        `<rect class="bar ${bar.kind}" data-ratio="${bar.ratio.toFixed(4)}" x="${LABEL_WIDTH}" y="${y}" width="${w.toFixed(1)}" height="${BAR}" fill="${COLORS[bar.kind]}"/>`,
        `<text x="${(LABEL_WIDTH + w + 6).toFixed(1)}" y="${y + BAR - 6}">${bar.ratio.toFixed(3)}×</text>`,
      );
      y += BAR + GAP;
    }
    const bottom = y - GAP + 4;
    out.push(`<line class="kernel" x1="${x(1).toFixed(1)}" x2="${x(1).toFixed(1)}" y1="${top - 4}" y2="${bottom}" stroke="${COLORS.kernel}" stroke-width="2"/>`);
    out.push(`<text x="${x(1).toFixed(1)}" y="${bottom + 14}" text-anchor="middle" fill="${COLORS.kernel}">kernel = 1</text>`);
    if (panel.ceiling !== null) {
      out.push(`<line class="ceiling" x1="${x(panel.ceiling).toFixed(1)}" x2="${x(panel.ceiling).toFixed(1)}" y1="${top - 4}" y2="${bottom}" stroke="#555" stroke-width="1.5" stroke-dasharray="5,4"/>`);
    }
    y = bottom + 40;
  }
  const height = y - 10;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="13">`,
    '<style>.panel{font-weight:bold}.title{font-size:16px;font-weight:bold}.caption{fill:#555}</style>',
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    `<text x="10" y="22" class="title">overlayfwd against the kernel's own VXLAN device (same veth underlay, same run)</text>`,
    `<text x="10" y="40" class="caption">${escape(caption)}</text>`,
    ...out,
    '</svg>',
    '',
  ].join('\n');
}
