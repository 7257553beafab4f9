/**
 * AILB (OpenAI-compatible gateway) module type: routes by the request's `model` (gateway.ts);
 * CanHandle by the requested model and capabilities (a GPU-backed model, say).
 */
import { backendChecks } from '../common/backend-checks.js';
import { globMatch, globSpecificity } from '../common/patterns.js';
import { routeScore } from '../common/route-score.js';
import type { ModuleTypePlugin } from '../runtime/plugin.js';
import { ailbConfigSchema, type AilbConfig } from './config.js';
import { createAilbGateway } from './gateway.js';

export { ailbConfigSchema, type AilbConfig } from './config.js';

export const ailbPlugin: ModuleTypePlugin<AilbConfig> = {
  type: 'AILB',
  defaultPort: 50053,
  protocols: ['HTTP', 'HTTPS', 'HTTP2'],
  configSchema: ailbConfigSchema,
  placeholderDataPlane: false,
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
  createHandler: (ctx, config) => createAilbGateway(ctx, config),
};
