/**
 * Shared pieces for the NLB integration tests: a real NLB (startNlb) on 127.0.0.1:0 with a real
 * gRPC client, a fake module controller (a real ModuleService gRPC server answering CanHandle,
 * HealthCheck and Scale) that instances can name as their `address`, request builders, bounded
 * polling, and a harness that closes every server, client, child process and temp dir.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import {
  ModuleServiceService,
  type CanHandleRequest,
  type CanHandleResponse,
  type HealthCheckRequest,
  type ScaleRequest,
  type ScaleResponse,
} from '../../proto/gen/marchproxy/module.js';
import {
  CheckHealthRequest,
  GetLoadDistributionRequest,
  GetModuleInfoRequest,
  GetModuleMetricsRequest,
  GetNLBConfigRequest,
  GetNLBMetricsRequest,
  GetNLBStatusRequest,
  GetRoutingTableRequest,
  HeartbeatRequest,
  ListModulesRequest,
  RebalanceLoadRequest,
  RegisterModuleRequest,
  ReportMetricsRequest,
  RouteRequestRequest,
  TriggerScalingRequest,
  UnregisterModuleRequest,
  UpdateDeploymentRequest,
  UpdateNLBConfigRequest,
  UpdateRoutingRequest,
  ValidateRouteRequest,
  type DeepPartial,
  type NLBServiceClient,
} from '../../proto/gen/marchproxy/nlb.js';
import {
  DeploymentAction,
  HealthStatus,
  ModuleType,
  Protocol,
  type ModuleInstance,
  type Route,
} from '../../proto/gen/marchproxy/types.js';
import { nlbProcessSchema, startNlb, type NlbHandle } from '../../services/nlb/main.js';
import type { StatePort } from '../../services/nlb/store.js';
import { spawnNlbProcess, type NlbProcess, type NlbProcessOptions } from './nlb-process-fixture.js';
import type { Clock } from '../../services/shared/clock.js';
import {
  createClientConnection,
  createNlbClient,
  unaryCall,
  type UnaryMethodName,
  type UnaryRequest,
  type UnaryResponse,
} from '../../services/shared/grpc/client.js';

export { DeploymentAction, HealthStatus, ModuleType, Protocol };
export { freePort, type NlbProcess, type NlbProcessOptions } from './nlb-process-fixture.js';

/** The unary methods (the type helper also admits the stream method's overloads). */
type NlbMethod = Exclude<UnaryMethodName<NLBServiceClient>, 'streamNlbMetrics'>;

/** Each unary RPC's request type, so that tests can send partial requests. */
const REQUESTS: Record<NlbMethod, { fromPartial(o: unknown): unknown }> = {
  registerModule: RegisterModuleRequest,
  unregisterModule: UnregisterModuleRequest,
  heartbeat: HeartbeatRequest,
  listModules: ListModulesRequest,
  getModuleInfo: GetModuleInfoRequest,
  updateRouting: UpdateRoutingRequest,
  getRoutingTable: GetRoutingTableRequest,
  routeRequest: RouteRequestRequest,
  validateRoute: ValidateRouteRequest,
  reportMetrics: ReportMetricsRequest,
  getNlbMetrics: GetNLBMetricsRequest,
  getModuleMetrics: GetModuleMetricsRequest,
  checkHealth: CheckHealthRequest,
  getNlbStatus: GetNLBStatusRequest,
  updateNlbConfig: UpdateNLBConfigRequest,
  getNlbConfig: GetNLBConfigRequest,
  rebalanceLoad: RebalanceLoadRequest,
  getLoadDistribution: GetLoadDistributionRequest,
  triggerScaling: TriggerScalingRequest,
  updateDeployment: UpdateDeploymentRequest,
};

/** Calls a unary NLBService method with a partial request (missing fields take proto defaults). */
export type Rpc = <K extends NlbMethod>(
  method: K,
  request?: DeepPartial<UnaryRequest<NLBServiceClient, K>>,
) => Promise<UnaryResponse<NLBServiceClient, K>>;

/** An Rpc bound to `client`. */
export function rpcOf(client: NLBServiceClient): Rpc {
  return (method, request) => unaryCall(client, method, REQUESTS[method].fromPartial(request ?? {}) as never);
}

/** A ModuleInstance with sensible defaults: ALB 1.0, HEALTHY. */
export function instance(
  id: string,
  address: string,
  over: DeepPartial<ModuleInstance> = {},
): DeepPartial<ModuleInstance> {
  return {
    instanceId: id,
    moduleType: ModuleType.MODULE_TYPE_ALB,
    address,
    version: '1.0',
    healthStatus: HealthStatus.HEALTH_STATUS_HEALTHY,
    ...over,
  };
}

/** An operator route to `moduleType` (via metadata.module_type). */
export function route(over: DeepPartial<Route> & { moduleType?: string } = {}): DeepPartial<Route> {
  const { moduleType, ...rest } = over;
  return {
    protocol: Protocol.PROTOCOL_HTTP,
    ...rest,
    metadata: { ...(moduleType ? { module_type: moduleType } : {}), ...(rest.metadata ?? {}) },
  };
}

/** Registers an instance and returns its registration id; fails the test on a refusal. */
export async function register(
  rpc: Rpc,
  inst: DeepPartial<ModuleInstance>,
  initialRoutes: DeepPartial<Route>[] = [],
): Promise<string> {
  const r = await rpc('registerModule', { instance: inst, initialRoutes });
  if (!r.success) throw new Error(`registration of ${inst.instanceId} failed: ${r.message}`);
  return r.registrationId;
}

/** Instance ids the NLB lists now, sorted. */
export async function listedIds(rpc: Rpc): Promise<string[]> {
  const r = await rpc('listModules', {});
  return r.modules.map((m) => m.instanceId).sort();
}

/** Route ids in the routing table now, sorted. */
export async function routeIds(rpc: Rpc): Promise<string[]> {
  const r = await rpc('getRoutingTable', {});
  return r.entries.map((e) => e.route!.routeId).sort();
}

/** Sets a version's weight; fails the test on a refusal. */
export async function setWeight(
  rpc: Rpc,
  version: string,
  weight: number,
  moduleType = ModuleType.MODULE_TYPE_ALB,
) {
  const r = await rpc('updateDeployment', {
    moduleType,
    action: DeploymentAction.DEPLOYMENT_ACTION_SET_WEIGHT,
    version,
    weight,
  });
  if (!r.success) throw new Error(`SET_WEIGHT ${version}=${weight} failed: ${r.message}`);
  return r.deployment!;
}

/** The rejection of `p` as a grpc-js ServiceError (fails the test when `p` resolves). */
export async function rejectionOf(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as grpc.ServiceError;
  }
  throw new Error('expected the call to fail, but it succeeded');
}

/** Sends `bytes` as the raw request body of an NLBService method (e.g. a truncated protobuf). */
export function rawCall(client: grpc.Client, method: string, bytes: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      `/marchproxy.NLBService/${method}`,
      (b: Buffer) => b,
      (b: Buffer) => b,
      bytes,
      new grpc.Metadata(),
      { deadline: Date.now() + 5_000 },
      (err, res) => (err ? reject(err) : resolve(res!)),
    );
  });
}

/** Polls `probe` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 10_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: Error | undefined;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e as Error;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`,
      );
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- fake module controller -----------------------------------------------------------------

/** How a fake controller answers; each hook may be replaced by a test at any time. */
export interface FakeModuleBehaviour {
  canHandle: (req: CanHandleRequest) => Partial<CanHandleResponse>;
  /** Health per instance id (default HEALTHY). */
  health: (instanceId: string) => { status: HealthStatus; message?: string };
  scale: (req: ScaleRequest) => Partial<ScaleResponse>;
}

export interface FakeModule {
  address: string;
  behaviour: FakeModuleBehaviour;
  calls: { canHandle: CanHandleRequest[]; healthCheck: HealthCheckRequest[]; scale: ScaleRequest[] };
  close(): Promise<void>;
}

/** A ModuleService on 127.0.0.1:0 answering CanHandle, HealthCheck and Scale; the rest UNIMPLEMENTED. */
export async function startFakeModule(behaviour: Partial<FakeModuleBehaviour> = {}): Promise<FakeModule> {
  const server = new grpc.Server();
  const fake: FakeModule = {
    address: '',
    behaviour: {
      canHandle: () => ({ canHandle: true, priority: 1, reason: 'fake says yes' }),
      health: () => ({ status: HealthStatus.HEALTH_STATUS_HEALTHY, message: 'fine' }),
      scale: (req) => ({
        success: true,
        message: `scaling to ${req.desiredInstances}`,
        currentInstances: 1,
        desiredInstances: req.desiredInstances,
      }),
      ...behaviour,
    },
    calls: { canHandle: [], healthCheck: [], scale: [] },
    close: () =>
      new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      }),
  };
  // Only three handlers: grpc-js answers every other method with UNIMPLEMENTED.
  server.addService(ModuleServiceService, {
    canHandle: (
      call: grpc.ServerUnaryCall<CanHandleRequest, CanHandleResponse>,
      cb: grpc.sendUnaryData<CanHandleResponse>,
    ) => {
      fake.calls.canHandle.push(call.request);
      cb(null, {
        canHandle: false,
        priority: 0,
        reason: '',
        metadata: {},
        ...fake.behaviour.canHandle(call.request),
      });
    },
    healthCheck: (
      call: grpc.ServerUnaryCall<HealthCheckRequest, unknown>,
      cb: grpc.sendUnaryData<unknown>,
    ) => {
      fake.calls.healthCheck.push(call.request);
      const h = fake.behaviour.health(call.request.instanceId);
      cb(null, { status: h.status, message: h.message ?? '', checks: {}, checkedAt: new Date() });
    },
    scale: (
      call: grpc.ServerUnaryCall<ScaleRequest, ScaleResponse>,
      cb: grpc.sendUnaryData<ScaleResponse>,
    ) => {
      fake.calls.scale.push(call.request);
      cb(null, {
        success: false,
        message: '',
        currentInstances: 0,
        desiredInstances: 0,
        ...fake.behaviour.scale(call.request),
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  fake.address = `127.0.0.1:${port}`;
  return fake;
}

// ---- in-process NLB ---------------------------------------------------------------------------

export interface TestNlbOptions {
  /** Durable state directory; '' (default) keeps state in memory. */
  dataDir?: string;
  heartbeatIntervalSeconds?: number;
  clock?: Clock;
  /** Replaces the durable state store (e.g. a memory store that fails on save). */
  state?: StatePort;
  seed?: number;
}

export interface TestNlb {
  handle: NlbHandle;
  client: NLBServiceClient;
  rpc: Rpc;
  target: string;
  adminUrl: string;
}

/** Starts and stops NLBs, fake modules, clients and temp dirs for one test; `closeAll()` in afterEach. */
export function createNlbHarness() {
  const nlbs: NlbHandle[] = [];
  const fakes: FakeModule[] = [];
  const clients: grpc.Client[] = [];
  const dirs: string[] = [];
  const processes: NlbProcess[] = [];
  const harness = {
    /** `mpctl serve nlb` as a child process; killed by closeAll(). */
    spawnNlb: (opts: NlbProcessOptions) => spawnNlbProcess(opts, (p) => processes.push(p)),
    /** A real NLB on 127.0.0.1 (gRPC and admin on port 0) with a client. */
    async startNlb(opts: TestNlbOptions = {}): Promise<TestNlb> {
      const config = nlbProcessSchema.parse({
        grpc: { host: '127.0.0.1', port: 0 },
        admin: { host: '127.0.0.1', port: 0 },
        dataDir: opts.dataDir ?? '',
        logLevel: 'silent',
        seed: opts.seed ?? 7,
        ...(opts.heartbeatIntervalSeconds ? { heartbeatIntervalSeconds: opts.heartbeatIntervalSeconds } : {}),
      });
      const handle = await startNlb(config, {
        ...(opts.clock ? { clock: opts.clock } : {}),
        ...(opts.state ? { state: opts.state } : {}),
      });
      nlbs.push(handle);
      const target = `127.0.0.1:${handle.grpcPort}`;
      const client = harness.client(target);
      return { handle, client, rpc: rpcOf(client), target, adminUrl: `http://127.0.0.1:${handle.adminPort}` };
    },
    /** An NLBService client closed by closeAll(). */
    client(target: string, channelOptions: grpc.ChannelOptions = {}): NLBServiceClient {
      const client = createNlbClient(createClientConnection({ target, timeoutMs: 5_000, channelOptions }));
      clients.push(client);
      return client;
    },
    async fakeModule(behaviour: Partial<FakeModuleBehaviour> = {}): Promise<FakeModule> {
      const f = await startFakeModule(behaviour);
      fakes.push(f);
      return f;
    },
    tempDir(): string {
      const d = mkdtempSync(join(tmpdir(), 'mp-nlb-it-'));
      dirs.push(d);
      return d;
    },
    async closeAll(): Promise<void> {
      for (const c of clients.splice(0)) c.close();
      await Promise.all(processes.splice(0).map((p) => p.kill('SIGKILL')));
      await Promise.all(nlbs.splice(0).map((n) => n.stop()));
      await Promise.all(fakes.splice(0).map((f) => f.close()));
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    },
  };
  return harness;
}

// ---- heartbeating instances ----------------------------------------------------------------

export interface HeartbeatLoop {
  /** Heartbeats answered, re-registrations done, calls that failed (e.g. NLB down). */
  readonly counts: { beats: number; reregistrations: number; failures: number };
  stop(): Promise<void>;
}

/**
 * Heartbeats every instance every `everyMs`, and re-registers one at once when the answer says
 * `instructions.action == "reregister"` — what the module runtime does after an NLB restart.
 */
export function heartbeatLoop(
  rpc: Rpc,
  instances: DeepPartial<ModuleInstance>[],
  everyMs: number,
): HeartbeatLoop {
  const regIds = new Map<string, string>();
  const counts = { beats: 0, reregistrations: 0, failures: 0 };
  let stopped = false;
  const beat = async (inst: DeepPartial<ModuleInstance>) => {
    const id = inst.instanceId!;
    try {
      const r = await rpc('heartbeat', {
        instanceId: id,
        registrationId: regIds.get(id) ?? '',
        status: HealthStatus.HEALTH_STATUS_HEALTHY,
      });
      counts.beats++;
      if (!r.acknowledged && r.instructions.action === 'reregister') {
        const reg = await rpc('registerModule', { instance: inst });
        if (reg.success) {
          regIds.set(id, reg.registrationId);
          counts.reregistrations++;
        }
      }
    } catch {
      counts.failures++;
    }
  };
  const running = (async () => {
    while (!stopped) {
      const next = sleep(everyMs);
      await Promise.all(instances.map(beat));
      await next;
    }
  })();
  return {
    counts,
    async stop() {
      stopped = true;
      await running;
    },
  };
}
