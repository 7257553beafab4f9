/**
 * NLB restart (docs/dataplane.md, DESIGN.md §3): the NLB runs as a real `mpctl serve nlb`
 * process with an HTTP listener in front of an ALB instance and a real backend.
 *
 * - SIGTERM: the listener stops accepting at once (a new connection is refused) while a request
 *   in flight finishes and gets its answer; one that outlives the drain grace is cut at it; the
 *   process exits 0 once the drain is over.
 * - Restarted on the same ports and data dir: the listener comes back from the persisted config,
 *   the instance re-registers on its next heartbeat, and traffic flows again.
 */
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { startBackend, type TestBackend } from './alb-fixture.js';
import { httpGet, updateNlbConfig } from './fault-fixture.js';
import { createModuleHarness, freePort, HealthStatus, Protocol, sleep, waitFor } from './module-fixture.js';
import { spawnNlbProcess, type NlbProcess } from './nlb-process-fixture.js';

const h = createModuleHarness();
const procs: NlbProcess[] = [];
let backend: TestBackend | undefined;

afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.kill('SIGKILL')));
  await h.closeAll();
  await backend?.close();
});

/** Whether 127.0.0.1:port accepts a TCP connection: 'connected' or the error code. */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
}

it('SIGTERM drains in-flight requests and refuses new ones; after a restart the module re-registers and traffic flows', async () => {
  backend = await startBackend('origin');
  const dataDir = h.tempDir();
  const configFile = join(h.tempDir(), 'nlb.json');
  const GRACE_MS = 4_000;
  writeFileSync(configFile, JSON.stringify({ dataplane: { drainGraceMs: GRACE_MS } }));
  const opts = { dataDir, heartbeatIntervalSeconds: 1, extraArgs: ['--config', configFile] };
  const first = await spawnNlbProcess(opts, (p) => procs.push(p));
  const listenerPort = await freePort();
  await updateNlbConfig(first.target, 'listeners', {
    listeners: [{ name: 'web', address: '127.0.0.1', port: listenerPort, mode: 'http' }],
  });

  const mod = await h.startModule({ nlb: first.target, instances: 1 });
  const cfg = { backends: [{ name: 'origin', address: backend.address }] };
  expect(
    (
      await mod.rpc('updateConfig', {
        config: { configType: 'module', configData: Buffer.from(JSON.stringify(cfg)) },
      })
    ).success,
  ).toBe(true);
  const web = { routeId: 'shop', protocol: Protocol.PROTOCOL_HTTP, destinationPattern: 'shop.example.com' };
  expect((await mod.rpc('updateRoutes', { routes: [web] })).success).toBe(true);
  // Generous under a loaded machine (the NLB and its data-plane workers run from source); on a
  // timeout, say what the NLB saw.
  try {
    await waitFor('traffic through the NLB', () => httpGet(listenerPort, '/').then(() => true), 20_000);
  } catch (e) {
    const nlb = h.nlbClient(first.target);
    const modules = await nlb('listModules', {}).catch((x: Error) => x.message);
    const routes = await nlb('getRoutingTable', {}).catch((x: Error) => x.message);
    throw new Error(
      `${(e as Error).message}\nmodules: ${JSON.stringify(modules)}\nroutes: ${JSON.stringify(routes)}\nNLB output:\n${first.output()}`,
      { cause: e },
    );
  }

  // ---- Two requests in flight (2.5 s and 10 s at the backend), then SIGTERM.
  const settle = <T>(p: Promise<T>) =>
    p.then(
      (v) => ({ ok: true as const, v, at: Date.now() }),
      (e: Error) => ({ ok: false as const, e, at: Date.now() }),
    );
  const short = settle(httpGet(listenerPort, '/slow?ms=2500', { timeoutMs: 20_000 }));
  let shortDone = false;
  void short.then(() => (shortDone = true));
  const long = settle(httpGet(listenerPort, '/slow?ms=10000', { timeoutMs: 20_000 }));
  await sleep(300);
  const termAt = Date.now();
  first.child.kill('SIGTERM');
  await waitFor(
    'the listener to refuse new connections',
    async () => (await tryConnect(listenerPort)) === 'ECONNREFUSED',
    3_000,
    20,
  );
  expect(shortDone, 'refusing while the request in flight still runs').toBe(false);
  const s = await short;
  expect(s.ok, s.ok ? '' : s.e.message).toBe(true);
  expect(s.ok && s.v.status).toBe(200);
  const l = await long;
  expect(l.ok, 'the request outliving the drain grace is cut').toBe(false);
  expect(l.at - termAt).toBeGreaterThanOrEqual(GRACE_MS - 100);
  expect(l.at - termAt).toBeLessThan(10_000 - 300);
  const exit = await first.exited;
  expect(exit).toEqual({ code: 0, signal: null });
  console.log(
    `NLB drain: short request answered ${s.at - termAt} ms after SIGTERM, long one cut after ${l.at - termAt} ms (grace ${GRACE_MS} ms)`,
  );

  // ---- Restart on the same ports: listener from the data dir, instance back within an interval.
  const second = await spawnNlbProcess({ ...opts, grpcPort: first.grpcPort }, (p) => procs.push(p));
  const nlb = h.nlbClient(second.target);
  const [id] = (await mod.rpc('getInstances', {})).instances.map((i) => i.instanceId);
  await waitFor(
    'the instance to re-register',
    async () =>
      (await nlb('listModules', { statusFilter: HealthStatus.HEALTH_STATUS_HEALTHY })).modules.some(
        (m) => m.instanceId === id,
      ),
    5_000,
  );
  const again = await waitFor(
    'traffic again',
    () => httpGet(listenerPort, '/').catch(() => undefined),
    5_000,
  );
  expect(JSON.parse(again.body)).toMatchObject({ backend: 'origin' });
}, 60_000);
