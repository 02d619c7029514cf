// Micro bench: the native VXLAN codec alone (no device, no socket, no syscalls).
// Each tinybench task calls codecBench(op, size, 256, rounds) once per iteration; the native side
// times its own loop and that time replaces tinybench's (overriddenDuration), so the figures are
// free of the JS → C++ call overhead.
import { Bench } from 'tinybench';
import { loadCodecBench } from './codec-addon';

export const MICRO_OPS = ['vxlan-encap', 'vxlan-decap'] as const;
export const MICRO_SIZES = [64, 512, 1450] as const;
/** Buffers per codecBench call (the batch the native loop cycles through). */
export const MICRO_PACKETS = 256;

export interface MicroOptions {
  quick: boolean;
  /** Native loop repetitions per call (default 32: 8192 packets, ~0.1–0.3 ms a call). */
  rounds?: number;
  log?: (line: string) => void;
}

export interface MicroResult {
  op: string;
  size: number;
  /** Packets per codecBench call (MICRO_PACKETS × rounds). */
  packetsPerCall: number;
  /** Measured calls (tinybench samples, warmup excluded). */
  calls: number;
  /** Mean native ns per packet (tinybench latency mean / packets per call). */
  nsPerPacket: number;
  /** Median native ns per packet. */
  p50NsPerPacket: number;
  /** Million packets per second on one core: 1000 / nsPerPacket. */
  mpps: number;
  /** tinybench's relative margin of error of the mean, in percent. */
  rmePercent: number;
  /** Sums over the measured calls, straight from codecBench: packets / nanoseconds. */
  totalPackets: number;
  totalNanoseconds: number;
}

export async function runMicro(options: MicroOptions): Promise<MicroResult[]> {
  const log = options.log ?? (() => undefined);
  const native = loadCodecBench();
  const rounds = options.rounds ?? 32;
  const packetsPerCall = MICRO_PACKETS * rounds;
  const bench = new Bench({
    name: 'overlayfwd codec',
    time: options.quick ? 150 : 1000,
    warmupTime: options.quick ? 30 : 200,
    iterations: 10,
    throws: true,
  });

  const totals = new Map<string, { packets: number; ns: number; phase: string }>();
  const key = (op: string, size: number) => `${op} ${size}B`;

  for (const op of MICRO_OPS) {
    for (const size of MICRO_SIZES) {
      const name = key(op, size);
      const acc = { packets: 0, ns: 0, phase: 'warmup' };
      totals.set(name, acc);
      bench.add(
        name,
        () => {
          const r = native.codecBench(op, size, MICRO_PACKETS, rounds);
          if (r.packets !== packetsPerCall || !(r.nanoseconds > 0)) {
            throw new Error(`codecBench(${op}, ${size}) returned ${JSON.stringify(r)}, expected ${packetsPerCall} packets`);
          }
          if (acc.phase === 'run') {
            acc.packets += r.packets;
            acc.ns += r.nanoseconds;
          }
          return { overriddenDuration: r.nanoseconds / 1e6 };
        },
        {
          // Count only the measured phase, not the warmup.
          beforeAll(mode) {
            acc.phase = mode ?? 'run';
            acc.packets = 0;
            acc.ns = 0;
          },
        },
      );
    }
  }

  log(`micro: ${bench.tasks.length} tasks, ${packetsPerCall} packets per call, ${bench.time} ms each`);
  await bench.run();

  const results: MicroResult[] = [];
  for (const op of MICRO_OPS) {
    for (const size of MICRO_SIZES) {
      const name = key(op, size);
      const task = bench.getTask(name);
      if (!task) throw new Error(`tinybench lost task ${name}`);
      const r = task.result;
      if (r.state === 'errored') throw r.error;
      if (r.state !== 'completed' && r.state !== 'aborted-with-statistics') throw new Error(`task ${name} ended ${r.state}`);
      const acc = totals.get(name)!;
      const nsPerPacket = (r.latency.mean * 1e6) / packetsPerCall;
      results.push({
        op,
        size,
        packetsPerCall,
        calls: r.latency.samplesCount,
        nsPerPacket,
        p50NsPerPacket: (r.latency.p50 * 1e6) / packetsPerCall,
        mpps: 1000 / nsPerPacket,
        rmePercent: r.latency.rme,
        totalPackets: acc.packets,
        totalNanoseconds: acc.ns,
      });
    }
  }
  return results;
}
