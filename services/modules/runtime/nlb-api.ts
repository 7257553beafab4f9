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
  const conn = createClientConnection({ timeoutMs: 5000, ...options });
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
