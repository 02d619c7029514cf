// Building blocks of the schema: field types with the messages users see. A field's message says
// what it must be; "required" when it is absent.
import { z } from 'zod';
import { parseCidr, parseIp, parseMac } from './addresses';
import type { Parsed } from './issues';

type IssueLike = { input?: unknown };

/** Error text for a field: `whenAbsent` ("required") when absent, else `message`. */
export const err = (message: string, whenAbsent = 'required') => ({
  error: (iss: IssueLike) => (iss.input === undefined ? whenAbsent : message),
});

/** An integer in [min, max]; absent, it says `whenAbsent`. */
export function intRange(min: number, max: number, whenAbsent?: string) {
  const message = `must be an integer from ${min} to ${max}`;
  return z.number(err(message, whenAbsent)).int(message).min(min, message).max(max, message);
}

export function trueOrFalse() {
  return z.boolean(err('must be true or false'));
}

export const nullToUndefined = (v: unknown) => (v === null ? undefined : v);

const NAME_RE = /^[a-zA-Z0-9_.-]{1,15}$/;
const NAME_TEXT = 'must be 1 to 15 characters from a-z A-Z 0-9 _ . - (it is also a network interface name)';
export const ifName = z
  .string(err(NAME_TEXT))
  .regex(NAME_RE, NAME_TEXT)
  .refine((s) => s !== '.' && s !== '..', NAME_TEXT);

const PEER_NAME_RE = /^[a-zA-Z0-9_.-]{1,64}$/;
const PEER_NAME_TEXT = 'must be 1 to 64 characters from a-z A-Z 0-9 _ . -';
export const peerName = z
  .string(err(PEER_NAME_TEXT))
  .regex(PEER_NAME_RE, PEER_NAME_TEXT)
  .refine((s) => s !== '__proto__', `"__proto__" is reserved`);

const ACCOUNT_RE = /^[a-zA-Z_][a-zA-Z0-9_.-]{0,31}$/;
/** A user or group: a name of this host's (looked up at start) or a numeric id. */
export function account(what: 'user' | 'group') {
  const text = `must be a ${what} name (1 to 32 characters of a-z A-Z 0-9 _ . -, not starting with a digit, . or -) or a numeric ${what === 'user' ? 'uid' : 'gid'} (0 to 4294967294)`;
  return z.union([z.string(err(text)).regex(ACCOUNT_RE, text), z.number(err(text)).int(text).min(0, text).max(4294967294, text)], { error: () => text });
}

const INTERFACE_TEXT = 'must be the name of an existing network interface (1 to 15 characters from a-z A-Z 0-9 _ . -)';
export const interfaceName = z
  .string(err(INTERFACE_TEXT))
  .regex(NAME_RE, INTERFACE_TEXT)
  .refine((s) => s !== '.' && s !== '..', INTERFACE_TEXT);

const NETNS_TEXT = 'must be a network namespace name (1 to 64 characters from a-z A-Z 0-9 _ . -)';
export const netnsName = z
  .string(err(NETNS_TEXT))
  .regex(/^[a-zA-Z0-9_.-]{1,64}$/, NETNS_TEXT)
  .refine((s) => s !== '.' && s !== '..', NETNS_TEXT);

/** A string checked and canonicalised by `parse`. */
function parsedString<T>(expect: string, parse: (s: string) => Parsed<T>) {
  return z.string(err(`must be a string (${expect})`)).transform((s, ctx): T => {
    const r = parse(s);
    if (r.ok) return r.value;
    ctx.issues.push({ code: 'custom', message: r.message, input: s });
    return z.NEVER;
  });
}

export const ipAddress = parsedString('an IPv4 or IPv6 address', parseIp);
export const cidr = parsedString('a CIDR prefix such as 198.19.0.1/24', parseCidr);
export const mac = parsedString('a MAC address such as 02:00:00:00:00:01', parseMac);

export function list<T extends z.ZodType>(item: T, what: string) {
  return z.array(item, err(`must be a list of ${what}`));
}

/** A mapping that takes the keys of `shape` and no others. */
export function section<T extends z.ZodRawShape>(shape: T) {
  return z.strictObject(shape, err('must be a mapping (key: value)'));
}
