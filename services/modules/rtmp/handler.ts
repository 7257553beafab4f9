/**
 * The RTMP relay's data plane inside one instance: every accepted connection becomes an RTMP
 * session (session.ts); a one-second timer samples per-stream bitrates into the stats.
 */
import type { Socket } from 'node:net';
import type { HandlerContext, TrafficHandler } from '../runtime/plugin.js';
import { rtmpConfigSchema, type RtmpConfig } from './config.js';
import { serveRtmp } from './session.js';
import { StreamRegistry } from './streams.js';

export interface RtmpHandler extends TrafficHandler {
  readonly streams: StreamRegistry;
}

export function createRtmpHandler(ctx: HandlerContext, initial: RtmpConfig): RtmpHandler {
  let config = initial;
  const streams = new StreamRegistry(ctx.stats, ctx.clock.now());
  const originLoad = new Map<string, number>();
  const open = new Set<Socket>();
  let closed = false;
  const sampler = ctx.clock.setInterval(() => streams.sample(ctx.clock.now()), 1_000);
  const deps = {
    clock: ctx.clock,
    logger: ctx.logger,
    stats: ctx.stats,
    streams,
    originLoad,
    config: () => config,
    rateLimited: (address: string) => ctx.rateLimit([address]) !== null,
  };
  return {
    streams,
    handleConnection(socket, info) {
      if (closed) {
        socket.destroy();
        return;
      }
      socket.setNoDelay(true);
      open.add(socket);
      socket.once('close', () => open.delete(socket));
      serveRtmp(socket, info, deps);
    },
    applyConfig(next) {
      const parsed = rtmpConfigSchema.safeParse(next);
      if (parsed.success) config = parsed.data;
      else ctx.logger.warn('RTMP config refused by the data plane', { problems: parsed.error.issues.length });
    },
    close() {
      closed = true;
      sampler.cancel();
      for (const s of open) s.destroy();
      return Promise.resolve();
    },
  };
}
