/**
 * The operator's side of a simulation: the RPCs `mpctl` sends (UpdateNLBConfig, UpdateRouting,
 * RouteRequest, and the ModuleService's Scale, PromoteVersion, SetTrafficWeight, Pause/Resume,
 * Rollback), over real gRPC clients, tracked for virtual time. Calls to the NLB while it is
 * restarting fail at once with UNAVAILABLE, as a real client's would.
 */
import * as grpc from '@grpc/grpc-js';
import {
  PauseRolloutRequest,
  PromoteVersionRequest,
  ResumeRolloutRequest,
  RollbackRequest,
  ScaleRequest,
  SetTrafficWeightRequest,
  type DeepPartial,
  type ModuleServiceClient,
} from '../../proto/gen/marchproxy/module.js';
import {
  GetNLBConfigRequest,
  RouteRequestRequest,
  UpdateNLBConfigRequest,
  UpdateRoutingRequest,
  type NLBServiceClient,
} from '../../proto/gen/marchproxy/nlb.js';
import {
  createClientConnection,
  createModuleClient,
  createNlbClient,
  unaryCall,
  type UnaryMethodName,
  type UnaryRequest,
  type UnaryResponse,
} from '../../services/shared/grpc/client.js';
import type { Inflight } from './virtual-time.js';

type Builder = { fromPartial(o: unknown): unknown };

const NLB_REQUESTS = {
  updateNlbConfig: UpdateNLBConfigRequest,
  getNlbConfig: GetNLBConfigRequest,
  updateRouting: UpdateRoutingRequest,
  routeRequest: RouteRequestRequest,
} satisfies Record<string, Builder>;

const MODULE_REQUESTS = {
  scale: ScaleRequest,
  promoteVersion: PromoteVersionRequest,
  setTrafficWeight: SetTrafficWeightRequest,
  pauseRollout: PauseRolloutRequest,
  resumeRollout: ResumeRolloutRequest,
  rollback: RollbackRequest,
} satisfies Record<string, Builder>;

export type NlbMethod = keyof typeof NLB_REQUESTS & UnaryMethodName<NLBServiceClient>;
export type ModuleMethod = keyof typeof MODULE_REQUESTS & UnaryMethodName<ModuleServiceClient>;

export interface Operator {
  nlb<K extends NlbMethod>(
    method: K,
    request: DeepPartial<UnaryRequest<NLBServiceClient, K>>,
  ): Promise<UnaryResponse<NLBServiceClient, K>>;
  module<K extends ModuleMethod>(
    address: string,
    method: K,
    request: DeepPartial<UnaryRequest<ModuleServiceClient, K>>,
  ): Promise<UnaryResponse<ModuleServiceClient, K>>;
  /** Sends one NLB config section as JSON; throws with the NLB's reasons when refused. */
  setSection(section: string, body: unknown): Promise<void>;
  /** Reads one NLB config section. */
  getSection(section: string): Promise<Record<string, unknown>>;
  close(): void;
}

export function createOperator(target: string, inflight: Inflight, nlbUp: () => boolean): Operator {
  const nlbClient = createNlbClient(createClientConnection({ target, timeoutMs: 30_000 }));
  const modules = new Map<string, ModuleServiceClient>();
  const moduleClient = (address: string) => {
    let c = modules.get(address);
    if (!c)
      modules.set(
        address,
        (c = createModuleClient(createClientConnection({ target: address, timeoutMs: 30_000 }))),
      );
    return c;
  };
  const op: Operator = {
    nlb(method, request) {
      if (!nlbUp())
        return Promise.reject(
          Object.assign(new Error('14 UNAVAILABLE: the NLB is restarting'), {
            code: grpc.status.UNAVAILABLE,
          }),
        );
      const req = (NLB_REQUESTS[method] as Builder).fromPartial(request) as UnaryRequest<
        NLBServiceClient,
        typeof method
      >;
      return inflight.track(`operator.${method}`, unaryCall(nlbClient, method, req));
    },
    module(address, method, request) {
      const req = (MODULE_REQUESTS[method] as Builder).fromPartial(request) as UnaryRequest<
        ModuleServiceClient,
        typeof method
      >;
      return inflight.track(`operator.${method}`, unaryCall(moduleClient(address), method, req));
    },
    async setSection(section, body) {
      const r = await op.nlb('updateNlbConfig', {
        config: { configType: section, configData: Buffer.from(JSON.stringify(body)) },
      });
      if (!r.success)
        throw new Error(
          `UpdateNLBConfig ${section}: ${[r.message, ...r.validationErrors].filter(Boolean).join('; ')}`,
        );
    },
    async getSection(section) {
      const r = await op.nlb('getNlbConfig', { configType: section });
      const data = r.configs[0]?.configData;
      return data ? (JSON.parse(Buffer.from(data).toString('utf8')) as Record<string, unknown>) : {};
    },
    close() {
      nlbClient.close();
      for (const c of modules.values()) c.close();
      modules.clear();
    },
  };
  return op;
}
