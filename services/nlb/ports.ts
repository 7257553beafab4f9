/**
 * What the NLB core needs from the outside world, as interfaces: calls to module controllers.
 * transport/module-port.ts implements them over gRPC; tests and the simulator may fake them.
 */
import type { Health, RouteSpec } from './domain/types.js';

export interface ScalingPolicyInput {
  minInstances: number;
  maxInstances: number;
  targetCpuPercent: number;
  targetMemoryPercent: number;
  targetConnections: number;
  cooldownSeconds: number;
  autoScalingEnabled: boolean;
}

export interface ScaleResult {
  success: boolean;
  message: string;
  currentInstances: number;
  desiredInstances: number;
}

export interface ModulePort {
  /** Asks a controller whether its module can handle a route. */
  canHandle(
    address: string,
    route: RouteSpec,
    context: Record<string, string>,
    timeoutMs: number,
  ): Promise<{ canHandle: boolean; priority: number; reason: string }>;
  /** Runs a controller's HealthCheck for one instance. */
  healthCheck(
    address: string,
    instanceId: string,
    deep: boolean,
    timeoutMs: number,
  ): Promise<{ status: Health; message: string }>;
  /** Changes a controller's desired instance count. */
  scale(
    address: string,
    request: {
      instanceId: string;
      desiredInstances: number;
      config?: ScalingPolicyInput;
      immediate: boolean;
    },
    timeoutMs: number,
  ): Promise<ScaleResult>;
}
