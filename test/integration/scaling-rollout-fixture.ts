/**
 * Pieces for the autoscaling and rollout integration tests: a real NLB (startNlb on 127.0.0.1:0,
 * state in memory) and real ALB module controllers (startModule, `inprocess` instances) whose
 * heartbeat stats a test can rewrite through the provider's `statsFilter`, typed RPC helpers,
 * bounded polling, and a harness that closes everything it started.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import {
  GetInstancesRequest,
  PromoteVersionRequest,
  type DeepPartial,
  type ModuleServiceClient,
} from '../../proto/gen/marchproxy/module.js';
import {
  GetNLBStatusRequest,
  ListModulesRequest,
  UpdateDeploymentRequest,
  UpdateNLBConfigRequest,
  type NLBServiceClient,
} from '../../proto/gen/marchproxy/nlb.js';
import { pluginFor } from '../../services/modules/plugins.js';
import { moduleProcessSchema, startModule, type ModuleHandle } from '../../services/modules/runtime/main.js';
import { createGrpcNlbApi } from '../../services/modules/runtime/nlb-api.js';
import { createInprocessProvider } from '../../services/modules/runtime/providers/inprocess.js';
import type { StatsSnapshot } from '../../services/modules/runtime/stats.js';
import { nlbProcessSchema, startNlb, type NlbHandle } from '../../services/nlb/main.js';
import { createSystemClock } from '../../services/shared/clock.js';
import {
  createClientConnection,
  createModuleClient,
  createNlbClient,
  unaryCall,
  type UnaryMethodName,
  type UnaryRequest,
  type UnaryResponse,
} from '../../services/shared/grpc/client.js';
import { createLogger } from '../../services/shared/logger.js';

export { DeploymentAction, ModuleType, RolloutPhase } from '../../proto/gen/marchproxy/types.js';

type Builder = { fromPartial(o: unknown): unknown };
type NlbMethod = 'listModules' | 'getNlbStatus' | 'updateNlbConfig' | 'updateDeployment';
type ModuleMethod = 'promoteVersion' | 'getInstances';

const NLB_REQUESTS: Record<NlbMethod, Builder> = {
  listModules: ListModulesRequest,
  getNlbStatus: GetNLBStatusRequest,
  updateNlbConfig: UpdateNLBConfigRequest,
  updateDeployment: UpdateDeploymentRequest,
};
const MODULE_REQUESTS: Record<ModuleMethod, Builder> = {
  promoteVersion: PromoteVersionRequest,
  getInstances: GetInstancesRequest,
};

export type NlbRpc = <K extends NlbMethod & UnaryMethodName<NLBServiceClient>>(
  method: K,
  request?: DeepPartial<UnaryRequest<NLBServiceClient, K>>,
) => Promise<UnaryResponse<NLBServiceClient, K>>;

export type ModuleRpc = <K extends ModuleMethod & UnaryMethodName<ModuleServiceClient>>(
  method: K,
  request?: DeepPartial<UnaryRequest<ModuleServiceClient, K>>,
) => Promise<UnaryResponse<ModuleServiceClient, K>>;

/** Rewrites the stats one instance reports in its heartbeats. */
export type StatsFilter = (instanceId: string, measured: StatsSnapshot) => StatsSnapshot;

export interface TestNlb {
  handle: NlbHandle;
  target: string;
  rpc: NlbRpc;
}

export interface TestController {
  handle: ModuleHandle;
  address: string;
  rpc: ModuleRpc;
  /** Live (not draining) instances now. */
  live(): number;
}

/** Polls `probe` until it returns something other than undefined/false; fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last instanceof Error ? last.message : JSON.stringify(last)})` : ''}`,
      );
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Starts NLBs and controllers; `closeAll()` in afterEach stops them and removes temp dirs. */
export function createScalingHarness() {
  const nlbs: NlbHandle[] = [];
  const modules: ModuleHandle[] = [];
  const clients: grpc.Client[] = [];
  const dirs: string[] = [];
  const logger = createLogger({ level: 'silent' });
  const harness = {
    /** A real NLB on 127.0.0.1:0 with state in memory. */
    async startNlb(heartbeatIntervalSeconds = 0.5): Promise<TestNlb> {
      const handle = await startNlb(
        nlbProcessSchema.parse({
          grpc: { host: '127.0.0.1', port: 0 },
          admin: { host: '127.0.0.1', port: 0 },
          dataDir: '',
          logLevel: 'silent',
          heartbeatIntervalSeconds,
          seed: 3,
        }),
        { logger },
      );
      nlbs.push(handle);
      const target = `127.0.0.1:${handle.grpcPort}`;
      const client = createNlbClient(createClientConnection({ target, timeoutMs: 5_000 }));
      clients.push(client);
      const rpc: NlbRpc = (method, request) =>
        unaryCall(client, method, NLB_REQUESTS[method].fromPartial(request ?? {}) as never);
      return { handle, target, rpc };
    },
    /** A real ALB controller with `inprocess` instances whose reported stats go through `statsFilter`. */
    async startAlb(o: {
      nlb: string;
      version: string;
      instances: number;
      heartbeatIntervalSeconds?: number;
      statsFilter?: StatsFilter;
    }): Promise<TestController> {
      const dataDir = mkdtempSync(join(tmpdir(), 'mp-scaling-it-'));
      dirs.push(dataDir);
      const plugin = pluginFor('alb');
      const handle = await startModule(
        moduleProcessSchema.parse({
          type: 'alb',
          version: o.version,
          instances: o.instances,
          grpc: { host: '127.0.0.1', port: 0 },
          nlb: o.nlb,
          provider: 'inprocess',
          dataDir,
          logLevel: 'silent',
          heartbeatIntervalSeconds: o.heartbeatIntervalSeconds ?? 0.5,
          seed: 9,
        }),
        {
          logger,
          provider: createInprocessProvider({
            plugin,
            clock: createSystemClock(),
            logger,
            nlbApi: () => createGrpcNlbApi({ target: o.nlb }),
            statsFilter: o.statsFilter,
          }),
        },
      );
      modules.push(handle);
      const client = createModuleClient(
        createClientConnection({ target: handle.address, timeoutMs: 10_000 }),
      );
      clients.push(client);
      const rpc: ModuleRpc = (method, request) =>
        unaryCall(client, method, MODULE_REQUESTS[method].fromPartial(request ?? {}) as never);
      return {
        handle,
        address: handle.address,
        rpc,
        live: () => handle.controller.liveInstances().length,
      };
    },
    async closeAll(): Promise<void> {
      for (const c of clients.splice(0)) c.close();
      await Promise.all(modules.splice(0).map((m) => m.stop(false).catch(() => undefined)));
      await Promise.all(nlbs.splice(0).map((n) => n.stop().catch(() => undefined)));
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    },
  };
  return harness;
}

/** Sends one NLB config section as JSON through UpdateNLBConfig; fails the test on a refusal. */
export async function updateSection(rpc: NlbRpc, section: string, body: unknown): Promise<void> {
  const r = await rpc('updateNlbConfig', {
    config: { configType: section, configData: Buffer.from(JSON.stringify(body)) },
  });
  if (!r.success)
    throw new Error(`UpdateNLBConfig ${section} failed: ${r.message} ${r.validationErrors.join('; ')}`);
}

/** Instances of one version the NLB lists now. */
export async function listedCount(rpc: NlbRpc, version: string): Promise<number> {
  const r = await rpc('listModules', {});
  return r.modules.filter((m) => m.version === version).length;
}
