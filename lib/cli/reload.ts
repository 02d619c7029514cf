// overlayfwd reload -n NAME: the instance re-reads its config file and applies what changed.
// overlayfwd showconf [-n NAME] [--show-keys]: the running config as YAML that check accepts.
import YAML from 'yaml';
import { controlRequest } from '../control';
import { EXIT_OK, reportError, requireSocket, resolveSocket, type InstanceOptions } from './common';
import type { ReloadResult } from '../types';

/** What a reload did, in a line: "added c; removed b; changed a", or that nothing changed. */
export function reloadSummary(r: ReloadResult): string {
  if (!r.applied) return 'the config file matches the running config; nothing to change';
  const parts = [
    r.added.length ? `added ${r.added.join(', ')}` : '',
    r.removed.length ? `removed ${r.removed.join(', ')}` : '',
    r.changed.length ? `changed ${r.changed.join(', ')}` : '',
    r.settings.length ? `settings ${r.settings.join(', ')}` : '',
  ].filter(Boolean);
  return `${parts.length ? parts.join('; ') : 'peers unchanged'} (table generation ${r.tableGeneration})`;
}

/** reload: changes the instance, so it must be named (-n NAME or -s SOCKET). */
export async function runReload(opts: InstanceOptions & { json?: boolean }): Promise<number> {
  try {
    const socket = await requireSocket(opts, 'reload');
    // A large peer set takes a while to validate and compile: more than a stats request.
    const result = await controlRequest(socket, { cmd: 'reload' }, 60_000);
    process.stdout.write(opts.json ? `${JSON.stringify(result, null, 2)}\n` : `reloaded: ${reloadSummary(result)}\n`);
    return EXIT_OK;
  } catch (err) {
    // A refusal (invalid, or a change that needs a restart) is a config error: exit 2.
    return reportError(err, 'reload refused; the running config stays');
  }
}

/** showconf: read-only; keys only with --show-keys (they cross the root-only socket then). */
export async function runShowconf(opts: InstanceOptions & { json?: boolean; showKeys?: boolean }): Promise<number> {
  try {
    const socket = await resolveSocket(opts);
    const config = await controlRequest(socket, { cmd: 'showconf', showKeys: opts.showKeys === true });
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
    } else {
      const name = typeof config['name'] === 'string' ? config['name'] : 'the instance';
      const note = opts.showKeys ? 'keys included: keep this file private (chmod 600)' : 'secrets shown as <redacted>; --show-keys prints them';
      process.stdout.write(`# running config of ${name} (peers added at runtime included); ${note}\n`);
      process.stdout.write(YAML.stringify(config, { lineWidth: 0 }));
    }
    return EXIT_OK;
  } catch (err) {
    return reportError(err);
  }
}
