/** Builders shared by the NLB domain unit tests (not a test file itself). */
import { DomainError, type ErrorKind } from '../../services/shared/errors.js';
import type { RequestFacts } from '../../services/nlb/domain/routes.js';
import type { InstanceRecord, InstanceSpec, RouteSpec } from '../../services/nlb/domain/types.js';

/** An ALB 1.0 instance spec with every field set; override what a test is about. */
export const spec = (over: Partial<InstanceSpec> = {}): InstanceSpec => ({
  instanceId: 'alb-1',
  moduleType: 'ALB',
  address: '127.0.0.1:50051',
  trafficAddress: '127.0.0.1:9001',
  version: '1.0',
  maxConnections: 0,
  metadata: {},
  protocols: ['HTTP'],
  proxyProtocol: 'v2',
  startedAtMs: 0,
  capabilities: {},
  ...over,
});

/** A registered, HEALTHY instance record. */
export const instance = (over: Partial<InstanceRecord> = {}): InstanceRecord => ({
  ...spec(),
  registrationId: 'reg-0',
  registeredAtMs: 0,
  lastHeartbeatAtMs: 0,
  health: 'HEALTHY',
  reportedHealth: 'HEALTHY',
  draining: false,
  drainDeadlineMs: null,
  stats: null,
  connections: 0,
  pendingInstructions: {},
  ...over,
});

/** A route that matches anything; override the fields under test. */
export const route = (over: Partial<RouteSpec> = {}): RouteSpec => ({
  routeId: 'r1',
  protocol: null,
  sourcePattern: '',
  destinationPattern: '',
  sourcePort: 0,
  destinationPort: 0,
  headers: {},
  pathPattern: '',
  priority: 0,
  metadata: {},
  ...over,
});

/** An HTTP request to example.com:80/ from 10.0.0.1. */
export const facts = (over: Partial<RequestFacts> = {}): RequestFacts => ({
  protocol: 'HTTP',
  host: 'example.com',
  destinationPort: 80,
  path: '/',
  headers: {},
  sourceAddress: '10.0.0.1',
  sourcePort: 40000,
  ...over,
});

/** Runs `fn` and returns the DomainError it throws; fails when it throws nothing or something else. */
export function domainError(fn: () => unknown): DomainError {
  try {
    fn();
  } catch (e) {
    if (e instanceof DomainError) return e;
    throw e;
  }
  throw new Error('expected a DomainError, but nothing was thrown');
}

/** Async variant of domainError. */
export async function domainErrorAsync(fn: () => Promise<unknown>): Promise<DomainError> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof DomainError) return e;
    throw e;
  }
  throw new Error('expected a DomainError, but nothing was thrown');
}

/** Kind and message of a thrown DomainError, for compact assertions. */
export const errorOf = (fn: () => unknown): { kind: ErrorKind; message: string } => {
  const e = domainError(fn);
  return { kind: e.kind, message: e.message };
};
