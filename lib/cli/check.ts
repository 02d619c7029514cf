// overlayfwd check -c FILE [--json]: validate, and print the effective config with defaults filled in.
import YAML from 'yaml';
import { overheadFor } from '../config';
import { printableConfig } from '../config/printable';
import { sourceName } from '../config/load';
import type { ResolvedConfig } from '../types';
import { EXIT_OK, readConfig, reportError } from './common';

export { printableConfig, redact } from '../config/printable';

/** check -c FILE ("-": stdin). */
export async function runCheck(opts: { config: string; json?: boolean }): Promise<number> {
  let config: ResolvedConfig;
  try {
    config = await readConfig(opts.config);
  } catch (err) {
    return reportError(err, `invalid config ${sourceName(opts.config)}`);
  }
  const printable = printableConfig(config);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(printable, null, 2)}\n`);
  } else {
    let overhead = '';
    try {
      overhead = `; ${config.encap.type} overhead ${overheadFor(config)} bytes`;
    } catch {
      // no fixed overhead for this mode
    }
    const secrets = config.encap.type === 'esp' ? '; SA keys not shown' : '';
    process.stdout.write(`# ${sourceName(opts.config)}: valid${overhead}${secrets}\n`);
    process.stdout.write(YAML.stringify(printable, { lineWidth: 0 }));
  }
  return EXIT_OK;
}
