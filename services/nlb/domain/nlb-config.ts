/**
 * The NLB's typed config sections (UpdateNLBConfig / GetNLBConfig). Each section has a zod
 * schema with embedded defaults; `applySection` validates a change and says whether it can
 * apply live or needs a restart.
 */
import { z } from 'zod';
import { DomainError, Problems } from '../../shared/errors.js';
import { suggest } from '../../shared/suggest.js';
import { PROTOCOLS } from './types.js';

const port = z.number().int().min(0).max(65535);
const pct = z.number().int().min(0).max(100);

const scalingPolicy = z
  .object({
    minInstances: z.number().int().min(0).max(10_000).default(1),
    maxInstances: z.number().int().min(1).max(10_000).default(10),
    targetCpuPercent: pct.default(70),
    targetMemoryPercent: pct.default(80),
    targetConnections: z.number().int().min(0).max(10_000_000).default(1000),
    cooldownSeconds: z.number().int().min(0).max(86_400).default(60),
    autoScalingEnabled: z.boolean().default(true),
  })
  .strict()
  .refine((s) => s.minInstances <= s.maxInstances, { message: 'minInstances must not exceed maxInstances' });

/** One client listener of the data plane (docs/dataplane.md). */
export const LISTENER_SCHEMA = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'use 1-32 lowercase letters, digits or -'),
    address: z.string().default('0.0.0.0'),
    port,
    mode: z
      .enum(['sniff', ...PROTOCOLS.map((p) => p.toLowerCase())] as [string, ...string[]])
      .default('sniff'),
    defaultProtocol: z
      .enum(['none', ...PROTOCOLS.map((p) => p.toLowerCase())] as [string, ...string[]])
      .default('none'),
    sniffBytes: z.number().int().min(16).max(65_536).default(4096),
    sniffTimeoutMs: z.number().int().min(1).max(60_000).default(1000),
    maxConnections: z.number().int().min(0).max(10_000_000).default(0),
    /** Connections open at once from one client address (0: no limit). */
    maxConnectionsPerClient: z.number().int().min(0).max(10_000_000).default(0),
    idleTimeoutMs: z.number().int().min(0).max(86_400_000).default(300_000),
  })
  .strict();

export const SECTION_SCHEMAS = {
  listeners: z
    .object({
      listeners: z.array(LISTENER_SCHEMA).max(64).default([]),
    })
    .strict()
    .refine((s) => new Set(s.listeners.map((l) => l.name)).size === s.listeners.length, {
      message: 'listener names must be unique',
    })
    .refine(
      (s) =>
        new Set(s.listeners.filter((l) => l.port).map((l) => `${l.address}:${l.port}`)).size ===
        s.listeners.filter((l) => l.port).length,
      {
        message: 'two listeners use the same address and port',
      },
    ),
  heartbeat: z
    .object({
      intervalSeconds: z.number().min(0.1).max(3600).default(10),
      missedHeartbeats: z.number().int().min(1).max(100).default(3),
      evictAfterSeconds: z.number().min(1).max(86_400).default(300),
      drainTimeoutSeconds: z.number().min(0).max(86_400).default(30),
    })
    .strict()
    .refine((h) => h.evictAfterSeconds >= h.intervalSeconds * h.missedHeartbeats, {
      message: 'evictAfterSeconds must be at least intervalSeconds × missedHeartbeats',
    }),
  scaling: z
    .object({
      evaluationIntervalSeconds: z.number().min(1).max(3600).default(30),
      stabilizationWindowSeconds: z.number().min(0).max(86_400).default(300),
      tolerance: z.number().min(0).max(1).default(0.1),
      defaults: scalingPolicy.default({
        minInstances: 1,
        maxInstances: 10,
        targetCpuPercent: 70,
        targetMemoryPercent: 80,
        targetConnections: 1000,
        cooldownSeconds: 60,
        autoScalingEnabled: true,
      }),
      /** Keyed "ALB" or "ALB@2.0". */
      overrides: z
        .record(
          z
            .string()
            .regex(
              /^(ALB|DBLB|AILB|RTMP)(@[A-Za-z0-9][A-Za-z0-9._+-]{0,63})?$/,
              'keys are a module type, optionally @version, e.g. ALB or ALB@2.0',
            ),
          scalingPolicy,
        )
        .default({}),
    })
    .strict(),
  rollout: z
    .object({
      steps: z
        .array(pct.min(1))
        .min(1)
        .max(20)
        .default([5, 25, 50, 100])
        .refine((s) => s[s.length - 1] === 100 && s.every((w, i) => i === 0 || w > s[i - 1]), {
          message: 'steps must increase and end at 100',
        }),
      stepIntervalSeconds: z.number().min(1).max(86_400).default(60),
      minSuccessRate: z.number().min(0).max(1).default(0.99),
      maxP99LatencyMs: z.number().min(1).max(600_000).default(500),
      maxP99Ratio: z.number().min(1).max(100).default(1.5),
      minRequests: z.number().int().min(0).max(1_000_000_000).default(100),
      progressDeadlineSeconds: z.number().min(1).max(604_800).default(600),
      scaleDownOldVersion: z.boolean().default(true),
    })
    .strict(),
  routing: z
    .object({
      canHandleTimeoutMs: z.number().int().min(10).max(60_000).default(500),
      canHandleCacheTtlMs: z.number().int().min(0).max(3_600_000).default(30_000),
      strategy: z.enum(['least-conn', 'round-robin']).default('least-conn'),
    })
    .strict(),
  metrics: z
    .object({
      retentionSeconds: z
        .number()
        .int()
        .min(60)
        .max(7 * 86_400)
        .default(3600),
      resolutionSeconds: z.number().int().min(1).max(3600).default(10),
      maxStreamSubscribers: z.number().int().min(1).max(10_000).default(100),
      defaultStreamIntervalSeconds: z.number().int().min(1).max(3600).default(5),
    })
    .strict(),
  auth: z
    .object({
      anonymousRead: z.boolean().default(false),
    })
    .strict(),
  /** Limits on what callers may create; each refusal counts in mp_nlb_limit_hits_total. */
  limits: z
    .object({
      /** Live registrations per module token (a token's scope.maxRegistrations overrides). 0: none. */
      maxRegistrationsPerToken: z.number().int().min(0).max(1_000_000).default(1000),
      /** Routes in the routing table, operator and module routes together. */
      maxRoutes: z.number().int().min(1).max(1_000_000).default(10_000),
    })
    .strict(),
  server: z
    .object({
      grpcAddress: z.string().default('0.0.0.0:50050'),
      adminAddress: z.string().default('0.0.0.0:8082'),
      maxMessageBytes: z
        .number()
        .int()
        .min(1024)
        .max(256 * 1024 * 1024)
        .default(16 * 1024 * 1024),
    })
    .strict(),
} as const;

export type SectionName = keyof typeof SECTION_SCHEMAS;
export const SECTION_NAMES = Object.keys(SECTION_SCHEMAS) as SectionName[];
export type NlbConfig = { [K in SectionName]: z.infer<(typeof SECTION_SCHEMAS)[K]> };

/** Sections whose changes only apply after a restart. */
const RESTART_SECTIONS: ReadonlySet<SectionName> = new Set(['server']);

/** Every section at its embedded defaults. */
export function defaultNlbConfig(): NlbConfig {
  return Object.fromEntries(SECTION_NAMES.map((n) => [n, SECTION_SCHEMAS[n].parse({})])) as NlbConfig;
}

/** Resolves a section name (case-insensitive) or throws naming the valid ones. */
export function sectionName(name: string): SectionName {
  const n = name.trim().toLowerCase();
  if ((SECTION_NAMES as string[]).includes(n)) return n as SectionName;
  throw new DomainError(
    'invalid_argument',
    `unknown config_type "${name}"; use one of ${SECTION_NAMES.join(', ')}${suggest(n, SECTION_NAMES)}`,
  );
}

/** Formats zod issues as "section.path: message" lines. */
export function zodProblems(section: string, err: z.ZodError, p = new Problems()): Problems {
  for (const issue of err.issues) {
    const path = [section, ...issue.path.map(String)].join('.');
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) p.add(`${path}: unknown field "${key}"`);
    } else {
      p.add(`${path}: ${issue.message}`);
    }
  }
  return p;
}

export interface SectionChange<K extends SectionName = SectionName> {
  section: K;
  value: NlbConfig[K];
  requiresRestart: boolean;
}

/** Validates a section's new body (a full replacement; omitted fields take defaults). */
export function parseSection(name: SectionName, body: unknown): SectionChange {
  const schema = SECTION_SCHEMAS[name];
  const r = schema.safeParse(body ?? {});
  if (!r.success) zodProblems(name, r.error).check(`config section ${name}`);
  return {
    section: name,
    value: r.data as NlbConfig[SectionName],
    requiresRestart: RESTART_SECTIONS.has(name),
  };
}
