// Control socket: a Unix stream socket speaking newline-delimited JSON, one request and one
// response per connection. `overlayfwd up` serves it; `overlayfwd stats|peers` are its clients.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ConfigError, isConfigError, publicPeer, type ConfigIssue } from './config';
import { printableConfig } from './config/printable';
import type { Overlay, OverlayPeers } from './overlay';
import { isDropCursor } from './drops';
import type { FdbEntry, OverlayStats, PeerInfo, PublicPeer, RecentDrops, RegistryNodes, ReloadResult } from './types';

/** What the control socket serves: it adds, removes and lists peers one at a time. */
export type OverlayLike = Pick<Overlay, 'name' | 'stats' | 'fdb'> &
  Partial<Pick<Overlay, 'nodes' | 'config' | 'recentDrops'>> & { peers: Pick<OverlayPeers, 'add' | 'remove' | 'list'> };

export interface ControlServerOptions {
  /**
   * Serves `reload`: re-reads the config and applies it (`overlayfwd up` passes one that reads
   * its file and calls overlay.reload). Absent: `reload` answers that this instance cannot.
   */
  reload?: () => Promise<ReloadResult> | ReloadResult;
  /**
   * The group that may use the socket besides its owner: the socket is then chowned to it and
   * made 0660 (`overlayfwd up` with `user:`: root and that group). Absent: 0600, owner only.
   */
  group?: number;
}

export type ControlRequest =
  | { cmd: 'stats' }
  | { cmd: 'peers.list' }
  | { cmd: 'peers.add'; peer: unknown }
  | { cmd: 'peers.remove'; name: string }
  | { cmd: 'fdb' }
  | { cmd: 'nodes' }
  | { cmd: 'reload' }
  | { cmd: 'showconf'; showKeys?: boolean }
  /** The recent drops; `since`: the cursor of the previous answer, for only what came after it. */
  | { cmd: 'drops'; since?: number[] };

export interface ControlResults {
  stats: OverlayStats;
  'peers.list': PeerInfo[];
  /** The peer as added, its SAs as SPIs (never keys). */
  'peers.add': PublicPeer;
  'peers.remove': { removed: boolean };
  fdb: FdbEntry[];
  nodes: RegistryNodes;
  reload: ReloadResult;
  /** The running config in input form; secrets replaced by "<redacted>" unless showKeys. */
  showconf: Record<string, unknown>;
  drops: RecentDrops;
}

export type ControlResponse =
  | { ok: true; result: unknown }
  | { ok: false; error: { message: string; issues?: ConfigIssue[] } };

/** An error reported by the server (other than a validation error, which arrives as ConfigError). */
export class ControlError extends Error {
  constructor(message: string, readonly code?: string) {
    super(message);
    this.name = 'ControlError';
  }
}

const MAX_REQUEST_BYTES = 1 << 20;
const IDLE_TIMEOUT_MS = 10_000;

type SocketState = 'absent' | 'live' | 'stale' | 'not-a-socket';

/** What is at `socketPath`: nothing, a socket someone listens on, a dead socket file, or something else. */
export async function probeSocket(socketPath: string, timeoutMs = 1000): Promise<SocketState> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socketPath);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw e;
  }
  if (!st.isSocket()) return 'not-a-socket';
  return new Promise((resolve) => {
    const conn = net.connect(socketPath);
    const done = (state: SocketState) => {
      clearTimeout(timer);
      conn.destroy();
      resolve(state);
    };
    // A listener that doesn't accept in time is still a listener.
    const timer = setTimeout(() => done('live'), timeoutMs);
    conn.once('connect', () => done('live'));
    conn.once('error', (e: NodeJS.ErrnoException) => done(e.code === 'ECONNREFUSED' || e.code === 'ENOENT' ? 'stale' : 'live'));
  });
}

function errorResponse(err: unknown): ControlResponse {
  if (isConfigError(err)) return { ok: false, error: { message: err.message, issues: err.issues } };
  const message = err instanceof Error ? err.message : String(err);
  return { ok: false, error: { message } };
}

function serialize(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === 'bigint' ? (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString()) : v,
  );
}

async function dispatch(overlay: OverlayLike, request: unknown, options: ControlServerOptions): Promise<unknown> {
  if (request === null || typeof request !== 'object' || Array.isArray(request)) {
    throw new ControlError('request must be a JSON object with a "cmd"');
  }
  const req = request as Record<string, unknown>;
  switch (req.cmd) {
    case 'stats':
      return overlay.stats();
    case 'peers.list':
      return overlay.peers.list();
    case 'peers.add':
      if (req.peer === undefined) throw new ControlError('peers.add needs a "peer"');
      // The answer shows SPIs, never keys (the request carried them; the answer need not).
      return publicPeer(overlay.peers.add(req.peer));
    case 'peers.remove':
      if (typeof req.name !== 'string') throw new ControlError('peers.remove needs a "name" (string)');
      return { removed: overlay.peers.remove(req.name) };
    case 'fdb':
      return overlay.fdb();
    case 'nodes':
      if (!overlay.nodes) throw new ControlError('nodes: this instance has no registry');
      return overlay.nodes();
    case 'reload':
      if (!options.reload) throw new ControlError('reload: this instance has no config file to re-read');
      return options.reload();
    case 'showconf':
      if (!overlay.config) throw new ControlError('showconf: this instance does not show its config');
      if (req.showKeys !== undefined && typeof req.showKeys !== 'boolean') throw new ControlError('showconf: "showKeys" must be true or false');
      // Keys cross this socket only when asked for; it is root-only (0600), or root and `group:` (0660).
      return printableConfig(overlay.config, { showKeys: req.showKeys === true });
    case 'drops':
      if (!overlay.recentDrops) throw new ControlError('drops: this instance does not record drops');
      if (req.since !== undefined && !isDropCursor(req.since)) throw new ControlError('drops: "since" must be the "cursor" of an earlier answer');
      return overlay.recentDrops(req.since as number[] | undefined);
    default:
      throw new ControlError(`unknown command ${JSON.stringify(req.cmd)} (known: stats, peers.list, peers.add, peers.remove, fdb, nodes, reload, showconf, drops)`);
  }
}

export class ControlServer {
  private readonly connections = new Set<net.Socket>();
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly server: net.Server,
    readonly socketPath: string,
    private readonly ino: number,
    private readonly overlay: OverlayLike,
    private readonly options: ControlServerOptions,
  ) {
    server.on('connection', (conn) => this.serve(conn));
  }

  /**
   * Serves `overlay` on a Unix socket at `socketPath` (directory created 0755, socket 0600, or
   * 0660 with options.group as its group).
   * A leftover socket file nobody listens on is replaced; a live one means another instance is
   * running, which is an error, as is a path holding something other than a socket.
   */
  static async listen(overlay: OverlayLike, socketPath: string, options: ControlServerOptions = {}): Promise<ControlServer> {
    const dir = path.dirname(socketPath);
    const created = fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    if (created !== undefined) {
      // The umask may have narrowed what mkdir made; existing directories are left as they are.
      for (let d = dir; ; d = path.dirname(d)) {
        fs.chmodSync(d, 0o755);
        if (d === created || path.dirname(d) === d) break;
      }
    }
    const server = net.createServer({ allowHalfOpen: true });
    try {
      await listenOnce(server, socketPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw withPath(e, socketPath);
      const state = await probeSocket(socketPath);
      if (state === 'live') {
        throw new ControlError(`another instance is running (${socketPath} is in use)`, 'EADDRINUSE');
      }
      if (state === 'not-a-socket') {
        throw new ControlError(`${socketPath} exists and is not a socket; not replacing it`, 'EEXIST');
      }
      if (state === 'stale') fs.rmSync(socketPath, { force: true });
      try {
        await listenOnce(server, socketPath);
      } catch (e2) {
        if ((e2 as NodeJS.ErrnoException).code === 'EADDRINUSE') {
          throw new ControlError(`another instance is running (${socketPath} is in use)`, 'EADDRINUSE');
        }
        throw withPath(e2, socketPath);
      }
    }
    try {
      // The group first, so that the socket is never open to a group it was not meant for.
      if (options.group !== undefined) fs.chownSync(socketPath, process.geteuid?.() ?? 0, options.group);
      fs.chmodSync(socketPath, options.group !== undefined ? 0o660 : 0o600);
      const { ino } = fs.statSync(socketPath);
      return new ControlServer(server, socketPath, ino, overlay, options);
    } catch (e) {
      server.close();
      throw withPath(e, socketPath);
    }
  }

  /** Stops listening, drops open connections and removes the socket file (if it is still ours). */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const conn of this.connections) conn.destroy();
      this.removeFile();
    });
    return this.closing;
  }

  private removeFile(): void {
    try {
      if (fs.statSync(this.socketPath).ino === this.ino) fs.unlinkSync(this.socketPath);
    } catch {
      // already gone (libuv unlinks a listening pipe on close)
    }
  }

  private serve(conn: net.Socket): void {
    this.connections.add(conn);
    conn.setTimeout(IDLE_TIMEOUT_MS, () => conn.destroy());
    conn.on('close', () => this.connections.delete(conn));
    conn.on('error', () => conn.destroy());
    let buffered = '';
    let answered = false;
    const answer = (response: ControlResponse) => {
      if (answered) return;
      answered = true;
      let text: string;
      try {
        text = serialize(response);
      } catch (e) {
        text = serialize(errorResponse(e));
      }
      conn.end(`${text}\n`);
    };
    const handle = (line: string) => {
      let request: unknown;
      try {
        request = JSON.parse(line);
      } catch {
        answer({ ok: false, error: { message: 'request is not valid JSON' } });
        return;
      }
      dispatch(this.overlay, request, this.options).then(
        (result) => answer({ ok: true, result: result ?? null }),
        (e: unknown) => answer(errorResponse(e)),
      );
    };
    conn.setEncoding('utf8');
    conn.on('data', (chunk: string) => {
      if (answered) return;
      buffered += chunk;
      const nl = buffered.indexOf('\n');
      if (nl >= 0) {
        handle(buffered.slice(0, nl));
      } else if (buffered.length > MAX_REQUEST_BYTES) {
        answer({ ok: false, error: { message: `request larger than ${MAX_REQUEST_BYTES} bytes` } });
      }
    });
    conn.on('end', () => {
      // A client may half-close instead of sending the newline.
      if (!answered && buffered.trim() !== '') handle(buffered);
      else if (!answered) conn.end();
    });
  }
}

function listenOnce(server: net.Server, socketPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => {
      server.off('listening', onListening);
      reject(e);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(socketPath);
  });
}

function withPath(e: unknown, socketPath: string): Error {
  const err = e instanceof Error ? e : new Error(String(e));
  if (!err.message.includes(socketPath)) err.message = `${err.message} (control socket ${socketPath})`;
  return err;
}

/**
 * Sends one request to the instance serving `socketPath` and returns its result. A validation
 * error from the server is thrown as ConfigError (with its issues); other server errors as
 * ControlError; no listener as an Error "no running instance at <path>".
 */
export function controlRequest<R extends ControlRequest>(
  socketPath: string,
  request: R,
  timeoutMs = 5000,
): Promise<ControlResults[R['cmd']]> {
  return new Promise((resolve, reject) => {
    const conn = net.connect(socketPath);
    let buffered = '';
    let settled = false;
    const finish = (err: Error | null, value?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      conn.destroy();
      if (err) reject(err);
      else resolve(value as ControlResults[R['cmd']]);
    };
    const timer = setTimeout(
      () => finish(new ControlError(`no response from ${socketPath} within ${timeoutMs} ms`, 'ETIMEDOUT')),
      timeoutMs,
    );
    const parse = (line: string) => {
      let response: ControlResponse;
      try {
        response = JSON.parse(line) as ControlResponse;
      } catch {
        finish(new ControlError(`invalid response from ${socketPath}`, 'EPROTO'));
        return;
      }
      if (response.ok) finish(null, response.result);
      else if (response.error?.issues?.length) finish(new ConfigError(response.error.issues));
      else finish(new ControlError(response.error?.message ?? 'unknown error'));
    };
    conn.setEncoding('utf8');
    conn.on('connect', () => conn.write(`${JSON.stringify(request)}\n`));
    conn.on('data', (chunk: string) => {
      buffered += chunk;
      const nl = buffered.indexOf('\n');
      if (nl >= 0) parse(buffered.slice(0, nl));
    });
    conn.on('end', () => {
      if (buffered.trim() !== '') parse(buffered);
      else finish(new ControlError(`${socketPath} closed the connection without answering`, 'EPROTO'));
    });
    conn.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
        finish(new ControlError(`no running instance at ${socketPath}`, e.code));
      } else if (e.code === 'EACCES' || e.code === 'EPERM') {
        finish(new ControlError(`permission denied on ${socketPath} (the control socket is for root, and for the group of the config's user: or group: when it has one; try sudo)`, e.code));
      } else {
        finish(new ControlError(`${socketPath}: ${e.message}`, e.code));
      }
    });
  });
}
