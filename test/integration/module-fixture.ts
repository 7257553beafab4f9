/**
 * Shared pieces for the module-controller integration tests: a real NLB (in-process or as an
 * `mpctl serve nlb` child process), real module controllers (startModule) with real gRPC
 * clients, typed request helpers that accept partial requests, bounded polling, and a harness
 * that closes every client, controller, NLB, child process and temp dir it started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as grpc from '@grpc/grpc-js';
import {
  CanHandleRequest,
  DeleteRouteRequest,
  DrainRequest,
  GetActiveVersionRequest,
  GetConfigRequest,
  GetInstancesRequest,
  GetMetricsRequest,
  GetRateLimitsRequest,
  GetRoutesRequest,
  GetStatsRequest,
  GetStatusRequest,
  HealthCheckRequest,
  PauseRolloutRequest,
  PromoteVersionRequest,
  ReloadRequest,
  RemoveRateLimitRequest,
  ResumeRolloutRequest,
  RollbackRequest,
  ScaleRequest,
  SetRateLimitRequest,
  SetTrafficWeightRequest,
  ShutdownRequest,
  UpdateConfigRequest,
  UpdateRoutesRequest,
  type DeepPartial,
  type ModuleServiceClient,
} from '../../proto/gen/marchproxy/module.js';
import {
  GetModuleInfoRequest,
  GetRoutingTableRequest,
  ListModulesRequest,
  RouteRequestRequest,
  UpdateDeploymentRequest,
  UpdateRoutingRequest,
  type NLBServiceClient,
} from '../../proto/gen/marchproxy/nlb.js';
import { moduleProcessSchema, startModule, type ModuleHandle } from '../../services/modules/runtime/main.js';
import { nlbProcessSchema, startNlb, type NlbHandle } from '../../services/nlb/main.js';
import {
  createClientConnection,
  createModuleClient,
  createNlbClient,
  unaryCall,
  type UnaryMethodName,
  type UnaryRequest,
  type UnaryResponse,
} from '../../services/shared/grpc/client.js';

export {
  DeploymentAction,
  HealthStatus,
  ModuleType,
  Protocol,
  StatusCode,
} from '../../proto/gen/marchproxy/types.js';

type Builder = { fromPartial(o: unknown): unknown };
// streamMetrics's overloads look unary to the type helper; it is called with serverStreamCall.
type ModuleMethod = Exclude<UnaryMethodName<ModuleServiceClient>, 'streamMetrics'>;
type NlbMethod =
  'listModules' | 'getModuleInfo' | 'getRoutingTable' | 'routeRequest' | 'updateRouting' | 'updateDeployment';

const MODULE_REQUESTS: Record<ModuleMethod, Builder> = {
  getStatus: GetStatusRequest,
  reload: ReloadRequest,
  shutdown: ShutdownRequest,
  canHandle: CanHandleRequest,
  getRoutes: GetRoutesRequest,
  updateRoutes: UpdateRoutesRequest,
  deleteRoute: DeleteRouteRequest,
  getRateLimits: GetRateLimitsRequest,
  setRateLimit: SetRateLimitRequest,
  removeRateLimit: RemoveRateLimitRequest,
  getMetrics: GetMetricsRequest,
  scale: ScaleRequest,
  getInstances: GetInstancesRequest,
  setTrafficWeight: SetTrafficWeightRequest,
  getActiveVersion: GetActiveVersionRequest,
  rollback: RollbackRequest,
  promoteVersion: PromoteVersionRequest,
  healthCheck: HealthCheckRequest,
  getStats: GetStatsRequest,
  getConfig: GetConfigRequest,
  updateConfig: UpdateConfigRequest,
  pauseRollout: PauseRolloutRequest,
  resumeRollout: ResumeRolloutRequest,
  drain: DrainRequest,
};

const NLB_REQUESTS: Record<NlbMethod, Builder> = {
  listModules: ListModulesRequest,
  getModuleInfo: GetModuleInfoRequest,
  getRoutingTable: GetRoutingTableRequest,
  routeRequest: RouteRequestRequest,
  updateRouting: UpdateRoutingRequest,
  updateDeployment: UpdateDeploymentRequest,
};

/** Calls a unary ModuleService method with a partial request (missing fields take proto defaults). */
export type ModuleRpc = <K extends ModuleMethod>(
  method: K,
  request?: DeepPartial<UnaryRequest<ModuleServiceClient, K>>,
) => Promise<UnaryResponse<ModuleServiceClient, K>>;

/** The same for the NLBService methods these tests read. */
export type NlbRpc = <K extends NlbMethod>(
  method: K,
  request?: DeepPartial<UnaryRequest<NLBServiceClient, K>>,
) => Promise<UnaryResponse<NLBServiceClient, K>>;

export function moduleRpcOf(client: ModuleServiceClient): ModuleRpc {
  return (method, request) =>
    unaryCall(client, method, MODULE_REQUESTS[method].fromPartial(request ?? {}) as never);
}

export function nlbRpcOf(client: NLBServiceClient): NlbRpc {
  return (method, request) =>
    unaryCall(client, method, NLB_REQUESTS[method].fromPartial(request ?? {}) as never);
}

/** The rejection of `p` as a grpc-js ServiceError (fails the test when `p` resolves). */
export async function rejectionOf(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as grpc.ServiceError;
  }
  throw new Error('expected the call to fail, but it succeeded');
}

/** Polls `probe` until it returns something other than undefined/false; fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 10_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e instanceof Error ? e.message : JSON.stringify(e);
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last})` : ''}`,
      );
    await sleep(everyMs);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Whether a process with this pid exists (signal 0; ESRCH = gone). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** A TCP port that was free a moment ago (bind 127.0.0.1:0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Opens a TCP connection to host:port, writes a little and resolves when it closes (bounded). */
export function touch(address: string, holdMs = 20): Promise<void> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.split(':').pop())];
  return new Promise((resolve) => {
    const s = connect({ host, port }, () => {
      s.write('GET / HTTP/1.1\r\nHost: shop.example.com\r\n\r\n');
      setTimeout(() => s.end(), holdMs);
    });
    const t = setTimeout(() => s.destroy(), 3000);
    s.on('error', () => undefined);
    s.once('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** Instance ids the NLB lists now, sorted. */
export async function listedIds(nlb: NlbRpc): Promise<string[]> {
  const r = await nlb('listModules', {});
  return r.modules.map((m) => m.instanceId).sort();
}

/** Instance ids a controller manages now, sorted. */
export async function managedIds(mod: ModuleRpc): Promise<string[]> {
  const r = await mod('getInstances', {});
  return r.instances.map((i) => i.instanceId).sort();
}

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface TestNlb {
  handle: NlbHandle;
  rpc: NlbRpc;
  target: string;
}

export interface TestModule {
  handle: ModuleHandle;
  rpc: ModuleRpc;
  client: ModuleServiceClient;
  address: string;
}

export interface ModuleOptions {
  nlb: string;
  type?: 'alb' | 'dblb' | 'ailb' | 'rtmp';
  version?: string;
  instances?: number;
  provider?: 'inprocess' | 'process';
  /** Durable state directory; a fresh temp dir when omitted. */
  dataDir?: string;
  heartbeatIntervalSeconds?: number;
}

/** Starts and stops NLBs, controllers, clients, child processes and temp dirs; `closeAll()` in afterEach. */
export function createModuleHarness() {
  const nlbs: NlbHandle[] = [];
  const modules: ModuleHandle[] = [];
  const clients: grpc.Client[] = [];
  const children: ChildProcess[] = [];
  const pids = new Set<number>();
  const dirs: string[] = [];
  const harness = {
    tempDir(): string {
      const d = mkdtempSync(join(tmpdir(), 'mp-module-it-'));
      dirs.push(d);
      return d;
    },
    /** A real NLB in this process on 127.0.0.1:0 with state in memory. */
    async startNlb(heartbeatIntervalSeconds = 1): Promise<TestNlb> {
      const handle = await startNlb(
        nlbProcessSchema.parse({
          grpc: { host: '127.0.0.1', port: 0 },
          admin: { host: '127.0.0.1', port: 0 },
          dataDir: '',
          logLevel: 'silent',
          heartbeatIntervalSeconds,
          seed: 11,
        }),
      );
      nlbs.push(handle);
      const target = `127.0.0.1:${handle.grpcPort}`;
      return { handle, rpc: harness.nlbClient(target), target };
    },
    nlbClient(target: string): NlbRpc {
      const client = createNlbClient(createClientConnection({ target, timeoutMs: 5_000 }));
      clients.push(client);
      return nlbRpcOf(client);
    },
    moduleClient(target: string): { client: ModuleServiceClient; rpc: ModuleRpc } {
      const client = createModuleClient(createClientConnection({ target, timeoutMs: 15_000 }));
      clients.push(client);
      return { client, rpc: moduleRpcOf(client) };
    },
    /** A real controller in this process (ModuleService on 127.0.0.1:0). */
    async startModule(o: ModuleOptions): Promise<TestModule> {
      const handle = await startModule(
        moduleProcessSchema.parse({
          type: o.type ?? 'alb',
          version: o.version ?? '1.0',
          instances: o.instances ?? 1,
          grpc: { host: '127.0.0.1', port: 0 },
          nlb: o.nlb,
          provider: o.provider ?? 'inprocess',
          dataDir: o.dataDir ?? harness.tempDir(),
          logLevel: 'silent',
          heartbeatIntervalSeconds: o.heartbeatIntervalSeconds ?? 1,
          seed: 5,
        }),
      );
      modules.push(handle);
      return { handle, address: handle.address, ...harness.moduleClient(handle.address) };
    },
    /** Runs `mpctl <args>` from the sources as a child process; killed by closeAll(). */
    spawnCli(args: string[]): ChildProcess {
      const child = spawn(process.execPath, ['--import', 'tsx', 'bin/dev.js', ...args], {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, NODE_ENV: 'test' },
      });
      let stderr = '';
      child.stderr?.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4000)));
      Object.defineProperty(child, 'stderrTail', { get: () => stderr });
      children.push(child);
      return child;
    },
    /** Remembers a pid (e.g. an instance child) so closeAll() SIGKILLs it if still alive. */
    trackPid(pid: number): void {
      pids.add(pid);
    },
    async closeAll(): Promise<void> {
      for (const c of clients.splice(0)) c.close();
      await Promise.all(modules.splice(0).map((m) => m.stop(false).catch(() => undefined)));
      await Promise.all(nlbs.splice(0).map((n) => n.stop().catch(() => undefined)));
      await Promise.all(children.splice(0).map((c) => stopChild(c)));
      for (const pid of pids) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
      pids.clear();
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    },
  };
  return harness;
}

/** Whether a child process has already exited. */
export const exited = (c: ChildProcess) => c.exitCode !== null || c.signalCode !== null;

/** Resolves when `c` exits; SIGKILLs it if it has not within `timeoutMs`. */
export function waitExit(c: ChildProcess, timeoutMs = 5_000): Promise<void> {
  if (exited(c)) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** SIGTERM, then SIGKILL after 3 s; resolves once the process is gone. */
export function stopChild(c: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (exited(c)) return Promise.resolve();
  const gone = waitExit(c, 3_000);
  c.kill(signal);
  return gone;
}

/** The last stderr of a child started by spawnCli (for failure messages). */
export const stderrOf = (c: ChildProcess) => (c as ChildProcess & { stderrTail?: string }).stderrTail ?? '';
