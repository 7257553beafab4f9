/**
 * The system under simulation: the real NLB (startNlb) and real module controllers
 * (startModule) on the injected clock, whose `inprocess` instances are fakes — real runtimes
 * that register and heartbeat over real gRPC, reporting stats from the load model through the
 * provider's statsFilter. Also restarts the NLB, kills instances and deploys versions.
 */
import { createControllerMemoryStore } from '../../services/modules/runtime/controller-state.js';
import { moduleProcessSchema, startModule, type ModuleHandle } from '../../services/modules/runtime/main.js';
import type { ModuleTypeName, RouteSpec } from '../../services/nlb/domain/types.js';
import { DEFAULT_PROTOCOLS } from '../../services/nlb/domain/types.js';
import { nlbProcessSchema, startNlb, type NlbHandle } from '../../services/nlb/main.js';
import { createMemoryStatePort } from '../../services/nlb/store.js';
import { routeToProto } from '../../services/nlb/transport/convert.js';
import type { Clock } from '../../services/shared/clock.js';
import type { Logger } from '../../services/shared/logger.js';
import type { Rng } from '../../services/shared/rng.js';
import { resolveProfile, type FakeInstance } from '../model/fake-model.js';
import type { ScalingPolicyPatch, Scenario } from '../scenario/schema.js';
import { createFakeProvider } from './fake-provider.js';
import type { FaultBook } from './fault-book.js';
import { createModuleLink, type ModuleLink } from './module-link.js';
import { createNlbLink, type NlbLink } from './nlb-link.js';
import { createOperator, type Operator } from './operator.js';
import type { Recorder } from './recorder.js';
import type { Inflight } from './virtual-time.js';

export interface Controller {
  type: ModuleTypeName;
  version: string;
  key: string;
  address: string;
  handle: ModuleHandle;
  kill(id: string): Promise<void>;
}

export interface ClusterOptions {
  scenario: Scenario;
  clock: Clock;
  inflight: Inflight;
  rng: Rng;
  faults: FaultBook;
  recorder: Recorder;
  logger: Logger;
  /** NLB gRPC port (0 = any free port). */
  grpcPort: number;
  /** Keep the controllers' metrics samplers (GetMetrics/StreamMetrics) running: realtime runs. */
  samplers: boolean;
  /** gRPC client of the fakes on a worker thread. */
  worker: boolean;
  /** Called with every NLB the cluster starts (the first one and after each restart). */
  onNlb(handle: NlbHandle): void;
}

/** An NLB restart and how fast the registry filled up again. */
export interface Restart {
  downAtMs: number;
  upAtMs: number | null;
  /** Live fakes when the NLB came back. */
  expected: number;
  recoveredAtMs: number | null;
}

const PROBE_HOST = (t: ModuleTypeName) => `${t.toLowerCase()}.sim.test`;

/** The route the simulation applies for each type: what RouteRequest probes ask for. */
export function probeRoute(t: ModuleTypeName): RouteSpec {
  return {
    routeId: `sim-${t.toLowerCase()}`,
    protocol: DEFAULT_PROTOCOLS[t][0],
    sourcePattern: '',
    destinationPattern: PROBE_HOST(t),
    sourcePort: 0,
    destinationPort: 0,
    headers: {},
    pathPattern: '',
    priority: 100,
    metadata: { module_type: t },
  };
}

export class Cluster {
  nlb: NlbHandle | null = null;
  /** False while the NLB restarts. */
  up = false;
  /** Instances started while true skip their boot delay (the fleet at t=0 is already up). */
  booting = true;
  target = '';
  readonly controllers = new Map<string, Controller>();
  readonly byAddress = new Map<string, Controller>();
  readonly fakes = new Map<string, FakeInstance>();
  readonly restarts: Restart[] = [];
  operator!: Operator;
  private link!: NlbLink;
  private moduleLink: ModuleLink | null = null;
  private readonly state = createMemoryStatePort();
  private port = 0;
  private pastHeartbeats = 0;

  /** Heartbeats the NLB handled (over every restart). */
  get heartbeats(): number {
    return this.pastHeartbeats + (this.nlb?.nlb.counters.heartbeats ?? 0);
  }

  constructor(private readonly o: ClusterOptions) {}

  /** Starts the NLB, applies the scenario's NLB config and routes, and starts every module. */
  async start(): Promise<void> {
    const s = this.o.scenario;
    await this.startNlbProcess(this.o.grpcPort);
    this.target = `127.0.0.1:${this.port}`;
    this.operator = createOperator(this.target, this.o.inflight, () => this.up);
    this.link = createNlbLink({
      target: this.target,
      clock: this.o.clock,
      inflight: this.o.inflight,
      worker: this.o.worker,
      policy: {
        blocked: (method, id) => {
          if (!this.up) return 'connection refused: the NLB is restarting';
          if (!id) return null;
          if (this.o.faults.partitionedSince(id) !== null) return `simulated partition of ${id}`;
          if (method === 'heartbeat' && this.o.faults.heartbeatsStopped(id))
            return `heartbeats of ${id} stopped`;
          return null;
        },
        delayMs: (method, id) => (method === 'heartbeat' && id ? this.o.faults.heartbeatDelayMs(id) : 0),
      },
    });
    await this.operator.setSection('heartbeat', {
      intervalSeconds: s.nlb.heartbeatInterval / 1000,
      missedHeartbeats: s.nlb.missedHeartbeats,
      evictAfterSeconds: Math.max(
        s.nlb.evictAfter / 1000,
        (s.nlb.heartbeatInterval / 1000) * s.nlb.missedHeartbeats,
      ),
      drainTimeoutSeconds: 30,
    });
    for (const section of ['rollout', 'routing'] as const) {
      if (s.nlb[section]) await this.operator.setSection(section, s.nlb[section]);
    }
    if (s.nlb.scaling) await this.operator.setSection('scaling', s.nlb.scaling);
    const types = [
      ...new Set([
        ...s.modules.map((m) => m.type),
        ...s.actions.flatMap((a) => (a.kind === 'deploy' ? [a.type] : [])),
      ]),
    ];
    const r = await this.operator.nlb('updateRouting', {
      routes: types.map((t) => routeToProto(probeRoute(t))),
      replaceAll: false,
    });
    if (!r.success)
      throw new Error(`could not apply the probe routes: ${r.message} ${r.validationErrors.join('; ')}`);
    for (const m of s.modules) await this.deploy(m.type, m.version, m.instances, m.scaling);
  }

  private async startNlbProcess(port: number): Promise<void> {
    const s = this.o.scenario;
    this.moduleLink = createModuleLink(this.o.inflight, (address) => {
      const c = this.byAddress.get(address);
      return c && this.o.faults.scaleFails(c.type, c.version)
        ? `simulated fault: Scale on ${c.key} failed`
        : null;
    });
    const handle = await startNlb(
      nlbProcessSchema.parse({
        grpc: { host: '127.0.0.1', port },
        admin: { host: '127.0.0.1', port: 0 },
        dataDir: '',
        logLevel: 'silent',
        seed: `${String(s.seed)}/nlb`,
      }),
      { clock: this.o.clock, logger: this.o.logger, modules: this.moduleLink, state: this.state },
    );
    this.port = handle.grpcPort;
    this.nlb = handle;
    this.up = true;
    this.o.onNlb(handle);
  }

  /**
   * Makes the NLB's scaling policy for TYPE@version the scenario's (an override on top of the
   * defaults) and gives the controller the same bounds, as `mpctl config set scaling` and
   * `mpctl module scale` would.
   */
  async applyScaling(c: Controller, patch: ScalingPolicyPatch | undefined, desired: number): Promise<void> {
    if (patch && Object.keys(patch).length) {
      const scaling = await this.operator.getSection('scaling');
      const defaults = (scaling.defaults ?? {}) as Record<string, unknown>;
      const overrides = (scaling.overrides ?? {}) as Record<string, Record<string, unknown>>;
      const current = overrides[c.key] ?? overrides[c.type] ?? defaults;
      await this.operator.setSection('scaling', {
        ...scaling,
        overrides: { ...overrides, [c.key]: { ...current, ...patch } },
      });
    }
    const policy = this.nlb!.autoscaler.policy(c.type, c.version);
    const res = await this.operator.module(c.address, 'scale', {
      desiredInstances: desired,
      config: { ...policy, scaleUpThreshold: 0, scaleDownThreshold: 0 },
    });
    if (!res.success) throw new Error(`Scale ${c.key}: ${res.message || res.error?.message || 'refused'}`);
  }

  /** Starts a controller for TYPE@version with `instances` fake instances. */
  async deploy(
    type: ModuleTypeName,
    version: string,
    instances: number,
    scaling?: ScalingPolicyPatch,
  ): Promise<Controller> {
    const s = this.o.scenario;
    const key = `${type}@${version}`;
    const provider = createFakeProvider({
      type,
      version,
      profile: resolveProfile(s.profiles, type, version),
      rng: this.o.rng.fork(key),
      clock: this.o.clock,
      logger: this.o.logger,
      inflight: this.o.inflight,
      faults: this.o.faults,
      fakes: this.fakes,
      nlbApi: () => this.link.api(),
      booting: () => this.booting,
    });
    const handle = await this.o.inflight.track(
      'controller.start',
      startModule(
        moduleProcessSchema.parse({
          type: type.toLowerCase(),
          version,
          // Later deployments start empty and grow through Scale: their instances boot in
          // virtual time, which must not hold up the start of the controller.
          instances: this.booting ? instances : 0,
          grpc: { host: '127.0.0.1', port: 0 },
          nlb: this.target,
          provider: 'inprocess',
          dataDir: '',
          logLevel: 'silent',
          heartbeatIntervalSeconds: s.nlb.heartbeatInterval / 1000,
          seed: `${String(s.seed)}/${key}`,
        }),
        {
          clock: this.o.clock,
          logger: this.o.logger,
          nlbApi: () => this.link.api(),
          store: createControllerMemoryStore(),
          provider,
        },
      ),
    );
    if (!this.o.samplers) handle.sampler.stop();
    const c: Controller = {
      type,
      version,
      key,
      address: handle.address,
      handle,
      kill: (id) => provider.kill(id),
    };
    this.controllers.set(key, c);
    this.byAddress.set(c.address, c);
    await this.applyScaling(c, scaling, instances);
    return c;
  }

  /** Fakes of a type (and version) that are up, oldest first. */
  liveFakes(type: string, version?: string): FakeInstance[] {
    return [...this.fakes.values()].filter(
      (f) => f.state === 'up' && f.type === type && (version === undefined || f.version === version),
    );
  }

  /** Kills an instance as a crash would (no unregistration); its controller replaces it. */
  async kill(id: string): Promise<void> {
    const f = this.fakes.get(id);
    const c = f && this.controllers.get(`${f.type}@${f.version}`);
    if (c) await c.kill(id);
  }

  /** Stops the NLB, and starts it again on the same port after `downtimeMs`. */
  async restartNlb(downtimeMs: number): Promise<void> {
    const old = this.nlb;
    if (!old || !this.up) return;
    const clock = this.o.clock;
    this.up = false;
    const downAt = clock.now();
    const restart: Restart = {
      downAtMs: this.o.recorder.rel(downAt),
      upAtMs: null,
      expected: 0,
      recoveredAtMs: null,
    };
    this.restarts.push(restart);
    this.pastHeartbeats += old.nlb.counters.heartbeats;
    this.nlb = null;
    await this.o.inflight.track(
      'nlb.stop',
      old.stop().then(() => this.moduleLink?.close()),
    );
    const start = () =>
      this.o.inflight.track('nlb.start', this.startNlbProcess(this.port)).then(() => {
        restart.upAtMs = this.o.recorder.rel(clock.now());
        restart.expected = this.reachableFakes();
        this.o.recorder.event(clock.now(), {
          kind: 'nlb',
          message: `NLB back after ${(clock.now() - downAt) / 1000} s; ${restart.expected} live instance(s) to re-register`,
        });
        this.checkRecovery();
      });
    if (downtimeMs > 0) {
      clock.setTimeout(() => {
        start().catch((e: unknown) =>
          this.o.recorder.event(clock.now(), {
            kind: 'nlb',
            message: `NLB failed to start again: ${String(e)}`,
          }),
        );
      }, downtimeMs);
    } else await start();
  }

  /** Fakes that are up and able to reach the NLB. */
  private reachableFakes(): number {
    let n = 0;
    for (const f of this.fakes.values())
      if (
        f.state === 'up' &&
        this.o.faults.partitionedSince(f.id) === null &&
        !this.o.faults.heartbeatsStopped(f.id)
      )
        n++;
    return n;
  }

  /** Marks the latest restart recovered once the registry holds every reachable fake. */
  checkRecovery(): void {
    const r = this.restarts[this.restarts.length - 1];
    if (!r || r.recoveredAtMs !== null || r.upAtMs === null || !this.nlb) return;
    let registered = 0;
    for (const rec of this.nlb.nlb.registry.all())
      if (this.fakes.get(rec.instanceId)?.state === 'up') registered++;
    if (registered >= Math.min(r.expected, this.reachableFakes())) {
      r.recoveredAtMs = this.o.recorder.rel(this.o.clock.now());
      this.o.recorder.event(this.o.clock.now(), {
        kind: 'nlb',
        message: `registry whole again: ${registered} instance(s) registered ${((r.recoveredAtMs - r.upAtMs) / 1000).toFixed(1)} s after the restart`,
      });
    }
  }

  /** Forgets fakes that are down and gone from the NLB's registry. */
  prune(): void {
    if (!this.nlb) return;
    const registry = this.nlb.nlb.registry;
    for (const [id, f] of this.fakes) if (f.state !== 'up' && !registry.get(id)) this.fakes.delete(id);
  }

  /** Stops controllers (instances without draining), the NLB and every client. */
  async stop(): Promise<void> {
    await Promise.all([...this.controllers.values()].map((c) => c.handle.stop(false).catch(() => undefined)));
    this.operator?.close();
    const last = this.nlb;
    if (last) this.pastHeartbeats += last.nlb.counters.heartbeats;
    this.nlb = null;
    await last?.stop().catch(() => undefined);
    this.moduleLink?.close();
    this.link?.close();
  }
}
