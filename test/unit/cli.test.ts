// Runs the compiled CLI (dist/lib/cli/main.js) as a user would. Needs neither root nor the addon:
// the commands that talk to an instance are pointed at a ControlServer over a fake overlay.
import { execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { loadConfigFile, parseConfig, parsePeer, parseSaKey, publicPeer } from '../../lib/config';
import { ControlServer, controlRequest, type OverlayLike } from '../../lib/control';
import { printableConfig, redact } from '../../lib/cli/check';
import { renderRates, renderStats } from '../../lib/cli/stats';
import type { Counters, OverlayStats, ResolvedPeer } from '../../lib/types';
import { fakeCounters, fakeOffloadStats } from '../helpers/fake-stats';

const counters = (n: number): Counters => fakeCounters(n, { tx: 10, rx: 20, flood: n, bytesPerPacket: 150 });


const root = path.resolve(__dirname, '..', '..');
const mainJs = path.join(root, 'dist', 'lib', 'cli', 'main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ovlcli-'));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with `args`; `stdin`, when given, is written to its standard input and closed. */
function run(args: string[], env: Record<string, string> = {}, stdin?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [mainJs, ...args],
      { cwd: tmp, env: { ...process.env, ...env }, timeout: 20_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    if (stdin !== undefined) child.stdin!.end(stdin);
  });
}

function write(name: string, text: string): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, text);
  return file;
}

const GOOD = `name: ovl0
device:
  addresses: [198.19.0.1/24]
encap:
  vni: 42
underlay:
  local: 198.18.0.1
peers:
  - name: b
    endpoint: 198.18.0.2
    macs: [02:00:00:00:00:02]
  - name: c
    endpoint: 198.18.0.3:4790
`;

beforeAll(() => {
  // Compile the whole project. Type errors elsewhere (files being written in parallel) still emit
  // JavaScript, so only a missing output is fatal here.
  try {
    execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
      cwd: root,
      stdio: 'pipe',
    });
  } catch (err) {
    const out = String((err as { stdout?: Buffer }).stdout ?? '');
    if (/lib\/(config|control|cli\/(?!demo)[a-z]+)\.ts/.test(out)) throw new Error(`tsc failed:\n${out}`);
  }
  expect(fs.existsSync(mainJs)).toBe(true);
}, 180_000);

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('overlayfwd check', () => {
  it('prints the effective config with defaults filled in', async () => {
    const file = write('good.yaml', GOOD);
    const r = await run(['check', '-c', file]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (const line of ['type: tap', 'name: ovl0', 'mtu: auto', 'port: 4789', 'sourcePorts: 16', 'udpChecksum: false', 'batchSize: 64', 'ageingSeconds: 300', 'maxPeers: 1024', 'endpoint: 198.18.0.2:4789', 'endpoint: 198.18.0.3:4790', 'socket: /run/overlayfwd/ovl0.sock']) {
      expect(r.stdout).toContain(line);
    }
    expect(r.stdout).toMatch(/overhead 50 bytes/);
    // The output is a config in its own right, and means the same.
    expect(parseConfig(YAML.parse(r.stdout))).toEqual(loadConfigFile(file));
  });

  it('prints JSON with --json', async () => {
    const r = await run(['check', '-c', write('good.yaml', GOOD), '--json']);
    expect(r.code).toBe(0);
    const printed = JSON.parse(r.stdout) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(printed.device.mtu).toBe('auto');
    expect(printed.encap).toEqual({ type: 'vxlan', vni: 42, port: 4789 });
    expect(printed.peers[0].endpoint).toBe('198.18.0.2:4789');
  });

  it.each([
    ['bad vni', GOOD.replace('vni: 42', 'vni: 16777216'), 'encap.vni: must be an integer from 0 to 16777215'],
    ['esp without a cipher', GOOD.replace('vni: 42', 'type: esp'), 'encap.cipher: required for esp (one of: aes-128-gcm, aes-256-gcm, chacha20-poly1305)'],
    ['bad endpoint', GOOD.replace('198.18.0.3:4790', '198.18.0.999'), 'peers[1].endpoint: "198.18.0.999" is not an IPv4 or IPv6 address'],
    ['unknown key', `${GOOD}extra: 1\n`, 'extra: unknown key'],
    ['syntax error', 'name: [ovl0\n', '(file): '],
  ])('exits 2 and names the field: %s', async (_what, text, expected) => {
    const file = write('broken.yaml', text);
    const r = await run(['check', '-c', file]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines[0]).toBe(`overlayfwd: invalid config ${file}:`);
    expect(lines.slice(1).some((l) => l.trim().startsWith(expected))).toBe(true);
  });

  it('exits 2 for a missing file', async () => {
    const r = await run(['check', '-c', path.join(tmp, 'missing.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/\(file\): cannot read .*missing.yaml: no such file/);
  });
});

/** A "billion laughs": nine levels of nine aliases each, 387 million strings if expanded. */
const ALIAS_BOMB = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
  .concat(['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'].map((k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcdefghi'[i]}`).join(', ')}]`))
  .join('\n');

/** Nothing in a message that names the YAML library or its API instead of saying what is wrong. */
function expectNoLibraryNames(text: string): void {
  expect(text).not.toMatch(/maxAliasCount|parseAllDocuments|parseDocument|YAML\.|ReferenceError|resource exhaustion|toJS|Error:|at .*\.js:\d+/);
}

/** The number of the line after GOOD's last. */
const AFTER_GOOD = GOOD.split('\n').length;

describe('config input: -c - and YAML that is refused', () => {
  it('check -c - reads the config from stdin', async () => {
    const r = await run(['check', '-c', '-', '--json'], {}, GOOD);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).peers[1].endpoint).toBe('198.18.0.3:4790');
    const yaml = await run(['check', '-c', '-'], {}, GOOD);
    expect(yaml.stdout.split('\n')[0]).toBe('# <stdin>: valid; vxlan overhead 50 bytes');
  });

  it('an error in a config from stdin names <stdin>; an empty stdin is an error', async () => {
    const bad = await run(['check', '-c', '-'], {}, GOOD.replace('vni: 42', 'vni: -1'));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('overlayfwd: invalid config <stdin>:\n  encap.vni: must be an integer from 0 to 16777215\n');
    const empty = await run(['check', '-c', '-'], {}, '');
    expect(empty.code).toBe(2);
    expect(empty.stderr).toBe('overlayfwd: invalid config <stdin>:\n  (file): <stdin> is empty\n');
  });

  it('up -c - reads stdin too (and stops at a config error, exit 2)', async () => {
    const r = await run(['up', '-c', '-'], {}, GOOD.replace('vni: 42', 'vni: -1'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^overlayfwd: invalid config <stdin>:\n {2}encap\.vni: /);
  });

  it.each([
    ['an alias bomb (billion laughs)', `${GOOD}${ALIAS_BOMB}\n`, /: its aliases \(\*name\) expand anchored content more than 100 times \(as a "billion laughs" does\); refusing it$/],
    ['two documents', `${GOOD}---\n${GOOD}`, new RegExp(`: line ${AFTER_GOOD}, column 1: a second YAML document starts here \\("---"\\); the file must hold one$`)],
    ['an alias without its anchor', `${GOOD}extra: *nowhere\n`, /: an alias \(\*name\) refers to no anchor \(&name\) before it$/],
  ])('%s is a config error (exit 2) naming the file, without library names', async (_what, text, expected) => {
    const file = write('refused.yaml', text);
    for (const [args, name, input] of [
      [['check', '-c', file], file, undefined],
      [['up', '-c', file], file, undefined],
      [['check', '-c', '-'], '<stdin>', text],
    ] as const) {
      const started = Date.now();
      const r = await run([...args], {}, input);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stdout).toBe('');
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(2);
      expect(lines[0]).toBe(`overlayfwd: invalid config ${name}:`);
      expect(lines[1]!.startsWith(`  (file): ${name}: `), lines[1]).toBe(true);
      expect(lines[1]).toMatch(expected);
      expectNoLibraryNames(r.stderr);
      expect(Date.now() - started).toBeLessThan(10_000);
    }
  });

  it('a YAML syntax error gives the line and column, never the text around it (it may be a key)', async () => {
    const key = 'c0ffee00'.repeat(9);
    const r = await run(['check', '-c', write('leak.yaml', `${GOOD}secret: |${key}\n  x\n`)]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`leak.yaml: line ${AFTER_GOOD}, column 10: unexpected text (not valid YAML here)`);
    expect(r.stderr.toLowerCase()).not.toContain('c0ffee');
    const esc = await run(['check', '-c', write('leak2.yaml', `${GOOD}secret: "${key}\\q"\n`)]);
    expect(esc.code).toBe(2);
    expect(esc.stderr).toContain(`leak2.yaml: line ${AFTER_GOOD}, column ${10 + key.length}: invalid escape sequence in a double-quoted string`);
    expect(esc.stderr.toLowerCase()).not.toContain('c0ffee');
  });
});

// ESP: keys are secrets. `check` shows SPIs and "<redacted>" where a key was, and an error about a
// key names the field and the expected length, never the key.
const ESP_KEYS = {
  bOut: '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef11223344',
  bIn: 'fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210aabbccdd',
  cOut: '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff99887766',
  cIn: 'a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf0a0b0c0d',
  // Not in the config: what `peers add --sa-file` brings.
  dOut: '5a5b5c5d5e5f606162636465666768697071727374757677787980818283848586878889',
  dIn: '1f2e3d4c5b6a79880f1e2d3c4b5a69780e1d2c3b4a59687706152433425160798a9bacbd',
};
const ESP = `name: esp0
device:
  type: tun
  addresses: [198.19.0.1/24]
encap:
  type: esp
  cipher: aes-256-gcm
underlay:
  local: 198.18.0.1
esp:
  rekeyGraceSeconds: 10
peers:
  - name: b
    endpoint: 198.18.0.2
    allowedIps: [198.19.0.2/32]
    sa:
      out: { spi: 0x1001, key: "${ESP_KEYS.bOut}" }
      in:  { spi: 0x2001, key: "0x${ESP_KEYS.bIn.toUpperCase()}" }
  - name: c
    endpoint: 198.18.0.3
    allowedIps: [198.19.0.3/32]
    sa:
      out: { spi: "0x1001", key: "${ESP_KEYS.cOut}" }
      in:
        - { spi: 0x3002, key: "${ESP_KEYS.cIn}" }
        - { spi: 12289, key: "${ESP_KEYS.bOut.slice(0, 8)}${ESP_KEYS.cIn.slice(8)}" }
`;

/** No key, nor any 12-digit run of one (either case), anywhere in `text`. */
function expectNoKeys(text: string): void {
  const lower = text.toLowerCase();
  for (const k of Object.values(ESP_KEYS)) {
    for (let i = 0; i + 12 <= k.length; i += 4) expect(lower.includes(k.slice(i, i + 12)), `key material in:\n${text}`).toBe(false);
  }
}

describe('overlayfwd check with ESP', () => {
  it('prints SPIs, cipher and transport, and <redacted> for every SA key (YAML and JSON)', async () => {
    const file = write('esp.yaml', ESP);
    fs.chmodSync(file, 0o600); // it holds keys: readable by others, check warns (config-warnings.test.ts)
    const r = await run(['check', '-c', file]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expectNoKeys(r.stdout);
    expect(r.stdout).toMatch(/valid; esp overhead 65 bytes; SA keys not shown/);
    const printed = YAML.parse(r.stdout) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(printed.encap).toEqual({ type: 'esp', port: 4500, cipher: 'aes-256-gcm', udp: true, esn: true });
    expect(printed.esp).toEqual({ rekeyGraceSeconds: 10 });
    expect(printed.peers[0].sa).toEqual({ out: { spi: '0x00001001', key: '<redacted>' }, in: { spi: '0x00002001', key: '<redacted>' } });
    expect(printed.peers[1].sa.in).toEqual([
      { spi: '0x00003002', key: '<redacted>' },
      { spi: '0x00003001', key: '<redacted>' },
    ]);
    // With the keys put back, the output is the same config again.
    printed.peers[0].sa.out.key = ESP_KEYS.bOut;
    printed.peers[0].sa.in.key = ESP_KEYS.bIn;
    printed.peers[1].sa.out.key = ESP_KEYS.cOut;
    printed.peers[1].sa.in[0].key = ESP_KEYS.cIn;
    printed.peers[1].sa.in[1].key = `${ESP_KEYS.bOut.slice(0, 8)}${ESP_KEYS.cIn.slice(8)}`;
    expect(parseConfig(printed)).toEqual(loadConfigFile(file));

    const json = await run(['check', '-c', file, '--json']);
    expect(json.code).toBe(0);
    expectNoKeys(json.stdout);
    const parsed = JSON.parse(json.stdout) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(parsed.peers[0].sa.out).toEqual({ spi: '0x00001001', key: '<redacted>' });
  });

  it('prints IP protocol 50 without a port', async () => {
    const r = await run(['check', '-c', write('esp50.yaml', ESP.replace('cipher: aes-256-gcm', 'cipher: aes-256-gcm\n  udp: false'))]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/esp overhead 57 bytes/);
    expect((YAML.parse(r.stdout) as { encap: unknown }).encap).toEqual({ type: 'esp', cipher: 'aes-256-gcm', udp: false, esn: true });
    expect(r.stdout).toMatch(/endpoint: 198\.18\.0\.2\n/);
    expectNoKeys(r.stdout);
  });

  it('keeps a GRE key public (it travels in clear)', async () => {
    const r = await run(['check', '-c', write('gre.yaml', 'name: g0\ndevice: { type: tun }\nencap: { type: gre, key: 77 }\nunderlay: { local: 198.18.0.1 }\n'), '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).encap).toEqual({ type: 'gre', key: 77, checksum: false, sequence: false });
  });

  it.each([
    ['a short key', ESP.replace(ESP_KEYS.cOut, ESP_KEYS.cOut.slice(2)), 'peers[1].sa.out.key: must be a hex string of 36 bytes (72 hex digits: the 32-byte aes-256-gcm key followed by a 4-byte salt); got 70 hex digits'],
    ['a key that is not hex', ESP.replace(ESP_KEYS.bIn.toUpperCase(), `${ESP_KEYS.bIn.slice(0, 70)}zz`), 'peers[0].sa.in.key: must be a hex string of 36 bytes'],
    ['a key for the wrong cipher', ESP.replace('aes-256-gcm', 'aes-128-gcm'), 'peers[0].sa.out.key: must be a hex string of 20 bytes'],
    ['a key used twice', ESP.replace(ESP_KEYS.cOut, ESP_KEYS.bOut), 'peers[1].sa.out.key: the same key as peers[0].sa.out.key'],
    ['a key in the SPI field', ESP.replace('spi: 0x2001', `spi: "${ESP_KEYS.cOut}"`), 'peers[0].sa.in.spi: must be an integer from 1 to 4294967295'],
    ['a misspelt key field', ESP.replace('key: "' + ESP_KEYS.cIn, 'kee: "' + ESP_KEYS.cIn), 'peers[1].sa.in[0].kee: unknown key (did you mean "key"?)'],
    ['an inbound SPI twice', ESP.replace('spi: 0x3002', 'spi: 0x2001'), 'peers[1].sa.in[0].spi: SPI 0x00002001 is already an inbound SPI of peer "b"'],
    ['SPI 0', ESP.replace('spi: 0x2001', 'spi: 0'), 'peers[0].sa.in.spi: SPI 0 is reserved'],
    ['no SAs', ESP.replace(/ {4}sa:\n {6}out: \{ spi: 0x1001.*\n.*\n/, ''), 'peers[0].sa: required for esp'],
  ])('exits 2 naming the field, without the key: %s', async (_what, text, expected) => {
    const file = write('esp-broken.yaml', text);
    const r = await run(['check', '-c', file]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n').some((l) => l.trim().startsWith(expected)), r.stderr).toBe(true);
    expectNoKeys(r.stderr);
  });
});

describe('overlayfwd up', () => {
  it('exits 2 on a config error without creating anything', async () => {
    const runDir = path.join(tmp, 'up-run');
    const file = write('up-broken.yaml', `${GOOD.replace('vni: 42', 'vni: -1')}control:\n  socket: ${runDir}/ovl0.sock\n`);
    const r = await run(['up', '-c', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`overlayfwd: invalid config ${file}:\n  encap.vni: must be an integer from 0 to 16777215`);
    expect(r.stdout).toBe('');
    expect(fs.existsSync(runDir)).toBe(false);
  });

  it('needs -c', async () => {
    const r = await run(['up']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/required option '-c, --config <file>'/);
  });
});

describe('usage', () => {
  it.each([
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['check', '-c', 'x.yaml', '--frob'], /unknown option '--frob'/],
    [['stats', '--frob'], /unknown option '--frob'/],
    [['peers', 'add', '--name', 'b'], /required option '--endpoint/],
    [['demo', '--duration', 'soon'], /must be a positive number of seconds/],
    [['check', '-c', 'x.yaml', 'extra'], /too many arguments/],
    [[], /Usage: overlayfwd/],
    [['genkey', '--cipher', 'des'], /argument 'des' is invalid\. Allowed choices are aes-128-gcm, aes-256-gcm, chacha20-poly1305/],
    [['genkey', '--spi', '0'], /SPI 0 is reserved/],
    [['help', 'frobnicate'], /no command 'frobnicate' \(overlayfwd help lists them\)/],
    [['help', 'peers', 'frob'], /no command 'frob' of 'peers'/],
  ])('%j exits 2', async (args, pattern) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(pattern);
    // One prefix for every error, commander's own included; then where the help is.
    if (args.length > 0) {
      expect(r.stderr).toMatch(/^overlayfwd: /);
      expect(r.stderr).not.toMatch(/^error:/m);
    }
  });

  it('a usage error says where the help for that command is', async () => {
    const r = await run(['peers', 'list', '--frob']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("overlayfwd: unknown option '--frob'\n(see: overlayfwd help peers list)\n");
  });

  it('help lists every command, grouped, with the exit status', async () => {
    const r = await run(['help']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    for (const cmd of ['up', 'check', 'stats', 'peers', 'fdb', 'nodes', 'genkey', 'registry', 'demo', 'help']) {
      expect(r.stdout).toMatch(new RegExp(`^  ${cmd}\\b`, 'm'));
    }
    expect(r.stdout).toMatch(/^A running instance \(-n NAME or -s SOCKET; the read-only ones may leave it out when only one runs\):$/m);
    expect(r.stdout).toContain('Exit status: 0 ok, 1 runtime failure');
    expect(r.stdout).toContain('overlayfwd up -c -');
    expect((await run(['--help'])).stdout).toBe(r.stdout);
  });

  it('help COMMAND prints that command\'s help, nested ones included', async () => {
    const add = await run(['help', 'peers', 'add']);
    expect(add.code).toBe(0);
    expect(add.stdout).toMatch(/^Usage: overlayfwd peers add \[options\]/);
    expect(add.stdout).toMatch(/--sa-file <file>/);
    expect(add.stdout).toMatch(/-n, --instance <name> +instance name: .*\(required, or -s\)/s);
    expect(add.stdout).toBe((await run(['peers', 'add', '--help'])).stdout);
    const stats = await run(['help', 'stats']);
    expect(stats.code).toBe(0);
    expect(stats.stdout).toMatch(/default: the only\s+running\s+instance/);
    const peers = await run(['help', 'peers']);
    expect(peers.stdout).toMatch(/^ {2}list \[options\]/m);
    expect(peers.stdout).toMatch(/^ {2}remove \[options\]/m);
    const genkey = await run(['help', 'genkey']);
    expect(genkey.stdout.replace(/\s+/g, ' ')).toContain('--cipher <cipher> the cipher the key is for (choices: "aes-128-gcm", "aes-256-gcm", "chacha20-poly1305", default: "aes-256-gcm")');
  });

  it('--version prints the package version', async () => {
    const { version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
    const r = await run(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(version);
  });

  it('--help lists the commands', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    for (const cmd of ['up', 'check', 'stats', 'peers', 'demo']) expect(r.stdout).toMatch(new RegExp(`^  ${cmd}\\b`, 'm'));
  });
});

describe('overlayfwd genkey', () => {
  it.each([
    [[], 'aes-256-gcm', 72],
    [['--cipher', 'aes-256-gcm'], 'aes-256-gcm', 72],
    [['--cipher', 'aes-128-gcm'], 'aes-128-gcm', 40],
    [['--cipher', 'chacha20-poly1305'], 'chacha20-poly1305', 72],
  ] as const)('%j prints a fresh key for %s: %d hex digits (cipher key + 4-byte salt)', async (args, cipher, digits) => {
    const keys = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const r = await run(['genkey', ...args]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^[0-9a-f]{${digits}}\n$`));
      const key = r.stdout.trim();
      expect(parseSaKey(key, cipher)).toEqual({ ok: true, value: key });
      keys.add(key);
    }
    expect(keys.size).toBe(3);
  });

  it('--spi prints a { spi, key } the config and an SA file accept', async () => {
    const r = await run(['genkey', '--spi', '0x1001']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\{ spi: 0x00001001, key: "[0-9a-f]{72}" \}\n$/);
    const sa = YAML.parse(r.stdout) as { spi: number; key: string };
    expect(sa.spi).toBe(0x1001);
    expect(parseSaKey(sa.key, 'aes-256-gcm').ok).toBe(true);
    expect((await run(['genkey', '--spi', '4097', '--cipher', 'aes-128-gcm'])).stdout).toMatch(/^\{ spi: 0x00001001, key: "[0-9a-f]{40}" \}\n$/);
    // Two of them make an SA file, and a config with them is valid.
    const other = YAML.parse((await run(['genkey', '--spi', '0x2001'])).stdout) as { spi: number; key: string };
    const config = ESP.replace(/ {4}sa:\n {6}out: \{ spi: 0x1001.*\n.*\n/, `    sa: { out: { spi: ${sa.spi}, key: "${sa.key}" }, in: { spi: ${other.spi}, key: "${other.key}" } }\n`);
    expect(loadConfigFile(write('genkey-esp.yaml', config)).peers[0]!.sa).toEqual({ out: sa, in: [other] });
  });

  it('warns, as wg genkey does, when the key goes into a file others can read', async () => {
    const into = async (mode: number): Promise<{ stderr: string; key: string }> => {
      const file = path.join(tmp, `key-${mode.toString(8)}`);
      fs.rmSync(file, { force: true });
      const fd = fs.openSync(file, 'w', mode);
      fs.fchmodSync(fd, mode);
      const stderr = await new Promise<string>((resolve) => {
        const child = spawn(process.execPath, [mainJs, 'genkey'], { stdio: ['ignore', fd, 'pipe'] });
        let err = '';
        child.stderr!.on('data', (d: Buffer) => (err += String(d)));
        child.on('close', () => resolve(err));
      });
      fs.closeSync(fd);
      return { stderr, key: fs.readFileSync(file, 'utf8').trim() };
    };
    const open = await into(0o644);
    expect(open.stderr).toBe('overlayfwd: warning: writing a key to a file that others can read (run umask 077 first)\n');
    expect(open.key).toMatch(/^[0-9a-f]{72}$/);
    const closed = await into(0o600);
    expect(closed.stderr).toBe('');
    expect(closed.key).toMatch(/^[0-9a-f]{72}$/);
  });
});

// ---------------------------------------------------------------------------------------------
// Commands that talk to a running instance, against a fake one


function fakeOverlay(name: string): OverlayLike {
  const config = parseConfig({ name, encap: { vni: 1 }, underlay: { local: '198.18.0.1' } });
  const table: ResolvedPeer[] = [parsePeer({ name: 'b', endpoint: '198.18.0.2', macs: ['02:00:00:00:00:02'] })];
  return {
    name,
    stats: (): OverlayStats => ({
      name,
      device: name,
      workers: 2,
      totals: counters(3),
      peers: Object.fromEntries(table.map((p, i) => [p.name, counters(i + 1)])),
      fdb: { learned: 0, static: 1, refused: 0 },
      healthy: true,
      offloads: fakeOffloadStats(),
      generated: { icmpTooBig: 0, mssClamped: 0 },
      control: { natKeepalives: 0, controlRx: 0, controlTx: 0 },
    }),
    peers: {
      add: (input: unknown) => {
        const peer = parsePeer(input, 'peer', config, table);
        table.push(peer);
        return peer;
      },
      remove: (peer: string) => {
        const i = table.findIndex((p) => p.name === peer);
        if (i >= 0) table.splice(i, 1);
        return i >= 0;
      },
      list: () => table.map((p) => ({ ...p, learnedMacs: 0 })),
    },
    fdb: () => [{ mac: '02:00:00:00:00:02', peer: 'b', static: true, ageSeconds: 0 }],
  };
}

describe('overlayfwd stats / peers against a running instance', () => {
  const runDir = path.join(tmp, 'run');
  const env = { OVERLAYFWD_RUN_DIR: runDir };
  const servers: ControlServer[] = [];
  const start = async (name: string) => {
    const overlay = fakeOverlay(name);
    servers.push(await ControlServer.listen(overlay, path.join(runDir, `${name}.sock`)));
    return overlay;
  };
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  it('stats --json prints the OverlayStats object', async () => {
    const overlay = await start('ovl0');
    const r = await run(['stats', '-s', path.join(runDir, 'ovl0.sock'), '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(overlay.stats());
  });

  it('stats prints a table: one row per peer, totals, non-zero drops', async () => {
    await start('ovl0');
    const r = await run(['stats', '-n', 'ovl0'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^PEER\s+TX PKTS\s+TX BYTES\s+TX WIRE\s+RX PKTS\s+RX BYTES\s+RX WIRE\s+DROPS$/m);
    expect(r.stdout).toMatch(/^b\s+10\s+1\.50 kB\s+1\.86 kB\s+20\s+3\.00 kB\s+3\.72 kB\s+wrongVni 1$/m);
    expect(r.stdout).toMatch(/^TOTAL\s+30\s+4\.50 kB\s+5\.58 kB\s+60\s+9\.00 kB\s+11\.2 kB\s+wrongVni 3$/m);
    // The average the outer headers add, from the totals' inner and wire bytes.
    expect(r.stdout).toContain('encapsulation: tx 36.0 B/packet (+24.0 %), rx 36.0 B/packet (+24.0 %)');
  });

  it('finds the only running instance, and refuses to guess between several', async () => {
    expect((await run(['stats', '--json'], env)).code).toBe(1);
    await start('ovl0');
    const one = await run(['stats', '--json'], env);
    expect(one.code).toBe(0);
    expect(JSON.parse(one.stdout).name).toBe('ovl0');
    await start('ovl1');
    const two = await run(['stats'], env);
    expect(two.code).toBe(2);
    expect(two.stderr).toMatch(/several instances are running \(ovl0, ovl1\)/);
  });

  it('reports a missing instance with exit 1', async () => {
    const r = await run(['stats', '-n', 'ghost'], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`overlayfwd: no running instance at ${path.join(runDir, 'ghost.sock')}\n`);
  });

  it('stats --watch --json prints a sample per second until interrupted', async () => {
    await start('ovl0');
    const child = execFile(process.execPath, [mainJs, 'stats', '-n', 'ovl0', '--watch', '--json'], { env: { ...process.env, ...env } });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += String(d)));
    // Wait for a second sample (about a second after the first), then interrupt.
    for (let waited = 0; out.split('\n').length < 3 && waited < 15_000; waited += 50) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    const samples = out.trim().split('\n').map((l) => JSON.parse(l) as OverlayStats & { time: string });
    expect(samples.length).toBeGreaterThanOrEqual(2);
    expect(samples[0]!.totals.txPackets).toBe(30);
  });

  it('peers add / list / remove', async () => {
    await start('ovl0');
    const add = await run(['peers', 'add', '-n', 'ovl0', '--name', 'c', '--endpoint', '198.18.0.3:4790', '--mac', '02:00:00:00:00:03', '--allowed-ip', '198.19.0.3/32'], env);
    expect(add.stderr).toBe('');
    expect(add.code).toBe(0);
    expect(add.stdout).toBe('added peer c at 198.18.0.3:4790\n');

    const list = await run(['peers', 'list', '-n', 'ovl0', '--json'], env);
    expect(JSON.parse(list.stdout)).toEqual([
      { name: 'b', endpoint: { address: '198.18.0.2', port: 4789 }, allowedIps: [], macs: ['02:00:00:00:00:02'], learnedMacs: 0 },
      { name: 'c', endpoint: { address: '198.18.0.3', port: 4790 }, allowedIps: ['198.19.0.3/32'], macs: ['02:00:00:00:00:03'], learnedMacs: 0 },
    ]);
    const table = await run(['peers', 'list', '-n', 'ovl0'], env);
    expect(table.stdout).toMatch(/^c\s+198\.18\.0\.3:4790\s+02:00:00:00:00:03\s+0\s+198\.19\.0\.3\/32$/m);

    expect((await run(['peers', 'remove', '-n', 'ovl0', '--name', 'c'], env)).stdout).toBe('removed peer c\n');
    const again = await run(['peers', 'remove', '-n', 'ovl0', '--name', 'c'], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/no peer named "c"/);
  });

  it('peers add and remove need -n or -s even with one instance running; the read-only commands do not', async () => {
    const names = async (sock: string) => (await controlRequest(sock, { cmd: 'peers.list' })).map((p) => p.name);
    const sock0 = path.join(runDir, 'ovl0.sock');
    const none = await run(['peers', 'add', '--name', 'c', '--endpoint', '198.18.0.3'], env);
    expect(none.code).toBe(2);
    expect(none.stderr).toBe('overlayfwd: peers add changes a running instance: name it with -n NAME or -s SOCKET\n');

    await start('ovl0');
    const add = await run(['peers', 'add', '--name', 'c', '--endpoint', '198.18.0.3'], env);
    expect(add.code).toBe(2);
    expect(add.stdout).toBe('');
    expect(add.stderr).toBe('overlayfwd: peers add changes a running instance: name it with -n NAME or -s SOCKET (running here: ovl0)\n');
    const remove = await run(['peers', 'remove', '--name', 'b', '--json'], env);
    expect(remove.code).toBe(2);
    expect(remove.stderr).toBe('overlayfwd: peers remove changes a running instance: name it with -n NAME or -s SOCKET (running here: ovl0)\n');
    expect(await names(sock0)).toEqual(['b']);
    for (const args of [['stats', '--json'], ['peers', 'list', '--json'], ['fdb', '--json']]) {
      const r = await run(args, env);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      JSON.parse(r.stdout);
    }

    await start('ovl1');
    const two = await run(['peers', 'add', '--name', 'c', '--endpoint', '198.18.0.3'], env);
    expect(two.code).toBe(2);
    expect(two.stderr).toMatch(/\(running here: ovl0, ovl1\)\n$/);
    expect((await run(['peers', 'add', '-n', 'ovl1', '--name', 'c', '--endpoint', '198.18.0.3'], env)).code).toBe(0);
    expect((await run(['peers', 'remove', '-s', sock0, '--name', 'b'], env)).code).toBe(0);
    expect(await names(sock0)).toEqual([]);
    expect(await names(path.join(runDir, 'ovl1.sock'))).toEqual(['b', 'c']);
  });

  it('peers add and remove print JSON with --json', async () => {
    await start('ovl0');
    const add = await run(['peers', 'add', '-n', 'ovl0', '--name', 'c', '--endpoint', '198.18.0.3', '--mac', '02:00:00:00:00:03', '--json'], env);
    expect(add.code, add.stderr).toBe(0);
    expect(JSON.parse(add.stdout)).toEqual({ name: 'c', endpoint: { address: '198.18.0.3', port: 4789 }, allowedIps: [], macs: ['02:00:00:00:00:03'] });
    const remove = await run(['peers', 'remove', '-n', 'ovl0', '--name', 'c', '--json'], env);
    expect(remove.code).toBe(0);
    expect(JSON.parse(remove.stdout)).toEqual({ name: 'c', removed: true });
    const again = await run(['peers', 'remove', '-n', 'ovl0', '--name', 'c', '--json'], env);
    expect(again.code).toBe(1);
    expect(again.stdout).toBe('');
    expect(again.stderr).toBe('overlayfwd: no peer named "c"\n');
  });

  it('peers add prints validation issues from the instance and exits 2', async () => {
    await start('ovl0');
    const r = await run(['peers', 'add', '-n', 'ovl0', '--name', 'b', '--endpoint', '198.18.0.999', '--mac', 'ff:ff:ff:ff:ff:ff'], env);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')).toEqual([
      'overlayfwd: invalid peer b:',
      '  peer.endpoint: "198.18.0.999" is not an IPv4 or IPv6 address',
      '  peer.macs[0]: ff:ff:ff:ff:ff:ff is a multicast/broadcast MAC address (must be unicast)',
      '',
    ]);
  });
});

describe('ESP peers through the control socket', () => {
  const runDir = path.join(tmp, 'run-esp');
  const socket = path.join(runDir, 'esp0.sock');
  let server: ControlServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  /** A fake ESP instance whose peers.add returns the resolved peer, keys and all, as Overlay's does. Returns its table. */
  async function startEsp(): Promise<ResolvedPeer[]> {
    const config = loadConfigFile(write('esp-fake.yaml', ESP));
    const table: ResolvedPeer[] = [...config.peers];
    const overlay: OverlayLike = {
      name: 'esp0',
      config,
      stats: () => {
        throw new Error('unused');
      },
      fdb: () => [],
      peers: {
        add: (input: unknown) => {
          const peer = parsePeer(input, 'peer', config, table);
          table.push(peer);
          return peer;
        },
        remove: () => false,
        // As Overlay.peers.list(): SPIs only, the retiring inbound SA with its time left.
        list: () =>
          table.map((p) => {
            const shown = publicPeer(p);
            if (shown.sa && shown.sa.in.length > 1) shown.sa.in[1] = { ...shown.sa.in[1]!, retiresInSeconds: 7 };
            return { ...shown, learnedMacs: 0 };
          }),
      },
    };
    server = await ControlServer.listen(overlay, socket);
    return table;
  }

  /** An SA file (mode 0600 unless told), as `peers add --sa-file` reads it. */
  function saFile(name: string, text: string, mode = 0o600): string {
    const file = write(name, text);
    fs.chmodSync(file, mode);
    return file;
  }

  const D_SA = `out: { spi: 0x1004, key: "${ESP_KEYS.dOut}" }\nin:  { spi: 0x4001, key: "${ESP_KEYS.dIn}" }\n`;
  const addD = ['peers', 'add', '-s', socket, '--name', 'd', '--endpoint', '198.18.0.4', '--allowed-ip', '198.19.0.4/32'];

  it('peers add --sa-file adds an ESP peer with the SAs the file holds; its output shows SPIs only', async () => {
    const table = await startEsp();
    const r = await run([...addD, '--sa-file', saFile('d.sa.yaml', D_SA)]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('added peer d at 198.18.0.4:4500, SAs out 0x00001004 in 0x00004001\n');
    expect(table.find((p) => p.name === 'd')!.sa).toEqual({ out: { spi: 0x1004, key: ESP_KEYS.dOut }, in: [{ spi: 0x4001, key: ESP_KEYS.dIn }] });
    const list = await run(['peers', 'list', '-s', socket]);
    expect(list.stdout).toMatch(/^d\s+198\.18\.0\.4:4500\s+198\.19\.0\.4\/32\s+out 0x00001004 in 0x00004001$/m);
    expectNoKeys(list.stdout);
  });

  it('peers add --sa-file reads JSON, a list of inbound SAs, stdin (-), and prints --json without keys', async () => {
    const table = await startEsp();
    const json = JSON.stringify({ out: { spi: '0x1004', key: ESP_KEYS.dOut }, in: [{ spi: 0x4001, key: `0x${ESP_KEYS.dIn.toUpperCase()}` }] });
    const r = await run([...addD, '--sa-file', saFile('d.sa.json', json), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      name: 'd',
      endpoint: { address: '198.18.0.4', port: 4500 },
      allowedIps: ['198.19.0.4/32'],
      macs: [],
      sa: { out: { spi: 0x1004 }, in: [{ spi: 0x4001 }] },
    });
    expectNoKeys(r.stdout);
    expect(table.find((p) => p.name === 'd')!.sa!.in[0]!.key).toBe(ESP_KEYS.dIn);
    const e = await run(['peers', 'add', '-s', socket, '--name', 'e', '--endpoint', '198.18.0.5', '--sa-file', '-'], {}, D_SA.replace('0x1004', '0x1005').replace('0x4001', '0x5001').replace(ESP_KEYS.dOut, ESP_KEYS.dOut.slice(2) + '55').replace(ESP_KEYS.dIn, ESP_KEYS.dIn.slice(2) + '66'));
    expect(e.code, e.stderr).toBe(0);
    expect(e.stdout).toBe('added peer e at 198.18.0.5:4500, SAs out 0x00001005 in 0x00005001\n');
  });

  it('warns about an SA file others can read, as wg-quick does, and still adds the peer', async () => {
    await startEsp();
    const file = saFile('d-open.sa.yaml', D_SA, 0o644);
    const r = await run([...addD, '--sa-file', file]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(`overlayfwd: warning: ${file} holds keys and is accessible by others (mode 644); chmod 600 ${file}\n`);
  });

  it.each([
    // Checked by the CLI before anything is sent: the file, its YAML, the shape, SPIs, hex keys.
    ['a key that is not hex', D_SA.replace(ESP_KEYS.dOut, `${ESP_KEYS.dOut.slice(0, 70)}zz`), 'file', ['sa.out.key: must be a hex string (the cipher key followed by a 4-byte salt); it holds characters that are not hex digits']],
    ['a key in the SPI field', D_SA.replace('spi: 0x4001', `spi: "${ESP_KEYS.dOut}"`), 'file', ['sa.in.spi: must be an integer from 1 to 4294967295, or a hex string such as "0x1001"']],
    ['a misspelt field', D_SA.replace('key: "' + ESP_KEYS.dIn, 'kee: "' + ESP_KEYS.dIn), 'file', ['sa.in.kee: unknown key (did you mean "key"?)', 'sa.in.key: required']],
    ['no inbound SA', D_SA.split('\n')[0]!, 'file', ['sa.in: required']],
    ['a key that is not a string', D_SA.replace(`"${ESP_KEYS.dIn}"`, '12345678'), 'file', ['sa.in.key: must be a hex string (the cipher key followed by a 4-byte salt), quoted in YAML']],
    ['text, not a mapping', `${ESP_KEYS.dOut}\n`, 'file', ['sa: must be a mapping with out and in']],
    ['two documents', `${D_SA}---\n${D_SA}`, 'file', ['(file): FILE: line 3, column 1: a second YAML document starts here ("---"); the file must hold one']],
    ['an alias bomb', `${D_SA}${ALIAS_BOMB}\n`, 'file', ['(file): FILE: its aliases (*name) expand anchored content more than 100 times (as a "billion laughs" does); refusing it']],
    ['a syntax error next to a key', `out: { spi: 1, key: |${ESP_KEYS.dOut} }\n`, 'file', ['(file): FILE: line 1, column 21: a plain value cannot start with this character (quote the value)']],
    ['an empty file', '# nothing\n', 'file', ['(file): FILE is empty (it should hold out: { spi, key } and in: { spi, key })']],
    // Checked by the instance, against its cipher and its other peers, as for a peer in its config.
    ['a short key', D_SA.replace(ESP_KEYS.dIn, ESP_KEYS.dIn.slice(2)), 'peer', ['peer.sa.in.key: must be a hex string of 36 bytes (72 hex digits: the 32-byte aes-256-gcm key followed by a 4-byte salt); got 70 hex digits']],
    ["another peer's inbound SPI", D_SA.replace('0x4001', '0x2001'), 'peer', ['peer.sa.in.spi: SPI 0x00002001 is already an inbound SPI of peer "b" (inbound SPIs must be unique: the SPI tells whose packet it is)']],
  ])('refuses an SA file with %s: exit 2, naming the field, quoting no key', async (_what, text, heading, expected) => {
    await startEsp();
    const file = saFile('bad.sa.yaml', text);
    const r = await run([...addD, '--sa-file', file]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')).toEqual([heading === 'file' ? `overlayfwd: invalid SA file ${file}:` : 'overlayfwd: invalid peer d:', ...expected.map((l) => `  ${l.replace('FILE', file)}`), '']);
    expectNoKeys(r.stderr);
    expectNoLibraryNames(r.stderr);
  });

  it('refuses an SA file it cannot read, and one on a vxlan instance', async () => {
    await startEsp();
    const missing = path.join(tmp, 'missing.sa.yaml');
    const r = await run([...addD, '--sa-file', missing]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`overlayfwd: invalid SA file ${missing}:\n  (file): cannot read ${missing}: no such file\n`);
    const dir = await run([...addD, '--sa-file', tmp]);
    expect(dir.code).toBe(2);
    expect(dir.stderr).toMatch(/: is a directory\n$/);
    const dev = await run([...addD, '--sa-file', '/dev/zero']);
    expect(dev.code).toBe(2);
    expect(dev.stderr).toMatch(/cannot read \/dev\/zero: not a regular file\n$/);

    const vx = await ControlServer.listen(fakeOverlay('vx0'), path.join(runDir, 'vx0.sock'));
    try {
      const v = await run(['peers', 'add', '-s', path.join(runDir, 'vx0.sock'), '--name', 'd', '--endpoint', '198.18.0.4', '--sa-file', saFile('d2.sa.yaml', D_SA)]);
      expect(v.code).toBe(2);
      expect(v.stderr).toMatch(/^overlayfwd: invalid peer d:\n {2}peer\.sa: /);
      expectNoKeys(v.stderr);
    } finally {
      await vx.close();
    }
  });

  it('answers peers.add with SPIs, never the keys it was sent', async () => {
    await startEsp();
    const dKeys = { out: 'ab'.repeat(32) + '01010101', in: 'cd'.repeat(32) + '02020202' };
    const added = await controlRequest(socket, {
      cmd: 'peers.add',
      peer: { name: 'd', endpoint: '198.18.0.4', allowedIps: ['198.19.0.4/32'], sa: { out: { spi: 0x1001, key: dKeys.out }, in: { spi: 0x4001, key: dKeys.in } } },
    });
    expect(added.sa).toEqual({ out: { spi: 0x1001 }, in: [{ spi: 0x4001 }] });
    expect(JSON.stringify(added)).not.toMatch(/abababab|cdcdcdcd/);
    // A rejected one: the error names the field and not the key.
    const err = await controlRequest(socket, {
      cmd: 'peers.add',
      peer: { name: 'e', endpoint: '198.18.0.5', sa: { out: { spi: 1, key: dKeys.out }, in: { spi: 0x4001, key: ESP_KEYS.cIn.slice(4) } } },
    }).catch((e: Error) => e);
    expect(String(err)).toMatch(/peer\.sa\.in\.key: must be a hex string of 36 bytes/);
    expect(String(err)).not.toMatch(/abababab|cdcdcdcd/);
    expectNoKeys(String(err));
  });

  it('peers list shows SPIs (and a retiring SA with its time left), never keys', async () => {
    await startEsp();
    const table = await run(['peers', 'list', '-s', socket]);
    expect(table.code).toBe(0);
    // A TUN device: the columns of a TAP (static and learned MACs) are left out.
    expect(table.stdout).toMatch(/^NAME\s+ENDPOINT\s+ALLOWED IPS\s+SPIS$/m);
    expect(table.stdout).toMatch(/^b\s+198\.18\.0\.2:4500\s+198\.19\.0\.2\/32\s+out 0x00001001 in 0x00002001$/m);
    expect(table.stdout).toMatch(/^c\s+.*out 0x00001001 in 0x00003002, 0x00003001 \(retires in 7s\)$/m);
    expectNoKeys(table.stdout);
    const json = await run(['peers', 'list', '-s', socket, '--json']);
    expectNoKeys(json.stdout);
    expect((JSON.parse(json.stdout) as Array<{ sa: unknown }>)[0]!.sa).toEqual({ out: { spi: 0x1001 }, in: [{ spi: 0x2001 }] });
  });
});

describe('check helpers', () => {
  it('redact hides every property named key, at any depth', () => {
    const input = { name: 'x', key: 'secret', peers: [{ name: 'b', key: 'k', sa: { key: 'k2', spi: 1 } }], keyring: 'kept' };
    expect(redact(input)).toEqual({
      name: 'x',
      key: '<redacted>',
      peers: [{ name: 'b', key: '<redacted>', sa: { key: '<redacted>', spi: 1 } }],
      keyring: 'kept',
    });
    expect(input.key).toBe('secret');
  });

  it('printableConfig round-trips through parseConfig (IPv6 endpoints included)', () => {
    const config = parseConfig({
      name: 'v6',
      device: { mtu: 1400 },
      encap: { vni: 9 },
      underlay: { local: 'fd00::1' },
      peers: [{ name: 'b', endpoint: '[fd00::2]:4790' }],
    });
    const printed = printableConfig(config);
    expect((printed.peers as Array<{ endpoint: string }>)[0]!.endpoint).toBe('[fd00::2]:4790');
    expect(parseConfig(YAML.parse(YAML.stringify(printed)))).toEqual(config);
    expect(parseConfig(printableConfig({ ...config, device: { ...config.device, mtu: null } })).device.mtu).toBeNull();
  });

  it('renders rates in watch mode', () => {
    const stats = fakeOverlay('ovl0').stats();
    const first = renderRates(stats, undefined, 0);
    expect(first).toMatch(/^TOTAL\s+30\s+-\s+-\s+60\s+-\s+-\s+-\s+wrongVni 3$/m);
    const later: OverlayStats = { ...stats, totals: { ...stats.totals, txPackets: 2030, txBytes: 4500 + 125_000 } };
    expect(renderRates(later, stats, 2)).toMatch(/^TOTAL\s+2030\s+1\.00 kpps\s+500 kbit\/s\s+60\s+0 pps\s+0 bit\/s\s+0 \/s\s+wrongVni 3$/m);
    expect(renderStats(stats)).toContain('flooded: 3 packets');
  });

  it('renders the stats of an instance that does not count wire bytes with dashes there', () => {
    const stats = fakeOverlay('ovl0').stats();
    const strip = (c: Counters): Counters => {
      const { txWireBytes: _t, rxWireBytes: _r, ...rest } = c;
      return rest;
    };
    const old: OverlayStats = { ...stats, totals: strip(stats.totals), peers: { b: strip(stats.peers.b!) } };
    const text = renderStats(old);
    expect(text).toMatch(/^TOTAL\s+30\s+4\.50 kB\s+-\s+60\s+9\.00 kB\s+-\s+wrongVni 3$/m);
    expect(text).not.toContain('encapsulation:');
  });
});
