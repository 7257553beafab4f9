/**
 * ALB (HTTP) module type: an HTTP/1.1 reverse proxy (handler.ts); CanHandle by host/path
 * specificity of its routes; deep health checks reach every backend over TCP.
 */
import { backendChecks } from '../common/backend-checks.js';
import { routeScore } from '../common/route-score.js';
import type { ModuleTypePlugin } from '../runtime/plugin.js';
import { albConfigSchema, poolNames, type AlbConfig } from './config.js';
import { createAlbHandler } from './handler.js';

export { albConfigSchema, type AlbConfig } from './config.js';

export const albPlugin: ModuleTypePlugin<AlbConfig> = {
  type: 'ALB',
  defaultPort: 50051,
  protocols: ['HTTP', 'HTTPS', 'HTTP2', 'WEBSOCKET', 'GRPC'],
  configSchema: albConfigSchema,
  placeholderDataPlane: false,
  canHandle: (route, context, s) => routeScore(route, context, s.routes, albPlugin.protocols, 'ALB'),
  healthChecks: (c, deep) => backendChecks(c.backends, deep),
  capabilities: (c) => ({
    backends: String(c.backends.length),
    pools: poolNames(c).join(','),
    tls: String(!!c.tls),
    websocket: 'true',
  }),
  createHandler: (ctx, config) => createAlbHandler(ctx, config),
};
