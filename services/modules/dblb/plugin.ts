/** DBLB (PostgreSQL, MySQL) module type: CanHandle by protocol, listener port and database/user patterns. */
import { globMatch, globSpecificity } from '../common/patterns.js';
import { routeScore } from '../common/route-score.js';
import type { HealthCheckResult, ModuleTypePlugin } from '../runtime/plugin.js';
import { dblbConfigSchema, type DblbConfig } from './config.js';
import { createDblbHandler } from './handler.js';
import { checkBackend } from './health.js';

export { dblbConfigSchema, type DblbConfig } from './config.js';

/** Something that serves databases and users by pattern: a backend, or an explicit route. */
interface Server {
  name: string;
  protocol: 'postgres' | 'mysql';
  databases: string[];
  users: string[];
  ports?: number[];
}

export const dblbPlugin: ModuleTypePlugin<DblbConfig> = {
  type: 'DBLB',
  defaultPort: 50052,
  protocols: ['POSTGRES', 'MYSQL'],
  configSchema: dblbConfigSchema,
  placeholderDataPlane: false,
  canHandle(route, context, s) {
    const base = routeScore(route, context, s.routes, dblbPlugin.protocols, 'DBLB');
    if (!base.canHandle || s.config.backends.length === 0) return base;
    const proto = route.protocol === 'MYSQL' ? 'mysql' : route.protocol === 'POSTGRES' ? 'postgres' : null;
    const db = context.database ?? '';
    const user = context.user ?? '';
    const port = route.destinationPort;
    const explicit = s.config.routes.length > 0;
    const servers: Server[] = explicit ? s.config.routes : s.config.backends;
    const what = explicit ? 'route' : 'backend';
    const fits = servers.filter(
      (b) =>
        (!proto || b.protocol === proto) &&
        (!port || !b.ports?.length || b.ports.includes(port)) &&
        (!db || b.databases.some((p) => globMatch(p, db))) &&
        (!user || b.users.some((p) => globMatch(p, user))),
    );
    if (fits.length === 0)
      return {
        canHandle: false,
        priority: 0,
        reason: `no ${what} serves ${proto ?? 'that protocol'}${db ? ` database ${db}` : ''}${user ? ` for user ${user}` : ''}${port && servers.some((b) => b.ports?.length) ? ` on port ${port}` : ''}`,
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
      reason: `${what} ${fits[0].name} serves it`,
      metadata: { [what]: fits[0].name },
    };
  },
  async healthChecks(c, deep) {
    if (!deep) return { config: { ok: true, message: `${c.backends.length} backend(s) configured` } };
    const results = await Promise.all(
      c.backends.map(
        async (b) => [`backend:${b.name}`, await checkBackend(b, c)] as [string, HealthCheckResult],
      ),
    );
    return Object.fromEntries(results);
  },
  capabilities: (c) => ({
    backends: String(c.backends.length),
    databases: [...new Set(c.backends.flatMap((b) => b.databases))].join(','),
  }),
  createHandler: (ctx, config) => createDblbHandler(ctx, config),
};
