/**
 * The DBLB's config (docs/dblb-rtmp.md): backends, routes (database / user / listener-port
 * patterns → a pool of backends, with connection limits), PostgreSQL and MySQL options, limits
 * and protocol-speaking health checks. Every field has a default, so `{}` is a valid config.
 */
import { z } from 'zod';

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$/, 'use host:port');
const port = z.number().int().min(1).max(65535);
const patterns = z.array(z.string().min(1)).default(['*']);
const protocol = z.enum(['postgres', 'mysql']);

const backendSchema = z
  .object({
    name: z.string().min(1).max(64),
    protocol,
    address: hostPort,
    /** Databases and users this backend serves (globs); they form implicit routes. */
    databases: patterns,
    users: patterns,
    /** Connections open to this backend at most (0 = no limit); more wait in the queue. */
    maxConnections: z.number().int().min(0).max(100_000).default(0),
    /** Listener ports (the port the client connected to at the NLB) this backend serves. */
    ports: z.array(port).max(64).optional(),
  })
  .strict();

const routeSchema = z
  .object({
    name: z.string().min(1).max(64),
    protocol,
    databases: patterns,
    users: patterns,
    /** Listener ports this route serves; empty = any (MySQL is routed by port). */
    ports: z.array(port).max(64).default([]),
    /** The pool: backend names, least connections among the healthy ones. */
    backends: z.array(z.string().min(1)).min(1).max(256),
    /** Connections open through this route at most (0 = no limit); more wait in the queue. */
    maxConnections: z.number().int().min(0).max(1_000_000).default(0),
    /** New connections per second through this route (0 = no limit), with `burst` extra. */
    connectionsPerSecond: z.number().min(0).max(1_000_000).default(0),
    burst: z.number().int().min(0).max(1_000_000).default(0),
  })
  .strict();

const credentials = z
  .object({
    user: z.string().min(1).max(63),
    password: z.string().max(1024).optional(),
    database: z.string().min(1).max(63).optional(),
  })
  .strict();

export const dblbConfigSchema = z
  .object({
    backends: z.array(backendSchema).max(256).default([]),
    /** Explicit routes; without any, backends with the same patterns form one implicit route each. */
    routes: z.array(routeSchema).max(256).default([]),
    postgres: z
      .object({
        /** SSLRequest: answer 'N' (the client goes on in clear text) or pass TLS to the backend. */
        ssl: z.enum(['refuse', 'passthrough']).default('refuse'),
        /** The client must finish its startup packet within this time. */
        startupTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
      })
      .strict()
      .prefault({}),
    mysql: z
      .object({
        /**
         * When both protocols are configured and the listener port does not decide: no byte
         * from the client for this long ⇒ MySQL (server-first); a byte ⇒ PostgreSQL.
         */
        silenceMs: z.number().int().min(1).max(10_000).default(150),
      })
      .strict()
      .prefault({}),
    limits: z
      .object({
        /** How long a connection waits for a free slot (backend or route limit) before the error. */
        queueTimeoutMs: z.number().int().min(0).max(600_000).default(5_000),
        /** Connections waiting at most; more get the error at once. */
        maxQueued: z.number().int().min(0).max(1_000_000).default(1_000),
        /** New connections per second for the whole instance (0 = no limit), with `burst` extra. */
        connectionsPerSecond: z.number().min(0).max(1_000_000).default(0),
        burst: z.number().int().min(0).max(1_000_000).default(0),
        connectTimeoutMs: z.number().int().min(50).max(120_000).default(3_000),
      })
      .strict()
      .prefault({}),
    healthCheck: z
      .object({
        /** Protocol checks of every backend this often (0 = off: every backend counts as healthy). */
        intervalMs: z.number().int().min(0).max(3_600_000).default(2_000),
        timeoutMs: z.number().int().min(50).max(60_000).default(1_000),
        unhealthyAfter: z.number().int().min(1).max(100).default(2),
        healthyAfter: z.number().int().min(1).max(100).default(1),
        /** With credentials: authenticate and run `SELECT 1`; without: reaching authentication is enough. */
        postgres: credentials.optional(),
        /** With a user: authenticate and quit (avoids MySQL's host blocking); without: the greeting. */
        mysql: credentials.optional(),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    const byName = new Map<string, string>();
    c.backends.forEach((b, i) => {
      if (byName.has(b.name))
        ctx.addIssue({
          code: 'custom',
          path: ['backends', i, 'name'],
          message: `duplicate backend ${b.name}`,
        });
      byName.set(b.name, b.protocol);
    });
    c.routes.forEach((r, i) =>
      r.backends.forEach((name, j) => {
        const p = byName.get(name);
        if (p === undefined)
          ctx.addIssue({ code: 'custom', path: ['routes', i, 'backends', j], message: `no backend ${name}` });
        else if (p !== r.protocol)
          ctx.addIssue({
            code: 'custom',
            path: ['routes', i, 'backends', j],
            message: `backend ${name} speaks ${p}, the route ${r.protocol}`,
          });
      }),
    );
  });

export type DblbConfig = z.output<typeof dblbConfigSchema>;
export type DblbBackend = DblbConfig['backends'][number];
export type DbProtocol = z.output<typeof protocol>;
