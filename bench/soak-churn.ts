/**
 * The soak benchmark's control-plane churn (bench/soak.ts), through the project's own gRPC
 * clients, all at once and for the whole run:
 *
 * - short-lived fake instances (RTMP, each on its own channel, as a real instance would be):
 *   RegisterModule with a route of their own, Heartbeat every second with growing stats, then
 *   UnregisterModule (graceful or not) after 6-20 s; one in ten is abandoned and left to the
 *   NLB's eviction;
 * - UpdateRouting: every second a new operator route replaces the oldest of a window of five
 *   (replace_all over the operator's routes, the traffic's own routes always included);
 * - UpdateNLBConfig: the routing section's strategy and CanHandle cache TTL every 5 s, and an
 *   extra listener added and removed every 30 s (the traffic's listeners kept as they are);
 * - readers: ListModules every second, GetRoutingTable and GetNLBStatus every 2 s, and three
 *   StreamNLBMetrics subscribers that come and go (each on a new channel, 5-15 s each);
 * - the ALB controller's Scale up to 2 instances and back to 1, every 40 s;
 * - SetRateLimit / RemoveRateLimit on the module controllers every 3 s (targets that match no
 *   client of the soak, so the traffic is never limited).
 *
 * Every call is counted by method; failures keep their message. Events that can cost client
 * requests (scale-downs, listener changes) are logged with their time.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { NLBServiceClient } from '../proto/gen/marchproxy/nlb.js';
import type { ModuleServiceClient } from '../proto/gen/marchproxy/module.js';
import {
  HealthStatus,
  ModuleType,
  Protocol,
  ProxyProtocolMode,
  type Route,
} from '../proto/gen/marchproxy/types.js';
import {
  createClientConnection,
  createModuleClient,
  createNlbClient,
  serverStreamCall,
  unaryCall,
} from '../services/shared/grpc/client.js';
import { moduleStats, newCounters as newFakeCounters } from './control-plane-shared.js';

const CALL_TIMEOUT_MS = 10_000;

export interface ChurnEvent {
  at: number;
  what: string;
}

export interface ChurnCounters {
  calls: number;
  errors: number;
  byMethod: Record<string, { calls: number; errors: number }>;
  /** First few failure messages per method. */
  errorSamples: Record<string, string[]>;
  events: ChurnEvent[];
  fakesRegistered: number;
  fakesAbandoned: number;
  streamMessages: number;
}

export function newChurnCounters(): ChurnCounters {
  return {
    calls: 0,
    errors: 0,
    byMethod: {},
    errorSamples: {},
    events: [],
    fakesRegistered: 0,
    fakesAbandoned: 0,
    streamMessages: 0,
  };
}

export interface ChurnOptions {
  nlbTarget: string;
  /** The ALB controller's ModuleService address (Scale, rate limits). */
  albController: string;
  /** The DBLB controller's, when PostgreSQL traffic runs. */
  dblbController?: string;
  /** The operator routes the traffic needs; every UpdateRouting keeps them. */
  baseRoutes: Route[];
  /** The listeners section as the traffic needs it; the churn listener comes and goes beside them. */
  listeners: Array<Record<string, unknown>>;
}

function newNlbClient(target: string): NLBServiceClient {
  return createNlbClient(createClientConnection({ target, timeoutMs: CALL_TIMEOUT_MS }));
}

function newModuleClient(target: string): ModuleServiceClient {
  return createModuleClient(createClientConnection({ target, timeoutMs: CALL_TIMEOUT_MS }));
}

/** Runs `call`, counting it under `method`; a thrown error or `success: false` is a failure. */
async function counted<T>(c: ChurnCounters, method: string, call: () => Promise<T>): Promise<T | null> {
  const m = (c.byMethod[method] ??= { calls: 0, errors: 0 });
  c.calls++;
  m.calls++;
  const fail = (why: string) => {
    c.errors++;
    m.errors++;
    const samples = (c.errorSamples[method] ??= []);
    if (samples.length < 5) samples.push(why);
    return null;
  };
  try {
    const r = await call();
    const res = r as { success?: boolean; acknowledged?: boolean; message?: string };
    if (res && typeof res === 'object' && (res.success === false || res.acknowledged === false))
      return fail(`refused: ${res.message ?? JSON.stringify(r).slice(0, 200)}`);
    return r;
  } catch (e) {
    return fail((e as Error).message);
  }
}

/** Calls `body` every `periodMs` until `signal` aborts. */
async function every(periodMs: number, signal: AbortSignal, body: () => Promise<void>): Promise<void> {
  while (!signal.aborted) {
    await body();
    await sleep(periodMs, undefined, { signal }).catch(() => undefined);
  }
}

const wait = (ms: number, signal: AbortSignal) =>
  sleep(ms, undefined, { signal }).then(
    () => true,
    () => false,
  );

const configUpdate = (section: string, body: unknown) => ({
  config: {
    configId: '',
    configType: section,
    configData: Buffer.from(JSON.stringify(body)),
    checksum: '',
    updatedAt: undefined,
    metadata: {},
  },
  validateOnly: false,
  restartRequired: false,
});

/** One NLB config change through UpdateNLBConfig. */
export function updateNlbConfig(
  client: NLBServiceClient,
  c: ChurnCounters,
  section: string,
  body: unknown,
): Promise<unknown> {
  return counted(c, `UpdateNLBConfig ${section}`, () =>
    unaryCall(client, 'updateNlbConfig', configUpdate(section, body)),
  );
}

/** An operator route (metadata.module_type names the module type that serves it). */
export function operatorRoute(over: Partial<Route> & { moduleType: string }): Route {
  const { moduleType, ...rest } = over;
  return {
    routeId: '',
    protocol: Protocol.PROTOCOL_HTTP,
    sourcePattern: '',
    destinationPattern: '',
    sourcePort: 0,
    destinationPort: 0,
    headers: {},
    pathPattern: '',
    priority: 0,
    ...rest,
    metadata: { module_type: moduleType, ...(rest.metadata ?? {}) },
  };
}

// ---- fake instances ------------------------------------------------------------------------

let fakeSeq = 0;

async function fakeInstance(o: ChurnOptions, c: ChurnCounters, signal: AbortSignal): Promise<void> {
  const n = fakeSeq++;
  const id = `soak-fake-${n}`;
  const client = newNlbClient(o.nlbTarget);
  try {
    const reg = await counted(c, 'RegisterModule', () =>
      unaryCall(client, 'registerModule', {
        instance: {
          instanceId: id,
          moduleType: ModuleType.MODULE_TYPE_RTMP,
          // Nothing listens there: no route of the soak's traffic leads to a fake.
          address: '127.0.0.1:9',
          healthStatus: HealthStatus.HEALTH_STATUS_HEALTHY,
          metadata: { soak: 'fake' },
          startedAt: new Date(),
          currentConnections: 0,
          maxConnections: 100,
          version: '1.0',
          trafficWeight: 0,
          trafficAddress: '127.0.0.1:9',
          proxyProtocol: ProxyProtocolMode.PROXY_PROTOCOL_MODE_NONE,
          draining: false,
          protocols: [Protocol.PROTOCOL_RTMP],
        },
        initialRoutes: [
          {
            ...operatorRoute({ moduleType: 'RTMP', protocol: Protocol.PROTOCOL_RTMP }),
            destinationPattern: `fake-${n}.soak.test`,
            priority: 5,
          },
        ],
        healthConfig: undefined,
        capabilities: { soak: 'fake' },
      }),
    );
    if (!reg) return;
    c.fakesRegistered++;
    const counters = newFakeCounters();
    const since = new Date();
    const lifetimeMs = 6000 + Math.random() * 14_000;
    const abandon = n % 10 === 9;
    const end = Date.now() + lifetimeMs;
    while (Date.now() < end && !signal.aborted) {
      await counted(c, 'Heartbeat', () =>
        unaryCall(client, 'heartbeat', {
          instanceId: id,
          registrationId: reg.registrationId,
          status: HealthStatus.HEALTH_STATUS_HEALTHY,
          currentStats: moduleStats(id, counters, since),
          timestamp: new Date(),
        }),
      );
      if (!(await wait(1000, signal))) break;
    }
    if (abandon && !signal.aborted) {
      // No unregister: the NLB marks it unhealthy after missed heartbeats and evicts it.
      c.fakesAbandoned++;
      return;
    }
    await counted(c, 'UnregisterModule', () =>
      unaryCall(client, 'unregisterModule', {
        instanceId: id,
        registrationId: reg.registrationId,
        graceful: n % 2 === 0,
        drainTimeoutSeconds: 1,
      }),
    );
  } finally {
    client.close();
  }
}

async function fakeInstances(o: ChurnOptions, c: ChurnCounters, signal: AbortSignal): Promise<void> {
  const running = new Set<Promise<void>>();
  await every(2000, signal, () => {
    const p = fakeInstance(o, c, signal).finally(() => running.delete(p));
    running.add(p);
    return Promise.resolve();
  });
  await Promise.all(running);
}

// ---- routes and NLB config ---------------------------------------------------------------------

async function routeChurn(
  o: ChurnOptions,
  client: NLBServiceClient,
  c: ChurnCounters,
  signal: AbortSignal,
): Promise<void> {
  const window: Route[] = [];
  let n = 0;
  await every(1000, signal, async () => {
    window.push(
      operatorRoute({
        moduleType: 'ALB',
        routeId: `soak-route-${n}`,
        destinationPattern: `r${n}.soak.test`,
        pathPattern: `/r${n}/*`,
        priority: 20,
      }),
    );
    n++;
    if (window.length > 5) window.shift();
    await counted(c, 'UpdateRouting', () =>
      unaryCall(client, 'updateRouting', {
        routes: [...o.baseRoutes, ...window],
        replaceAll: true,
        sourceInstanceId: '',
        validateOnly: false,
      }),
    );
  });
}

async function configChurn(
  o: ChurnOptions,
  client: NLBServiceClient,
  c: ChurnCounters,
  signal: AbortSignal,
): Promise<void> {
  let n = 0;
  await every(5000, signal, async () => {
    n++;
    await updateNlbConfig(client, c, 'routing', {
      strategy: n % 2 ? 'round-robin' : 'least-conn',
      canHandleCacheTtlMs: n % 3 === 0 ? 5000 : 30_000,
    });
    if (n % 6 === 0) {
      const withExtra = (n / 6) % 2 === 1;
      c.events.push({ at: Date.now(), what: withExtra ? 'listener added' : 'listener removed' });
      await updateNlbConfig(client, c, 'listeners', {
        listeners: [
          ...o.listeners,
          ...(withExtra ? [{ name: 'churn', address: '127.0.0.1', port: 0, mode: 'http' }] : []),
        ],
      });
    }
  });
}

// ---- readers ---------------------------------------------------------------------------------

async function readers(
  o: ChurnOptions,
  client: NLBServiceClient,
  c: ChurnCounters,
  signal: AbortSignal,
): Promise<void> {
  let n = 0;
  await every(1000, signal, async () => {
    n++;
    await counted(c, 'ListModules', () =>
      unaryCall(client, 'listModules', {
        moduleTypeFilter: ModuleType.MODULE_TYPE_UNSPECIFIED,
        statusFilter: HealthStatus.HEALTH_STATUS_UNSPECIFIED,
        query: undefined,
      }),
    );
    if (n % 2 === 0) {
      await counted(c, 'GetRoutingTable', () =>
        unaryCall(client, 'getRoutingTable', {
          protocolFilter: Protocol.PROTOCOL_UNSPECIFIED,
          destinationFilter: '',
          query: undefined,
        }),
      );
      await counted(c, 'GetNLBStatus', () => unaryCall(client, 'getNlbStatus', { includeModules: true }));
    }
  });
}

async function subscriber(o: ChurnOptions, c: ChurnCounters, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    const client = newNlbClient(o.nlbTarget);
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => stop.abort(), 5000 + Math.random() * 10_000);
    await counted(c, 'StreamNLBMetrics', async () => {
      for await (const _ of serverStreamCall(
        client,
        'streamNlbMetrics',
        { intervalSeconds: 1, metricNames: [], includeModules: true },
        { signal: stop.signal },
      ))
        c.streamMessages++;
      return true;
    });
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
    client.close();
    await wait(500 + Math.random() * 1500, signal);
  }
}

// ---- module controllers ------------------------------------------------------------------------

async function scaleChurn(alb: ModuleServiceClient, c: ChurnCounters, signal: AbortSignal): Promise<void> {
  const scale = (desired: number) =>
    counted(c, `Scale to ${desired}`, () =>
      unaryCall(alb, 'scale', {
        instanceId: '',
        config: undefined,
        immediate: true,
        desiredInstances: desired,
      }),
    );
  // The first scale-up after a while, so the warm-up sees one full cycle.
  if (!(await wait(10_000, signal))) return;
  while (!signal.aborted) {
    c.events.push({ at: Date.now(), what: 'scale up to 2' });
    await scale(2);
    if (!(await wait(20_000, signal))) return;
    c.events.push({ at: Date.now(), what: 'scale down to 1' });
    await scale(1);
    if (!(await wait(20_000, signal))) return;
  }
}

async function rateLimitChurn(
  controllers: ModuleServiceClient[],
  c: ChurnCounters,
  signal: AbortSignal,
): Promise<void> {
  let n = 0;
  const previous = new Map<ModuleServiceClient, string>();
  await every(3000, signal, async () => {
    const ctl = controllers[n % controllers.length];
    const limitId = `soak-rl-${n}`;
    await counted(c, 'SetRateLimit', () =>
      unaryCall(ctl, 'setRateLimit', {
        instanceId: '',
        limit: {
          limitId,
          // TEST-NET-2: no client of the soak has these addresses.
          target: `198.51.100.${n % 250}`,
          requestsPerSecond: 10 + (n % 50),
          requestsPerMinute: 0,
          requestsPerHour: 0,
          burstSize: 5,
          enabled: true,
          metadata: { soak: String(n) },
        },
      }),
    );
    const old = previous.get(ctl);
    if (old)
      await counted(c, 'RemoveRateLimit', () =>
        unaryCall(ctl, 'removeRateLimit', { instanceId: '', limitId: old }),
      );
    previous.set(ctl, limitId);
    n++;
  });
}

/** Runs every churn loop until `signal` aborts; resolves when all have finished. */
export async function runChurn(o: ChurnOptions, c: ChurnCounters, signal: AbortSignal): Promise<void> {
  const nlb = newNlbClient(o.nlbTarget);
  const alb = newModuleClient(o.albController);
  const dblb = o.dblbController ? newModuleClient(o.dblbController) : undefined;
  try {
    await Promise.all([
      fakeInstances(o, c, signal),
      routeChurn(o, nlb, c, signal),
      configChurn(o, nlb, c, signal),
      readers(o, nlb, c, signal),
      subscriber(o, c, signal),
      subscriber(o, c, signal),
      subscriber(o, c, signal),
      scaleChurn(alb, c, signal),
      rateLimitChurn(dblb ? [alb, dblb] : [alb], c, signal),
    ]);
  } finally {
    nlb.close();
    alb.close();
    dblb?.close();
  }
}
