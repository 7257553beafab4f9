/**
 * Pieces both DBLB protocols use: what a session needs from the handler, getting a backend
 * connection (admission, connect, another backend of the pool after a failed connect), and
 * closing a client after a last error packet, bounded in time.
 */
import type { Socket } from 'node:net';
import type { Clock } from '../../shared/clock.js';
import type { Logger } from '../../shared/logger.js';
import { connectTo } from '../../nlb/dataplane/upstream.js';
import type { StatsCollector } from '../runtime/stats.js';
import type { Balancer, Lease, RefusalReason } from './balancer.js';
import type { DblbConfig } from './config.js';
import type { DbStats } from './db-stats.js';
import type { DbRoute } from './routing.js';

export interface SessionDeps {
  clock: Clock;
  logger: Logger;
  stats: StatsCollector;
  dbStats: DbStats;
  balancer: Balancer;
  config(): DblbConfig;
  /** Whether the runtime's rate limits let this client in. */
  rateLimited(clientAddress: string): boolean;
}

export type BackendConnection =
  | { ok: true; lease: Lease; upstream: Socket; connectMs: number }
  | { ok: false; reason: RefusalReason | 'connect_failed' | 'client_gone'; message: string };

/**
 * A slot and a connected socket to a backend of `route`; a failed connect tries the pool's
 * other backends (counted as `backend_connect_failed`).
 */
export async function connectBackend(
  route: DbRoute,
  client: Socket,
  deps: SessionDeps,
): Promise<BackendConnection> {
  const exclude = new Set<string>();
  let lastError = '';
  for (let attempt = 0; attempt < Math.max(1, route.backends.length); attempt++) {
    const adm = await deps.balancer.admit(route, { exclude, retry: attempt > 0 });
    if (!adm.ok) {
      if (attempt > 0 && adm.reason === 'down') break;
      return { ok: false, reason: adm.reason, message: adm.message };
    }
    const { lease } = adm;
    if (client.destroyed) {
      lease.release();
      return { ok: false, reason: 'client_gone', message: 'the client left' };
    }
    const t0 = performance.now();
    try {
      const upstream = await connectTo(
        lease.backend.address,
        deps.config().limits.connectTimeoutMs,
        () => undefined,
      );
      if (client.destroyed) {
        upstream.destroy();
        lease.release();
        return { ok: false, reason: 'client_gone', message: 'the client left' };
      }
      upstream.setNoDelay(true);
      return { ok: true, lease, upstream, connectMs: performance.now() - t0 };
    } catch (e) {
      lease.release();
      lastError = `${lease.backend.name}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`;
      deps.stats.count('backend_connect_failed');
      deps.logger.warn(`connect to backend failed: ${lastError}`, { backend: lease.backend.name });
      exclude.add(lease.backend.name);
    }
  }
  return {
    ok: false,
    reason: 'connect_failed',
    message: `could not connect to a backend of route ${route.name}${lastError ? ` (${lastError})` : ''}`,
  };
}

/** Writes a last packet, ends the connection, and destroys it if the peer lingers. */
export function closeWith(socket: Socket, clock: Clock, last?: Buffer, lingerMs = 2_000): void {
  if (socket.destroyed) return;
  // Keep reading (and dropping) so that the peer's FIN is seen and the socket closes at once.
  socket.removeAllListeners('data');
  socket.on('data', () => undefined);
  socket.resume();
  if (last) socket.end(last);
  else socket.end();
  const t = clock.setTimeout(() => socket.destroy(), lingerMs);
  socket.once('close', () => t.cancel());
}
