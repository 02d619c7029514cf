// The bare raw-IP baseline: a sendmmsg (a) / recvmmsg (b) of full-size raw IP packets of one
// protocol across the veth pair, no overlay (bench/raw-baseline/raw_blast.c, compiled on demand):
// the ceiling of a raw-IP mode's outer packet rate on this machine.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { commandExists, type Host, type Lab } from '../../lab';
import { checkAborted, errorText, isAborted } from './measure';
import { UNDERLAY_A, UNDERLAY_B, UNDERLAY_MTU } from './modes';
import type { RawBaselineResult, RawBlastRecv, RawBlastSend } from './types';

const RAW_BLAST_BATCH = 64;

/** bench/raw-baseline/raw_blast.c, from dist/bench/netns/ (compiled) or bench/netns/ (source). */
function rawBlastSource(): string {
  for (const p of [path.resolve(__dirname, '../../../bench/raw-baseline/raw_blast.c'), path.resolve(__dirname, '../raw-baseline/raw_blast.c')]) {
    if (fs.existsSync(p)) return p;
  }
  throw new Error('bench/raw-baseline/raw_blast.c not found');
}

/** Compiles raw_blast into `dir` with the system C compiler. */
function buildRawBlast(dir: string): string {
  const out = path.join(dir, 'raw_blast');
  const cc = commandExists('cc') ? 'cc' : commandExists('gcc') ? 'gcc' : null;
  if (!cc) throw new Error('no C compiler (cc) to build raw_blast');
  execFileSync(cc, ['-O2', '-Wall', '-o', out, rawBlastSource()], { stdio: ['ignore', 'pipe', 'pipe'] });
  return out;
}

function lastJsonLine<T>(text: string, who: string): T {
  const line = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('{'))
    .pop();
  if (!line) throw new Error(`${who}: no JSON line in output: ${text.slice(-500)}`);
  return JSON.parse(line) as T;
}

/** raw_blast recv in b, raw_blast send in a, for durationSec. */
async function rawBaseline(lab: Lab, a: Host, b: Host, binary: string, protocol: number, durationSec: number, log: (l: string) => void): Promise<RawBaselineResult> {
  const result: RawBaselineResult = { protocol, packetBytes: UNDERLAY_MTU, batch: RAW_BLAST_BATCH, send: null, recv: null, errors: [] };
  checkAborted();
  log(`netns: bare raw blast: IP proto ${protocol}, ${UNDERLAY_MTU} B packets, sendmmsg/recvmmsg x${RAW_BLAST_BATCH}, ${durationSec} s`);
  const recv = lab.spawn(b, binary, ['recv', '--proto', String(protocol), '--local', UNDERLAY_B, '--batch', String(RAW_BLAST_BATCH), '--idle-ms', '1000', '--max-seconds', String(durationSec + 30)]);
  try {
    await recv.waitForOutput('ready', 10_000);
    const send = await lab.exec(
      a,
      binary,
      ['send', '--proto', String(protocol), '--local', UNDERLAY_A, '--remote', UNDERLAY_B, '--size', String(UNDERLAY_MTU), '--seconds', String(durationSec), '--batch', String(RAW_BLAST_BATCH)],
      { timeoutMs: (durationSec + 30) * 1000 },
    );
    result.send = lastJsonLine<RawBlastSend>(send.stdout, 'raw_blast send');
    await recv.wait(15_000);
    result.recv = lastJsonLine<RawBlastRecv>(recv.stdout, 'raw_blast recv');
    log(
      `netns: bare raw blast proto ${protocol}: sent ${(result.send.pps / 1e3).toFixed(1)} kpps, received ${(result.recv.pps / 1e3).toFixed(1)} kpps ` +
        `(${result.recv.gbps.toFixed(3)} Gbit/s), socket drops ${result.recv.socketDrops}`,
    );
  } catch (err) {
    if (isAborted()) throw err;
    result.errors.push(errorText(err));
    log(`netns: bare raw blast proto ${protocol}: FAILED ${errorText(err)}`);
  } finally {
    await recv.stop(1000).catch(() => undefined);
  }
  return result;
}

/**
 * The baseline measurement of a run: raw_blast is compiled into `dir` on the first call; when
 * that fails, every call returns a result that carries the build error.
 */
export function rawBaselineRunner(dir: string, log: (l: string) => void): (lab: Lab, a: Host, b: Host, protocol: number, durationSec: number) => Promise<RawBaselineResult> {
  let binary: string | null = null;
  let buildError: string | null = null;
  return async (lab, a, b, protocol, durationSec) => {
    if (!binary && !buildError) {
      try {
        binary = buildRawBlast(dir);
      } catch (err) {
        buildError = `building raw_blast: ${errorText(err)}`;
        log(`netns: ${buildError}`);
      }
    }
    if (binary) return rawBaseline(lab, a, b, binary, protocol, durationSec, log);
    return { protocol, packetBytes: UNDERLAY_MTU, batch: RAW_BLAST_BATCH, send: null, recv: null, errors: [buildError!] };
  };
}
