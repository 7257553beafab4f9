/**
 * Domain vocabulary of the NLB. These mirror the contract's enums by name (without their
 * prefixes) so that domain code stays free of generated code; transport/convert.ts maps them.
 */
export const MODULE_TYPES = ['ALB', 'DBLB', 'AILB', 'RTMP'] as const;
export type ModuleTypeName = (typeof MODULE_TYPES)[number];

export const PROTOCOLS = [
  'TCP',
  'UDP',
  'HTTP',
  'HTTPS',
  'HTTP2',
  'HTTP3',
  'GRPC',
  'WEBSOCKET',
  'MYSQL',
  'POSTGRES',
  'MONGODB',
  'REDIS',
  'RTMP',
  'RTMPS',
  'HLS',
  'DASH',
] as const;
export type ProtocolName = (typeof PROTOCOLS)[number];

export type Health = 'HEALTHY' | 'DEGRADED' | 'UNHEALTHY' | 'STARTING' | 'STOPPING' | 'STOPPED';

/** The protocols each module type serves by default (used when a route names none). */
export const DEFAULT_PROTOCOLS: Readonly<Record<ModuleTypeName, readonly ProtocolName[]>> = {
  ALB: ['HTTP', 'HTTPS', 'HTTP2', 'WEBSOCKET', 'GRPC'],
  DBLB: ['POSTGRES', 'MYSQL', 'MONGODB', 'REDIS'],
  AILB: ['HTTP', 'HTTPS', 'HTTP2'],
  RTMP: ['RTMP', 'RTMPS', 'HLS', 'DASH'],
};

/** An instance's counters as of its last heartbeat. */
export interface InstanceStats {
  totalRequests: number;
  successfulRequests: number;
  failedRequests: number;
  activeConnections: number;
  totalConnections: number;
  avgLatencyMs: number;
  p50LatencyMs: number;
  p95LatencyMs: number;
  p99LatencyMs: number;
  bytesReceived: number;
  bytesSent: number;
  cpuUsagePercent: number;
  memoryUsageMb: number;
  /** Start of the counting window, ms since epoch (0 = unknown). */
  sinceMs: number;
  custom: Record<string, string>;
}

/** A route as the domain sees it. Empty/zero fields match anything. */
export interface RouteSpec {
  routeId: string;
  protocol: ProtocolName | null;
  sourcePattern: string;
  destinationPattern: string;
  sourcePort: number;
  destinationPort: number;
  headers: Record<string, string>;
  pathPattern: string;
  priority: number;
  metadata: Record<string, string>;
}

/** What a module says about an instance when it registers it. */
export interface InstanceSpec {
  instanceId: string;
  moduleType: ModuleTypeName;
  /** host:port of the controller's ModuleService. */
  address: string;
  /** host:port of the instance's traffic listener ('' when it has none yet). */
  trafficAddress: string;
  version: string;
  maxConnections: number;
  metadata: Record<string, string>;
  protocols: ProtocolName[];
  proxyProtocol: 'v2' | 'none';
  startedAtMs: number;
  capabilities: Record<string, string>;
}

/** An instance as the registry holds it. */
export interface InstanceRecord extends InstanceSpec {
  registrationId: string;
  registeredAtMs: number;
  lastHeartbeatAtMs: number;
  /** Health as the NLB judges it (lease + reported status). */
  health: Health;
  /** The status the instance reported in its last heartbeat. */
  reportedHealth: Health;
  draining: boolean;
  /** When a graceful unregistration gives up waiting, ms since epoch. */
  drainDeadlineMs: number | null;
  stats: InstanceStats | null;
  /** Connections the NLB's data plane has open to this instance. */
  connections: number;
  /** Instructions queued for the next heartbeat response. */
  pendingInstructions: Record<string, string>;
}

export const emptyStats = (): InstanceStats => ({
  totalRequests: 0,
  successfulRequests: 0,
  failedRequests: 0,
  activeConnections: 0,
  totalConnections: 0,
  avgLatencyMs: 0,
  p50LatencyMs: 0,
  p95LatencyMs: 0,
  p99LatencyMs: 0,
  bytesReceived: 0,
  bytesSent: 0,
  cpuUsagePercent: 0,
  memoryUsageMb: 0,
  sinceMs: 0,
  custom: {},
});
