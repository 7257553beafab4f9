/**
 * One PostgreSQL client connection through the DBLB: read the first messages (answer SSLRequest
 * per config and GSSENCRequest with 'N'; forward a CancelRequest to the backend that owns the
 * key), read the StartupMessage, route by database / user / listener port, get a backend slot,
 * replay the startup bytes unchanged and relay both ways. The backend's replies are watched
 * until ReadyForQuery to learn the cancel key; after that the relay is plain forwarding.
 */
import type { Socket } from 'node:net';
import { connectTo } from '../../nlb/dataplane/upstream.js';
import { forward } from '../../nlb/dataplane/forward.js';
import type { ConnectionInfo } from '../runtime/plugin.js';
import type { DbKey } from './db-stats.js';
import { errorResponse, readFirstMessage, startupFacts, StartupScanner } from './pg-protocol.js';
import type { DbRoute } from './routing.js';
import { closeWith, connectBackend, type SessionDeps } from './session-common.js';

/** Cancel keys of sessions open in this instance → the backend that issued them. */
export class CancelRegistry {
  private readonly keys = new Map<string, string>();
  /** Cancel connections to backends in flight (bounded: a flood of bogus keys cannot fan out without end). */
  inflight = 0;
  static readonly MAX_INFLIGHT = 64;

  private static id(pid: number, secret: Buffer): string {
    return `${pid >>> 0}:${secret.toString('hex')}`;
  }

  /** Remembers a session's key; returns the function that forgets it. */
  add(pid: number, secret: Buffer, address: string): () => void {
    const id = CancelRegistry.id(pid, secret);
    this.keys.set(id, address);
    return () => {
      if (this.keys.get(id) === address) this.keys.delete(id);
    };
  }

  lookup(pid: number, secret: Buffer): string | undefined {
    return this.keys.get(CancelRegistry.id(pid, secret));
  }

  get size(): number {
    return this.keys.size;
  }
}

export interface PgDeps extends SessionDeps {
  cancels: CancelRegistry;
}

/** SQLSTATEs for the DBLB's own refusals. */
const SQLSTATE = {
  protocolViolation: '08P01',
  tooManyConnections: '53300',
  connectionFailure: '08006',
  noRoute: '3D000',
  adminShutdown: '57P01',
} as const;

/** Takes over a client whose first bytes (maybe none yet) are `initial`. */
export function servePostgres(client: Socket, info: ConnectionInfo, initial: Buffer, deps: PgDeps): void {
  const cfg = deps.config();
  const t0 = deps.clock.now();
  let buf = initial;
  let sslAnswered = false;
  let gssAnswered = false;
  let finished = false;

  const stop = () => {
    finished = true;
    timer.cancel();
    client.off('data', onData);
    client.pause();
  };
  const fail = (code: string, message: string, counter: string) => {
    if (finished) return;
    stop();
    deps.stats.count(counter);
    deps.stats.request(false, deps.clock.now() - t0);
    closeWith(client, deps.clock, errorResponse(code, message));
  };
  const timer = deps.clock.setTimeout(
    () => fail(SQLSTATE.protocolViolation, 'the startup packet did not arrive in time', 'pg_startup_timeout'),
    cfg.postgres.startupTimeoutMs,
  );
  const onData = (chunk: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    step();
  };

  const step = () => {
    while (!finished) {
      const m = readFirstMessage(buf);
      if (m.kind === 'need-more') return;
      if (m.kind === 'invalid')
        return fail(
          SQLSTATE.protocolViolation,
          `invalid startup packet: ${m.reason}`,
          'pg_protocol_violation',
        );
      const bytes = buf.subarray(0, m.length);
      buf = buf.subarray(m.length);
      switch (m.kind) {
        case 'ssl':
          if (sslAnswered)
            return fail(SQLSTATE.protocolViolation, 'a second SSLRequest', 'pg_protocol_violation');
          if (cfg.postgres.ssl === 'passthrough') {
            stop();
            void relayTls(client, info, Buffer.concat([bytes, buf]), deps, t0);
            return;
          }
          sslAnswered = true;
          deps.stats.count('pg_ssl_refused');
          client.write('N');
          continue;
        case 'gssenc':
          if (gssAnswered)
            return fail(SQLSTATE.protocolViolation, 'a second GSSENCRequest', 'pg_protocol_violation');
          gssAnswered = true;
          client.write('N');
          continue;
        case 'cancel': {
          stop();
          // A cancel can fan out to every backend: the client's rate limit applies first.
          const ok = !deps.rateLimited(info.clientAddress);
          if (ok) forwardCancel(m.pid, m.key, bytes, deps);
          else deps.stats.count('rate_limited');
          deps.stats.request(ok, deps.clock.now() - t0);
          closeWith(client, deps.clock);
          return;
        }
        case 'startup': {
          stop();
          const f = startupFacts(m.params);
          void startSession(client, info, { database: f.database, user: f.user }, [bytes, buf], deps, t0);
          return;
        }
      }
    }
  };

  client.on('data', onData);
  client.once('close', () => {
    if (finished) return;
    stop();
    deps.stats.request(false, deps.clock.now() - t0);
  });
  // The socket may have been paused explicitly (protocol detection); a listener alone won't resume it.
  client.resume();
  if (buf.length) step();
}

/** Routes, admits and connects, then relays with the startup bytes replayed first. */
async function startSession(
  client: Socket,
  info: ConnectionInfo,
  who: { database: string; user: string },
  head: Buffer[],
  deps: PgDeps,
  t0: number,
): Promise<void> {
  const key: DbKey = { protocol: 'postgres', ...who };
  const refuse = (code: string, message: string, counter: string) => {
    deps.stats.count(counter);
    deps.stats.request(false, deps.clock.now() - t0);
    deps.dbStats.refused(key);
    closeWith(client, deps.clock, errorResponse(code, message));
  };
  if (deps.rateLimited(info.clientAddress))
    return refuse(SQLSTATE.tooManyConnections, 'too many new connections from your address', 'rate_limited');
  const route = deps.balancer.route({
    protocol: 'postgres',
    port: info.destinationPort,
    database: who.database,
    user: who.user,
  });
  if (!route)
    return refuse(
      SQLSTATE.noRoute,
      `no route for database "${who.database}" and user "${who.user}"`,
      'refused_no_route',
    );
  await relay(client, route, key, head, deps, t0, refuse, true);
}

/** SSL passthrough: the backend answers the SSLRequest and the TLS session runs end to end. */
async function relayTls(
  client: Socket,
  info: ConnectionInfo,
  head: Buffer,
  deps: PgDeps,
  t0: number,
): Promise<void> {
  const key: DbKey = { protocol: 'postgres', database: '(tls)', user: '(tls)' };
  // The SSLRequest expects one byte ('S' or 'N'), not an ErrorResponse: refusals just close.
  const refuse = (_code: string, message: string, counter: string) => {
    deps.stats.count(counter);
    deps.stats.request(false, deps.clock.now() - t0);
    deps.dbStats.refused(key);
    deps.logger.debug(`TLS passthrough refused: ${message}`);
    closeWith(client, deps.clock, Buffer.from('N'));
  };
  if (deps.rateLimited(info.clientAddress))
    return refuse(SQLSTATE.tooManyConnections, 'rate limited', 'rate_limited');
  const route = deps.balancer.route({ protocol: 'postgres', port: info.destinationPort });
  if (!route) return refuse(SQLSTATE.noRoute, 'no route', 'refused_no_route');
  deps.stats.count('pg_ssl_passthrough');
  await relay(client, route, key, [head], deps, t0, refuse, false);
}

async function relay(
  client: Socket,
  route: DbRoute,
  key: DbKey,
  head: Buffer[],
  deps: PgDeps,
  t0: number,
  refuse: (code: string, message: string, counter: string) => void,
  scan: boolean,
): Promise<void> {
  const conn = await connectBackend(route, client, deps);
  if (!conn.ok) {
    if (conn.reason === 'client_gone') {
      deps.stats.request(false, deps.clock.now() - t0);
      client.destroy();
      return;
    }
    const code =
      conn.reason === 'connect_failed' || conn.reason === 'down'
        ? SQLSTATE.connectionFailure
        : conn.reason === 'closed'
          ? SQLSTATE.adminShutdown
          : SQLSTATE.tooManyConnections;
    const text =
      code === SQLSTATE.tooManyConnections
        ? `sorry, too many clients already: ${conn.message}`
        : conn.message;
    return refuse(code, text, `refused_${conn.reason}`);
  }
  const { lease, upstream } = conn;
  const closeStats = deps.dbStats.opened(key);
  deps.stats.request(true, deps.clock.now() - t0);
  let forget: (() => void) | null = null;
  if (scan) {
    const scanner = new StartupScanner();
    const onUp = (chunk: Buffer) => {
      scanner.push(chunk);
      const k = scanner.outcome.key;
      if (k && !forget) forget = deps.cancels.add(k.pid, k.secret, lease.backend.address);
      if (scanner.done) upstream.off('data', onUp);
    };
    upstream.on('data', onUp);
  }
  const before = { in: client.bytesRead, out: client.bytesWritten };
  // A client socket destroyed here (instance stop, handler close) emits no 'end': cut the backend too.
  client.once('close', () => upstream.destroy());
  forward(client, upstream, {
    head,
    idleTimeoutMs: 0,
    onClose: () => {
      lease.release();
      forget?.();
      closeStats(client.bytesRead - before.in, client.bytesWritten - before.out);
    },
  });
}

/**
 * A CancelRequest goes to the backend that issued the key; a key this instance does not know
 * (the session runs in another instance) goes to every PostgreSQL backend: only the owner acts
 * on it, since the secret must match.
 */
function forwardCancel(pid: number, secret: Buffer, bytes: Buffer, deps: PgDeps): void {
  const owner = deps.cancels.lookup(pid, secret);
  const cfg = deps.config();
  const targets = owner
    ? [owner]
    : [...new Set(cfg.backends.filter((b) => b.protocol === 'postgres').map((b) => b.address))];
  if (deps.cancels.inflight + targets.length > CancelRegistry.MAX_INFLIGHT) {
    deps.stats.count('pg_cancel_dropped');
    return;
  }
  deps.stats.count(owner ? 'pg_cancel_forwarded' : 'pg_cancel_broadcast');
  for (const address of targets) {
    deps.cancels.inflight++;
    const done = () => deps.cancels.inflight--;
    connectTo(address, cfg.limits.connectTimeoutMs, () => undefined).then(
      (s) => {
        s.on('error', () => undefined);
        s.end(bytes);
        const t = deps.clock.setTimeout(() => s.destroy(), 2_000);
        s.once('close', () => {
          t.cancel();
          done();
        });
      },
      () => {
        done();
        deps.stats.count('pg_cancel_failed');
      },
    );
  }
}
