/**
 * Wires the NLB process: config → core objects → gRPC server, admin HTTP, sweeper. `startNlb`
 * is used by `mpctl serve nlb`, by the local stack, by tests and by the simulator.
 */
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { serverTlsOptions, serverTlsSchema } from '../shared/grpc/server-tls-config.js';
import { NLBServiceService } from '../../proto/gen/marchproxy/nlb.js';
import type { TokenEntry } from '../shared/auth.js';
import { createLiveAuth } from '../shared/token-file.js';
import { createSystemClock, type Clock } from '../shared/clock.js';
import { createGrpcServer } from '../shared/grpc/server.js';
import { createLogger, type Logger } from '../shared/logger.js';
import { createRng } from '../shared/rng.js';
import { Autoscaler } from './autoscaler-loop.js';
import { Dataplane } from './dataplane/dataplane.js';
import { LISTENER_SCHEMA } from './domain/nlb-config.js';
import { Nlb } from './nlb.js';
import { RolloutController } from './rollout-loop.js';
import { RoutingService } from './nlb-routing.js';
import type { ModulePort } from './ports.js';
import { createFileStatePort, createMemoryStatePort, type StatePort } from './store.js';
import { createAdminHttp } from './transport/admin-http.js';
import { createGrpcModulePort, createModuleClientPool } from './transport/module-port.js';
import { createNlbService } from './transport/nlb-service.js';
import { createNlbPrometheus } from './transport/prometheus.js';
import { VERSION } from '../shared/version.js';
import { createGrpcRateLimitClient } from './manager-sync/rate-limit-push.js';
import { ManagerSync } from './manager-sync/sync.js';
import { startXdsServer, type XdsHandle } from './xds/server.js';

const listen = (port: number) =>
  z
    .object({
      host: z.string().min(1).default('0.0.0.0'),
      port: z.number().int().min(0).max(65535).default(port),
    })
    .strict();

/** The NLB process's configuration: defaults < file < env < flags (services/shared/config.ts). */
export const nlbProcessSchema = z
  .object({
    grpc: listen(50050).default({ host: '0.0.0.0', port: 50050 }),
    admin: listen(8082).default({ host: '0.0.0.0', port: 8082 }),
    /** Durable state; empty = in memory only (tests). */
    dataDir: z.string().default('.mpctl-data/nlb'),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    auth: z
      .object({
        adminToken: z.string().min(16).optional(),
        moduleToken: z.string().min(16).optional(),
        readToken: z.string().min(16).optional(),
        /** More tokens, with module scopes; re-read on change and on SIGHUP (shared/token-file.ts). */
        tokensFile: z.string().optional(),
        anonymousRead: z.boolean().default(false),
      })
      .strict()
      .default({ anonymousRead: false }),
    tls: serverTlsSchema,
    /** How the NLB reaches module controllers (CanHandle, HealthCheck, Scale). */
    modules: z
      .object({
        token: z.string().optional(),
        caFile: z.string().optional(),
        certFile: z.string().optional(),
        keyFile: z.string().optional(),
        tls: z.boolean().default(false),
      })
      .strict()
      .default({ tls: false }),
    /**
     * Seeds the `listeners` config section (client listeners of the data plane) until one is set
     * through UpdateNLBConfig, e.g. the local stack's DESIGN.md §8 ports.
     */
    listeners: z.array(LISTENER_SCHEMA).max(64).optional(),
    dataplane: z
      .object({
        /** Connect timeout to an instance; a failed connect is retried on another instance. */
        connectTimeoutMs: z.number().int().min(1).max(60_000).default(2000),
        connectRetries: z.number().int().min(0).max(5).default(2),
        /** How long open connections may finish at shutdown or when their listener is removed. */
        drainGraceMs: z.number().int().min(0).max(3_600_000).default(10_000),
        /**
         * Worker processes serving the client listeners (docs/dataplane.md "Workers"): 'auto' =
         * one per CPU; 1 serves them in the NLB's own process.
         */
        workers: z.union([z.literal('auto'), z.number().int().min(1).max(256)]).default('auto'),
        /**
         * Who forwards connected pairs (docs/dataplane.md "Native relay"): 'auto' = the native
         * relay when it is built, else JavaScript; 'native' refuses to start without it.
         */
        relay: z.enum(['auto', 'native', 'js']).default('auto'),
      })
      .strict()
      .default({
        connectTimeoutMs: 2000,
        connectRetries: 2,
        drainGraceMs: 10_000,
        workers: 'auto',
        relay: 'auto',
      }),
    /** Pull config from the Manager's HTTP API (services/nlb/manager-sync, docs/deploying.md). */
    manager: z
      .object({
        url: z.url().optional(),
        apiKey: z.string().optional(),
        path: z.string().startsWith('/').optional(),
        /** 0 = only at start and on demand. */
        intervalSeconds: z.number().min(0).max(86_400).default(60),
        timeoutMs: z.number().int().min(100).max(120_000).default(5000),
      })
      .strict()
      .default({ intervalSeconds: 60, timeoutMs: 5000 }),
    /** xDS (ADS) export of module instances and weights (services/nlb/xds); off without a port. */
    xds: z
      .object({
        host: z.string().min(1).default('0.0.0.0'),
        port: z.number().int().min(0).max(65535).optional(),
      })
      .strict()
      .default({ host: '0.0.0.0' }),
    /** Overrides the heartbeat section's interval at start (seconds), e.g. for tests. */
    heartbeatIntervalSeconds: z.number().min(0.1).max(3600).optional(),
    seed: z.union([z.number(), z.string()]).optional(),
  })
  .strict();

export type NlbProcessConfig = z.output<typeof nlbProcessSchema>;

/** Environment variables the NLB reads, and where they land. */
export const NLB_ENV_MAP: Record<string, string> = {
  MP_NLB_GRPC_HOST: 'grpc.host',
  MP_NLB_GRPC_PORT: 'grpc.port',
  MP_NLB_ADMIN_HOST: 'admin.host',
  MP_NLB_ADMIN_PORT: 'admin.port',
  MP_NLB_DATA_DIR: 'dataDir',
  MP_LOG_LEVEL: 'logLevel',
  MP_ADMIN_TOKEN: 'auth.adminToken',
  MP_MODULE_TOKEN: 'auth.moduleToken',
  MP_READ_TOKEN: 'auth.readToken',
  MP_ANONYMOUS_READ: 'auth.anonymousRead',
  MP_TOKENS_FILE: 'auth.tokensFile',
  MP_TLS_CERT: 'tls.certFile',
  MP_TLS_KEY: 'tls.keyFile',
  MP_TLS_CA: 'tls.caFile',
  MP_TLS_REQUIRE_CLIENT_CERT: 'tls.requireClientCert',
  MP_NLB_XDS_HOST: 'xds.host',
  MP_NLB_XDS_PORT: 'xds.port',
  MP_NLB_DATAPLANE_WORKERS: 'dataplane.workers',
  MP_NLB_DATAPLANE_RELAY: 'dataplane.relay',
  MP_MANAGER_URL: 'manager.url',
  MP_MANAGER_API_KEY: 'manager.apiKey',
  MP_MANAGER_SYNC_INTERVAL: 'manager.intervalSeconds',
};

export interface NlbOverrides {
  clock?: Clock;
  logger?: Logger;
  modules?: ModulePort;
  state?: StatePort;
  /** Tests: the data-plane workers' entry script (e.g. one that cannot start). */
  dataplaneWorkerEntry?: { path: string; execArgv: string[] };
}

export interface NlbHandle {
  nlb: Nlb;
  routing: RoutingService;
  /** Client listeners; `dataplane.addresses()` gives their bound ports. */
  dataplane: Dataplane;
  autoscaler: Autoscaler;
  rollouts: RolloutController;
  /** Set when manager.url is configured; `syncNow()` syncs on demand. */
  managerSync?: ManagerSync;
  /** Set when xds.port is configured. */
  xds?: XdsHandle;
  grpcAddress: string;
  grpcPort: number;
  adminPort: number;
  stop(): Promise<void>;
}

/** Starts an NLB; resolves once both servers listen. */
export async function startNlb(config: NlbProcessConfig, overrides: NlbOverrides = {}): Promise<NlbHandle> {
  const logger = overrides.logger ?? createLogger({ level: config.logLevel, name: 'nlb' });
  const clock = overrides.clock ?? createSystemClock();
  const tokens: TokenEntry[] = [];
  if (config.auth.adminToken) tokens.push({ name: 'admin', role: 'admin', token: config.auth.adminToken });
  if (config.auth.moduleToken)
    tokens.push({ name: 'module', role: 'module', token: config.auth.moduleToken });
  if (config.auth.readToken) tokens.push({ name: 'read', role: 'read', token: config.auth.readToken });
  const liveAuth = createLiveAuth(
    { tokens, tokensFile: config.auth.tokensFile, anonymousRead: config.auth.anonymousRead },
    logger,
  );
  const auth = liveAuth.auth;
  if (!auth) logger.warn('authentication is off: set MP_ADMIN_TOKEN and MP_MODULE_TOKEN to require tokens');

  // One channel per controller for everything the NLB asks of it (CanHandle, HealthCheck, Scale,
  // the Manager's rate limits), with the same token and TLS; closed at stop.
  const modulePool = createModuleClientPool({
    token: config.modules.token ?? config.auth.adminToken,
    tls:
      config.modules.tls || config.modules.caFile
        ? {
            caFile: config.modules.caFile,
            certFile: config.modules.certFile,
            keyFile: config.modules.keyFile,
          }
        : false,
  });
  const modules = overrides.modules ?? createGrpcModulePort(modulePool);
  const state =
    overrides.state ?? (config.dataDir ? createFileStatePort(config.dataDir) : createMemoryStatePort());
  const nlb = new Nlb({
    clock,
    rng: createRng(config.seed ?? randomBytes(4).readUInt32LE(0)),
    logger,
    state,
    modules,
    version: VERSION,
    initialConfig: {
      ...(config.heartbeatIntervalSeconds
        ? {
            heartbeat: {
              intervalSeconds: config.heartbeatIntervalSeconds,
              missedHeartbeats: 3,
              evictAfterSeconds: Math.max(300, config.heartbeatIntervalSeconds * 3),
              drainTimeoutSeconds: 30,
            },
          }
        : {}),
      ...(config.listeners ? { listeners: { listeners: config.listeners } } : {}),
    },
  });
  const routing = new RoutingService(nlb);
  const autoscaler = new Autoscaler(nlb);
  const rollouts = new RolloutController(nlb);
  nlb.eventSources = { scaling: () => autoscaler.events, rollout: () => rollouts.events };
  nlb.on((e) => {
    if (e.type === 'config' && e.section === 'scaling') autoscaler.reschedule();
    if (e.type === 'config' && e.section === 'rollout') rollouts.start();
    // A promotion that reached 100 % by request (immediate) retires the old versions too.
    if (e.type === 'deployment' && e.action === 'PROMOTE' && e.deployment.phase === 'PROMOTED')
      void rollouts.retireOldVersions(e.deployment);
  });
  const prom = createNlbPrometheus(nlb);
  const dataplane = new Dataplane({
    nlb,
    routing,
    logger: logger.child({ component: 'dataplane' }),
    observer: prom.dataplane,
    ...config.dataplane,
    workers: config.dataplane.workers === 'auto' ? availableParallelism() : config.dataplane.workers,
    relay: config.dataplane.relay,
    logLevel: config.logLevel,
    workerEntry: overrides.dataplaneWorkerEntry,
  });
  prom.trackDataplane(dataplane);
  nlb.on((e) => {
    if (e.type === 'config' && e.section === 'listeners')
      dataplane
        .apply(nlb.config.listeners.listeners)
        .catch((err: unknown) => logger.error('could not apply the listeners section', { err: String(err) }));
  });
  const grpcServer = createGrpcServer({
    logger,
    auth,
    tls: serverTlsOptions(config.tls),
    maxMessageBytes: nlb.config.server.maxMessageBytes,
  });
  grpcServer.addService(
    NLBServiceService,
    createNlbService({
      nlb,
      routing,
      logger,
      clock,
      observe: prom.observeRpc,
      autoscale: async (type) => {
        const evs = await autoscaler.evaluate(type);
        if (evs.length === 0)
          return {
            message: `no ${type ?? ''} controller to evaluate`.replace('  ', ' '),
            current: 0,
            target: 0,
          };
        const current = evs.reduce((a, e) => a + e.current, 0);
        const target = evs.reduce((a, e) => a + e.desired, 0);
        return {
          message: evs.map((e) => `${e.moduleType} ${e.version}: ${e.reason}`).join('; '),
          current,
          target,
        };
      },
    }),
    'marchproxy.NLBService',
  );
  let serving = false;
  const admin = createAdminHttp({
    metrics: prom.registry,
    notReadyReason: () => (serving ? null : 'gRPC server not serving yet'),
  });
  nlb.start();
  autoscaler.start();
  rollouts.start();
  let grpcBound: { host: string; port: number };
  let adminBound: { host: string; port: number };
  try {
    grpcBound = await grpcServer.start(config.grpc.host, config.grpc.port);
    adminBound = await admin.start(config.admin.host, config.admin.port);
    await dataplane.apply(nlb.config.listeners.listeners);
  } catch (e) {
    liveAuth.stop();
    nlb.stop();
    autoscaler.stop();
    rollouts.stop();
    await dataplane.stop(0);
    await grpcServer.stop(0).catch(() => undefined);
    modulePool.close();
    throw e;
  }
  serving = true;
  const managerSync = config.manager.url
    ? new ManagerSync({
        url: config.manager.url,
        apiKey: config.manager.apiKey,
        path: config.manager.path,
        intervalMs: config.manager.intervalSeconds * 1000,
        timeoutMs: config.manager.timeoutMs,
        nlb,
        logger: logger.child({ component: 'manager-sync' }),
        // Rate limits go to the controllers over the same channels as CanHandle and Scale.
        controllers: createGrpcRateLimitClient(modulePool),
        metrics: prom.registry,
      })
    : undefined;
  if (managerSync) nlb.eventSources.managerSync = () => managerSync.statusDetails();
  // Operators see which forwarding is in use ('auto' falls back to JavaScript without a compiler).
  nlb.eventSources.dataplane = () => ({
    'dataplane.relay': dataplane.relayInfo.mode,
    'dataplane.workers': String(dataplane.workers),
  });
  managerSync?.start();
  const grpcAddress = `${grpcBound.host.includes(':') ? `[${grpcBound.host}]` : grpcBound.host}:${grpcBound.port}`;
  const xds =
    config.xds.port === undefined
      ? undefined
      : await startXdsServer({
          nlb,
          logger: logger.child({ component: 'xds' }),
          host: config.xds.host,
          port: config.xds.port,
          self: grpcAddress.startsWith('0.0.0.0:') ? `127.0.0.1:${grpcBound.port}` : grpcAddress,
        });
  logger.info(
    `NLB ${VERSION} serving gRPC on ${grpcAddress}, admin on http://${adminBound.host}:${adminBound.port}`,
    { state: state.location },
  );
  let stopping: Promise<void> | undefined;
  return {
    nlb,
    routing,
    dataplane,
    autoscaler,
    rollouts,
    managerSync,
    xds,
    grpcAddress,
    grpcPort: grpcBound.port,
    adminPort: adminBound.port,
    stop: () =>
      (stopping ??= (async () => {
        serving = false;
        liveAuth.stop();
        managerSync?.stop();
        await xds?.stop();
        // Stop accepting client connections and let open ones finish while the control plane
        // still answers (drains, heartbeats); then the rest.
        await dataplane.stop();
        nlb.stop();
        autoscaler.stop();
        rollouts.stop();
        await grpcServer.stop(2000);
        await admin.stop();
        modulePool.close();
      })()),
  };
}
