/** AILB (OpenAI-compatible gateway) module type: CanHandle by the requested model and capabilities. */
import { z } from 'zod';
import { backendChecks } from '../common/backend-checks.js';
import { createCountingHandler } from '../common/counting-handler.js';
import { globMatch, globSpecificity } from '../common/patterns.js';
import { routeScore } from '../common/route-score.js';
import type { ModuleTypePlugin } from '../runtime/plugin.js';

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$/, 'use host:port');

export const ailbConfigSchema = z
  .object({
    backends: z
      .array(
        z
          .object({
            name: z.string().min(1).max(64),
            address: hostPort,
            models: z.array(z.string().min(1)).min(1),
            gpu: z.boolean().default(false),
          })
          .strict(),
      )
      .max(256)
      .default([]),
  })
  .strict();
export type AilbConfig = z.output<typeof ailbConfigSchema>;

export const ailbPlugin: ModuleTypePlugin<AilbConfig> = {
  type: 'AILB',
  defaultPort: 50053,
  protocols: ['HTTP', 'HTTPS', 'HTTP2'],
  configSchema: ailbConfigSchema,
  placeholderDataPlane: true,
  canHandle(route, context, s) {
    const base = routeScore(route, context, s.routes, ailbPlugin.protocols, 'AILB');
    if (!base.canHandle) return base;
    const model = context.model ?? '';
    if (!model) return base;
    const fits = s.config.backends.filter(
      (b) => b.models.some((p) => globMatch(p, model)) && (context.gpu !== 'true' || b.gpu),
    );
    if (fits.length === 0)
      return {
        canHandle: false,
        priority: 0,
        reason: `no backend serves model ${model}${context.gpu === 'true' ? ' on a GPU' : ''}`,
      };
    const spec = Math.max(
      ...fits.flatMap((b) => b.models.filter((p) => globMatch(p, model)).map(globSpecificity)),
    );
    return {
      canHandle: true,
      priority: base.priority + spec,
      reason: `backend ${fits[0].name} serves ${model}`,
      metadata: { backend: fits[0].name },
    };
  },
  healthChecks: (c, deep) => backendChecks(c.backends, deep),
  capabilities: (c) => ({
    models: [...new Set(c.backends.flatMap((b) => b.models))].join(','),
    gpu: String(c.backends.some((b) => b.gpu)),
  }),
  createHandler: (ctx) => createCountingHandler(ctx),
};
