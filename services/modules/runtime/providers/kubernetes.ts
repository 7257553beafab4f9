/**
 * The `kubernetes` instance provider: instead of spawning processes, a controller scales a
 * Kubernetes Deployment of instance pods through the Deployment's `scale` subresource (read with
 * GET, change with a JSON merge patch) and waits, bounded, until the Deployment reports that many
 * ready replicas. The pods register themselves with the NLB (they run `mpctl serve`-style
 * instances with their own ids); the handles here only count replicas. Talks plain HTTPS to the
 * API server with a bearer token (in a pod: the service account token and CA).
 */
import { readFileSync } from 'node:fs';
import type { Logger } from '../../../shared/logger.js';
import type { InstanceStatus } from '../instance.js';
import type { StatsSnapshot } from '../stats.js';
import type { InstanceHandle, InstanceLaunch, InstanceProvider } from './provider.js';

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
  pollIntervalMs?: number;
  requestTimeoutMs?: number;
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

/** Reads and patches a Deployment's scale; watches readiness by bounded polling. */
export class DeploymentScaler {
  constructor(private readonly o: KubernetesOptions) {}

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

  /** spec.replicas from the scale subresource, status.readyReplicas from the Deployment. */
  async read(): Promise<DeploymentScale> {
    const scale = (await this.request('GET', this.url('/scale'))) as { spec?: { replicas?: number } };
    const dep = (await this.request('GET', this.url())) as { status?: { readyReplicas?: number } };
    return { replicas: scale.spec?.replicas ?? 0, readyReplicas: dep.status?.readyReplicas ?? 0 };
  }

  async setReplicas(replicas: number): Promise<void> {
    await this.request('PATCH', this.url('/scale'), { spec: { replicas } });
  }

  /** Resolves once readyReplicas ≥ n; rejects after readyTimeoutMs. */
  async waitReady(n: number): Promise<DeploymentScale> {
    const deadline = Date.now() + (this.o.readyTimeoutMs ?? 120_000);
    for (;;) {
      const s = await this.read();
      if (s.readyReplicas >= n) return s;
      if (Date.now() >= deadline)
        throw new KubernetesError(
          `deployment ${this.o.namespace}/${this.o.deployment}: ${s.readyReplicas}/${n} replicas ready after ${this.o.readyTimeoutMs ?? 120_000} ms`,
        );
      await new Promise((r) => setTimeout(r, this.o.pollIntervalMs ?? 1000));
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
 * controller's desired count thus becomes the Deployment's replicas.
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
      const { replicas } = await scaler.read();
      const target = Math.max(0, replicas + delta);
      await scaler.setReplicas(target);
      log.info(`scaled ${o.namespace}/${o.deployment} from ${replicas} to ${target} replicas`);
      return target;
    });
  return {
    kind: 'kubernetes',
    scaler,
    async start(launch: InstanceLaunch): Promise<InstanceHandle> {
      const target = await scaleBy(+1);
      await scaler.waitReady(target);
      live++;
      const startedAtMs = Date.now();
      let stopped = false;
      const stop = async () => {
        if (stopped) return;
        stopped = true;
        live--;
        await scaleBy(-1);
      };
      return {
        id: launch.id,
        trafficAddress: '',
        pid: null,
        startedAtMs,
        async status() {
          const s = await scaler.read();
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
        onUnexpectedExit() {},
      };
    },
  };
}
