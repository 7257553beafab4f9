/**
 * Runs a scenario: starts the real NLB and controllers with fake instances, schedules the load
 * model, faults, actions and samples on the clock, drives virtual time (or waits on the wall
 * clock), checks the expectations and returns the result.
 */
import { createManualClock, createSystemClock, type Clock } from '../../services/shared/clock.js';
import { silentLogger, type Logger } from '../../services/shared/logger.js';
import { createRng } from '../../services/shared/rng.js';
import type { Scenario } from '../scenario/schema.js';
import { Cluster } from './cluster.js';
import { createChecks, type Evidence, type Outcome } from './expectations.js';
import { FaultBook } from './fault-book.js';
import { Recorder, type Sample, type TimelineEvent } from './recorder.js';
import { applyFault, runAction, type EventContext } from './scenario-events.js';
import { Traffic } from './traffic.js';
import { advanceTo, createInflight } from './virtual-time.js';

export type Speed = 'max' | 'realtime';

export interface RunOptions {
  /** Overrides the scenario's seed. */
  seed?: number | string;
  /** `max` (virtual time, default) or `realtime` (wall clock, for watching with mpctl top). */
  speed?: Speed;
  /** Overrides the scenario's duration (ms). */
  durationMs?: number;
  /** NLB gRPC port (default: any free one). */
  grpcPort?: number;
  /** Run the fakes' gRPC client on a worker thread (default true). */
  workerThread?: boolean;
  /** Progress callback (each sample, and when the NLB listens). */
  onProgress?: (p: Progress) => void;
  /** Service logs (default: none). */
  logger?: Logger;
  /** RouteRequest dry runs per loaded type per sample (default 1). */
  probesPerSample?: number;
}

export type Progress =
  | { kind: 'listening'; nlb: string }
  | { kind: 'sample'; simulatedMs: number; durationMs: number; sample: Sample }
  | { kind: 'event'; event: TimelineEvent };

export interface TypeSummary {
  peakInstances: number;
  finalInstances: number;
  scaleUps: number;
  scaleDowns: number;
  failedScaleCalls: number;
  offeredRequests: number;
  failedRequests: number;
  lostRequests: number;
}

export interface SimResult {
  scenario: { name: string; description: string; file: string };
  seed: string;
  speed: Speed;
  passed: boolean;
  durationMs: number;
  wallMs: number;
  speedUp: number;
  peakRssMb: number;
  /** Heartbeats the NLB handled (real gRPC calls from the fakes). */
  heartbeats: number;
  expectations: Outcome[];
  types: Record<string, TypeSummary>;
  /** Final deployment per type. */
  deployments: Record<string, { phase: string; stableVersion: string; weights: Record<string, number> }>;
  timeline: TimelineEvent[];
  samples: Sample[];
}

const START_MS = Date.UTC(2026, 0, 1);

/** Runs `scenario` to the end and returns what happened. */
export async function runScenario(scenario: Scenario, o: RunOptions = {}): Promise<SimResult> {
  const speed = o.speed ?? 'max';
  const seed = String(o.seed ?? scenario.seed);
  const s: Scenario = {
    ...scenario,
    seed,
    ...(o.durationMs !== undefined ? { duration: o.durationMs } : {}),
  };
  const manual = speed === 'max' ? createManualClock(START_MS) : null;
  const clock: Clock = manual ?? createSystemClock();
  const wallStart = performance.now();
  let t0 = clock.now();
  const rng = createRng(seed);
  const inflight = createInflight();
  const faults = new FaultBook(clock);
  const recorder = new Recorder(t0, (event) => o.onProgress?.({ kind: 'event', event }));
  const logger = o.logger ?? silentLogger();
  const timers: Array<{ cancel(): void }> = [];
  let cluster: Cluster | null = null;

  const event = (e: Omit<TimelineEvent, 'atMs'>) => recorder.event(clock.now(), e);

  cluster = new Cluster({
    scenario: s,
    clock,
    inflight,
    rng: rng.fork('cluster'),
    faults,
    recorder,
    logger,
    grpcPort: o.grpcPort ?? 0,
    samplers: speed === 'realtime',
    worker: o.workerThread ?? true,
    onNlb(handle) {
      handle.nlb.on((e) => {
        const now = clock.now();
        if (e.type === 'scaling') {
          recorder.lastScalingReason.set(`${e.moduleType}@${e.version}`, e.reason);
          if (e.action !== 'none' || !e.ok)
            event({
              kind: 'scaling',
              type: e.moduleType,
              version: e.version,
              message: `${e.action} ${e.from} → ${e.to}${e.ok ? '' : ' (Scale failed)'}: ${e.reason}`,
              data: { action: e.action, from: e.from, to: e.to, ok: e.ok },
            });
        } else if (e.type === 'deployment') {
          recorder.observeDeployment(now, e.deployment);
          const d = e.deployment;
          // The rollout controller's own record says why (and which version) for its steps.
          const step = handle.rollouts.events[handle.rollouts.events.length - 1];
          const own = step && step.atMs === now && step.action === e.action ? step : undefined;
          event({
            kind: 'rollout',
            type: d.moduleType,
            version: own?.version ?? (d.targetVersion || d.stableVersion),
            message: `${e.action}: ${d.phase} ${Object.entries(d.weights)
              .map(([v, w]) => `${v}=${w}%`)
              .join(' ')} — ${own?.reason ?? d.reason}`,
            data: { action: e.action, phase: d.phase, weights: { ...d.weights } },
          });
        } else if (e.type === 'registry') {
          const ev = e.event;
          if (ev.type === 'registered') cluster?.checkRecovery();
          if (ev.type === 'health' && ev.to === 'UNHEALTHY')
            event({
              kind: 'instance',
              type: ev.instance.moduleType,
              version: ev.instance.version,
              message: `${ev.instance.instanceId} ${ev.from} → UNHEALTHY: ${ev.reason}`,
            });
          else if (ev.type === 'removed' && ev.reason === 'evicted')
            event({
              kind: 'instance',
              type: ev.instance.moduleType,
              version: ev.instance.version,
              message: `${ev.instance.instanceId} evicted`,
            });
        }
      });
      for (const d of handle.nlb.deployments.all()) recorder.observeDeployment(clock.now(), d);
    },
  });

  const checks = createChecks(s.expect, s.duration);
  const types = [...new Set([...s.modules.map((m) => m.type), ...s.load.map((l) => l.type)])].sort();
  const nlbMetric: Evidence['nlbMetric'] = (series, type, version) => {
    const h = cluster?.nlb;
    if (!h) return undefined;
    const labels: Record<string, string> = {};
    if (type) labels.module_type = type;
    if (version) labels.version = version;
    const points = h.nlb.metrics.latest([series], labels).filter((x) => !x.labels.instance);
    return points.length ? points.reduce((a, x) => a + x.point.value, 0) / points.length : undefined;
  };

  try {
    await cluster.start();
    // On the wall clock, starting took time: the scenario's clock starts now.
    t0 = clock.now();
    recorder.restart(t0);
    o.onProgress?.({ kind: 'listening', nlb: cluster.target });
    const c = cluster;
    const traffic = new Traffic(s, clock, t0, rng.fork('traffic'), c, faults, recorder);
    const ctx: EventContext = { clock, rng: rng.fork('faults'), cluster: c, faults, recorder };
    const takeSample = () => {
      const state = new Map<
        string,
        { instances: number; healthy: number; desired: number; weight: number }
      >();
      for (const ctl of c.controllers.values())
        state.set(ctl.key, { instances: 0, healthy: 0, desired: ctl.handle.controller.desired, weight: 0 });
      const h = c.up ? c.nlb : null;
      if (h) {
        for (const r of h.nlb.registry.all()) {
          const key = `${r.moduleType}@${r.version}`;
          const st = state.get(key) ?? { instances: 0, healthy: 0, desired: 0, weight: 0 };
          if (!r.draining) st.instances++;
          if (r.health === 'HEALTHY' && !r.draining) st.healthy++;
          state.set(key, st);
        }
        for (const d of h.nlb.deployments.all()) {
          recorder.observeDeployment(clock.now(), d);
          for (const [v, w] of Object.entries(d.weights)) {
            const st = state.get(`${d.moduleType}@${v}`);
            if (st) st.weight = w;
          }
        }
      }
      const sample = recorder.sample(clock.now(), types, state);
      for (const check of checks) check.sample(sample, nlbMetric);
      c.prune();
      o.onProgress?.({ kind: 'sample', simulatedMs: sample.tMs, durationMs: s.duration, sample });
    };
    recorder.begin(t0);
    timers.push(clock.setInterval(() => traffic.tick(), s.tick));
    timers.push(
      clock.setInterval(() => {
        takeSample();
        void traffic.probe(o.probesPerSample ?? 1);
      }, s.sample),
    );
    for (const f of s.faults)
      timers.push(
        clock.setTimeout(() => {
          applyFault(ctx, f).catch((e: unknown) =>
            event({ kind: 'fault', message: `${f.kind} failed: ${String(e)}` }),
          );
        }, f.at),
      );
    for (const a of s.actions) timers.push(clock.setTimeout(() => void runAction(ctx, a), a.at));
    c.booting = false;
    if (manual) await advanceTo(manual, inflight, t0 + s.duration);
    else await clock.sleep(s.duration);
    if ((clock.now() - t0) % s.sample !== 0) {
      traffic.tick();
      takeSample();
    }
  } finally {
    for (const t of timers) t.cancel();
    await cluster.stop();
  }

  const c = cluster;
  const evidence: Evidence = {
    durationMs: s.duration,
    samples: recorder.samples,
    timeline: recorder.timeline,
    deployments: recorder.deployments,
    misroutes: [...recorder.misroutes.values()],
    restarts: c.restarts,
    heartbeatIntervalMs: s.nlb.heartbeatInterval,
    missedHeartbeats: s.nlb.missedHeartbeats,
    lastScalingReason: recorder.lastScalingReason,
    nlbMetric,
  };
  const expectations = checks.map((ch) => ch.finish(evidence));
  for (const x of expectations)
    recorder.event(t0 + (x.atMs ?? s.duration), {
      kind: 'expectation',
      message: `${x.passed ? 'passed' : 'FAILED'}: ${x.name} — ${x.reason}`,
      data: { passed: x.passed },
    });
  recorder.timeline.sort((a, b) => a.atMs - b.atMs);
  const wallMs = performance.now() - wallStart;
  return {
    scenario: { name: s.name, description: s.description, file: s.file },
    seed,
    speed,
    passed: expectations.every((x) => x.passed),
    durationMs: s.duration,
    wallMs,
    speedUp: s.duration / Math.max(1, wallMs),
    peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
    heartbeats: c.heartbeats,
    expectations,
    types: summarize(types, recorder),
    deployments: Object.fromEntries(
      types.flatMap((t) => {
        const last = [...recorder.deployments].reverse().find((d) => d.type === t);
        return last
          ? [[t, { phase: last.phase, stableVersion: last.stableVersion, weights: last.weights }]]
          : [];
      }),
    ),
    timeline: recorder.timeline,
    samples: recorder.samples,
  };
}

function summarize(types: readonly string[], r: Recorder): Record<string, TypeSummary> {
  const out: Record<string, TypeSummary> = {};
  for (const t of types) {
    const scaling = r.timeline.filter((e) => e.kind === 'scaling' && e.type === t);
    const counts = r.samples.map((s) => s.types[t]?.instances ?? 0);
    const total = r.totals.get(t) ?? { offered: 0, served: 0, failed: 0, lost: 0 };
    out[t] = {
      peakInstances: Math.max(0, ...counts),
      finalInstances: counts[counts.length - 1] ?? 0,
      scaleUps: scaling.filter((e) => e.data?.ok === true && e.data.action === 'scale-up').length,
      scaleDowns: scaling.filter((e) => e.data?.ok === true && e.data.action === 'scale-down').length,
      failedScaleCalls: scaling.filter((e) => e.data?.ok === false).length,
      offeredRequests: Math.round(total.offered),
      failedRequests: Math.round(total.failed),
      lostRequests: Math.round(total.lost),
    };
  }
  return out;
}
