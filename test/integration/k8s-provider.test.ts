/**
 * The kubernetes instance provider against a Kubernetes API mocked with msw: reads and patches
 * the Deployment's scale subresource (merge patch, bearer token), learns readiness and deletion
 * from a watch stream (`?watch=1`, newline-delimited JSON events) rather than polling, resumes a
 * watch the server ended from its resourceVersion, re-reads on 410 Gone, reconnects with backoff
 * and polls only while the watch is broken; scales down on stop, surfaces API errors; and a real
 * controller (startModule) with `provider: kubernetes` scales the Deployment to its instance count.
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
const DEPLOYMENTS = `${API}/apis/apps/v1/namespaces/mp/deployments`;
const DEP = `${DEPLOYMENTS}/alb-instances`;
const logger = createLogger({ level: (process.env.K8S_TEST_LOG as 'silent') ?? 'silent', name: 'k8s-test' });

/** How the fake answers one watch request (in order; `stream` once the plan is used up). */
type WatchStep = 'stream' | 'http410' | 'gone-event' | 'http500' | 'end';

/**
 * A fake Deployment: spec.replicas via /scale, pods ready `readyAfterMs` after a scale change
 * (never when null), and watch streams that receive every change as an event.
 */
function fakeDeployment(
  o: { replicas?: number; readyAfterMs?: number | null; failPatch?: number; watch?: WatchStep[] } = {},
) {
  const encoder = new TextEncoder();
  const streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const state = {
    replicas: o.replicas ?? 0,
    ready: o.replicas ?? 0,
    rv: 100,
    exists: true,
    patches: [] as unknown[],
    auth: new Set<string>(),
    /** Plain GETs of the Deployment (initial read, relists, fallback polls). */
    gets: 0,
    watches: [] as Array<{ url: URL; atMs: number; step: WatchStep }>,
    plan: [...(o.watch ?? [])],
    streams,
  };
  const object = () => ({
    kind: 'Deployment',
    metadata: { name: 'alb-instances', resourceVersion: String(state.rv) },
    spec: { replicas: state.replicas },
    status: { replicas: state.replicas, readyReplicas: state.ready },
  });
  const send = (type: string, obj: unknown) => {
    for (const c of streams) c.enqueue(encoder.encode(`${JSON.stringify({ type, object: obj })}\n`));
  };
  const changed = () => {
    state.rv++;
    send('MODIFIED', object());
  };
  let readyTimer: NodeJS.Timeout | undefined;
  const scheduleReady = () => {
    clearTimeout(readyTimer);
    if (o.readyAfterMs === null) return;
    readyTimer = setTimeout(() => {
      if (state.ready === state.replicas) return;
      state.ready = state.replicas;
      changed();
    }, o.readyAfterMs ?? 30);
  };
  const ctl = {
    state,
    /** kubectl delete deployment. */
    delete() {
      state.exists = false;
      state.rv++;
      send('DELETED', object());
    },
    /** The pods become ready now. */
    ready() {
      state.ready = state.replicas;
      changed();
    },
    closeAll() {
      clearTimeout(readyTimer);
      for (const c of streams) c.close();
      streams.clear();
    },
  };
  fakes.push(ctl);
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
      changed();
      scheduleReady();
      return HttpResponse.json({ kind: 'Scale', spec: { replicas: state.replicas } });
    }),
    http.get(DEP, ({ request }) => {
      state.auth.add(request.headers.get('authorization') ?? '');
      state.gets++;
      if (!state.exists) return HttpResponse.json({ kind: 'Status', code: 404 }, { status: 404 });
      return HttpResponse.json(object());
    }),
    http.get(DEPLOYMENTS, ({ request }) => {
      const url = new URL(request.url);
      expect(url.searchParams.get('watch')).toBe('1');
      state.auth.add(request.headers.get('authorization') ?? '');
      const step = state.plan.shift() ?? 'stream';
      state.watches.push({ url, atMs: Date.now(), step });
      if (step === 'http410')
        return HttpResponse.json({ kind: 'Status', code: 410, reason: 'Expired' }, { status: 410 });
      if (step === 'http500')
        return HttpResponse.json({ kind: 'Status', message: 'etcd hiccup' }, { status: 500 });
      let own: ReadableStreamDefaultController<Uint8Array> | undefined;
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          own = c;
          if (step === 'gone-event') {
            c.enqueue(
              encoder.encode(
                `${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, message: 'too old resource version' } })}\n`,
              ),
            );
            c.close();
          } else if (step === 'end') {
            // The server's timeoutSeconds ran out: a bookmark, then the stream ends.
            c.enqueue(
              encoder.encode(
                `${JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Deployment', metadata: { resourceVersion: String(state.rv) } } })}\n`,
              ),
            );
            c.close();
          } else {
            // Like the API server: changes after the requested version first (compacted here to
            // the current object), none when the watcher is up to date.
            const from = url.searchParams.get('resourceVersion');
            if (!from || Number(from) < state.rv)
              c.enqueue(
                encoder.encode(
                  `${JSON.stringify({ type: from ? 'MODIFIED' : 'ADDED', object: object() })}\n`,
                ),
              );
            streams.add(c);
            request.signal.addEventListener('abort', () => {
              streams.delete(c);
              try {
                c.close();
              } catch {
                /* already closed */
              }
            });
          }
        },
        cancel() {
          if (own) streams.delete(own);
        },
      });
      return new HttpResponse(body, { headers: { 'content-type': 'application/json' } });
    }),
  );
  return ctl;
}

const server = setupServer();
const fakes: Array<{ closeAll(): void }> = [];
beforeAll(() => server.listen({ onUnhandledRequest: 'error' }));
afterEach(() => {
  for (const f of fakes.splice(0)) f.closeAll();
  server.resetHandlers();
});
afterAll(() => server.close());

const launch = (id: string) => ({ id, version: '1.0' }) as InstanceLaunch;
const provider = (over: { readyTimeoutMs?: number; pollIntervalMs?: number } = {}) =>
  createKubernetesProvider({
    apiServer: API,
    namespace: 'mp',
    deployment: 'alb-instances',
    token: 'sa-token',
    pollIntervalMs: over.pollIntervalMs ?? 20,
    readyTimeoutMs: over.readyTimeoutMs ?? 3000,
    reconnectInitialMs: 40,
    reconnectMaxMs: 400,
    logger,
  });

describe('kubernetes instance provider', () => {
  it('scales up through the scale subresource and learns readiness from the watch, not by polling', async () => {
    const dep = fakeDeployment({ replicas: 1, readyAfterMs: 100 });
    const p = provider();
    expect(p.kind).toBe('kubernetes');
    const h = await p.start(launch('alb-1'));
    expect(dep.state.patches).toEqual([{ spec: { replicas: 2 } }]);
    expect(dep.state.ready).toBe(2);
    expect(dep.state.auth).toEqual(new Set(['Bearer sa-token']));
    // One GET for the state and resourceVersion, then one watch from that version.
    expect(dep.state.gets).toBe(1);
    expect(dep.state.watches).toHaveLength(1);
    const q = dep.state.watches[0].url.searchParams;
    expect(q.get('fieldSelector')).toBe('metadata.name=alb-instances');
    expect(q.get('resourceVersion')).toBe('100');
    expect(q.get('allowWatchBookmarks')).toBe('true');
    expect(Number(q.get('timeoutSeconds'))).toBeGreaterThan(0);
    // status() answers from the watch: no further GETs of the Deployment.
    expect((await h.status()).status).toBe('HEALTHY');
    expect(dep.state.gets).toBe(1);
    await h.stop(true, 1000);
    expect(dep.state.patches.at(-1)).toEqual({ spec: { replicas: 1 } });
    await h.stop(true, 1000); // idempotent
    expect(dep.state.patches).toHaveLength(2);
    // No instance left: the watch is closed.
    await expect.poll(() => dep.state.streams.size, { timeout: 2000, interval: 20 }).toBe(0);
  });

  it('status() follows readiness events: a pod that stops being ready makes the instance STARTING', async () => {
    const dep = fakeDeployment({ readyAfterMs: 10 });
    const h = await provider().start(launch('alb-1'));
    expect((await h.status()).status).toBe('HEALTHY');
    dep.state.ready = 0;
    dep.state.rv++;
    for (const c of dep.state.streams)
      c.enqueue(
        new TextEncoder().encode(
          `${JSON.stringify({ type: 'MODIFIED', object: { metadata: { resourceVersion: String(dep.state.rv) }, spec: { replicas: 1 }, status: { readyReplicas: 0 } } })}\n`,
        ),
      );
    await expect
      .poll(async () => (await h.status()).status, { timeout: 2000, interval: 20 })
      .toBe('STARTING');
    dep.ready();
    await expect.poll(async () => (await h.status()).status, { timeout: 2000, interval: 20 }).toBe('HEALTHY');
    expect(dep.state.gets).toBe(1);
    await h.stop(true, 1000);
  });

  it('serialises concurrent scale changes (no lost update)', async () => {
    const dep = fakeDeployment();
    const p = provider();
    const handles = await Promise.all([p.start(launch('a')), p.start(launch('b')), p.start(launch('c'))]);
    expect(dep.state.replicas).toBe(3);
    await Promise.all(handles.map((h) => h.drain(1000)));
    expect(dep.state.replicas).toBe(0);
  });

  it('gives up, bounded, when the replicas never become ready (without polling meanwhile)', async () => {
    const dep = fakeDeployment({ readyAfterMs: null });
    const started = Date.now();
    await expect(provider({ readyTimeoutMs: 300 }).start(launch('x'))).rejects.toThrow(
      /0\/1 replicas ready after 300 ms/,
    );
    expect(Date.now() - started).toBeLessThan(5000);
    expect(dep.state.gets).toBe(1);
  });

  it('surfaces an API error with its status message', async () => {
    fakeDeployment({ failPatch: 403 });
    await expect(provider().start(launch('x'))).rejects.toThrow(
      /HTTP 403: deployments.apps "alb-instances" is forbidden/,
    );
  });

  it('re-reads the Deployment and watches again when the resourceVersion has expired (HTTP 410)', async () => {
    const dep = fakeDeployment({ readyAfterMs: 50, watch: ['http410'] });
    const p = provider();
    const h = await p.start(launch('a'));
    expect(dep.state.ready).toBe(1);
    expect(dep.state.watches.map((w) => w.step)).toEqual(['http410', 'stream']);
    expect(dep.state.gets).toBe(2); // initial read + relist
    expect(p.scaler.watch.counts.relists).toBe(1);
    await h.stop(true, 1000);
  });

  it('re-reads on a 410 ERROR event inside the stream', async () => {
    const dep = fakeDeployment({ readyAfterMs: 50, watch: ['gone-event'] });
    const p = provider();
    const h = await p.start(launch('a'));
    expect(dep.state.watches.map((w) => w.step)).toEqual(['gone-event', 'stream']);
    expect(dep.state.gets).toBe(2);
    expect(p.scaler.watch.counts.relists).toBe(1);
    await h.stop(true, 1000);
  });

  it('resumes a watch the server ended from the last resourceVersion, without re-reading', async () => {
    const dep = fakeDeployment({ readyAfterMs: 50, watch: ['end'] });
    const h = await provider().start(launch('a'));
    expect(dep.state.watches.map((w) => w.step)).toEqual(['end', 'stream']);
    const [first, second] = dep.state.watches.map((w) => w.url.searchParams.get('resourceVersion'));
    expect(first).toBe('100');
    // The bookmark carried the version at the time; the resumed watch starts there.
    expect(Number(second)).toBeGreaterThanOrEqual(100);
    expect(dep.state.gets).toBe(1);
    await h.stop(true, 1000);
  });

  it('while the watch is broken it reconnects with growing backoff and polls; once back, polling stops', async () => {
    const dep = fakeDeployment({
      readyAfterMs: 100,
      watch: ['http500', 'http500', 'http500', 'http500'],
    });
    const p = provider({ pollIntervalMs: 30 });
    const h = await p.start(launch('a'));
    expect(dep.state.ready).toBe(1);
    // Readiness arrived while the watch was failing: found by the fallback poll.
    expect(dep.state.gets).toBeGreaterThan(1);
    await expect.poll(() => p.scaler.watch.phase, { timeout: 5000, interval: 20 }).toBe('watching');
    const failed = dep.state.watches.filter((w) => w.step === 'http500');
    expect(failed).toHaveLength(4);
    // Backoff 40 ms doubling (±20 % jitter): each gap at least 0.8 × its nominal delay.
    const gaps = failed.slice(1).map((w, i) => w.atMs - failed[i].atMs);
    gaps.forEach((gap, i) => expect(gap).toBeGreaterThanOrEqual(0.8 * 40 * 2 ** i - 5));
    expect(p.scaler.watch.counts.failures).toBe(4);
    // Watching again: no more polling.
    const gets = dep.state.gets;
    await new Promise((r) => setTimeout(r, 200));
    expect((await h.status()).status).toBe('HEALTHY');
    expect(dep.state.gets).toBe(gets);
    await h.stop(true, 1000);
  });

  it('reports its instances as ended when the Deployment is deleted', async () => {
    const dep = fakeDeployment({ readyAfterMs: 10 });
    const p = provider();
    const [a, b] = await Promise.all([p.start(launch('a')), p.start(launch('b'))]);
    const reasons: string[] = [];
    a.onUnexpectedExit((r) => reasons.push(`a: ${r}`));
    b.onUnexpectedExit((r) => reasons.push(`b: ${r}`));
    dep.delete();
    await expect
      .poll(() => reasons.sort(), { timeout: 2000, interval: 20 })
      .toEqual(['a: deployment mp/alb-instances was deleted', 'b: deployment mp/alb-instances was deleted']);
    // Already gone: stopping them patches nothing.
    const patches = dep.state.patches.length;
    await a.stop(true, 1000);
    expect(dep.state.patches).toHaveLength(patches);
    await expect.poll(() => dep.state.streams.size, { timeout: 2000, interval: 20 }).toBe(0);
  });

  it('a controller with provider kubernetes scales the Deployment to its instance count', async () => {
    const dep = fakeDeployment({ readyAfterMs: 10 });
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
      await expect.poll(() => dep.state.replicas, { timeout: 5000, interval: 50 }).toBe(2);
    } finally {
      await handle.stop(false);
    }
    await expect.poll(() => dep.state.replicas, { timeout: 5000, interval: 50 }).toBe(0);
    await expect.poll(() => dep.state.streams.size, { timeout: 5000, interval: 50 }).toBe(0);
  });
});
