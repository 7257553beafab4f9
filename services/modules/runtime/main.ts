/**
 * Wires a module controller process: config → controller + provider → ModuleService gRPC
 * server → instances. Used by `mpctl serve module`, the local stack, tests and the simulator.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { serverTlsOptions, serverTlsSchema } from '../../shared/grpc/server-tls-config.js';
import { ModuleServiceService } from '../../../proto/gen/marchproxy/module.js';
import type { TokenEntry } from '../../shared/auth.js';
import { createLiveAuth } from '../../shared/token-file.js';
import { createSystemClock, type Clock } from '../../shared/clock.js';
import { createGrpcServer } from '../../shared/grpc/server.js';
import { createLogger, type Logger } from '../../shared/logger.js';
import { createRng } from '../../shared/rng.js';
import { pluginFor } from '../plugins.js';
import { DEFAULT_START_CONCURRENCY, ModuleController } from './controller.js';
import {
  createControllerFileStore,
  createControllerMemoryStore,
  type ControllerStore,
} from './controller-state.js';
import { ModuleMetricsSampler } from './module-metrics.js';
import { createModuleService } from './module-service.js';
import { createGrpcNlbApi, type NlbApi } from './nlb-api.js';
import { createInprocessProvider } from './providers/inprocess.js';
import { createProcessProvider } from './providers/process.js';
import { createKubernetesProvider, inClusterOptions } from './providers/kubernetes.js';
import type { InstanceProvider } from './providers/provider.js';
import { VERSION_PATTERN } from '../../nlb/domain/validate.js';

/** A module controller process's configuration (defaults < file < env < flags). */
export const moduleProcessSchema = z
  .object({
    type: z.enum(['alb', 'dblb', 'ailb', 'rtmp']),
    version: z
      .string()
      .regex(
        VERSION_PATTERN,
        'use 1-64 characters of A-Z a-z 0-9 . _ + - starting with a letter or digit, e.g. 1.0',
      ),
    /** Instances at first start; later the stored desired count wins. */
    instances: z.number().int().min(0).max(1000).default(1),
    grpc: z
      .object({ host: z.string().default('0.0.0.0'), port: z.number().int().min(0).max(65535).optional() })
      .strict()
      .default({ host: '0.0.0.0' }),
    /** Address the NLB and instances use to reach this controller (default: grpc host:port, 127.0.0.1 for 0.0.0.0). */
    advertiseAddress: z.string().optional(),
    /** Interface for instances' traffic listeners. */
    trafficHost: z.string().default('127.0.0.1'),
    nlb: z.string().default('127.0.0.1:50050'),
    provider: z.enum(['process', 'inprocess', 'kubernetes']).default('process'),
    /** provider kubernetes: the Deployment of instance pods to scale (providers/kubernetes.ts). */
    kubernetes: z
      .object({
        apiServer: z.string().optional(),
        namespace: z.string().default('default'),
        deployment: z.string().optional(),
        tokenFile: z.string().optional(),
        readyTimeoutSeconds: z.number().min(1).max(3600).default(120),
      })
      .strict()
      .default({ namespace: 'default', readyTimeoutSeconds: 120 }),
    dataDir: z.string().default('.mpctl-data'),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    heartbeatIntervalSeconds: z.number().min(0.1).max(3600).default(10),
    /**
     * provider process: how long an instance whose controller died keeps serving, waiting for a
     * restarted controller to adopt it, before it drains and exits.
     */
    orphanTimeoutSeconds: z.number().min(0.1).max(86_400).default(120),
    /** Instances started at once when scaling up (a big step does not start them one by one). */
    startConcurrency: z.number().int().min(1).max(256).default(DEFAULT_START_CONCURRENCY),
    /** Token modules present to the NLB (role module). */
    nlbToken: z.string().optional(),
    /** Tokens this controller accepts (NLB and operators). */
    auth: z
      .object({
        adminToken: z.string().min(16).optional(),
        readToken: z.string().min(16).optional(),
        /** More tokens; re-read on change and on SIGHUP (shared/token-file.ts). */
        tokensFile: z.string().optional(),
        anonymousRead: z.boolean().default(false),
      })
      .strict()
      .default({ anonymousRead: false }),
    /** TLS (and mutual TLS with caFile + requireClientCert) on this controller's ModuleService. */
    tls: serverTlsSchema,
    /** How the controller and its instances reach the NLB: TLS when set (caFile; cert/key for mutual TLS). */
    nlbTls: z
      .object({
        caFile: z.string().optional(),
        certFile: z.string().optional(),
        keyFile: z.string().optional(),
      })
      .strict()
      .optional(),
    seed: z.union([z.number(), z.string()]).optional(),
  })
  .strict();

export type ModuleProcessConfig = z.output<typeof moduleProcessSchema>;

export const MODULE_ENV_MAP: Record<string, string> = {
  MP_MODULE_NLB: 'nlb',
  MP_MODULE_TOKEN: 'nlbToken',
  MP_ADMIN_TOKEN: 'auth.adminToken',
  MP_READ_TOKEN: 'auth.readToken',
  MP_TOKENS_FILE: 'auth.tokensFile',
  MP_MODULE_DATA_DIR: 'dataDir',
  MP_LOG_LEVEL: 'logLevel',
  /** Containers: instances' traffic interface and the controller address others dial (docker-compose.yml). */
  MP_MODULE_TRAFFIC_HOST: 'trafficHost',
  MP_MODULE_ADVERTISE_ADDRESS: 'advertiseAddress',
  MP_K8S_API_SERVER: 'kubernetes.apiServer',
  MP_K8S_NAMESPACE: 'kubernetes.namespace',
  MP_K8S_DEPLOYMENT: 'kubernetes.deployment',
  MP_K8S_TOKEN_FILE: 'kubernetes.tokenFile',
  MP_MODULE_ORPHAN_TIMEOUT: 'orphanTimeoutSeconds',
  MP_MODULE_START_CONCURRENCY: 'startConcurrency',
};

function kubernetesProvider(config: ModuleProcessConfig, logger: Logger): InstanceProvider {
  const k = config.kubernetes;
  const inCluster = inClusterOptions();
  const apiServer = k.apiServer ?? inCluster.apiServer;
  if (!apiServer || !k.deployment)
    throw new Error(
      'provider kubernetes needs --k8s-deployment and an API server (--k8s-api-server, or run in a pod)',
    );
  return createKubernetesProvider({
    apiServer,
    namespace: k.namespace,
    deployment: k.deployment,
    token: k.tokenFile ? readFileSync(k.tokenFile, 'utf8').trim() : inCluster.token,
    readyTimeoutMs: k.readyTimeoutSeconds * 1000,
    logger,
  });
}

export interface ModuleOverrides {
  clock?: Clock;
  logger?: Logger;
  /** NLB client factory (one per instance and one for the controller). */
  nlbApi?: () => NlbApi;
  store?: ControllerStore;
  provider?: InstanceProvider;
}

export interface ModuleHandle {
  controller: ModuleController;
  address: string;
  port: number;
  sampler: ModuleMetricsSampler;
  /** Resolves when the controller was shut down (Shutdown RPC or stop()). */
  done: Promise<void>;
  stop(graceful?: boolean): Promise<void>;
}

/** Starts a controller and its instances; resolves when the ModuleService listens. */
export async function startModule(
  config: ModuleProcessConfig,
  overrides: ModuleOverrides = {},
): Promise<ModuleHandle> {
  const plugin = pluginFor(config.type);
  const logger = (
    overrides.logger ??
    createLogger({ level: config.logLevel, name: `${plugin.type.toLowerCase()}-controller` })
  ).child({ module: plugin.type, version: config.version });
  const clock = overrides.clock ?? createSystemClock();
  const nlbTarget = { target: config.nlb, token: config.nlbToken, tls: config.nlbTls ?? (false as const) };
  const nlbApi = overrides.nlbApi ?? (() => createGrpcNlbApi(nlbTarget));
  const provider =
    overrides.provider ??
    (config.provider === 'inprocess'
      ? createInprocessProvider({ plugin, clock, logger, nlbApi })
      : config.provider === 'kubernetes'
        ? kubernetesProvider(config, logger)
        : createProcessProvider({
            moduleType: plugin.type,
            logger,
            logLevel: config.logLevel,
            nlb: nlbTarget,
            // Control sockets next to the state that names them, so a restart finds both.
            controlDir: config.dataDir ? resolvePath(config.dataDir) : undefined,
            orphanTimeoutMs: config.orphanTimeoutSeconds * 1000,
          }));
  const store =
    overrides.store ??
    (config.dataDir
      ? createControllerFileStore(config.dataDir, plugin.type, config.version)
      : createControllerMemoryStore());
  const controller = new ModuleController({
    plugin,
    version: config.version,
    clock,
    rng: createRng(config.seed ?? randomBytes(4).readUInt32LE(0)),
    logger,
    provider,
    store,
    host: config.trafficHost,
    heartbeatIntervalMs: config.heartbeatIntervalSeconds * 1000,
    initialInstances: config.instances,
    startConcurrency: config.startConcurrency,
  });
  const sampler = new ModuleMetricsSampler(controller, clock);
  const tokens: TokenEntry[] = [];
  if (config.auth.adminToken) tokens.push({ name: 'admin', role: 'admin', token: config.auth.adminToken });
  if (config.auth.readToken) tokens.push({ name: 'read', role: 'read', token: config.auth.readToken });
  const liveAuth = createLiveAuth(
    { tokens, tokensFile: config.auth.tokensFile, anonymousRead: config.auth.anonymousRead },
    logger,
  );
  const server = createGrpcServer({
    logger,
    auth: liveAuth.auth,
    tls: serverTlsOptions(config.tls),
  });
  const controllerNlb = nlbApi();
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  server.addService(
    ModuleServiceService,
    createModuleService({
      controller,
      sampler,
      nlb: controllerNlb,
      logger,
      clock,
      onShutdown: () => void stop(true),
    }),
    'marchproxy.ModuleService',
  );
  const bound = await server.start(config.grpc.host, config.grpc.port ?? plugin.defaultPort);
  const host = bound.host === '0.0.0.0' || bound.host === '::' ? '127.0.0.1' : bound.host;
  const address = config.advertiseAddress ?? `${host.includes(':') ? `[${host}]` : host}:${bound.port}`;
  sampler.start();
  await controller.start(address);
  logger.info(
    `${plugin.type} ${config.version} controller serving ModuleService on ${address} with ${controller.liveInstances().length} instance(s); NLB ${config.nlb}`,
  );
  let stopping: Promise<void> | undefined;
  const stop = (graceful = true) =>
    (stopping ??= (async () => {
      sampler.stop();
      liveAuth.stop();
      await controller.stop(graceful, 10_000);
      await server.stop(2000);
      controllerNlb.close();
      finish();
    })());
  return { controller, address, port: bound.port, sampler, done, stop };
}
