/**
 * One MySQL client connection through the DBLB. MySQL is server-first, so the backend is chosen
 * before the client says anything: by listener port and route, using the user and database this
 * client address sent last time (learned from its HandshakeResponse). The greeting and the rest
 * are relayed unchanged; the client's HandshakeResponse is read on the side for per
 * database / user stats and for the next connection's routing.
 */
import type { Socket } from 'node:net';
import { forward } from '../../nlb/dataplane/forward.js';
import type { ConnectionInfo } from '../runtime/plugin.js';
import type { DbKey } from './db-stats.js';
import { LIMIT_REASONS } from './balancer.js';
import {
  ER_BAD_DB_ERROR,
  ER_CON_COUNT_ERROR,
  ER_SERVER_SHUTDOWN,
  errPacket,
  parseHandshakeResponse,
  readPacket,
} from './mysql-protocol.js';
import { closeWith, connectBackend, type SessionDeps } from './session-common.js';

/** Who a client address said it was on its last connection (bounded, least recently used out). */
export class LearnedClients {
  private readonly map = new Map<string, { user: string; database: string }>();

  constructor(private readonly max = 10_000) {}

  get(address: string): { user: string; database: string } | undefined {
    const v = this.map.get(address);
    if (v) {
      this.map.delete(address);
      this.map.set(address, v);
    }
    return v;
  }

  set(address: string, v: { user: string; database: string }): void {
    this.map.delete(address);
    this.map.set(address, v);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
  }
}

export interface MysqlDeps extends SessionDeps {
  learned: LearnedClients;
}

/** The first client packet is read on the side only up to this size. */
const MAX_HELLO_BYTES = 64 * 1024;

/** Takes over a client that has sent nothing (MySQL clients wait for the greeting). */
export async function serveMysql(client: Socket, info: ConnectionInfo, deps: MysqlDeps): Promise<void> {
  const t0 = deps.clock.now();
  const learned = deps.learned.get(info.clientAddress);
  const key: DbKey = { protocol: 'mysql', database: learned?.database ?? '?', user: learned?.user ?? '?' };
  const refuse = (code: number, sqlState: string, message: string, counter: string) => {
    deps.stats.count(counter);
    deps.stats.request(false, deps.clock.now() - t0);
    deps.dbStats.refused(key);
    closeWith(client, deps.clock, errPacket(0, code, sqlState, message));
  };
  if (deps.rateLimited(info.clientAddress))
    return refuse(
      ER_CON_COUNT_ERROR,
      '08004',
      'Too many connections: rate limit for your address',
      'rate_limited',
    );
  const route = deps.balancer.route({
    protocol: 'mysql',
    port: info.destinationPort,
    database: learned?.database || undefined,
    user: learned?.user,
  });
  if (!route)
    return refuse(ER_BAD_DB_ERROR, '42000', `No route for port ${info.destinationPort}`, 'refused_no_route');
  const conn = await connectBackend(route, client, deps);
  if (!conn.ok) {
    if (conn.reason === 'client_gone') {
      deps.stats.request(false, deps.clock.now() - t0);
      client.destroy();
      return;
    }
    return LIMIT_REASONS.has(conn.reason)
      ? refuse(ER_CON_COUNT_ERROR, '08004', `Too many connections: ${conn.message}`, `refused_${conn.reason}`)
      : refuse(ER_SERVER_SHUTDOWN, '08S01', conn.message, `refused_${conn.reason}`);
  }
  const { lease, upstream } = conn;
  deps.stats.request(true, deps.clock.now() - t0);

  // Stats are attributed once the client says who it is (or at close, to what was guessed).
  let closeStats: ((bytesIn: number, bytesOut: number) => void) | null = null;
  let hello: Buffer = Buffer.alloc(0);
  const onHello = (chunk: Buffer) => {
    hello = hello.length ? Buffer.concat([hello, chunk]) : chunk;
    const pkt = readPacket(hello);
    if (!pkt && hello.length < MAX_HELLO_BYTES) return;
    client.off('data', onHello);
    const h = pkt ? parseHandshakeResponse(pkt.payload) : { kind: 'invalid' as const };
    if (h.kind === 'response') {
      deps.learned.set(info.clientAddress, { user: h.user, database: h.database });
      closeStats = deps.dbStats.opened({ protocol: 'mysql', database: h.database, user: h.user });
      const again = deps.balancer.route({
        protocol: 'mysql',
        port: info.destinationPort,
        database: h.database || undefined,
        user: h.user,
      });
      // The backend is already talking to this client; a better route applies next time.
      if (again && again.name !== route.name) deps.stats.count('mysql_route_learned');
    } else {
      deps.stats.count(h.kind === 'ssl' ? 'mysql_tls' : 'mysql_hello_unparsed');
      closeStats = deps.dbStats.opened(h.kind === 'ssl' ? { ...key, database: '(tls)', user: '(tls)' } : key);
    }
  };
  client.on('data', onHello);
  const before = { in: client.bytesRead, out: client.bytesWritten };
  // A client socket destroyed here (instance stop, handler close) emits no 'end': cut the backend too.
  client.once('close', () => upstream.destroy());
  forward(client, upstream, {
    head: [],
    idleTimeoutMs: 0,
    onClose: () => {
      lease.release();
      client.off('data', onHello);
      const done = closeStats ?? deps.dbStats.opened(key);
      done(client.bytesRead - before.in, client.bytesWritten - before.out);
    },
  });
}
