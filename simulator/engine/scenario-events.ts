/**
 * Faults and actions at their times. Faults change what the fakes and links do (FaultBook) or
 * act on the system (kill instances, restart the NLB); actions are the operator's RPCs, the
 * same ones `mpctl` sends. Each one leaves a timeline event, failures included.
 */
import type { Clock } from '../../services/shared/clock.js';
import type { Rng } from '../../services/shared/rng.js';
import type { Action, Fault } from '../scenario/schema.js';
import type { Cluster } from './cluster.js';
import type { FaultBook } from './fault-book.js';
import type { Recorder } from './recorder.js';

export interface EventContext {
  clock: Clock;
  rng: Rng;
  cluster: Cluster;
  faults: FaultBook;
  recorder: Recorder;
}

const secs = (ms: number) => `${Math.round(ms / 100) / 10} s`;
const lasting = (forMs: number | undefined) => (forMs === undefined ? '' : ` for ${secs(forMs)}`);

/** `count` instances, or a `fraction` of them (at least one), chosen at random (seeded). */
function pick(
  ctx: EventContext,
  f: { type: string; version?: string; count?: number; fraction?: number },
): string[] {
  const live = ctx.cluster
    .liveFakes(f.type, f.version)
    .map((x) => x.id)
    .sort();
  const n = f.fraction !== undefined ? Math.max(1, Math.round(live.length * f.fraction)) : (f.count ?? 1);
  return ctx.rng.shuffle(live).slice(0, Math.min(n, live.length)).sort();
}

const scopeOf = (f: { type?: string; version?: string }) =>
  `${f.type ?? 'every module'}${f.version ? ` ${f.version}` : ''}`;
const some = (ids: string[]) =>
  `${ids.length} instance(s)${ids.length && ids.length <= 3 ? ` (${ids.join(', ')})` : ''}`;

/** Applies one fault now. */
export async function applyFault(ctx: EventContext, f: Fault): Promise<void> {
  const { faults, recorder, clock } = ctx;
  const note = (message: string, extra: { type?: string; version?: string } = {}) =>
    recorder.event(clock.now(), { kind: 'fault', ...extra, message, data: { fault: f.kind } });
  const ends = (forMs: number | undefined, what: string, scope: { type?: string; version?: string } = {}) => {
    if (forMs !== undefined)
      clock.setTimeout(
        () =>
          recorder.event(clock.now(), {
            kind: 'fault',
            ...scope,
            message: `${what} ended`,
            data: { fault: f.kind },
          }),
        forMs,
      );
  };
  const scope = 'type' in f ? { type: f.type, ...(f.version ? { version: f.version } : {}) } : {};
  switch (f.kind) {
    case 'kill': {
      const ids = pick(ctx, f);
      note(`killed ${some(ids)} of ${scopeOf(f)}`, scope);
      await Promise.all(ids.map((id) => ctx.cluster.kill(id)));
      return;
    }
    case 'stopHeartbeats': {
      const ids = pick(ctx, f);
      faults.stopHeartbeats(ids, f.for);
      note(`stopped the heartbeats of ${some(ids)} of ${scopeOf(f)}${lasting(f.for)}`, scope);
      ends(f.for, `heartbeat stop of ${some(ids)}`, scope);
      return;
    }
    case 'slowHeartbeats': {
      const ids = pick(ctx, f);
      faults.slowHeartbeats(ids, f.delay, f.for);
      note(
        `delayed the heartbeats of ${some(ids)} of ${scopeOf(f)} by ${secs(f.delay)}${lasting(f.for)}`,
        scope,
      );
      ends(f.for, `slow heartbeats of ${some(ids)}`, scope);
      return;
    }
    case 'partition': {
      const ids = pick(ctx, f);
      faults.partition(ids, f.for);
      note(`partitioned ${some(ids)} of ${scopeOf(f)} from the NLB${lasting(f.for)}`, scope);
      ends(f.for, `partition of ${some(ids)}`, scope);
      return;
    }
    case 'errorRate':
      faults.modify(f.type, f.version, { errorRateAdd: f.rate }, f.for);
      note(`raised the error rate of ${f.type} ${f.version} by ${f.rate * 100} %${lasting(f.for)}`, scope);
      ends(f.for, `error rate raise of ${f.type} ${f.version}`, scope);
      return;
    case 'latency':
      faults.modify(f.type, f.version, { latencyAddMs: f.addMs ?? 0, latencyFactor: f.factor ?? 1 }, f.for);
      note(
        `raised the latency of ${f.type} ${f.version} (${[f.factor !== undefined ? `×${f.factor}` : '', f.addMs !== undefined ? `+${f.addMs} ms` : ''].filter(Boolean).join(' ')})${lasting(f.for)}`,
        scope,
      );
      ends(f.for, `latency raise of ${f.type} ${f.version}`, scope);
      return;
    case 'restartNlb':
      note(`restarting the NLB${f.downtime ? ` (down for ${secs(f.downtime)})` : ''}`);
      await ctx.cluster.restartNlb(f.downtime);
      return;
    case 'failScale':
      faults.failScale(f.type, f.version, f.for);
      note(`Scale calls to ${scopeOf(f)} controllers fail${lasting(f.for)}`, scope);
      ends(f.for, `Scale failures of ${scopeOf(f)}`, scope);
      return;
    case 'slowStart':
      faults.slowStart(f.type, f.version, f.delay, f.for);
      note(`new ${scopeOf(f)} instances take ${secs(f.delay)} longer to start${lasting(f.for)}`, scope);
      ends(f.for, `slow starts of ${scopeOf(f)}`, scope);
      return;
  }
}

/** The controller of TYPE@version, or the first of the type (blue/green RPCs may go to any). */
function controllerFor(cluster: Cluster, type: string, version?: string) {
  const exact = version ? cluster.controllers.get(`${type}@${version}`) : undefined;
  const any = [...cluster.controllers.values()].find((c) => c.type === type);
  const c = exact ?? any;
  if (!c) throw new Error(`no ${type} controller is running`);
  return c;
}

/** Checks an envelope response; throws its message when it reports a failure. */
function ok<T extends { success: boolean; message: string; error?: { message: string } }>(r: T): T {
  if (!r.success) throw new Error(r.error?.message || r.message || 'refused');
  return r;
}

/** Runs one action now, as the operator would with mpctl. */
export async function runAction(ctx: EventContext, a: Action): Promise<void> {
  const { cluster, recorder, clock } = ctx;
  const scope =
    'type' in a ? { type: a.type, ...('version' in a && a.version ? { version: a.version } : {}) } : {};
  const note = (message: string) =>
    recorder.event(clock.now(), { kind: 'action', ...scope, message, data: { action: a.kind } });
  try {
    switch (a.kind) {
      case 'deploy': {
        const c = await cluster.deploy(a.type, a.version, a.instances, a.scaling);
        note(`deployed ${a.type} ${a.version}: controller ${c.address} with ${a.instances} instance(s)`);
        return;
      }
      case 'promote': {
        const r = ok(
          await cluster.operator.module(controllerFor(cluster, a.type, a.version).address, 'promoteVersion', {
            version: a.version,
            promotionRate: a.rate ?? 0,
            immediate: a.immediate,
          }),
        );
        note(`PromoteVersion ${a.version}: ${r.message}`);
        return;
      }
      case 'setWeight': {
        const r = ok(
          await cluster.operator.module(
            controllerFor(cluster, a.type, a.version).address,
            'setTrafficWeight',
            {
              version: a.version,
              weight: a.weight,
            },
          ),
        );
        note(`SetTrafficWeight: ${r.message}`);
        return;
      }
      case 'pause':
      case 'resume': {
        const method = a.kind === 'pause' ? 'pauseRollout' : 'resumeRollout';
        const r = ok(
          await cluster.operator.module(controllerFor(cluster, a.type).address, method, {
            reason: 'scenario action',
          }),
        );
        note(r.message);
        return;
      }
      case 'rollback': {
        const r = ok(
          await cluster.operator.module(controllerFor(cluster, a.type, a.to).address, 'rollback', {
            targetVersion: a.to ?? '',
          }),
        );
        note(`Rollback: ${r.message}`);
        return;
      }
      case 'setScaling': {
        const { kind: _k, at: _at, type, version, ...patch } = a;
        const c = controllerFor(cluster, type, version);
        await cluster.applyScaling(c, patch, 0);
        note(`scaling policy of ${c.key} set: ${JSON.stringify(patch)}`);
        return;
      }
      case 'setConfig': {
        const current = await cluster.operator.getSection(a.section);
        await cluster.operator.setSection(a.section, { ...current, ...a.values });
        note(`NLB config section ${a.section} set: ${JSON.stringify(a.values)}`);
        return;
      }
      case 'scale': {
        const c = controllerFor(cluster, a.type, a.version);
        const r = ok(await cluster.operator.module(c.address, 'scale', { desiredInstances: a.instances }));
        note(
          `Scale ${c.key} to ${a.instances}: ${r.message || `${r.currentInstances} → ${r.desiredInstances}`}`,
        );
        return;
      }
    }
  } catch (e) {
    recorder.event(clock.now(), {
      kind: 'action',
      ...scope,
      message: `${a.kind} failed: ${(e as Error).message}`,
      data: { action: a.kind, failed: true },
    });
  }
}
