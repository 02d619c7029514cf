// docs/configuration.md against the schema, so that the reference cannot drift from the parser.
//
// What the document must look like (it says so itself, at the top):
// - Each documented key is a row of a table headed `| key | type | default | reload | description |`,
//   its key cell the full path in backticks: `device.mtu`, `peers[].sa.out.key` (`[]`: each entry).
// - A table may be preceded (on the line right above it) by `<!-- reference base: {YAML} -->`:
//   the config its defaults are read in, merged over BASE as an example is (below). The encap
//   tables of each mode are told apart this way: a table's mode is its base's `encap.type`.
// - default cell: one value in backticks (the literal default), or text starting with
//   `computed:`, `required`, `none` or `section`.
// - reload cell: `live` or `restart`.
// - type cell: contains the word "secret" exactly for the values check/showconf print as <redacted>.
// - ```yaml fences are config examples; one that leaves keys out is completed by BASE: its
//   top-level keys replace BASE's (a shallow merge), and the result must pass parseConfig.
//   ```yaml sa-file fences are `peers add --sa-file` files, checked as the CLI checks them.
//
// What is checked:
// 1. every key the schema takes is documented, and nothing documented is unknown to it: the keys
//    of every mapping in KNOWN_KEYS (a key added there fails here until documented), the keys
//    each encap mode takes (probed from the encap schema), the SA mapping's out/in and spi/key
//    and the endpoint mapping's address/port (probed from the parser's own unknown-key messages);
// 2. each default: a literal is what parseConfig fills in when the key is removed from the
//    table's base; `required` makes parseConfig fail at that key; `none` leaves it absent, null
//    or empty; `computed:` and `section` are not compared (the CPU count, MTUs, machine IDs);
// 3. the reload column against planReload (lib/config/reload.ts): `restart` exactly for the
//    fields a reload refuses to change (and ike.port, which planReload checks on its own);
// 4. the secret marks against printableConfig: a marked value is printed as <redacted>, an
//    unmarked one is not, and nothing is redacted that the reference does not call a secret;
// 5. every YAML example validates; every link within the docs points at a heading that exists;
// 6. the README's example overlay has both ends, each the other's peer.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isConfigError, parseConfig } from '../../lib/config';
import { checkSaInput } from '../../lib/cli/sa-file';
import { encapSchema, ENCAP_KEYS } from '../../lib/config/encap';
import { optionalIke } from '../../lib/config/ike';
import { parseYamlText } from '../../lib/config/load';
import { ENCAP_TYPES } from '../../lib/config/modes';
import { printableConfig, REDACTED } from '../../lib/config/printable';
import { planReload } from '../../lib/config/reload';
import { saSchema } from '../../lib/config/sa';
import { KNOWN_KEYS, peerSchema, rootSchema } from '../../lib/config/schema';
import type { EncapType, ResolvedConfig } from '../../lib/types';

const root = path.resolve(__dirname, '..', '..');
const DOC = 'docs/configuration.md';
const docText = fs.readFileSync(path.join(root, DOC), 'utf8');

type Raw = Record<string, unknown>;

/** What an example or a table's base leaves out (the document states the same at its top). */
const BASE: Raw = { name: 'ovl0', underlay: { local: '198.18.0.1' }, encap: { type: 'vxlan', vni: 42 } };

const HEADER = ['key', 'type', 'default', 'reload', 'description'];

interface Row {
  path: string;
  type: string;
  default: string;
  reload: string;
  description: string;
  /** Line number in the document, for messages. */
  line: number;
}

interface Table {
  heading: string;
  line: number;
  base: Raw;
  rows: Row[];
}

interface Fence {
  info: string;
  text: string;
  line: number;
}

/** The cells of a table line: split at unescaped pipes, outer empties dropped, `\|` unescaped. */
function cells(line: string): string[] {
  const parts = line.trim().split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, '|'));
  return parts.slice(1, parts.length - 1);
}

function parseDoc(text: string): { tables: Table[]; fences: Fence[]; headings: string[]; problems: string[] } {
  const lines = text.split('\n');
  const tables: Table[] = [];
  const fences: Fence[] = [];
  const headings: string[] = [];
  const problems: string[] = [];
  let heading = '(top)';
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const fence = /^```(.*)$/.exec(line);
    if (fence) {
      const start = i;
      const body: string[] = [];
      for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
      fences.push({ info: fence[1]!.trim(), text: body.join('\n'), line: start + 1 });
      continue;
    }
    const h = /^(#{1,6})\s+(.*)$/.exec(line);
    if (h) {
      heading = h[2]!.trim();
      headings.push(heading);
      continue;
    }
    if (!line.startsWith('|')) continue;
    const header = cells(line);
    if (header[0] !== 'key') continue;
    const at = `${DOC}:${i + 1} (${heading})`;
    if (JSON.stringify(header) !== JSON.stringify(HEADER)) problems.push(`${at}: a key table must be headed | ${HEADER.join(' | ')} |`);
    let base: Raw = {};
    const comment = /^<!--\s*reference base:\s*(.*?)\s*-->$/.exec(lines[i - 1] ?? '');
    if (comment) {
      const parsed = parseYamlText(comment[1]!, `${DOC}:${i} (reference base)`);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) problems.push(`${at}: the reference base must be a YAML mapping`);
      else base = parsed as Raw;
    }
    const table: Table = { heading, line: i + 1, base: { ...BASE, ...base }, rows: [] };
    for (i += 2; i < lines.length && lines[i]!.startsWith('|'); i++) {
      const c = cells(lines[i]!);
      const key = /^`([^`]+)`$/.exec(c[0] ?? '');
      if (c.length !== HEADER.length || !key) {
        problems.push(`${DOC}:${i + 1}: a row needs ${HEADER.length} cells, the key in backticks`);
        continue;
      }
      table.rows.push({ path: key[1]!, type: c[1]!, default: c[2]!, reload: c[3]!, description: c[4]!, line: i + 1 });
    }
    i--;
    tables.push(table);
  }
  return { tables, fences, headings, problems };
}

const doc = parseDoc(docText);

// ---- paths -----------------------------------------------------------------------------------

type Segment = string | number;

/** `peers[0].sa.out.key` → ['peers', 0, 'sa', 'out', 'key']. */
function segments(p: string): Segment[] {
  const out: Segment[] = [];
  for (const part of p.split('.')) {
    const m = /^([^[]+)((?:\[\d+\])*)$/.exec(part);
    if (!m) throw new Error(`bad path ${p}`);
    out.push(m[1]!);
    for (const idx of m[2]!.matchAll(/\[(\d+)\]/g)) out.push(Number(idx[1]));
  }
  return out;
}

function getAt(value: unknown, p: string): unknown {
  let v: unknown = value;
  for (const s of p === '' ? [] : segments(p)) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[s];
  }
  return v;
}

/** Removes the key at `p`; false when it was not there. */
function deleteAt(value: unknown, p: string): boolean {
  const segs = segments(p);
  const parent = getAt(value, formatSegments(segs.slice(0, -1)));
  const last = segs[segs.length - 1]!;
  if (parent === null || typeof parent !== 'object' || !(last in parent)) return false;
  delete (parent as Record<string | number, unknown>)[last];
  return true;
}

function formatSegments(segs: Segment[]): string {
  return segs.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
}

/** Where a documented key is written in a config: each entry of a list is its first. */
const writtenPath = (p: string) => p.replace(/\[\]/g, '[0]');

/**
 * Where its default shows in the resolved config. The top-level ike holds every peer's defaults
 * and stays as written; its keys resolve (and are reported missing) on each peer's ike.
 */
const resolvedPath = (p: string) => writtenPath(p).replace(/^ike\./, 'peers[0].ike.');

/** A printed config's path as documented: list entries as `[]`, a peer's own ike as the ike keys. */
const documentedPath = (p: string) => p.replace(/\[\d+\]/g, '[]').replace(/^peers\[\]\.ike\./, 'ike.');

const clone = <T>(v: T): T => structuredClone(v);

/** parseConfig's result, or the paths of its issues. */
function resolve(input: Raw): { config: ResolvedConfig } | { issues: string[] } {
  try {
    return { config: parseConfig(clone(input)) };
  } catch (err) {
    if (!isConfigError(err)) throw err;
    return { issues: err.issues.map((i) => `${i.path}: ${i.message}`) };
  }
}

function resolveOrFail(input: Raw, what: string): ResolvedConfig {
  const r = resolve(input);
  if ('issues' in r) throw new Error(`${what} does not validate:\n  ${r.issues.join('\n  ')}`);
  return r.config;
}

// ---- what the schema takes -------------------------------------------------------------------

/** The keys a mapping takes, read from the unknown-key message the parser gives for a key far from all of them. */
function knownFromMessage(issues: ReadonlyArray<{ message: string }>): string[] {
  for (const i of issues) {
    const m = /^unknown key \(known: (.*)\)$/.exec(i.message);
    if (m) return m[1]!.split(', ');
  }
  throw new Error(`no unknown-key message among: ${issues.map((i) => i.message).join('; ')}`);
}

const FAR_KEY = 'zzzzzzzzzzzz';
const SOME_SA = { spi: 1, key: 'aa' };

function saKeys(): { top: string[]; out: string[]; in: string[] } {
  const issuesOf = (input: unknown) => {
    const r = saSchema.safeParse(input);
    return r.success ? [] : r.error.issues;
  };
  return {
    top: knownFromMessage(issuesOf({ out: SOME_SA, in: SOME_SA, [FAR_KEY]: 1 })),
    out: knownFromMessage(issuesOf({ out: { ...SOME_SA, [FAR_KEY]: 1 }, in: SOME_SA })),
    in: knownFromMessage(issuesOf({ out: SOME_SA, in: { ...SOME_SA, [FAR_KEY]: 1 } })),
  };
}

function endpointKeys(): string[] {
  const r = peerSchema.safeParse({ name: 'b', endpoint: { address: '198.18.0.2', [FAR_KEY]: 1 } });
  return knownFromMessage(r.success ? [] : r.error.issues);
}

/** A valid value of each encap key, to ask each mode whether it takes the key. */
const ENCAP_SAMPLES: Record<string, unknown> = { vni: 42, port: 4789, key: 7, checksum: true, sequence: true, cipher: 'aes-256-gcm', udp: true, esn: true };

/** The encap keys (other than type) each mode takes: those its schema accepts. */
function encapKeysByMode(): Map<EncapType, string[]> {
  const out = new Map<EncapType, string[]>();
  for (const type of ENCAP_TYPES) {
    const needs: Raw = type === 'vxlan' || type === 'geneve' ? { vni: 1 } : {};
    const keys = ENCAP_KEYS.filter((k) => {
      if (k === 'type') return false;
      if (!(k in ENCAP_SAMPLES)) throw new Error(`encap.${k}: no sample value in this test's ENCAP_SAMPLES (add one)`);
      return encapSchema.safeParse({ type, ...needs, [k]: ENCAP_SAMPLES[k] }).success;
    });
    out.set(type, keys);
  }
  return out;
}

/** Every path the schema takes, with where the test found it (for the message of an undocumented one). */
function schemaPaths(): Map<string, string> {
  const paths = new Map<string, string>();
  const docPrefix = (mapping: string) => (mapping === '' ? '' : mapping === 'peer' ? 'peers[]' : mapping);
  for (const [mapping, keys] of Object.entries(KNOWN_KEYS)) {
    for (const k of keys) {
      const prefix = docPrefix(mapping);
      paths.set(prefix ? `${prefix}.${k}` : k, `KNOWN_KEYS[${JSON.stringify(mapping)}] in lib/config/schema.ts`);
    }
  }
  const sa = saKeys();
  for (const k of sa.top) paths.set(`peers[].sa.${k}`, "the SA mapping's keys (lib/config/sa.ts)");
  for (const k of sa.out) paths.set(`peers[].sa.out.${k}`, "an outbound SA's keys (lib/config/sa.ts)");
  for (const k of sa.in) paths.set(`peers[].sa.in.${k}`, "an inbound SA's keys (lib/config/sa.ts)");
  return paths;
}

/** The mode of a table: the encap.type its base resolves to. */
function modeOf(table: Table): EncapType {
  return resolveOrFail(table.base, `the reference base of the table at ${DOC}:${table.line}`).encap.type;
}

const allRows = doc.tables.flatMap((t) => t.rows.map((r) => ({ table: t, row: r })));
const at = (r: Row) => `${DOC}:${r.line} \`${r.path}\``;

describe('docs/configuration.md', () => {
  it('is made of tables the test can read', () => {
    expect(doc.problems).toEqual([]);
    expect(doc.tables.length).toBeGreaterThan(10);
    for (const t of doc.tables) resolveOrFail(t.base, `the reference base of the table at ${DOC}:${t.line}`);
  });

  it('documents every key the schema takes, and no key it does not', () => {
    const schema = schemaPaths();
    const documented = new Set(allRows.map(({ row }) => row.path));
    const undocumented = [...schema]
      .filter(([p]) => !documented.has(p))
      .map(([p, from]) => `${p}: undocumented (the schema takes it: ${from}); add a row for it to its section's table in ${DOC}`);
    const unknown = allRows.filter(({ row }) => !schema.has(row.path)).map(({ row }) => `${at(row)}: documented, but the schema takes no such key (renamed or removed?)`);
    expect([...undocumented, ...unknown]).toEqual([]);
  });

  it('documents each key once (an encap key once per mode)', () => {
    const seen = new Map<string, Row>();
    const twice: string[] = [];
    for (const { table, row } of allRows) {
      const id = row.path.startsWith('encap.') && row.path !== 'encap.type' ? `${row.path} in ${modeOf(table)}` : row.path;
      const first = seen.get(id);
      if (first) twice.push(`${at(row)} (also line ${first.line})`);
      else seen.set(id, row);
    }
    expect(twice).toEqual([]);
  });

  it("documents each encap mode's own keys in the table of that mode", () => {
    const byMode = encapKeysByMode();
    const documented = new Map<EncapType, string[]>(ENCAP_TYPES.map((t) => [t, []]));
    for (const { table, row } of allRows) {
      if (!row.path.startsWith('encap.') || row.path === 'encap.type') continue;
      documented.get(modeOf(table))!.push(row.path.slice('encap.'.length));
    }
    const problems: string[] = [];
    for (const type of ENCAP_TYPES) {
      const takes = byMode.get(type)!;
      const doc = documented.get(type)!;
      for (const k of takes) if (!doc.includes(k)) problems.push(`encap.type ${type} takes encap.${k}: no table whose reference base is ${type} documents it`);
      for (const k of doc) if (!takes.includes(k)) problems.push(`encap.${k} is documented for ${type}, which does not take it`);
    }
    expect(problems).toEqual([]);
  });

  it('documents the per-peer ike as the top-level ike, and the endpoint mapping form', () => {
    // One ike table serves both: true as long as both take the same schema.
    expect(peerSchema.shape.ike, 'peers[].ike no longer takes the top-level ike schema: document its keys of its own').toBe(optionalIke);
    expect(rootSchema.shape.ike).toBe(optionalIke);
    const endpoint = allRows.find(({ row }) => row.path === 'peers[].endpoint')!.row;
    for (const k of endpointKeys()) {
      expect(endpoint.type, `peers[].endpoint also takes a mapping with ${k}: its type cell should say so`).toMatch(new RegExp(`\\b${k}\\b`));
    }
  });

  it('gives each default as parseConfig fills it in', () => {
    const problems: string[] = [];
    for (const { table, row } of allRows) {
      const cell = row.default;
      const literal = /^`([^`]*)`$/.exec(cell);
      if (!literal && !/^(computed:|required|none|section)/.test(cell)) {
        problems.push(`${at(row)}: default "${cell}" is none of: a value in backticks, computed: ..., required, none, section`);
        continue;
      }
      if (cell.startsWith('computed:') || cell.startsWith('section')) continue;
      const input = clone(table.base);
      const removed = deleteAt(input, writtenPath(row.path));
      const r = resolve(input);
      const where = resolvedPath(row.path);
      if (cell.startsWith('required')) {
        if (!removed) problems.push(`${at(row)}: required, but the table's reference base does not give it (so it cannot be checked)`);
        else if ('config' in r) problems.push(`${at(row)}: documented as required, but parseConfig accepts the base without it`);
        else if (!r.issues.some((i) => i.startsWith(`${where}: `))) problems.push(`${at(row)}: documented as required; without it parseConfig says ${r.issues.join('; ')}`);
        continue;
      }
      if ('issues' in r) {
        problems.push(`${at(row)}: the base without this key does not validate: ${r.issues.join('; ')}`);
        continue;
      }
      const actual = getAt(r.config, where);
      if (cell.startsWith('none')) {
        const empty = actual === undefined || actual === null || (Array.isArray(actual) && actual.length === 0);
        if (!empty) problems.push(`${at(row)}: documented as none, but parseConfig fills in ${JSON.stringify(actual)}`);
        continue;
      }
      const expected = parseYamlText(literal![1]!, at(row));
      if (JSON.stringify(actual) !== JSON.stringify(expected)) {
        problems.push(`${at(row)}: documented default ${literal![1]}, parseConfig gives ${JSON.stringify(actual)}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('says which keys a reload applies live and which need a restart', () => {
    const problems: string[] = [];
    for (const { table, row } of allRows) {
      if (row.reload !== 'live' && row.reload !== 'restart') {
        problems.push(`${at(row)}: reload "${row.reload}" is neither live nor restart`);
        continue;
      }
      const running = resolveOrFail(table.base, `the reference base of ${at(row)}`);
      let restart: boolean;
      if (row.path === 'ike.port') {
        // The IKE sockets: planReload compares the ports each config's IKE would use.
        const plan = planReload(running, clone(running), (c) => (c === running ? 500 : 4501));
        restart = plan.restartNeeded.some((i) => i.path === 'ike.port');
      } else {
        const field = String(segments(writtenPath(row.path))[0]);
        // Any other value: a list (peers, cpuAffinity) gains an entry, anything else becomes a mapping.
        const before = (running as unknown as Raw)[field];
        const changed = Array.isArray(before) ? [...clone(before), { name: 'changed-by-the-test' }] : { changedByTheTest: true };
        const next = { ...clone(running), [field]: changed } as ResolvedConfig;
        restart = planReload(running, next, () => null).restartNeeded.length > 0;
      }
      if ((row.reload === 'restart') !== restart) {
        problems.push(`${at(row)}: documented as ${row.reload}, but planReload ${restart ? 'refuses to change it live' : 'applies it live'}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('marks as secret exactly what check and showconf print as <redacted>', () => {
    const problems: string[] = [];
    const secret = (r: Row) => /\bsecret\b/.test(r.type);
    const secretPaths = new Set(allRows.filter(({ row }) => secret(row)).map(({ row }) => row.path));
    for (const table of doc.tables) {
      const printed = printableConfig(resolveOrFail(table.base, `the reference base of the table at ${DOC}:${table.line}`));
      for (const row of table.rows) {
        const v = getAt(printed, writtenPath(row.path));
        if (secret(row) && v !== REDACTED) problems.push(`${at(row)}: marked secret, but the table's base prints it as ${JSON.stringify(v)}`);
        if (!secret(row) && v === REDACTED) problems.push(`${at(row)}: printed as ${REDACTED}, but not marked secret`);
      }
      const walk = (v: unknown, p: string): void => {
        if (v === REDACTED && !secretPaths.has(documentedPath(p))) problems.push(`${p} is printed as ${REDACTED} (table at line ${table.line}) but no row marks ${documentedPath(p)} secret`);
        if (v !== null && typeof v === 'object') {
          for (const [k, x] of Object.entries(v)) walk(x, Array.isArray(v) ? `${p}[${k}]` : p ? `${p}.${k}` : k);
        }
      };
      walk(printed, '');
    }
    expect(problems).toEqual([]);
    // The secrets the Secrets section names, as the parser's redaction knows them.
    expect([...secretPaths].sort()).toEqual(['ike.psk', 'peers[].sa.in.key', 'peers[].sa.out.key', 'registry.etcd.password']);
  });

  it('has YAML examples that validate', () => {
    const problems: string[] = [];
    let configs = 0;
    for (const f of doc.fences) {
      if (!/^yaml\b/.test(f.info)) continue;
      const where = `${DOC}:${f.line}`;
      let data: unknown;
      try {
        data = parseYamlText(f.text, where);
      } catch (err) {
        problems.push(`${where}: ${(err as Error).message}`);
        continue;
      }
      if (f.info === 'yaml') {
        configs++;
        const r = resolve({ ...BASE, ...(data as Raw) });
        if ('issues' in r) problems.push(`${where}: the example does not validate:\n    ${r.issues.join('\n    ')}`);
      } else if (f.info === 'yaml sa-file') {
        const issues = checkSaInput(data);
        if (issues.length > 0) problems.push(`${where}: the SA file does not check: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
      } else {
        problems.push(`${where}: a yaml fence is "yaml" (a config) or "yaml sa-file", not "${f.info}"`);
      }
    }
    expect(problems).toEqual([]);
    expect(configs).toBeGreaterThan(20);
  });

  it('links only to headings and files that exist', () => {
    const slug = (h: string) => h.toLowerCase().replace(/`/g, '').replace(/[^a-z0-9 _-]/g, '').replace(/ /g, '-');
    const headingsOf = (file: string) => [...fs.readFileSync(file, 'utf8').matchAll(/^#{1,6}\s+(.*)$/gm)].map((m) => slug(m[1]!.trim()));
    const problems: string[] = [];
    for (const m of docText.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (/^https?:/.test(target)) continue;
      const [file, anchor] = target.split('#');
      const full = file ? path.resolve(root, 'docs', file) : path.join(root, DOC);
      if (!fs.existsSync(full)) {
        problems.push(`${target}: no such file`);
        continue;
      }
      if (anchor && !headingsOf(full).includes(anchor)) problems.push(`${target}: no such heading in ${path.relative(root, full)}`);
    }
    expect(problems).toEqual([]);
  });
});

describe('README', () => {
  it("shows both ends of its example overlay, each the other's peer", () => {
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
    const ends = new Map<string, ResolvedConfig>();
    for (const m of readme.matchAll(/```yaml\n# host (\w+): [^\n]*\n([\s\S]*?)```/g)) {
      ends.set(m[1]!, resolveOrFail(parseYamlText(m[2]!, `README.md, host ${m[1]}`) as Raw, `README.md's config of host ${m[1]}`));
    }
    expect([...ends.keys()]).toEqual(['a', 'b']);
    const a = ends.get('a')!;
    const b = ends.get('b')!;
    expect(a.peers.map((p) => p.endpoint.address)).toEqual([b.underlay.local]);
    expect(b.peers.map((p) => p.endpoint.address)).toEqual([a.underlay.local]);
    expect(a.encap).toEqual(b.encap);
    expect(a.device.type).toBe(b.device.type);
  });

  it('links the configuration reference and the systemd unit', () => {
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
    for (const target of [DOC, 'examples/systemd/overlayfwd@.service']) {
      expect(readme).toContain(`](${target})`);
      expect(fs.existsSync(path.join(root, target))).toBe(true);
    }
  });
});
