/**
 * The calls a module makes to the NLB, as promises over the generated client. The registration
 * agent and the controller depend on this interface, so tests and the simulator can swap it.
 */
import type {
  HeartbeatRequest,
  HeartbeatResponse,
  RegisterModuleRequest,
  RegisterModuleResponse,
  UnregisterModuleRequest,
  UnregisterModuleResponse,
  UpdateDeploymentRequest,
  UpdateDeploymentResponse,
  UpdateRoutingRequest,
  UpdateRoutingResponse,
} from '../../../proto/gen/marchproxy/nlb.js';
import {
  createClientConnection,
  createNlbClient,
  unaryCall,
  type ClientConnectionOptions,
} from '../../shared/grpc/client.js';

export interface NlbApi {
  readonly target: string;
  register(req: RegisterModuleRequest): Promise<RegisterModuleResponse>;
  heartbeat(req: HeartbeatRequest): Promise<HeartbeatResponse>;
  unregister(req: UnregisterModuleRequest): Promise<UnregisterModuleResponse>;
  updateRouting(req: UpdateRoutingRequest): Promise<UpdateRoutingResponse>;
  updateDeployment(req: UpdateDeploymentRequest): Promise<UpdateDeploymentResponse>;
  close(): void;
}

/** An NlbApi over gRPC to `options.target`. */
export function createGrpcNlbApi(options: ClientConnectionOptions): NlbApi {
  const conn = createClientConnection({
    timeoutMs: 5000,
    ...options,
    channelOptions: {
      // grpc-js backs reconnects off to 120 s, so after an NLB outage the channel could stay
      // down long after the NLB is back; the registration agent has its own backoff (capped at
      // one heartbeat interval), so keep the channel's short to re-register within an interval.
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 1000,
      ...options.channelOptions,
    },
  });
  const client = createNlbClient(conn);
  return {
    target: options.target,
    register: (req) => unaryCall(client, 'registerModule', req),
    heartbeat: (req) => unaryCall(client, 'heartbeat', req),
    unregister: (req) => unaryCall(client, 'unregisterModule', req),
    updateRouting: (req) => unaryCall(client, 'updateRouting', req),
    updateDeployment: (req) => unaryCall(client, 'updateDeployment', req),
    close: () => client.close(),
  };
}
