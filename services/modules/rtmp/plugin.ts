/** RTMP (streaming relay) module type: CanHandle by app/stream patterns and remaining bandwidth. */
import { globMatch, globSpecificity } from '../common/patterns.js';
import { routeScore } from '../common/route-score.js';
import type { HealthCheckResult, ModuleTypePlugin } from '../runtime/plugin.js';
import { rtmpConfigSchema, type RtmpConfig } from './config.js';
import { createRtmpHandler } from './handler.js';
import { probeOrigin } from './origin.js';

export { rtmpConfigSchema, type RtmpConfig } from './config.js';

export const rtmpPlugin: ModuleTypePlugin<RtmpConfig> = {
  type: 'RTMP',
  defaultPort: 50054,
  protocols: ['RTMP', 'RTMPS'],
  configSchema: rtmpConfigSchema,
  placeholderDataPlane: false,
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
  async healthChecks(c, deep) {
    if (!deep) return { config: { ok: true, message: `${c.origins.length} backend(s) configured` } };
    const results = await Promise.all(
      c.origins.map(
        async (o) => [`backend:${o.name}`, await probeOrigin(o.address)] as [string, HealthCheckResult],
      ),
    );
    return Object.fromEntries(results);
  },
  capabilities: (c) => ({
    origins: String(c.origins.length),
    max_bandwidth_mbps: String(c.maxBandwidthMbps),
  }),
  createHandler: (ctx, config) => createRtmpHandler(ctx, config),
};
