/**
 * Offered load, split the way the NLB routes it. Every tick each module type's offered requests
 * go to the instances the NLB's registry holds as routable (`Registry.routable`), across
 * versions by the deployment's weights (`versionShares`, the rule `chooseVersion` samples) and
 * evenly within a version (what least-connections converges to). Requests that land on an
 * instance that is in fact dead or cut off are lost — and recorded as misrouted. A few
 * RouteRequest dry runs per sample check the NLB's real routing path the same way.
 */
import { Registry } from '../../services/nlb/domain/registry.js';
import { versionShares } from '../../services/nlb/domain/selection.js';
import type { InstanceRecord, ModuleTypeName } from '../../services/nlb/domain/types.js';
import { routeToProto } from '../../services/nlb/transport/convert.js';
import type { Clock } from '../../services/shared/clock.js';
import type { Rng } from '../../services/shared/rng.js';
import { compileLoad } from '../model/load-pattern.js';
import type { Scenario } from '../scenario/schema.js';
import { probeRoute, type Cluster } from './cluster.js';
import type { FaultBook } from './fault-book.js';
import type { Recorder } from './recorder.js';

export class Traffic {
  private readonly offered = new Map<
    ModuleTypeName,
    { rps: (tMs: number) => number; noise: number; rng: Rng }
  >();
  private lastTickMs: number;

  constructor(
    private readonly s: Scenario,
    private readonly clock: Clock,
    private readonly t0: number,
    rng: Rng,
    private readonly cluster: Cluster,
    private readonly faults: FaultBook,
    private readonly recorder: Recorder,
  ) {
    for (const l of s.load)
      this.offered.set(l.type, {
        rps: compileLoad(l, s.traces),
        noise: l.noise,
        rng: rng.fork(`load/${l.type}`),
      });
    this.lastTickMs = t0;
  }

  /** Offered requests/s of a type at a time since the start (before noise). */
  offeredAt(type: ModuleTypeName, tMs: number): number {
    return this.offered.get(type)?.rps(tMs) ?? 0;
  }

  /** One step of the load model: `dtMs` of traffic at the current offered rates. */
  tick(): void {
    const now = this.clock.now();
    const dt = now - this.lastTickMs;
    this.lastTickMs = now;
    if (dt <= 0) return;
    const served = new Set<string>();
    const nlb = this.cluster.up ? this.cluster.nlb : null;
    const byType = new Map<string, InstanceRecord[]>();
    if (nlb) {
      for (const r of nlb.nlb.registry.all()) {
        if (!Registry.routable(r)) continue;
        const list = byType.get(r.moduleType);
        if (list) list.push(r);
        else byType.set(r.moduleType, [r]);
      }
    }
    for (const [type, load] of this.offered) {
      const noise = load.noise > 0 ? Math.max(0, 1 + load.rng.normal(0, load.noise)) : 1;
      const rps = load.rps(now - dt / 2 - this.t0) * noise;
      const requests = (rps * dt) / 1000;
      this.recorder.offer(type, requests);
      if (requests <= 0) continue;
      const routable = byType.get(type) ?? [];
      const versions = new Map<string, InstanceRecord[]>();
      for (const r of routable) {
        const list = versions.get(r.version);
        if (list) list.push(r);
        else versions.set(r.version, [r]);
      }
      const split = nlb
        ? versionShares(nlb.nlb.deployments.get(type)?.weights, new Set(versions.keys()))
        : null;
      if (!split) {
        this.recorder.lostForType(type, requests);
        continue;
      }
      for (const [version, share] of split.shares) {
        const records = versions.get(version) ?? [];
        const each = (rps * share) / records.length;
        const mods = this.faults.modifiersFor(type, version);
        for (const r of records) {
          const fake = this.cluster.fakes.get(r.instanceId);
          const cut = this.faults.partitionedSince(r.instanceId);
          const part = (each * dt) / 1000;
          if (!fake || fake.state !== 'up' || cut !== null) {
            this.recorder.lostForVersion(type, version, part);
            this.recorder.misroute(
              {
                type,
                version,
                instanceId: r.instanceId,
                downSinceMs: fake?.downSinceMs ?? cut ?? now,
                via: 'traffic',
              },
              now,
              part,
            );
            continue;
          }
          const out = fake.serve(each, dt, mods);
          served.add(fake.id);
          this.recorder.served(
            type,
            version,
            out.requests,
            out.failures,
            out.response.p99LatencyMs,
            out.response.cpuPercent,
          );
        }
      }
    }
    // Instances that got nothing this tick are idle (they still report CPU, memory, latency).
    for (const f of this.cluster.fakes.values()) {
      if (f.state === 'up' && !served.has(f.id)) f.serve(0, dt, this.faults.modifiersFor(f.type, f.version));
    }
  }

  /**
   * Asks the NLB to route `perType` requests of each loaded type (RouteRequest, dry run) and
   * records any answer that names an instance that is down.
   */
  async probe(perType: number): Promise<void> {
    if (!this.cluster.up) return;
    for (const type of this.offered.keys()) {
      for (let i = 0; i < perType; i++) {
        const sentAt = this.clock.now();
        const before = new Set(
          (this.cluster.nlb?.nlb.registry.all() ?? [])
            .filter((x) => x.moduleType === type && Registry.routable(x))
            .map((x) => x.instanceId),
        );
        const r = await this.cluster.operator
          .nlb('routeRequest', { route: routeToProto(probeRoute(type)), context: {}, dryRun: true })
          .catch(() => null);
        if (!r?.routed) continue;
        const fake = this.cluster.fakes.get(r.targetInstanceId);
        const record = this.cluster.nlb?.nlb.registry.get(r.targetInstanceId);
        const cut = this.faults.partitionedSince(r.targetInstanceId);
        const now = this.clock.now();
        // Not routable both before the question and after the answer: the NLB chose against its own registry.
        const unroutable = !before.has(r.targetInstanceId) && !(record && Registry.routable(record));
        // Going down in the same instant as the question (a scale-down retiring it) is not a
        // wrong answer: the NLB chose before it heard.
        const downAfter = fake?.downSinceMs != null && fake.downSinceMs >= sentAt;
        if (downAfter && !unroutable) continue;
        if (!fake || fake.state !== 'up' || cut !== null || unroutable)
          this.recorder.misroute(
            {
              type,
              version: record?.version ?? fake?.version ?? '',
              instanceId: r.targetInstanceId,
              downSinceMs: fake?.downSinceMs ?? cut ?? now,
              via: 'probe',
              ...(unroutable ? { unroutable } : {}),
            },
            now,
            1,
          );
      }
    }
  }
}
