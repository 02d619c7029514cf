// Skip logic for tests that need root, network namespaces, the native addon or outside tools.
//
// Without the prerequisites such a suite is skipped with the reason in its name (and a warning
// on stderr). With OVERLAYFWD_REQUIRE_NETNS=1 (CI, which is root) a missing prerequisite is a
// FAILURE instead: the suite is replaced by one failing test that names what is missing.
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'vitest';
import { commandExists, labUnavailableReason } from '../../lab';
import { addonOverride } from '../../lib/native';

export const ROOT = path.resolve(__dirname, '..', '..');
export const REQUIRE_NETNS = process.env.OVERLAYFWD_REQUIRE_NETNS === '1';

export interface Needs {
  /** The native addon (build/Release/overlayfwd.node, or the file OVERLAYFWD_ADDON names). Default true. */
  addon?: boolean;
  /** Executables that must be on PATH, e.g. ['iperf3', 'tshark']. 'ip' and 'python3' are always checked. */
  tools?: string[];
  /** Anything else the suite needs: why it is missing, or null. */
  also?: () => string | null;
}

/** Why the native data path cannot run, or null. */
export function addonUnavailableReason(): string | null {
  // The addon OVERLAYFWD_ADDON names (the sanitizer build) replaces node-gyp's.
  try {
    if (addonOverride()) return null;
  } catch (err) {
    return (err as Error).message;
  }
  const addon = path.join(ROOT, 'build', 'Release', 'overlayfwd.node');
  if (!fs.existsSync(addon)) return 'native addon not built (build/Release/overlayfwd.node is missing; run npm install)';
  return null;
}

/** The first missing prerequisite, or null when everything is there. */
export function missingPrerequisite(needs: Needs = {}): string | null {
  const lab = labUnavailableReason();
  if (lab) return lab;
  for (const tool of ['ip', 'python3', ...(needs.tools ?? [])]) {
    if (!commandExists(tool)) return `${tool} is not installed`;
  }
  if (needs.addon !== false) {
    const addon = addonUnavailableReason();
    if (addon) return addon;
  }
  return needs.also?.() ?? null;
}

/**
 * describe() for a suite that needs network namespaces: runs it when the prerequisites are met,
 * skips it visibly when not, and fails it under OVERLAYFWD_REQUIRE_NETNS=1.
 */
export function describeNetns(name: string, needs: Needs, fn: () => void): void {
  const reason = missingPrerequisite(needs);
  if (!reason) {
    describe(name, fn);
    return;
  }
  if (REQUIRE_NETNS) {
    describe(name, () => {
      it('has its prerequisites (OVERLAYFWD_REQUIRE_NETNS=1)', () => {
        throw new Error(`OVERLAYFWD_REQUIRE_NETNS=1 but this suite cannot run: ${reason}`);
      });
    });
    return;
  }
  process.stderr.write(`[overlayfwd] skipping "${name}": ${reason} (set OVERLAYFWD_REQUIRE_NETNS=1 to make this a failure)\n`);
  describe.skip(`${name} [skipped: ${reason}]`, fn);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `cond` every `intervalMs` until it is true; rejects with `what` after timeoutMs. */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000, intervalMs = 50): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}
