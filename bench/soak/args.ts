// The soak's command line: how long, which modes, how often it samples, where the result goes.
export const SOAK_MODES = ['vxlan', 'esp'] as const;
export type SoakMode = (typeof SOAK_MODES)[number];

export interface SoakArgs {
  minutes: number;
  modes: SoakMode[];
  intervalSec: number;
  /** The result file; null: bench/results/soak-<start time>.json. */
  out: string | null;
  /** A directory to keep each `up`'s log in (MODE-SIDE.log); null: only the tally of its lines. */
  logs: string | null;
  /** esp: the Child SA lifetime IKE rekeys at (ike.rekeySeconds); the IKE SA is rekeyed every IKE_REKEY_FACTOR of them. */
  rekeySec: number;
  /** Every `up` with --gc-global: each V8 collection a full one, so that RSS holds no garbage (slower, and unlike production). */
  fullGc: boolean;
}

export const SOAK_USAGE =
  `usage: npm run soak -- [--minutes N] [--modes ${SOAK_MODES.join(',')}] [--interval S] [--rekey S] [--out FILE] [--logs DIR] [--full-gc]\n` +
  '       (default: 10 minutes, both modes at once, a sample every 10 s, a Child SA rekey every ~20 s)';

export const SOAK_DEFAULTS: SoakArgs = { minutes: 10, modes: [...SOAK_MODES], intervalSec: 10, out: null, logs: null, rekeySec: 20, fullGc: false };

/** ike.rekeySeconds' own minimum is 10; a day is the longest soak that still makes sense to sample. */
const LIMITS = { minutes: [0.5, 1440], intervalSec: [1, 600], rekeySec: [10, 3600] } as const;

function numberIn(flag: string, text: string, [min, max]: readonly [number, number], whole: boolean): number {
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v) || v < min || v > max || (whole && !Number.isInteger(v))) {
    throw new Error(`${flag} wants ${whole ? 'a whole number' : 'a number'} from ${min} to ${max}, not ${JSON.stringify(text)}\n${SOAK_USAGE}`);
  }
  return v;
}

export function parseSoakModes(text: string): SoakMode[] {
  const names = text.split(',').map((m) => m.trim()).filter(Boolean);
  if (names.length === 0) throw new Error(`--modes names no mode (modes: ${SOAK_MODES.join(', ')})`);
  const out: SoakMode[] = [];
  for (const n of names) {
    if (!(SOAK_MODES as readonly string[]).includes(n)) throw new Error(`unknown mode ${n} (modes: ${SOAK_MODES.join(', ')})`);
    if (!out.includes(n as SoakMode)) out.push(n as SoakMode);
  }
  return out;
}

/** Parses the arguments after `npm run soak --`; throws with the usage on anything it does not take. `help` asks for the usage. */
export function parseSoakArgs(argv: readonly string[]): SoakArgs | 'help' {
  const args: SoakArgs = { ...SOAK_DEFAULTS, modes: [...SOAK_DEFAULTS.modes] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') return 'help';
    const eq = a.indexOf('=');
    const flag = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    const value = (): string => {
      if (eq > 0 && a.startsWith('--')) return a.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value\n${SOAK_USAGE}`);
      return v;
    };
    switch (flag) {
      case '--full-gc':
        if (eq > 0) throw new Error(`--full-gc takes no value\n${SOAK_USAGE}`);
        args.fullGc = true;
        break;
      case '--minutes':
        args.minutes = numberIn(flag, value(), LIMITS.minutes, false);
        break;
      case '--interval':
        args.intervalSec = numberIn(flag, value(), LIMITS.intervalSec, true);
        break;
      case '--rekey':
        args.rekeySec = numberIn(flag, value(), LIMITS.rekeySec, true);
        break;
      case '--modes':
        try {
          args.modes = parseSoakModes(value());
        } catch (err) {
          throw new Error(`--modes: ${(err as Error).message}\n${SOAK_USAGE}`);
        }
        break;
      case '--out':
      case '--logs': {
        const v = value();
        if (v.trim() === '') throw new Error(`${flag} needs a ${flag === '--out' ? 'file' : 'directory'} name\n${SOAK_USAGE}`);
        if (flag === '--out') args.out = v;
        else args.logs = v;
        break;
      }
      default:
        throw new Error(`unknown option ${a}\n${SOAK_USAGE}`);
    }
  }
  // Fewer than three samples after the warm-up leave the verdict nothing to compare.
  if (args.minutes * 60 < args.intervalSec * 6) {
    throw new Error(`--interval ${args.intervalSec} s is too long for ${args.minutes} minutes: the verdict needs at least 6 samples\n${SOAK_USAGE}`);
  }
  return args;
}
