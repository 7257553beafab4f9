/**
 * A real NLB (startNlb, in memory, silent) on 127.0.0.1:0 for CLI tests, a gRPC client to
 * set it up, and a small fake module controller (a ModuleService answering Scale, HealthCheck
 * and CanHandle) that registered instances can name as their controller.
 */
import * as grpc from '@grpc/grpc-js';
import { ModuleServiceService } from '../../../proto/gen/marchproxy/module.js';
import {
  RegisterModuleRequest,
  type DeepPartial,
  type NLBServiceClient,
} from '../../../proto/gen/marchproxy/nlb.js';
import { HealthStatus, ModuleType, type ModuleInstance } from '../../../proto/gen/marchproxy/types.js';
import { nlbProcessSchema, startNlb, type NlbHandle } from '../../../services/nlb/main.js';
import {
  createClientConnection,
  createNlbClient,
  unaryCall,
  type UnaryMethodName,
  type UnaryRequest,
  type UnaryResponse,
} from '../../../services/shared/grpc/client.js';

export { HealthStatus, ModuleType };

/** A running NLB and a client to it. */
export interface RealNlb {
  address: string;
  handle: NlbHandle;
  client: NLBServiceClient;
  /** Registers an instance (ALB 1.0 HEALTHY unless `over` says otherwise); returns its registration id. */
  register(id: string, controller: string, over?: DeepPartial<ModuleInstance>): Promise<string>;
  call<K extends UnaryMethodName<NLBServiceClient>>(
    method: K,
    request: UnaryRequest<NLBServiceClient, K>,
  ): Promise<UnaryResponse<NLBServiceClient, K>>;
  close(): Promise<void>;
}

/** Starts an NLB with an in-memory state and no auth. */
export async function startRealNlb(): Promise<RealNlb> {
  const handle = await startNlb(
    nlbProcessSchema.parse({
      grpc: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      dataDir: '',
      logLevel: 'silent',
    }),
  );
  const address = `127.0.0.1:${handle.grpcPort}`;
  const client = createNlbClient(createClientConnection({ target: address }));
  const call: RealNlb['call'] = (method, request) => unaryCall(client, method, request);
  return {
    address,
    handle,
    client,
    call,
    async register(id, controller, over = {}) {
      const res = await unaryCall(
        client,
        'registerModule',
        RegisterModuleRequest.fromPartial({
          instance: {
            instanceId: id,
            moduleType: ModuleType.MODULE_TYPE_ALB,
            address: controller,
            version: '1.0',
            healthStatus: HealthStatus.HEALTH_STATUS_HEALTHY,
            trafficAddress: '127.0.0.1:18080',
            ...over,
          },
        }),
      );
      if (!res.success) throw new Error(`registration of ${id} failed: ${res.message}`);
      return res.registrationId;
    },
    async close() {
      client.close();
      await handle.stop();
    },
  };
}

/** A fake module controller on 127.0.0.1:0. */
export interface FakeController {
  address: string;
  /** Desired counts the NLB asked for, in order. */
  scaled: number[];
  close(): Promise<void>;
}

/** Starts a ModuleService that says yes to CanHandle, HEALTHY to HealthCheck and obeys Scale. */
export async function startFakeController(): Promise<FakeController> {
  const server = new grpc.Server();
  const scaled: number[] = [];
  let current = 1;
  server.addService(ModuleServiceService, {
    canHandle: (_call: unknown, cb: grpc.sendUnaryData<unknown>) =>
      cb(null, { canHandle: true, priority: 1, reason: 'fake', metadata: {} }),
    healthCheck: (_call: unknown, cb: grpc.sendUnaryData<unknown>) =>
      cb(null, { status: HealthStatus.HEALTH_STATUS_HEALTHY, message: 'fine', checks: {} }),
    scale: (
      call: grpc.ServerUnaryCall<{ desiredInstances: number }, unknown>,
      cb: grpc.sendUnaryData<unknown>,
    ) => {
      const before = current;
      current = call.request.desiredInstances || current;
      scaled.push(call.request.desiredInstances);
      cb(null, {
        success: true,
        message: `scaling to ${current}`,
        currentInstances: before,
        desiredInstances: current,
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    address: `127.0.0.1:${port}`,
    scaled,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000).unref();
      }),
  };
}
