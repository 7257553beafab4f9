/**
 * The DBLB data plane inside one instance: decides which protocol a connection speaks and hands
 * it to the PostgreSQL or MySQL session. PostgreSQL clients speak first, MySQL clients wait for
 * the server's greeting, so: a listener port that only routes of one protocol name decides at
 * once; a config with one protocol decides at once; otherwise a byte within `mysql.silenceMs`
 * means PostgreSQL and silence means MySQL.
 */
import type { Socket } from 'node:net';
import type { ConnectionInfo, HandlerContext, TrafficHandler } from '../runtime/plugin.js';
import { Balancer } from './balancer.js';
import { dblbConfigSchema, type DblbConfig, type DbProtocol } from './config.js';
import { DbStats } from './db-stats.js';
import { HealthMonitor } from './health.js';
import { LearnedClients, serveMysql } from './mysql-session.js';
import { CancelRegistry, servePostgres } from './pg-session.js';
import type { DbRoute } from './routing.js';

/** The protocol a listener port (or the config alone) settles, or null when only the client can tell. */
export function protocolFor(routes: readonly DbRoute[], port: number): DbProtocol | null {
  const byPort = new Set(routes.filter((r) => r.ports.includes(port)).map((r) => r.protocol));
  if (byPort.size === 1) return [...byPort][0];
  const all = new Set(routes.map((r) => r.protocol));
  return all.size === 1 ? [...all][0] : null;
}

export interface DblbHandler extends TrafficHandler {
  readonly balancer: Balancer;
  readonly dbStats: DbStats;
  readonly health: HealthMonitor;
  readonly cancels: CancelRegistry;
}

export function createDblbHandler(ctx: HandlerContext, initial: DblbConfig): DblbHandler {
  let config = initial;
  const clock = ctx.clock;
  const balancer = new Balancer(clock, config);
  const dbStats = new DbStats(ctx.stats);
  const health = new HealthMonitor(clock, balancer, ctx.logger);
  const cancels = new CancelRegistry();
  const learned = new LearnedClients();
  const open = new Set<Socket>();
  let closed = false;
  health.apply(config);

  const deps = {
    clock,
    logger: ctx.logger,
    stats: ctx.stats,
    dbStats,
    balancer,
    cancels,
    learned,
    config: () => config,
    rateLimited: (address: string) => {
      const hit = ctx.rateLimit([address]);
      return hit !== null;
    },
  };

  const mysql = (s: Socket, info: ConnectionInfo) => {
    s.pause();
    serveMysql(s, info, deps).catch((e: unknown) => {
      ctx.logger.error(`MySQL session failed: ${String(e)}`);
      s.destroy();
    });
  };

  return {
    balancer,
    dbStats,
    health,
    cancels,
    handleConnection(socket, info) {
      if (closed) {
        socket.destroy();
        return;
      }
      socket.setNoDelay(true);
      open.add(socket);
      socket.once('close', () => open.delete(socket));
      const proto = protocolFor(balancer.allRoutes(), info.destinationPort);
      if (proto === 'mysql') {
        ctx.stats.count('mysql_by_config');
        return mysql(socket, info);
      }
      if (proto === 'postgres') return servePostgres(socket, info, Buffer.alloc(0), deps);
      // Both protocols: wait a little for a client-first byte.
      let first: Buffer | null = null;
      const onData = (chunk: Buffer) => {
        first = chunk;
        decide();
      };
      const decide = () => {
        timer.cancel();
        socket.off('data', onData);
        socket.off('close', decide);
        if (socket.destroyed) return;
        socket.pause();
        if (first) servePostgres(socket, info, first, deps);
        else {
          ctx.stats.count('mysql_by_silence');
          mysql(socket, info);
        }
      };
      const timer = clock.setTimeout(decide, config.mysql.silenceMs);
      socket.on('data', onData);
      socket.once('close', decide);
    },
    applyConfig(next) {
      const parsed = dblbConfigSchema.safeParse(next);
      if (!parsed.success) {
        ctx.logger.warn('DBLB config refused by the data plane', { problems: parsed.error.issues.length });
        return;
      }
      config = parsed.data;
      balancer.apply(config);
      health.apply(config);
    },
    close() {
      closed = true;
      health.close();
      balancer.close();
      for (const s of open) s.destroy();
      return Promise.resolve();
    },
  };
}
