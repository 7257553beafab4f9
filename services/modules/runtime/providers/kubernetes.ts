/**
 * The `kubernetes` instance provider: instead of spawning processes, a controller scales a
 * Kubernetes Deployment of instance pods through the Deployment's `scale` subresource (read with
 * GET, change with a JSON merge patch) and waits, bounded, until the Deployment reports that many
 * ready replicas. Readiness and deletion come from a watch on the Deployment (kubernetes-watch.ts;
 * polling only while the watch is broken). The pods register themselves with the NLB (they run `mpctl serve`-style
 * instances with their own ids); the handles here only count replicas. Talks plain HTTPS to the
 * API server with a bearer token (in a pod: the service account token and CA).
 */
import { readFileSync } from 'node:fs';
import type { Logger } from '../../../shared/logger.js';
import type { InstanceStatus } from '../instance.js';
import type { StatsSnapshot } from '../stats.js';
import { DeploymentWatch } from './kubernetes-watch.js';
import type { AdoptionRecord, InstanceHandle, InstanceLaunch, InstanceProvider } from './provider.js';

export interface KubernetesOptions {
  /** API server base URL [default: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT]. */
  apiServer: string;
  namespace: string;
  /** The Deployment whose replicas are this controller's instances. */
  deployment: string;
  /** Bearer token (in a pod: /var/run/secrets/kubernetes.io/serviceaccount/token). */
  token?: string;
  /** Bounded wait for readiness after a scale-up. */
  readyTimeoutMs?: number;
  /** Fallback polling interval, used only while the watch is broken [1000]. */
  pollIntervalMs?: number;
  requestTimeoutMs?: number;
  /** Server-side lifetime of one watch stream, after which it resumes [300]. */
  watchTimeoutSeconds?: number;
  /** Watch reconnect backoff [250 doubling to 10000]. */
  reconnectInitialMs?: number;
  reconnectMaxMs?: number;
  logger: Logger;
  fetch?: typeof fetch;
}

export interface DeploymentScale {
  replicas: number;
  readyReplicas: number;
}

export class KubernetesError extends Error {
  constructor(
    message: string,
    readonly status = 0,
  ) {
    super(message);
  }
}

/** Reads and patches a Deployment's scale; learns readiness from a watch (polls while it is broken). */
export class DeploymentScaler {
  readonly watch: DeploymentWatch;

  constructor(private readonly o: KubernetesOptions) {
    this.watch = new DeploymentWatch(o);
  }

  /** The watch's view while it streams; otherwise (starting, broken) a direct read. */
  async current(): Promise<DeploymentScale> {
    const w = this.watch;
    return w.phase === 'watching' && w.state ? w.state : this.read();
  }

  private url(sub = ''): string {
    const base = this.o.apiServer.replace(/\/$/, '');
    return `${base}/apis/apps/v1/namespaces/${encodeURIComponent(this.o.namespace)}/deployments/${encodeURIComponent(this.o.deployment)}${sub}`;
  }

  private async request(method: string, url: string, body?: unknown): Promise<Record<string, unknown>> {
    const what = `${method} deployment ${this.o.namespace}/${this.o.deployment}`;
    let res: Response;
    try {
      res = await (this.o.fetch ?? fetch)(url, {
        method,
        headers: {
          accept: 'application/json',
          ...(body ? { 'content-type': 'application/merge-patch+json' } : {}),
          ...(this.o.token ? { authorization: `Bearer ${this.o.token}` } : {}),
        },
        body: body ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(this.o.requestTimeoutMs ?? 5000),
      });
    } catch (e) {
      throw new KubernetesError(`${what}: the API server is unreachable: ${(e as Error).message}`);
    }
    const text = await res.text();
    if (!res.ok) {
      let reason = text.slice(0, 200);
      try {
        reason = String((JSON.parse(text) as { message?: string }).message ?? reason);
      } catch {
        /* not JSON */
      }
      throw new KubernetesError(`${what}: HTTP ${res.status}: ${reason}`, res.status);
    }
    try {
      return JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new KubernetesError(`${what}: the answer is not JSON`);
    }
  }

  /** spec.replicas from the scale subresource. */
  async readReplicas(): Promise<number> {
    const scale = (await this.request('GET', this.url('/scale'))) as { spec?: { replicas?: number } };
    return scale.spec?.replicas ?? 0;
  }

  /** spec.replicas from the scale subresource, status.readyReplicas from the Deployment. */
  async read(): Promise<DeploymentScale> {
    const scale = (await this.request('GET', this.url('/scale'))) as { spec?: { replicas?: number } };
    const dep = (await this.request('GET', this.url())) as { status?: { readyReplicas?: number } };
    return { replicas: scale.spec?.replicas ?? 0, readyReplicas: dep.status?.readyReplicas ?? 0 };
  }

  async setReplicas(replicas: number): Promise<void> {
    await this.request('PATCH', this.url('/scale'), { spec: { replicas } });
  }

  /**
   * Resolves once readyReplicas ≥ n; rejects after readyTimeoutMs. Waits on the watch's events;
   * reads the Deployment every pollIntervalMs only while the watch is broken.
   */
  async waitReady(n: number): Promise<DeploymentScale> {
    const timeoutMs = this.o.readyTimeoutMs ?? 120_000;
    const deadline = Date.now() + timeoutMs;
    const w = this.watch;
    const release = w.acquire();
    let last: DeploymentScale | null = null;
    try {
      for (;;) {
        if (w.phase === 'watching' && w.state) last = w.state;
        else if (w.phase === 'broken') last = await this.read().catch(() => last);
        if (last && last.readyReplicas >= n)
          return { replicas: last.replicas, readyReplicas: last.readyReplicas };
        const left = deadline - Date.now();
        if (left <= 0)
          throw new KubernetesError(
            `deployment ${this.o.namespace}/${this.o.deployment}: ${last?.readyReplicas ?? 0}/${n} replicas ready after ${timeoutMs} ms`,
          );
        await w.changed(w.phase === 'broken' ? Math.min(left, this.o.pollIntervalMs ?? 1000) : left);
      }
    } finally {
      release();
    }
  }
}

function emptyStats(): StatsSnapshot {
  return {
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
    sinceMs: Date.now(),
    custom: {},
  };
}

/** In-pod defaults: the service account token and the API server from the environment. */
export function inClusterOptions(env: NodeJS.ProcessEnv = process.env): {
  apiServer?: string;
  token?: string;
} {
  const host = env.KUBERNETES_SERVICE_HOST;
  let token: string | undefined;
  try {
    token = readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/token', 'utf8').trim();
  } catch {
    token = undefined;
  }
  return {
    apiServer: host ? `https://${host}:${env.KUBERNETES_SERVICE_PORT ?? '443'}` : undefined,
    token,
  };
}

/**
 * Each start() adds one replica and waits until it is ready; stop()/drain() remove one. The
 * controller's desired count thus becomes the Deployment's replicas. A restarted controller
 * adopts the replicas its predecessor added (up to the Deployment's current count) instead of
 * adding them again.
 */
export function createKubernetesProvider(
  o: KubernetesOptions,
): InstanceProvider & { scaler: DeploymentScaler } {
  const scaler = new DeploymentScaler(o);
  const log = o.logger.child({ provider: 'kubernetes', deployment: `${o.namespace}/${o.deployment}` });
  let live = 0;
  // One scale change at a time: read-modify-write of replicas must not interleave.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(f: () => Promise<T>): Promise<T> => {
    const next = queue.then(f, f);
    queue = next.catch(() => undefined);
    return next;
  };
  const scaleBy = (delta: number) =>
    serial(async () => {
      const replicas = await scaler.readReplicas();
      const target = Math.max(0, replicas + delta);
      await scaler.setReplicas(target);
      log.info(`scaled ${o.namespace}/${o.deployment} from ${replicas} to ${target} replicas`);
      return target;
    });
  const handle = (launch: { id: string; version: string }, startedAtMs: number): InstanceHandle => {
    live++;
    let stopped = false;
    // Each live handle keeps the watch running: readiness for status(), deletion below.
    const release = scaler.watch.acquire();
    const exitListeners: Array<(reason: string) => void> = [];
    const offDeleted = scaler.watch.onDeleted(() => {
      if (stopped) return;
      stopped = true;
      live--;
      offDeleted();
      release();
      for (const l of exitListeners) l(`deployment ${o.namespace}/${o.deployment} was deleted`);
    });
    const stop = async () => {
      if (stopped) return;
      stopped = true;
      live--;
      offDeleted();
      release();
      await scaleBy(-1);
    };
    return {
      id: launch.id,
      trafficAddress: '',
      pid: null,
      startedAtMs,
      adoption: { kind: 'kubernetes', id: launch.id, version: launch.version, startedAtMs },
      async status() {
        const s = await scaler.current();
        const status: InstanceStatus = s.readyReplicas >= live ? 'HEALTHY' : 'STARTING';
        return { status, lease: 'kubernetes', heartbeats: 0 };
      },
      stats: () => Promise.resolve(emptyStats()),
      apply: () => Promise.resolve(),
      async drain() {
        await stop();
        return 0;
      },
      stop: () => stop(),
      onUnexpectedExit(listener) {
        exitListeners.push(listener);
      },
    };
  };
  return {
    kind: 'kubernetes',
    scaler,
    async start(launch: InstanceLaunch): Promise<InstanceHandle> {
      // Held from before the scale change until the handle holds its own: one watch throughout.
      const release = scaler.watch.acquire();
      try {
        const target = await scaleBy(+1);
        await scaler.waitReady(target);
        return handle(launch, Date.now());
      } finally {
        release();
      }
    },
    adopt(r: AdoptionRecord): Promise<InstanceHandle> {
      if (r.kind !== 'kubernetes')
        return Promise.reject(
          new Error(`instance ${r.id} was started by the ${r.kind} provider, not kubernetes`),
        );
      // Serialised with scale changes: each adoption claims one of the replicas that exist now.
      return serial(async () => {
        const { replicas } = await scaler.read();
        if (live >= replicas)
          throw new Error(
            `deployment ${o.namespace}/${o.deployment} has ${replicas} replica(s), all accounted for`,
          );
        return handle(r, r.startedAtMs);
      });
    },
  };
}
