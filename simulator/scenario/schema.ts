/**
 * The scenario file's schema (docs/simulator.md): topology, fake-instance profiles, offered
 * load, faults, actions and expectations. Durations are strings with a unit ("90s", "5m") and
 * come out in milliseconds; NLB config sections reuse the NLB's own section schemas.
 */
import { z } from 'zod';
import { SECTION_SCHEMAS } from '../../services/nlb/domain/nlb-config.js';
import { MODULE_TYPES, type ModuleTypeName } from '../../services/nlb/domain/types.js';
import { VERSION_PATTERN } from '../../services/nlb/domain/validate.js';
import { parseDuration } from '../../services/shared/config.js';
import { closest } from '../../services/shared/suggest.js';

/** A duration with a unit ("250ms", "30s", "5m", "1h30m"), or 0; parsed to milliseconds. */
export const duration = () =>
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    if (typeof value === 'number' && value !== 0) {
      ctx.issues.push({
        code: 'custom',
        message: `invalid duration ${value}: missing a unit; use a number with a unit (ms, s, m, h, d), e.g. "${value}s" or "${value}m"`,
        input: value,
      });
      return z.NEVER;
    }
    try {
      return parseDuration(value);
    } catch (e) {
      ctx.issues.push({ code: 'custom', message: (e as Error).message, input: value });
      return z.NEVER;
    }
  });

const moduleType = z
  .string()
  .transform((s) => s.toUpperCase())
  .pipe(z.enum(MODULE_TYPES, { error: `use one of ${MODULE_TYPES.join(', ')}` }));

/** A version; the loader keeps unquoted numbers as written (1.10 stays "1.10"). */
const version = z.union([z.string(), z.number()]).transform((value, ctx) => {
  if (typeof value === 'number') {
    ctx.issues.push({
      code: 'custom',
      message: `version ${value} is a number in YAML (1.0 reads as 1); quote it, e.g. "${value}"`,
      input: value,
    });
    return z.NEVER;
  }
  if (!VERSION_PATTERN.test(value)) {
    ctx.issues.push({
      code: 'custom',
      message: `version "${value}": use 1-64 characters of A-Z a-z 0-9 . _ + - starting with a letter or digit`,
      input: value,
    });
    return z.NEVER;
  }
  return value;
});

const rate = z.number().min(0).max(1);
const positive = z.number().positive();

/** Scaling policy fields a module or an action may set (the NLB's `scaling` policy, all optional). */
const scalingPolicy = z
  .object({
    minInstances: z.number().int().min(0).max(1000).optional(),
    maxInstances: z.number().int().min(1).max(1000).optional(),
    targetCpuPercent: z.number().int().min(0).max(100).optional(),
    targetMemoryPercent: z.number().int().min(0).max(100).optional(),
    targetConnections: z.number().int().min(0).optional(),
    cooldownSeconds: z.number().int().min(0).optional(),
    autoScalingEnabled: z.boolean().optional(),
  })
  .strict();
export type ScalingPolicyPatch = z.output<typeof scalingPolicy>;

/** How a fake instance turns its share of the load into stats (kwok-style: data, not code). */
export const profileFields = {
  /** Requests per second one instance serves before it is overloaded. */
  capacityRps: positive.optional(),
  baseLatencyMs: z.number().min(0).optional(),
  /** p99 latency as a multiple of the mean. */
  p99Factor: z.number().min(1).optional(),
  /** Fraction of requests that fail at any load. */
  errorRate: rate.optional(),
  cpuIdlePercent: z.number().min(0).max(100).optional(),
  /** CPU % at exactly `capacityRps`. */
  cpuAtCapacityPercent: z.number().min(0).max(100).optional(),
  /** Mean latency at capacity as a multiple of the base latency (it keeps growing beyond). */
  overloadLatencyFactor: z.number().min(1).optional(),
  /** Fraction of the requests beyond capacity that fail (1 = all of the excess). */
  overloadErrorSlope: z.number().min(0).max(10).optional(),
  memoryMb: z.number().min(0).optional(),
  memoryPerConnectionMb: z.number().min(0).optional(),
  /** Reported as custom `memory_limit_mb` (enables memory-based scaling); 0 = not reported. */
  memoryLimitMb: z.number().min(0).optional(),
  /** Open connections per (requests/s × mean latency in s), Little's law. */
  connectionFactor: z.number().min(0).optional(),
  /** Relative standard deviation of CPU and latency. */
  noise: z.number().min(0).max(1).optional(),
  /**
   * Gauges in heartbeats (CPU, latency, connections, memory) are averaged over about this long,
   * as a real process's CPU sample between two heartbeats is.
   */
  statsWindow: duration().optional(),
  /** Boot time of a new instance before it listens and registers, plus uniform jitter. */
  startDelay: duration().optional(),
  startJitter: duration().optional(),
};

const profile = z
  .object({
    match: z.object({ type: moduleType.optional(), version: version.optional() }).strict().default({}),
    ...profileFields,
  })
  .strict();

const phase = z.discriminatedUnion('shape', [
  z.object({ shape: z.literal('constant'), rps: z.number().min(0), for: duration().optional() }).strict(),
  z
    .object({
      shape: z.literal('ramp'),
      /** Defaults to where the previous phase ended. */
      from: z.number().min(0).optional(),
      to: z.number().min(0),
      for: duration(),
    })
    .strict(),
  z
    .object({
      shape: z.literal('steps'),
      levels: z.array(z.number().min(0)).min(1),
      every: duration(),
    })
    .strict(),
  z
    .object({
      shape: z.literal('sine'),
      mean: z.number().min(0),
      amplitude: z.number().min(0),
      period: duration(),
      /** Time offset into the period at the phase's start. */
      offset: duration().default(0),
      for: duration().optional(),
    })
    .strict(),
  z
    .object({
      shape: z.literal('csv'),
      /** Relative to the scenario file; columns `time` (seconds or a duration) and `rps`. */
      file: z.string().min(1),
      scale: z.number().min(0).default(1),
      for: duration().optional(),
    })
    .strict(),
]);
export type Phase = z.output<typeof phase>;

const spike = z
  .object({
    at: duration(),
    for: duration(),
    /** Requests/s added during the spike. */
    rps: z.number().min(0).optional(),
    /** Or: load multiplied during the spike. */
    factor: z.number().min(0).optional(),
  })
  .strict();

const loadSpec = z
  .object({
    type: moduleType,
    /** Relative standard deviation of the offered load per tick. */
    noise: z.number().min(0).max(1).default(0),
    phases: z.array(phase).min(1),
    spikes: z.array(spike).default([]),
  })
  .strict();
export type LoadSpec = z.output<typeof loadSpec>;

/** Which instances a fault hits: `count` of them, or a `fraction` (default: one). */
const target = {
  type: moduleType,
  version: version.optional(),
  count: z.number().int().min(1).optional(),
  fraction: z.number().gt(0).max(1).optional(),
};
const at = { at: duration() };
const window = { at: duration(), for: duration().optional() };

const fault = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('kill'), ...at, ...target }).strict(),
  z.object({ kind: z.literal('stopHeartbeats'), ...window, ...target }).strict(),
  z.object({ kind: z.literal('slowHeartbeats'), ...window, ...target, delay: duration() }).strict(),
  z.object({ kind: z.literal('partition'), ...window, ...target }).strict(),
  z
    .object({ kind: z.literal('errorRate'), ...window, type: moduleType, version: version, rate: rate })
    .strict(),
  z
    .object({
      kind: z.literal('latency'),
      ...window,
      type: moduleType,
      version: version,
      addMs: z.number().min(0).optional(),
      factor: z.number().min(0).optional(),
    })
    .strict(),
  z.object({ kind: z.literal('restartNlb'), ...at, downtime: duration().default(0) }).strict(),
  z
    .object({
      kind: z.literal('failScale'),
      ...window,
      type: moduleType.optional(),
      version: version.optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('slowStart'),
      ...window,
      type: moduleType,
      version: version.optional(),
      delay: duration(),
    })
    .strict(),
]);
export type Fault = z.output<typeof fault>;

const action = z.discriminatedUnion('kind', [
  z
    .object({
      kind: z.literal('deploy'),
      ...at,
      type: moduleType,
      version,
      instances: z.number().int().min(0).max(1000),
      scaling: scalingPolicy.optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('promote'),
      ...at,
      type: moduleType,
      version,
      rate: z.number().int().min(1).max(100).optional(),
      immediate: z.boolean().default(false),
    })
    .strict(),
  z
    .object({
      kind: z.literal('setWeight'),
      ...at,
      type: moduleType,
      version,
      weight: z.number().int().min(0).max(100),
    })
    .strict(),
  z.object({ kind: z.literal('pause'), ...at, type: moduleType }).strict(),
  z.object({ kind: z.literal('resume'), ...at, type: moduleType }).strict(),
  z.object({ kind: z.literal('rollback'), ...at, type: moduleType, to: version.optional() }).strict(),
  z
    .object({ kind: z.literal('setScaling'), ...at, type: moduleType, version, ...scalingPolicy.shape })
    .strict(),
  z
    .object({
      kind: z.literal('setConfig'),
      ...at,
      section: z.enum(['scaling', 'rollout', 'heartbeat', 'routing']),
      /** Merged into the section's current values. */
      values: z.record(z.string(), z.unknown()),
    })
    .strict(),
  z
    .object({
      kind: z.literal('scale'),
      ...at,
      type: moduleType,
      version,
      instances: z.number().int().min(0).max(1000),
    })
    .strict(),
]);
export type Action = z.output<typeof action>;

/** Series the recorder keeps per module type and version; `nlb:<name>` reads the NLB's store. */
export const METRICS = [
  'offeredRps',
  'servedRps',
  'lostRps',
  'errorRate',
  'p99LatencyMs',
  'cpuPercent',
  'instances',
  'healthyInstances',
  'desiredInstances',
  'weight',
] as const;
export type MetricName = (typeof METRICS)[number];

const named = { name: z.string().min(1).optional() };
const scope = { type: moduleType, version: version.optional() };

const expectation = z.discriminatedUnion('kind', [
  z
    .object({
      kind: z.literal('instances'),
      ...named,
      ...scope,
      min: z.number().int().min(0).optional(),
      max: z.number().int().min(0).optional(),
      /** Count only HEALTHY instances. */
      healthy: z.boolean().default(false),
      from: duration().default(0),
      to: duration().optional(),
      /** A violation must last longer than this to count. */
      grace: duration().default(0),
    })
    .strict(),
  z
    .object({
      kind: z.literal('scaleUp'),
      ...named,
      ...scope,
      after: duration(),
      within: duration(),
      /** Also: at least this many healthy instances by then. */
      atLeast: z.number().int().min(0).optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('scaleDown'),
      ...named,
      ...scope,
      after: duration(),
      within: duration(),
      atMost: z.number().int().min(0).optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('maxScaleChanges'),
      ...named,
      type: moduleType.optional(),
      version: version.optional(),
      perHour: z.number().int().min(0),
    })
    .strict(),
  z
    .object({ kind: z.literal('rolloutCompletes'), ...named, type: moduleType, version, by: duration() })
    .strict(),
  z
    .object({
      kind: z.literal('rolledBack'),
      ...named,
      type: moduleType,
      version,
      by: duration().optional(),
      /** The version's weight must never have exceeded this. */
      maxWeight: z.number().int().min(0).max(100),
    })
    .strict(),
  z
    .object({
      kind: z.literal('noUnhealthyRouting'),
      ...named,
      type: moduleType.optional(),
      /** How long a dead instance may still get traffic (default: missed heartbeats + one interval). */
      grace: duration().optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('registryRecovers'),
      ...named,
      /** Default: one heartbeat interval. */
      within: duration().optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('metric'),
      ...named,
      metric: z.string().superRefine((m, ctx) => {
        if ((METRICS as readonly string[]).includes(m) || /^nlb:[a-z_]+$/.test(m)) return;
        const best = closest(m, METRICS)[0];
        ctx.addIssue({
          code: 'custom',
          message: `unknown metric "${m}"${best ? ` (did you mean "${best}"?)` : ''}; use one of ${METRICS.join(', ')}, or nlb:<series> for a series of the NLB's metrics store (e.g. nlb:error_rate)`,
        });
      }),
      type: moduleType.optional(),
      version: version.optional(),
      min: z.number().optional(),
      max: z.number().optional(),
      from: duration().default(0),
      to: duration().optional(),
      /** `always` (every sample in the window) or `end` (the last sample only). */
      check: z.enum(['always', 'end']).default('always'),
      grace: duration().default(0),
    })
    .strict(),
]);
export type Expectation = z.output<typeof expectation>;

const moduleSpec = z
  .object({
    type: moduleType,
    version,
    instances: z.number().int().min(0).max(1000),
    scaling: scalingPolicy.optional(),
  })
  .strict();
export type ModuleSpec = z.output<typeof moduleSpec>;

export const scenarioSchema = z
  .object({
    name: z.string().min(1).optional(),
    description: z.string().default(''),
    duration: duration(),
    seed: z.union([z.number().int(), z.string().min(1)]).default(1),
    /** Step of the load model (and of virtual time at least this often). */
    tick: duration().default(1000),
    /** Resolution of the timeline and of continuous checks. */
    sample: duration().default(10_000),
    nlb: z
      .object({
        heartbeatInterval: duration().default(10_000),
        missedHeartbeats: z.number().int().min(1).max(100).default(3),
        evictAfter: duration().default(300_000),
        scaling: SECTION_SCHEMAS.scaling.optional(),
        rollout: SECTION_SCHEMAS.rollout.optional(),
        routing: SECTION_SCHEMAS.routing.optional(),
      })
      .strict()
      .default({ heartbeatInterval: 10_000, missedHeartbeats: 3, evictAfter: 300_000 }),
    modules: z.array(moduleSpec).min(1),
    profiles: z.array(profile).default([]),
    load: z.array(loadSpec).default([]),
    faults: z.array(fault).default([]),
    actions: z.array(action).default([]),
    expect: z.array(expectation).default([]),
  })
  .strict();

export type ScenarioInput = z.output<typeof scenarioSchema>;

/** A validated scenario, with where it came from and its CSV traces loaded. */
export interface Scenario extends ScenarioInput {
  name: string;
  /** The file it was read from ('' when given as text). */
  file: string;
  /** CSV traces by `file` as written in the scenario: (time ms, rps) points. */
  traces: Record<string, Array<[number, number]>>;
}

export type { ModuleTypeName };
