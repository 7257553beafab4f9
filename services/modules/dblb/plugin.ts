/** DBLB (PostgreSQL, MySQL) module type: CanHandle by protocol and database/user patterns. */
import { z } from 'zod';
import { backendChecks } from '../common/backend-checks.js';
import { createCountingHandler } from '../common/counting-handler.js';
import { globMatch, globSpecificity } from '../common/patterns.js';
import { routeScore } from '../common/route-score.js';
import type { ModuleTypePlugin } from '../runtime/plugin.js';

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$/, 'use host:port');

export const dblbConfigSchema = z
  .object({
    backends: z
      .array(
        z
          .object({
            name: z.string().min(1).max(64),
            protocol: z.enum(['postgres', 'mysql']),
            address: hostPort,
            databases: z.array(z.string().min(1)).default(['*']),
            users: z.array(z.string().min(1)).default(['*']),
            maxConnections: z.number().int().min(0).max(100_000).default(0),
          })
          .strict(),
      )
      .max(256)
      .default([]),
  })
  .strict();
export type DblbConfig = z.output<typeof dblbConfigSchema>;

export const dblbPlugin: ModuleTypePlugin<DblbConfig> = {
  type: 'DBLB',
  defaultPort: 50052,
  protocols: ['POSTGRES', 'MYSQL'],
  configSchema: dblbConfigSchema,
  placeholderDataPlane: true,
  canHandle(route, context, s) {
    const base = routeScore(route, context, s.routes, dblbPlugin.protocols, 'DBLB');
    if (!base.canHandle || s.config.backends.length === 0) return base;
    const proto = route.protocol === 'MYSQL' ? 'mysql' : route.protocol === 'POSTGRES' ? 'postgres' : null;
    const db = context.database ?? '';
    const user = context.user ?? '';
    const fits = s.config.backends.filter(
      (b) =>
        (!proto || b.protocol === proto) &&
        (!db || b.databases.some((p) => globMatch(p, db))) &&
        (!user || b.users.some((p) => globMatch(p, user))),
    );
    if (fits.length === 0)
      return {
        canHandle: false,
        priority: 0,
        reason: `no backend serves ${proto ?? 'that protocol'}${db ? ` database ${db}` : ''}${user ? ` for user ${user}` : ''}`,
      };
    // Only patterns that matched what was asked count; a backend's other patterns say nothing.
    const spec = Math.max(
      0,
      ...fits.flatMap((b) =>
        [...b.databases.filter((p) => globMatch(p, db)), ...b.users.filter((p) => globMatch(p, user))].map(
          globSpecificity,
        ),
      ),
    );
    return {
      canHandle: true,
      priority: base.priority + spec,
      reason: `backend ${fits[0].name} serves it`,
      metadata: { backend: fits[0].name },
    };
  },
  healthChecks: (c, deep) => backendChecks(c.backends, deep),
  capabilities: (c) => ({
    backends: String(c.backends.length),
    databases: [...new Set(c.backends.flatMap((b) => b.databases))].join(','),
  }),
  createHandler: (ctx) => createCountingHandler(ctx),
};
