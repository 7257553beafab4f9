/**
 * The kubernetes instance provider against a Kubernetes API mocked with msw: reads and patches
 * the Deployment's scale subresource (merge patch, bearer token), waits for readiness (bounded),
 * scales down on stop, surfaces API errors; and a real controller (startModule) with
 * `provider: kubernetes` scales the Deployment to its instance count.
 */
import { http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { moduleProcessSchema, startModule } from '../../services/modules/runtime/main.js';
import { createKubernetesProvider } from '../../services/modules/runtime/providers/kubernetes.js';
import type { InstanceLaunch } from '../../services/modules/runtime/providers/provider.js';
import { createLogger } from '../../services/shared/logger.js';
import type { NlbApi } from '../../services/modules/runtime/nlb-api.js';

const API = 'https://k8s.test:6443';
const DEP = `${API}/apis/apps/v1/namespaces/mp/deployments/alb-instances`;
const logger = createLogger({ level: 'silent', name: 'k8s-test' });

/** A fake Deployment: spec.replicas via /scale, pods become ready after `readyAfterReads` GETs. */
function fakeDeployment(o: { replicas?: number; readyAfterReads?: number; failPatch?: number } = {}) {
  const state = {
    replicas: o.replicas ?? 0,
    ready: o.replicas ?? 0,
    patches: [] as unknown[],
    auth: new Set<string>(),
  };
  let reads = 0;
  server.use(
    http.get(`${DEP}/scale`, ({ request }) => {
      state.auth.add(request.headers.get('authorization') ?? '');
      return HttpResponse.json({
        kind: 'Scale',
        spec: { replicas: state.replicas },
        status: { replicas: state.ready },
      });
    }),
    http.patch(`${DEP}/scale`, async ({ request }) => {
      if (o.failPatch)
        return HttpResponse.json(
          { kind: 'Status', message: 'deployments.apps "alb-instances" is forbidden' },
          { status: o.failPatch },
        );
      expect(request.headers.get('content-type')).toBe('application/merge-patch+json');
      const body = (await request.json()) as { spec: { replicas: number } };
      state.patches.push(body);
      state.replicas = body.spec.replicas;
      if (state.ready > state.replicas) state.ready = state.replicas;
      reads = 0;
      return HttpResponse.json({ kind: 'Scale', spec: { replicas: state.replicas } });
    }),
    http.get(DEP, () => {
      if (++reads > (o.readyAfterReads ?? 1)) state.ready = state.replicas;
      return HttpResponse.json({
        kind: 'Deployment',
        status: { replicas: state.replicas, readyReplicas: state.ready },
      });
    }),
  );
  return state;
}

const server = setupServer();
beforeAll(() => server.listen({ onUnhandledRequest: 'error' }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

const launch = (id: string) => ({ id, version: '1.0' }) as InstanceLaunch;
const provider = (over: { readyTimeoutMs?: number } = {}) =>
  createKubernetesProvider({
    apiServer: API,
    namespace: 'mp',
    deployment: 'alb-instances',
    token: 'sa-token',
    pollIntervalMs: 20,
    readyTimeoutMs: over.readyTimeoutMs ?? 2000,
    logger,
  });

describe('kubernetes instance provider', () => {
  it('scales up through the scale subresource and waits until the new replica is ready', async () => {
    const dep = fakeDeployment({ replicas: 1, readyAfterReads: 3 });
    const p = provider();
    expect(p.kind).toBe('kubernetes');
    const h = await p.start(launch('alb-1'));
    expect(dep.patches).toEqual([{ spec: { replicas: 2 } }]);
    expect(dep.ready).toBe(2);
    expect(dep.auth).toEqual(new Set(['Bearer sa-token']));
    expect((await h.status()).status).toBe('HEALTHY');
    await h.stop(true, 1000);
    expect(dep.patches.at(-1)).toEqual({ spec: { replicas: 1 } });
    await h.stop(true, 1000); // idempotent
    expect(dep.patches).toHaveLength(2);
  });

  it('serialises concurrent scale changes (no lost update)', async () => {
    const dep = fakeDeployment();
    const p = provider();
    const handles = await Promise.all([p.start(launch('a')), p.start(launch('b')), p.start(launch('c'))]);
    expect(dep.replicas).toBe(3);
    await Promise.all(handles.map((h) => h.drain(1000)));
    expect(dep.replicas).toBe(0);
  });

  it('gives up, bounded, when the replicas never become ready', async () => {
    fakeDeployment({ readyAfterReads: 1_000_000 });
    const started = Date.now();
    await expect(provider({ readyTimeoutMs: 200 }).start(launch('x'))).rejects.toThrow(
      /0\/1 replicas ready after 200 ms/,
    );
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('surfaces an API error with its status message', async () => {
    fakeDeployment({ failPatch: 403 });
    await expect(provider().start(launch('x'))).rejects.toThrow(
      /HTTP 403: deployments.apps "alb-instances" is forbidden/,
    );
  });

  it('a controller with provider kubernetes scales the Deployment to its instance count', async () => {
    const dep = fakeDeployment({ readyAfterReads: 1 });
    const nlbApi = (): NlbApi =>
      new Proxy({} as NlbApi, {
        get: (_t, prop) => (prop === 'close' ? () => undefined : () => Promise.resolve({ success: true })),
      });
    const handle = await startModule(
      moduleProcessSchema.parse({
        type: 'alb',
        version: '1.0',
        instances: 2,
        provider: 'kubernetes',
        kubernetes: { apiServer: API, namespace: 'mp', deployment: 'alb-instances' },
        grpc: { host: '127.0.0.1', port: 0 },
        dataDir: '',
        logLevel: 'silent',
      }),
      { logger, nlbApi },
    );
    try {
      await expect.poll(() => dep.replicas, { timeout: 5000, interval: 50 }).toBe(2);
    } finally {
      await handle.stop(false);
    }
    await expect.poll(() => dep.replicas, { timeout: 5000, interval: 50 }).toBe(0);
  });
});
