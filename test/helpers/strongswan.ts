// strongSwan suites: describeNetns() plus the strongSwan pieces that are not commands on PATH.
import { describe, it } from 'vitest';
import { strongswanUnavailableReason } from '../../lab';
import { describeNetns, REQUIRE_NETNS } from './env';

export const STRONGSWAN_TOOLS = ['swanctl', 'pki', 'tshark', 'unshare'];

/** describeNetns(), plus charon and its plugins; `addon`: the suite also runs overlayfwd. */
export function describeStrongswan(name: string, fn: () => void, options: { addon?: boolean } = {}): void {
  const reason = strongswanUnavailableReason();
  if (!reason) {
    describeNetns(name, { addon: options.addon ?? false, tools: STRONGSWAN_TOOLS }, fn);
  } else if (REQUIRE_NETNS) {
    describe(name, () => {
      it('has its prerequisites (OVERLAYFWD_REQUIRE_NETNS=1)', () => {
        throw new Error(`OVERLAYFWD_REQUIRE_NETNS=1 but this suite cannot run: ${reason}`);
      });
    });
  } else {
    process.stderr.write(`[overlayfwd] skipping "${name}": ${reason} (set OVERLAYFWD_REQUIRE_NETNS=1 to make this a failure)\n`);
    describe.skip(`${name} [skipped: ${reason}]`, fn);
  }
}
