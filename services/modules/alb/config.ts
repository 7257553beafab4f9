/**
 * The ALB module config (UpdateConfig body), documented in docs/alb-ailb.md. Backends carry a
 * pool name (default "default"); routes pick a pool with `metadata.pool`. The flat
 * `backends: [{name, address, weight}]` of earlier versions stays valid: one pool, round robin.
 */
import { z } from 'zod';
import { healthCheckSchema, passiveEjectionSchema } from '../common/http/config-schemas.js';

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$/, 'use host:port');
const poolName = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
    'use 1-64 characters of A-Z a-z 0-9 . _ - (a letter or digit first)',
  );
const ms = (min: number, max: number, dflt: number) => z.number().int().min(min).max(max).default(dflt);

export const albConfigSchema = z
  .object({
    backends: z
      .array(
        z
          .object({
            name: z.string().min(1).max(64),
            address: hostPort,
            /** Share of its pool's traffic; 0 takes it out of rotation (drain). */
            weight: z.number().int().min(0).max(1000).default(1),
            pool: poolName.default('default'),
          })
          .strict(),
      )
      .max(256)
      .default([]),
    /** Per-pool settings; a pool named only by its backends gets the module-wide defaults. */
    pools: z
      .array(
        z
          .object({
            name: poolName,
            balancing: z.enum(['round_robin', 'least_request']).optional(),
            healthCheck: healthCheckSchema.partial().optional(),
            passiveEjection: passiveEjectionSchema.partial().optional(),
          })
          .strict(),
      )
      .max(64)
      .default([]),
    /** The pool of routes without `metadata.pool`, and of every request when there are no routes. */
    defaultPool: poolName.default('default'),
    balancing: z.enum(['round_robin', 'least_request']).default('round_robin'),
    healthCheck: healthCheckSchema.prefault({}),
    passiveEjection: passiveEjectionSchema.prefault({}),
    /** Idempotent requests (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) retried on a connection failure. */
    retries: z.number().int().min(0).max(3).default(1),
    timeouts: z
      .object({
        /** Connecting to a backend. */
        connectMs: ms(1, 600_000, 3000),
        /** From the request sent to the response head (exceeded: 504). */
        responseMs: ms(1, 3_600_000, 60_000),
        /** Longest pause inside a response body. */
        bodyIdleMs: ms(1, 3_600_000, 60_000),
        /** A client's complete request head (slowloris). */
        clientHeadersMs: ms(100, 600_000, 10_000),
        /** A client's complete request, body included. */
        clientRequestMs: ms(100, 86_400_000, 300_000),
        /** Idle client keep-alive connections. */
        clientKeepAliveMs: ms(1, 3_600_000, 5000),
        /** Client connections with no traffic either way (0 = never). */
        clientIdleMs: ms(0, 86_400_000, 120_000),
        /** Idle backend keep-alive connections (keep below the backends' own keep-alive timeout). */
        upstreamIdleMs: ms(1, 3_600_000, 4000),
        /** WebSocket (upgraded) connections with no traffic either way. */
        tunnelIdleMs: ms(1, 86_400_000, 600_000),
        tlsHandshakeMs: ms(10, 600_000, 10_000),
      })
      .strict()
      .prefault({}),
    limits: z
      .object({
        maxRequestHeaderBytes: z.number().int().min(1024).max(1_048_576).default(16_384),
        maxResponseHeaderBytes: z.number().int().min(1024).max(1_048_576).default(65_536),
        /** Idle keep-alive connections kept per backend. */
        maxIdlePerBackend: z.number().int().min(0).max(100_000).default(256),
      })
      .strict()
      .prefault({}),
    /** TLS termination: PEM files read when the config is applied. */
    tls: z
      .object({ certFile: z.string().min(1), keyFile: z.string().min(1) })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    const names = new Set<string>();
    c.backends.forEach((b, i) => {
      const key = `${b.pool}/${b.name}`;
      if (names.has(key))
        ctx.addIssue({
          code: 'custom',
          path: ['backends', i, 'name'],
          message: `${b.name} appears twice in pool ${b.pool}`,
        });
      names.add(key);
    });
    const pools = new Set<string>();
    c.pools.forEach((p, i) => {
      if (pools.has(p.name))
        ctx.addIssue({ code: 'custom', path: ['pools', i, 'name'], message: `pool ${p.name} appears twice` });
      pools.add(p.name);
    });
  });

export type AlbConfig = z.output<typeof albConfigSchema>;

/** The pools a config defines: every pool named by a backend or in `pools`, plus the default. */
export function poolNames(c: AlbConfig): string[] {
  return [...new Set([c.defaultPool, ...c.backends.map((b) => b.pool), ...c.pools.map((p) => p.name)])];
}
