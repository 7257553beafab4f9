/**
 * The placeholder data plane: accepts a connection, enforces rate limits per client address,
 * reads and discards what arrives, and counts the connection as one request (latency = its
 * lifetime). Module types use it until their real data plane lands; status output says
 * `data_plane: placeholder` meanwhile.
 */
import type { HandlerContext, TrafficHandler } from '../runtime/plugin.js';

export function createCountingHandler(ctx: HandlerContext): TrafficHandler {
  return {
    handleConnection(socket, info) {
      const started = ctx.now();
      const limited = ctx.rateLimit([info.clientAddress]);
      if (limited) {
        ctx.stats.count('rate_limited');
        ctx.stats.request(false, 0);
        socket.destroy();
        return;
      }
      let failed = false;
      socket.on('data', () => undefined);
      socket.on('error', () => (failed = true));
      socket.once('close', () => ctx.stats.request(!failed, ctx.now() - started));
    },
    applyConfig() {},
    close: () => Promise.resolve(),
  };
}
