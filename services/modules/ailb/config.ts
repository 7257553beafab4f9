/**
 * The AILB module config (UpdateConfig body), documented in docs/alb-ailb.md. Backends say
 * which models they serve (exact names or "*" patterns); a request goes to the backends whose
 * patterns match its `model`, most specific first, then to its fallbacks. The earlier
 * `backends: [{name, address, models, gpu}]` stays valid.
 */
import { z } from 'zod';
import { healthCheckSchema, passiveEjectionSchema } from '../common/http/config-schemas.js';

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$/, 'use host:port');
const ms = (min: number, max: number, dflt: number) => z.number().int().min(min).max(max).default(dflt);
const perMinute = z.number().int().min(0).max(1_000_000_000);

export const ailbConfigSchema = z
  .object({
    backends: z
      .array(
        z
          .object({
            name: z.string().min(1).max(64),
            address: hostPort,
            /** Model names or patterns ("llama-*", "*") this backend serves. */
            models: z.array(z.string().min(1)).min(1),
            gpu: z.boolean().default(false),
            /** Share among backends serving the same model; 0 = out of rotation. */
            weight: z.number().int().min(0).max(1000).default(1),
            /** Sent to this backend as "Authorization: Bearer …" instead of the client's key. */
            apiKey: z.string().min(1).optional(),
          })
          .strict(),
      )
      .max(256)
      .default([]),
    /** When every backend of a model fails: try these models next (the request's model is rewritten). */
    fallbacks: z
      .array(z.object({ model: z.string().min(1), to: z.array(z.string().min(1)).min(1).max(8) }).strict())
      .max(256)
      .default([]),
    balancing: z.enum(['round_robin', 'least_request']).default('least_request'),
    /** Client API keys: names for stats and limits, and (requireApiKey) who may call at all. */
    apiKeys: z
      .array(
        z
          .object({
            name: z
              .string()
              .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'use 1-64 characters of A-Z a-z 0-9 . _ -'),
            /** The key itself, or its SHA-256 in hex (so the config need not hold the secret). */
            key: z.string().min(8).optional(),
            keySha256: z
              .string()
              .regex(/^[0-9a-f]{64}$/, 'use 64 lowercase hex digits')
              .optional(),
            tokensPerMinute: perMinute.optional(),
            requestsPerMinute: perMinute.optional(),
          })
          .strict()
          .refine((k) => !!k.key !== !!k.keySha256, { message: 'give exactly one of key and keySha256' }),
      )
      .max(10_000)
      .default([]),
    requireApiKey: z.boolean().default(false),
    /**
     * Per caller (an API key, or the client address when there is none) unless a listed key has
     * its own; 0 = no limit. Tokens come from the response's `usage`, or an estimate.
     */
    limits: z
      .object({ tokensPerMinute: perMinute.default(0), requestsPerMinute: perMinute.default(0) })
      .strict()
      .prefault({}),
    /** Backends tried per request (the first choice, then others and fallbacks). */
    maxAttempts: z.number().int().min(1).max(16).default(3),
    maxRequestBodyBytes: z
      .number()
      .int()
      .min(1024)
      .max(64 * 1024 * 1024)
      .default(8 * 1024 * 1024),
    healthCheck: healthCheckSchema.prefault({}),
    passiveEjection: passiveEjectionSchema.prefault({}),
    timeouts: z
      .object({
        connectMs: ms(1, 600_000, 3000),
        /** To the response head (inference can queue): exceeded, the next backend or 504. */
        responseMs: ms(1, 3_600_000, 300_000),
        /** Longest pause inside a (streamed) response body. */
        bodyIdleMs: ms(1, 3_600_000, 300_000),
        clientHeadersMs: ms(100, 600_000, 10_000),
        clientRequestMs: ms(100, 86_400_000, 300_000),
        clientKeepAliveMs: ms(1, 3_600_000, 5000),
        clientIdleMs: ms(0, 86_400_000, 600_000),
        upstreamIdleMs: ms(1, 3_600_000, 4000),
        tlsHandshakeMs: ms(10, 600_000, 10_000),
      })
      .strict()
      .prefault({}),
    tls: z
      .object({ certFile: z.string().min(1), keyFile: z.string().min(1) })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    const names = new Set<string>();
    c.backends.forEach((b, i) => {
      if (names.has(b.name))
        ctx.addIssue({
          code: 'custom',
          path: ['backends', i, 'name'],
          message: `backend ${b.name} appears twice`,
        });
      names.add(b.name);
    });
    const keys = new Set<string>();
    c.apiKeys.forEach((k, i) => {
      if (keys.has(k.name))
        ctx.addIssue({
          code: 'custom',
          path: ['apiKeys', i, 'name'],
          message: `key name ${k.name} appears twice`,
        });
      keys.add(k.name);
    });
  });

export type AilbConfig = z.output<typeof ailbConfigSchema>;
export type AilbBackend = AilbConfig['backends'][number];
