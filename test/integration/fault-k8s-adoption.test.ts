/**
 * Controller restart with the kubernetes provider (Kubernetes API mocked with msw): a controller
 * that died without stopping leaves its replicas; the next one, on the same data dir, adopts
 * them instead of adding its desired count on top, and adopts no more than the Deployment has.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { albPlugin } from '../../services/modules/alb/plugin.js';
import { createControllerFileStore } from '../../services/modules/runtime/controller-state.js';
import { ModuleController } from '../../services/modules/runtime/controller.js';
import { createKubernetesProvider } from '../../services/modules/runtime/providers/kubernetes.js';
import { createSystemClock } from '../../services/shared/clock.js';
import { memoryLogger } from '../../services/shared/logger.js';
import { createRng } from '../../services/shared/rng.js';

const API = 'https://k8s.test:6443';
const DEP = `${API}/apis/apps/v1/namespaces/mp/deployments/alb-instances`;
const server = setupServer();
const dirs: string[] = [];
beforeAll(() => server.listen({ onUnhandledRequest: 'error' }));
afterEach(() => {
  server.resetHandlers();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
afterAll(() => server.close());

/** A Deployment whose replicas are always ready; counts PATCHes. No watch: the provider polls. */
function deployment(initial = 0) {
  const state = { replicas: initial, patches: 0 };
  server.use(
    http.get(`${DEP}/scale`, () => HttpResponse.json({ spec: { replicas: state.replicas } })),
    http.patch(`${DEP}/scale`, async ({ request }) => {
      state.replicas = ((await request.json()) as { spec: { replicas: number } }).spec.replicas;
      state.patches++;
      return HttpResponse.json({ spec: { replicas: state.replicas } });
    }),
    http.get(DEP, () => HttpResponse.json({ status: { readyReplicas: state.replicas } })),
    http.get(`${API}/apis/apps/v1/namespaces/mp/deployments`, () =>
      HttpResponse.json({ kind: 'Status', message: 'watch unavailable here' }, { status: 503 }),
    ),
  );
  return state;
}

function controller(dataDir: string) {
  const logger = memoryLogger();
  const provider = createKubernetesProvider({
    apiServer: API,
    namespace: 'mp',
    deployment: 'alb-instances',
    pollIntervalMs: 10,
    readyTimeoutMs: 2000,
    logger,
  });
  const c = new ModuleController({
    plugin: albPlugin,
    version: '1.0',
    clock: createSystemClock(),
    rng: createRng('k8s-adoption'),
    logger,
    provider,
    store: createControllerFileStore(dataDir, 'ALB', '1.0'),
    host: '127.0.0.1',
    heartbeatIntervalMs: 1000,
    initialInstances: 2,
  });
  /** What a crash leaves behind: nothing of this process (its watch included), the replicas. */
  const crash = () => provider.scaler.watch.close();
  return { c, logger, crash };
}

it('a restarted controller adopts the replicas its predecessor added, then scales from there', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mp-k8s-adopt-'));
  dirs.push(dataDir);
  const dep = deployment();
  const first = controller(dataDir);
  await first.c.start('127.0.0.1:50051');
  expect(dep.replicas).toBe(2);
  const ids = [...first.c.instances.keys()].sort();
  first.crash();

  // The first controller dies (no stop); the second starts on the same data dir.
  const patches = dep.patches;
  const second = controller(dataDir);
  await second.c.start('127.0.0.1:50051');
  expect([...second.c.instances.keys()].sort()).toEqual(ids);
  expect(dep.replicas).toBe(2);
  expect(dep.patches).toBe(patches);

  await second.c.scale(3, undefined, true);
  expect(dep.replicas).toBe(3);
  await second.c.stop(true, 1000);
  expect(dep.replicas).toBe(0);
});

it('adopts no more replicas than the Deployment has (someone scaled it down meanwhile)', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mp-k8s-adopt-'));
  dirs.push(dataDir);
  const dep = deployment();
  const first = controller(dataDir);
  await first.c.start('127.0.0.1:50051');
  first.crash();
  dep.replicas = 1;

  const second = controller(dataDir);
  await second.c.start('127.0.0.1:50051');
  // One adopted, one started anew: the Deployment is back at the desired two.
  expect(second.c.instances.size).toBe(2);
  expect(dep.replicas).toBe(2);
  expect(second.logger.lines.some((l) => /did not adopt instance .*all accounted for/.test(l.msg))).toBe(
    true,
  );
  await second.c.stop(false, 1000);
});
