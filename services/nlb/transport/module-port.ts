/**
 * ModulePort over gRPC: calls module controllers' CanHandle, HealthCheck and Scale with a
 * deadline, reusing one client per controller address.
 */
import { Metadata, type CallOptions, type ServiceError } from '@grpc/grpc-js';
import type { ModuleServiceClient } from '../../../proto/gen/marchproxy/module.js';
import {
  createClientConnection,
  createModuleClient,
  type ClientConnectionOptions,
} from '../../shared/grpc/client.js';
import type { ModulePort } from '../ports.js';
import { healthName, routeToProto, scalingToProto } from './convert.js';

export interface GrpcModulePort extends ModulePort {
  /** Closes every client. */
  close(): void;
}

type Callback<Res> = (e: ServiceError | null, r: Res) => void;

/** Promise form of a generated unary method, with a deadline. */
function invoke<Req, Res>(
  method: (req: Req, meta: Metadata, opts: Partial<CallOptions>, cb: Callback<Res>) => unknown,
  req: Req,
  timeoutMs: number,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    method(req, new Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (e, r) =>
      e ? reject(e) : resolve(r),
    );
  });
}

/** One ModuleService client per controller address, at most `max` (the oldest is closed). */
export interface ModuleClientPool {
  get(address: string): ModuleServiceClient;
  close(): void;
}

export function createModuleClientPool(
  connection: Omit<ClientConnectionOptions, 'target'> = {},
  max = 1024,
): ModuleClientPool {
  const clients = new Map<string, ModuleServiceClient>();
  return {
    get(address) {
      let c = clients.get(address);
      if (c) return c;
      if (clients.size >= max) {
        const [oldestAddress, oldest] = clients.entries().next().value as [string, ModuleServiceClient];
        oldest.close();
        clients.delete(oldestAddress);
      }
      c = createModuleClient(
        createClientConnection({
          ...connection,
          target: address,
          // Short reconnect backoff: a restarted controller must be reachable again within seconds
          // (grpc-js would back off to 120 s), since CanHandle, HealthCheck and Scale go through here.
          channelOptions: {
            'grpc.initial_reconnect_backoff_ms': 200,
            'grpc.max_reconnect_backoff_ms': 2000,
            ...connection.channelOptions,
          },
        }),
      );
      clients.set(address, c);
      return c;
    },
    close() {
      for (const c of clients.values()) c.close();
      clients.clear();
    },
  };
}

/**
 * Creates the port over `pool` (one channel per controller, shared with the Manager rate-limit
 * push), or over a pool of its own from `connection` (token and TLS for every controller).
 */
export function createGrpcModulePort(
  connection: Omit<ClientConnectionOptions, 'target'> | ModuleClientPool = {},
): GrpcModulePort {
  const pool = 'get' in connection ? connection : createModuleClientPool(connection);
  const client = (address: string) => pool.get(address);
  return {
    async canHandle(address, route, context, timeoutMs) {
      const c = client(address);
      const r = await invoke(c.canHandle.bind(c), { route: routeToProto(route), context }, timeoutMs);
      return { canHandle: r.canHandle, priority: r.priority, reason: r.reason };
    },
    async healthCheck(address, instanceId, deep, timeoutMs) {
      const c = client(address);
      const r = await invoke(c.healthCheck.bind(c), { instanceId, deepCheck: deep }, timeoutMs);
      return { status: healthName(r.status, 'status') ?? 'UNHEALTHY', message: r.message };
    },
    async scale(address, req, timeoutMs) {
      const c = client(address);
      const r = await invoke(
        c.scale.bind(c),
        {
          instanceId: req.instanceId,
          desiredInstances: req.desiredInstances,
          config: req.config ? scalingToProto(req.config) : undefined,
          immediate: req.immediate,
        },
        timeoutMs,
      );
      return {
        success: r.success,
        message: r.message || r.error?.message || '',
        currentInstances: r.currentInstances,
        desiredInstances: r.desiredInstances,
      };
    },
    close() {
      pool.close();
    },
  };
}
