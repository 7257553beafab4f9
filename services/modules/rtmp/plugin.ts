/** RTMP (streaming relay) module type: CanHandle by app/stream patterns and remaining bandwidth. */
import { z } from 'zod';
import { backendChecks } from '../common/backend-checks.js';
import { createCountingHandler } from '../common/counting-handler.js';
import { globMatch, globSpecificity } from '../common/patterns.js';
import { routeScore } from '../common/route-score.js';
import type { ModuleTypePlugin } from '../runtime/plugin.js';

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$/, 'use host:port');

export const rtmpConfigSchema = z
  .object({
    origins: z
      .array(
        z
          .object({
            name: z.string().min(1).max(64),
            address: hostPort,
            apps: z.array(z.string().min(1)).default(['*']),
            streams: z.array(z.string().min(1)).default(['*']),
          })
          .strict(),
      )
      .max(256)
      .default([]),
    maxBandwidthMbps: z.number().min(0).max(1_000_000).default(0),
  })
  .strict();
export type RtmpConfig = z.output<typeof rtmpConfigSchema>;

export const rtmpPlugin: ModuleTypePlugin<RtmpConfig> = {
  type: 'RTMP',
  defaultPort: 50054,
  protocols: ['RTMP', 'RTMPS'],
  configSchema: rtmpConfigSchema,
  placeholderDataPlane: true,
  canHandle(route, context, s) {
    const base = routeScore(route, context, s.routes, rtmpPlugin.protocols, 'RTMP');
    if (!base.canHandle) return base;
    const used = Number(context.bandwidth_mbps_in_use ?? 0);
    if (s.config.maxBandwidthMbps > 0 && used >= s.config.maxBandwidthMbps) {
      return {
        canHandle: false,
        priority: 0,
        reason: `bandwidth budget of ${s.config.maxBandwidthMbps} Mbit/s is used up`,
      };
    }
    const app = context.app ?? '';
    const stream = context.stream ?? '';
    if (!app && !stream) return base;
    const fits = s.config.origins.filter(
      (o) =>
        (!app || o.apps.some((p) => globMatch(p, app))) &&
        (!stream || o.streams.some((p) => globMatch(p, stream))),
    );
    if (fits.length === 0)
      return {
        canHandle: false,
        priority: 0,
        reason: `no origin serves app ${app || '*'} stream ${stream || '*'}`,
      };
    // Only patterns that matched what was asked count; an origin's other patterns say nothing.
    const spec = Math.max(
      0,
      ...fits.flatMap((o) =>
        [...o.apps.filter((p) => globMatch(p, app)), ...o.streams.filter((p) => globMatch(p, stream))].map(
          globSpecificity,
        ),
      ),
    );
    return {
      canHandle: true,
      priority: base.priority + spec,
      reason: `origin ${fits[0].name} serves it`,
      metadata: { origin: fits[0].name },
    };
  },
  healthChecks: (c, deep) => backendChecks(c.origins, deep),
  capabilities: (c) => ({
    origins: String(c.origins.length),
    max_bandwidth_mbps: String(c.maxBandwidthMbps),
  }),
  createHandler: (ctx) => createCountingHandler(ctx),
};
