/** ALB (HTTP) module type: CanHandle by host/path specificity; backends checked over TCP. */
import { z } from 'zod';
import { backendChecks } from '../common/backend-checks.js';
import { createCountingHandler } from '../common/counting-handler.js';
import { routeScore } from '../common/route-score.js';
import type { ModuleTypePlugin } from '../runtime/plugin.js';

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$/, 'use host:port');

export const albConfigSchema = z
  .object({
    backends: z
      .array(
        z
          .object({
            name: z.string().min(1).max(64),
            address: hostPort,
            weight: z.number().int().min(0).max(1000).default(1),
          })
          .strict(),
      )
      .max(256)
      .default([]),
  })
  .strict();
export type AlbConfig = z.output<typeof albConfigSchema>;

export const albPlugin: ModuleTypePlugin<AlbConfig> = {
  type: 'ALB',
  defaultPort: 50051,
  protocols: ['HTTP', 'HTTPS', 'HTTP2', 'WEBSOCKET', 'GRPC'],
  configSchema: albConfigSchema,
  placeholderDataPlane: true,
  canHandle: (route, context, s) => routeScore(route, context, s.routes, albPlugin.protocols, 'ALB'),
  healthChecks: (c, deep) => backendChecks(c.backends, deep),
  capabilities: (c) => ({ backends: String(c.backends.length) }),
  createHandler: (ctx) => createCountingHandler(ctx),
};
