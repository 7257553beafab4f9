/**
 * The control channel between a controller and an instance child process: newline-delimited
 * JSON over a unix domain socket in the controller's data dir (a 0700 directory), carrying the
 * messages of child-protocol.ts. The instance serves it; any controller that knows the socket and
 * the instance's secret can attach, which is how a restarted controller adopts the instances its
 * predecessor started. A connection answers nothing before a valid `hello`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildEvent, ChildHello, ChildIdentity, ChildReply, ChildRequest } from './child-protocol.js';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type ControlRequest = DistributiveOmit<ChildRequest, 'reqId'>;

/** A message larger than this closes the connection (a snapshot is far smaller). */
const MAX_LINE_BYTES = 64 * 1024 * 1024;
/** Linux sun_path is 108 bytes with the terminating NUL; stay clear of it. */
const MAX_SOCKET_PATH = 100;

/**
 * Where instance `id` serves its control socket: `<dataDir>/instances/<id>.sock`, or, when that
 * path would be too long for a unix socket, a hashed name in a per-data-dir directory under the
 * OS temp dir. The directory is created with mode 0700.
 */
export function controlSocketPath(dataDir: string, id: string): string {
  let dir = join(dataDir, 'instances');
  let name = `${id}.sock`;
  if (Buffer.byteLength(join(dir, name)) > MAX_SOCKET_PATH) {
    const h = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 16);
    dir = join(tmpdir(), `mp-instances-${h(dataDir)}`);
    name = `${h(id)}.sock`;
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  return join(dir, name);
}

/** Splits a stream into JSON lines; calls `bad` (and stops) on an oversized or unparsable line. */
function readLines(s: Socket, onMessage: (m: unknown) => void, bad: (why: string) => void): void {
  let buf = '';
  s.setEncoding('utf8');
  s.on('data', (chunk: string) => {
    buf += chunk;
    if (buf.length > MAX_LINE_BYTES) {
      bad(`a control message is over ${MAX_LINE_BYTES} bytes`);
      return;
    }
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line) continue;
      let m: unknown;
      try {
        m = JSON.parse(line);
      } catch {
        bad('a control message is not JSON');
        return;
      }
      onMessage(m);
    }
  });
}

const writeLine = (s: Socket, m: unknown, cb?: () => void): void => {
  if (s.destroyed || !s.writable) return cb?.();
  s.write(`${JSON.stringify(m)}\n`, () => cb?.());
};

function secretMatches(given: unknown, secret: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(secret);
  return a.length === b.length && timingSafeEqual(a, b);
}

export interface ControlServerOptions {
  socketPath: string;
  secret: string;
  instanceId: string;
  identity(): ChildIdentity;
  /** Answers an authenticated request; `stop` replies are followed by `afterStop`. */
  handle(m: Exclude<ChildRequest, ChildHello>): Promise<unknown>;
  /** After the reply to `stop` has been written (the process exits there). */
  afterStop(): void;
  /** The number of authenticated controller connections changed. */
  onAttached(count: number): void;
  onProblem(why: string): void;
}

export interface ControlServer {
  /** Sends an event to every attached controller. */
  broadcast(e: ChildEvent): void;
  readonly attached: number;
  close(): Promise<void>;
}

/** Serves the control protocol on a unix socket (the instance side). */
export async function serveControl(o: ControlServerOptions): Promise<ControlServer> {
  const authed = new Set<Socket>();
  const server: Server = createServer((s) => {
    s.on('error', () => undefined);
    let ok = false;
    readLines(
      s,
      (raw) => {
        const m = raw as ChildRequest;
        if (typeof m !== 'object' || m === null || typeof m.reqId !== 'number') {
          o.onProblem('a control message without reqId; closing the connection');
          s.destroy();
          return;
        }
        if (m.type === 'hello') {
          if (m.instanceId !== o.instanceId || !secretMatches(m.secret, o.secret)) {
            o.onProblem('a control connection presented the wrong instance id or secret; closed it');
            writeLine(
              s,
              { type: 'reply', reqId: m.reqId, error: 'not this instance, or a wrong secret' },
              () => s.destroy(),
            );
            return;
          }
          if (!ok) {
            ok = true;
            authed.add(s);
            o.onAttached(authed.size);
          }
          writeLine(s, { type: 'reply', reqId: m.reqId, value: o.identity() } satisfies ChildReply);
          return;
        }
        if (!ok) {
          writeLine(s, { type: 'reply', reqId: m.reqId, error: 'send hello first' }, () => s.destroy());
          return;
        }
        o.handle(m).then(
          (value) =>
            writeLine(s, { type: 'reply', reqId: m.reqId, value } satisfies ChildReply, () => {
              if (m.type === 'stop') o.afterStop();
            }),
          (e: unknown) =>
            writeLine(s, { type: 'reply', reqId: m.reqId, error: (e as Error).message } satisfies ChildReply),
        );
      },
      (why) => {
        o.onProblem(`${why}; closing the connection`);
        s.destroy();
      },
    );
    s.once('close', () => {
      if (authed.delete(s)) o.onAttached(authed.size);
    });
  });
  // Our own id: a file left by an earlier run of this instance id is stale.
  rmSync(o.socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(o.socketPath, 0o600);
  return {
    broadcast: (e) => {
      for (const s of authed) writeLine(s, e);
    },
    get attached() {
      return authed.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of authed) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The controller side of one control connection. */
export class ControlClient {
  private nextReq = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly eventListeners: Array<(e: ChildEvent) => void> = [];
  private readonly closeListeners: Array<() => void> = [];
  private isClosed = false;

  private constructor(
    private readonly s: Socket,
    private readonly label: string,
  ) {
    readLines(
      s,
      (raw) => {
        const m = raw as ChildReply | ChildEvent;
        if (m.type === 'reply') {
          const p = this.pending.get(m.reqId);
          this.pending.delete(m.reqId);
          if (m.error) p?.reject(new Error(m.error));
          else p?.resolve(m.value);
        } else for (const fn of this.eventListeners) fn(m);
      },
      () => s.destroy(),
    );
    s.on('error', () => undefined);
    s.once('close', () => {
      this.isClosed = true;
      for (const p of this.pending.values()) p.reject(new Error(`${label}: the control connection closed`));
      this.pending.clear();
      for (const fn of this.closeListeners) fn();
    });
  }

  /** Connects to `socketPath` and authenticates; resolves with the instance's identity. */
  static async attach(
    socketPath: string,
    hello: Omit<ChildHello, 'type' | 'reqId'>,
    timeoutMs = 5000,
  ): Promise<{ client: ControlClient; identity: ChildIdentity }> {
    const label = `instance ${hello.instanceId}`;
    const s = await new Promise<Socket>((resolve, reject) => {
      const sock = connect(socketPath);
      const t = setTimeout(() => {
        sock.destroy();
        reject(new Error(`${label}: no answer on ${socketPath} within ${timeoutMs} ms`));
      }, timeoutMs);
      sock.once('connect', () => {
        clearTimeout(t);
        sock.removeAllListeners('error');
        resolve(sock);
      });
      sock.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(t);
        reject(
          Object.assign(new Error(`${label}: cannot connect to ${socketPath} (${e.code ?? e.message})`), {
            code: e.code,
          }),
        );
      });
    });
    const client = new ControlClient(s, label);
    try {
      const identity = await client.request<ChildIdentity>({ type: 'hello', ...hello }, timeoutMs);
      return { client, identity };
    } catch (e) {
      client.close();
      throw e;
    }
  }

  get closed(): boolean {
    return this.isClosed;
  }

  request<T>(msg: ControlRequest, timeoutMs = 10_000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.isClosed) return reject(new Error(`${this.label} is not running`));
      const reqId = this.nextReq++;
      const t = setTimeout(() => {
        this.pending.delete(reqId);
        reject(new Error(`${this.label} did not answer ${msg.type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(reqId, {
        resolve: (v) => {
          clearTimeout(t);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      writeLine(this.s, { ...msg, reqId });
    });
  }

  /** Writes a request without waiting for its answer; resolves once it is written. */
  send(msg: ControlRequest): Promise<void> {
    return new Promise((resolve) => writeLine(this.s, { ...msg, reqId: this.nextReq++ }, resolve));
  }

  onEvent(fn: (e: ChildEvent) => void): void {
    this.eventListeners.push(fn);
  }

  onClose(fn: () => void): void {
    if (this.isClosed) fn();
    else this.closeListeners.push(fn);
  }

  close(): void {
    this.s.destroy();
  }
}
