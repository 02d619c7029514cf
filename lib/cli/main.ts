#!/usr/bin/env node
// The overlayfwd command. Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ESP_CIPHERS, parseSpi } from '../config';
import type { EspCipher } from '../types';
import { runCheck } from './check';
import { runDrops, type DropsOptions } from './drops';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, packageVersion, reportError, UsageError } from './common';
import { DEFAULT_GENKEY_CIPHER, runGenkey } from './genkey';
import { runFdb, runPeersAdd, runPeersList, runPeersRemove, type AddOptions } from './peers';
import { runNodes, runRegistryInit, runRegistryShow } from './registry';
import { runReload, runShowconf } from './reload';
import { runStats } from './stats';
import { runUp } from './up';

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function seconds(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !(n > 0)) throw new InvalidArgumentError('must be a positive number of seconds');
  return n;
}

/**
 * How a command reaches a running instance. Read-only commands (stats, peers list, fdb, nodes,
 * showconf) may leave the instance out when exactly one is running; commands that change an
 * instance (peers add|remove, reload) must name it with -n NAME or -s SOCKET, and call
 * requireSocket() where read-only ones call resolveSocket().
 */
type Access = 'read-only' | 'mutating';

function withInstance(command: Command, access: Access): Command {
  return command
    .option(
      '-n, --instance <name>',
      access === 'mutating'
        ? 'instance name: its control socket is /run/overlayfwd/NAME.sock (required, or -s)'
        : 'instance name: its control socket is /run/overlayfwd/NAME.sock (default: the only running instance)',
    )
    .option('-s, --socket <path>', 'control socket path (instead of -n)');
}

const CONFIG_HELP = 'config file (YAML or JSON); - reads it from stdin';

/** The command's name as typed after `overlayfwd`: "peers add". */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** Builds the command tree; each action stores its exit code through `setCode`. */
export function buildProgram(setCode: (code: number) => void): Command {
  const program = new Command();
  program
    .name('overlayfwd')
    .description('Userspace overlay-network forwarder (VXLAN, Geneve, GRE, GRE-in-UDP, IP-in-IP, ESP) for Node.js')
    .version(packageVersion(), '-v, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .exitOverride()
    // One prefix for every error, commander's own included ("error: unknown option" otherwise).
    .configureOutput({ outputError: (text, write) => write(text.replace(/^error: /, 'overlayfwd: ')) })
    .helpCommand(false);

  program.commandsGroup('Run an instance:');
  program
    .command('up')
    .description('start an instance from a config file and run it in the foreground until SIGINT/SIGTERM')
    .requiredOption('-c, --config <file>', CONFIG_HELP)
    .option(
      '--log-level <level>',
      'error, warn (warnings, errors and the drop summary), info (also start and stop, peers, IKE, registry, offloads), debug or silent',
      'warn',
    )
    .action(async (opts: { config: string; logLevel?: string }) => setCode(await runUp(opts)));

  program
    .command('check')
    .description('validate a config file and print the effective config, defaults filled in')
    .requiredOption('-c, --config <file>', CONFIG_HELP)
    .option('--json', 'print JSON instead of YAML')
    .action(async (opts: { config: string; json?: boolean }) => setCode(await runCheck(opts)));

  program.commandsGroup('A running instance (-n NAME or -s SOCKET; the read-only ones may leave it out when only one runs):');
  withInstance(program.command('stats').description("show a running instance's counters: per peer and totals"), 'read-only')
    .option('--json', 'print the stats object as JSON (with --watch: one line per second)')
    .option('-w, --watch', 'refresh every second, with rates, until Ctrl-C')
    .action(async (opts: { instance?: string; socket?: string; json?: boolean; watch?: boolean }) => setCode(await runStats(opts)));

  const peers = program
    .command('peers')
    .description("list a running instance's peers (read-only), or add and remove them (-n NAME or -s SOCKET required)")
    .helpCommand(false);
  withInstance(peers.command('list').description('list peers'), 'read-only')
    .option('--json', 'print JSON')
    .action(async (opts: { instance?: string; socket?: string; json?: boolean }) => setCode(await runPeersList(opts)));
  withInstance(peers.command('add').description('add a peer (esp: its SAs from --sa-file; keys never go on the command line)'), 'mutating')
    .requiredOption('--name <peer>', 'peer name')
    .requiredOption('--endpoint <addr[:port]>', 'underlay address of the peer, e.g. 198.18.0.2 or [fd00::2]:4789')
    .option('--mac <mac>', 'static forwarding entry toward this peer (repeatable)', collect)
    .option('--allowed-ip <cidr>', 'prefix routed to this peer (repeatable)', collect)
    .option('--sa-file <file>', 'esp: a YAML/JSON file holding the SAs, out: { spi, key } and in: { spi, key } (- reads stdin)')
    .option('--json', 'print the peer as added (SPIs, never keys) as JSON')
    .action(async (opts: AddOptions) => setCode(await runPeersAdd(opts)));
  withInstance(peers.command('remove').description('remove a peer'), 'mutating')
    .requiredOption('--name <peer>', 'peer name')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { instance?: string; socket?: string; name: string; json?: boolean }) => setCode(await runPeersRemove(opts)));

  withInstance(program.command('fdb').description("show a running instance's forwarding table (static and learned MACs)"), 'read-only')
    .option('--json', 'print JSON')
    .action(async (opts: { instance?: string; socket?: string; json?: boolean }) => setCode(await runFdb(opts)));

  withInstance(program.command('nodes').description("show the registry's hosts as a running instance knows them, and whether each is a peer"), 'read-only')
    .option('--json', 'print JSON')
    .action(async (opts: { instance?: string; socket?: string; json?: boolean }) => setCode(await runNodes(opts)));

  withInstance(program.command('drops').description("show a running instance's most recent dropped packets: reason, peer, worker, time and first bytes"), 'read-only')
    .option('-f, --follow', 'keep printing drops as they happen, until Ctrl-C')
    .option('--pcap <file>', 'write them as a pcapng capture instead, the reason, peer and worker in each packet comment (- for stdout)')
    .option('--json', 'print JSON (with --follow: one line per drop)')
    .action(async (opts: DropsOptions) => setCode(await runDrops(opts)));

  withInstance(program.command('showconf').description('print the running config (peers added at runtime included) as YAML that check accepts'), 'read-only')
    .option('--show-keys', 'print SA keys and pre-shared keys instead of <redacted>')
    .option('--json', 'print JSON')
    .action(async (opts: { instance?: string; socket?: string; json?: boolean; showKeys?: boolean }) => setCode(await runShowconf(opts)));

  withInstance(
    program
      .command('reload')
      .description('re-read the config file and apply what changed (peers, routes, SAs) without a lost packet; also SIGHUP'),
    'mutating',
  )
    .option('--json', 'print what changed as JSON')
    .action(async (opts: { instance?: string; socket?: string; json?: boolean }) => setCode(await runReload(opts)));

  program.commandsGroup('Keys and the registry:');
  program
    .command('genkey')
    .description('print a fresh ESP key (hex: cipher key + 4-byte salt) for a manual SA, as wg genkey does')
    .addOption(new Option('--cipher <cipher>', 'the cipher the key is for').choices(ESP_CIPHERS).default(DEFAULT_GENKEY_CIPHER))
    .option('--spi <spi>', 'print { spi, key } for a config or an SA file, with this SPI (e.g. 0x1001)', (v: string) => {
      const r = parseSpi(v);
      if (!r.ok) throw new InvalidArgumentError(r.message);
      return r.value;
    })
    .action((opts: { cipher: EspCipher; spi?: number }) => setCode(runGenkey(opts)));

  const registry = program.command('registry').description("the registry's network and hosts in etcd (registry mode)").helpCommand(false);
  registry
    .command('init')
    .description("write the network's settings to etcd: the network, its subnet length and the config's encapsulation")
    .requiredOption('-c, --config <file>', 'config file with a registry: section (etcd endpoints, prefix); - reads stdin')
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
    .requiredOption('-c, --config <file>', 'config file with a registry: section; - reads stdin')
    .option('--json', 'print JSON')
    .action(async (opts: { config: string; json?: boolean }) => setCode(await runRegistryShow(opts)));

  program.commandsGroup('Other:');
  program
    .command('demo')
    .description('self-contained demo: two network namespaces, traffic, live stats (needs root)')
    .option('-d, --duration <seconds>', 'length of the traffic run (default 5)', seconds)
    .action(async (opts: { duration?: number }) => {
      const { runDemo } = await import('./demo');
      setCode(await runDemo(opts.duration === undefined ? {} : { durationSeconds: opts.duration }));
    });

  program
    .command('help [command...]')
    .description('show help for overlayfwd, or for one command (overlayfwd help peers add)')
    .action((names: string[]) => {
      let command: Command = program;
      for (const name of names) {
        const sub = command.commands.find((c) => c.name() === name || c.aliases().includes(name));
        if (!sub) {
          const where = command === program ? '' : ` of '${commandPath(command)}'`;
          throw new UsageError(`no command '${name}'${where} (overlayfwd help lists them)`);
        }
        command = sub;
      }
      command.outputHelp();
      setCode(EXIT_OK);
    });

  program.addHelpText(
    'after',
    `
Examples:
  overlayfwd check -c overlay.yaml
  overlayfwd up -c overlay.yaml
  generate-config | overlayfwd up -c -
  overlayfwd stats -n ovl0 --watch
  overlayfwd peers add -n ovl0 --name c --endpoint 198.18.0.3 --mac 02:00:00:00:00:03
  overlayfwd peers add -n esp0 --name c --endpoint 198.18.0.3 --allowed-ip 198.19.0.3/32 --sa-file c.sa.yaml
  overlayfwd peers remove -n ovl0 --name c
  overlayfwd genkey --spi 0x1001          # { spi: 0x00001001, key: "<72 hex digits>" }
  overlayfwd registry init -c overlay.yaml --network 10.100.0.0/16 --subnet-length 24
  overlayfwd nodes -n ovl0
  overlayfwd drops -n ovl0 --follow
  overlayfwd drops -n ovl0 --pcap drops.pcapng   # then: tshark -r drops.pcapng -T fields -e frame.comment
  overlayfwd help peers add

Exit status: 0 ok, 1 runtime failure (no instance running, a system call failed, ...),
2 usage or config error (unknown option, invalid config, peer or SA file).`,
  );

  // After every command exists: each usage error ends with where its help is.
  const withHelpHint = (command: Command): void => {
    const name = commandPath(command);
    command.showHelpAfterError(`(see: overlayfwd help${name ? ` ${name}` : ''})`);
    command.commands.forEach(withHelpHint);
  };
  withHelpHint(program);
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
