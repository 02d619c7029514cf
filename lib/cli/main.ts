#!/usr/bin/env node
// The overlayfwd command. Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.
import fs from 'node:fs';
import path from 'node:path';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { runCheck } from './check';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, reportError } from './common';
import { runFdb, runPeersAdd, runPeersList, runPeersRemove } from './peers';
import { runNodes, runRegistryInit, runRegistryShow } from './registry';
import { runStats } from './stats';
import { runUp } from './up';

function packageVersion(): string {
  // lib/cli (sources) or dist/lib/cli (compiled): walk up to the package's own package.json.
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'overlayfwd' && pkg.version) return pkg.version;
    } catch {
      // keep looking
    }
    if (path.dirname(dir) === dir) return 'unknown';
  }
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function seconds(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !(n > 0)) throw new InvalidArgumentError('must be a positive number of seconds');
  return n;
}

const INSTANCE_HELP = 'instance name: its control socket is /run/overlayfwd/NAME.sock (default: the only running instance)';

/** Builds the command tree; each action stores its exit code through `setCode`. */
export function buildProgram(setCode: (code: number) => void): Command {
  const program = new Command();
  program
    .name('overlayfwd')
    .description('Userspace overlay-network forwarder (VXLAN, Geneve, GRE, GRE-in-UDP, IP-in-IP, ESP) for Node.js')
    .version(packageVersion(), '-v, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
    .addHelpCommand(false);

  program
    .command('up')
    .description('start an instance from a config file and run it in the foreground until SIGINT/SIGTERM')
    .requiredOption('-c, --config <file>', 'config file (YAML or JSON)')
    .option('--log-level <level>', 'warn (default), info (every IKE exchange and state change) or debug', 'warn')
    .action(async (opts: { config: string; logLevel?: string }) => setCode(await runUp(opts)));

  program
    .command('check')
    .description('validate a config file and print the effective config, defaults filled in')
    .requiredOption('-c, --config <file>', 'config file (YAML or JSON)')
    .option('--json', 'print JSON instead of YAML')
    .action((opts: { config: string; json?: boolean }) => setCode(runCheck(opts)));

  program
    .command('stats')
    .description("show a running instance's counters: per peer and totals")
    .option('-n, --instance <name>', INSTANCE_HELP)
    .option('-s, --socket <path>', 'control socket path (instead of -n)')
    .option('--json', 'print the stats object as JSON (with --watch: one line per second)')
    .option('-w, --watch', 'refresh every second, with rates, until Ctrl-C')
    .action(async (opts: { instance?: string; socket?: string; json?: boolean; watch?: boolean }) =>
      setCode(await runStats(opts)),
    );

  const peers = program.command('peers').description("list or change a running instance's peers");
  peers
    .command('list')
    .description('list peers')
    .option('-n, --instance <name>', INSTANCE_HELP)
    .option('-s, --socket <path>', 'control socket path (instead of -n)')
    .option('--json', 'print JSON')
    .action(async (opts: { instance?: string; socket?: string; json?: boolean }) => setCode(await runPeersList(opts)));
  peers
    .command('add')
    .description('add a peer')
    .option('-n, --instance <name>', INSTANCE_HELP)
    .option('-s, --socket <path>', 'control socket path (instead of -n)')
    .requiredOption('--name <peer>', 'peer name')
    .requiredOption('--endpoint <addr[:port]>', 'underlay address of the peer, e.g. 198.18.0.2 or [fd00::2]:4789')
    .option('--mac <mac>', 'static forwarding entry toward this peer (repeatable)', collect)
    .option('--allowed-ip <cidr>', 'prefix routed to this peer (repeatable)', collect)
    .action(async (opts: { instance?: string; socket?: string; name: string; endpoint: string; mac?: string[]; allowedIp?: string[] }) =>
      setCode(await runPeersAdd(opts)),
    );
  peers
    .command('remove')
    .description('remove a peer')
    .option('-n, --instance <name>', INSTANCE_HELP)
    .option('-s, --socket <path>', 'control socket path (instead of -n)')
    .requiredOption('--name <peer>', 'peer name')
    .action(async (opts: { instance?: string; socket?: string; name: string }) => setCode(await runPeersRemove(opts)));

  program
    .command('fdb')
    .description("show a running instance's forwarding table (static and learned MACs)")
    .option('-n, --instance <name>', INSTANCE_HELP)
    .option('-s, --socket <path>', 'control socket path (instead of -n)')
    .option('--json', 'print JSON')
    .action(async (opts: { instance?: string; socket?: string; json?: boolean }) => setCode(await runFdb(opts)));

  const registry = program.command('registry').description("the registry's network and hosts in etcd (registry mode)");
  registry
    .command('init')
    .description("write the network's settings to etcd: the network, its subnet length and the config's encapsulation")
    .requiredOption('-c, --config <file>', 'config file with a registry: section (etcd endpoints, prefix)')
    .option('--network <cidr>', 'the IPv4 network the hosts get subnets of (default: registry.network)')
    .option('--subnet-length <n>', 'prefix length of each host subnet (default: registry.subnetLength)', (v) => {
      if (!/^\d+$/.test(v)) throw new InvalidArgumentError('must be an integer');
      return Number(v);
    })
    .option('--force', 'replace the settings etcd holds (hosts that disagree stop joining)')
    .action(async (opts: { config: string; network?: string; subnetLength?: number; force?: boolean }) => setCode(await runRegistryInit(opts)));
  registry
    .command('show')
    .description('print what etcd holds under the prefix: the network and every host record')
    .requiredOption('-c, --config <file>', 'config file with a registry: section')
    .option('--json', 'print JSON')
    .action(async (opts: { config: string; json?: boolean }) => setCode(await runRegistryShow(opts)));

  program
    .command('nodes')
    .description("show the registry's hosts as a running instance knows them, and whether each is a peer")
    .option('-n, --instance <name>', INSTANCE_HELP)
    .option('-s, --socket <path>', 'control socket path (instead of -n)')
    .option('--json', 'print JSON')
    .action(async (opts: { instance?: string; socket?: string; json?: boolean }) => setCode(await runNodes(opts)));

  program
    .command('demo')
    .description('self-contained demo: two network namespaces, traffic, live stats (needs root)')
    .option('-d, --duration <seconds>', 'stop after this many seconds (default: until Ctrl-C)', seconds)
    .action(async (opts: { duration?: number }) => {
      const { runDemo } = await import('./demo');
      setCode(await runDemo(opts.duration === undefined ? {} : { durationSeconds: opts.duration }));
    });

  program.addHelpText(
    'after',
    `
Examples:
  overlayfwd check -c overlay.yaml
  overlayfwd up -c overlay.yaml
  overlayfwd stats -n ovl0 --watch
  overlayfwd peers add -n ovl0 --name c --endpoint 198.18.0.3 --mac 02:00:00:00:00:03
  overlayfwd peers remove -n ovl0 --name c
  overlayfwd registry init -c overlay.yaml --network 10.100.0.0/16 --subnet-length 24
  overlayfwd nodes -n ovl0

Exit status: 0 ok, 1 runtime failure, 2 usage or config error.`,
  );
  return program;
}

/** Runs the CLI with `argv` (node, script, args...) and resolves to the exit code. */
export async function main(argv: string[] = process.argv): Promise<number> {
  let code = EXIT_OK;
  const program = buildProgram((c) => {
    code = c;
  });
  try {
    await program.parseAsync(argv);
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit 0; everything else commander rejects is a usage error.
      return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    return reportError(err) || EXIT_FAILURE;
  }
}

if (require.main === module) {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT_OK);
  });
  void main().then((code) => {
    process.exitCode = code;
    // Whatever may still hold the event loop open once the command is done must not keep us alive.
    setTimeout(() => process.exit(code), 3000).unref();
  });
}
