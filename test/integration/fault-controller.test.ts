/**
 * Module controller crash (docs/module-runtime.md "Controller restart and adoption"): the
 * controller runs as a real `mpctl serve module` process with the process provider, the NLB
 * forwards HTTP through its listener to the ALB instances, which proxy to a real backend.
 *
 * - SIGKILL the controller under load: its instances keep serving (no request fails) and stay
 *   in the NLB; restarted on the same data dir it adopts them (same ids and pids, no extra
 *   instances), Scale still works, and a graceful stop still stops adopted instances.
 * - A lost instance is replaced at restart while the survivor is adopted.
 * - An orphan whose controller never comes back drains, leaves the NLB and exits after its
 *   orphan period.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { NLBServiceClient } from '../../proto/gen/marchproxy/nlb.js';
import { nlbProcessSchema, startNlb, type NlbHandle } from '../../services/nlb/main.js';
import { createClientConnection, createNlbClient } from '../../services/shared/grpc/client.js';
import { startBackend, type TestBackend } from './alb-fixture.js';
import { spawnController, startLoad, httpGet, type ControllerProcess } from './fault-fixture.js';
import {
  createModuleHarness,
  freePort,
  nlbRpcOf,
  HealthStatus,
  pidAlive,
  Protocol,
  sleep,
  waitFor,
  type ModuleRpc,
  type NlbRpc,
} from './module-fixture.js';

const h = createModuleHarness();
const controllers: ControllerProcess[] = [];
let backend: TestBackend;
let nlb: NlbHandle;
let nlbRpc: NlbRpc;
let nlbClient: NLBServiceClient;
let listenerPort: number;

beforeAll(async () => {
  backend = await startBackend('origin');
  nlb = await startNlb(
    nlbProcessSchema.parse({
      grpc: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      dataDir: '',
      logLevel: 'silent',
      heartbeatIntervalSeconds: 1,
      listeners: [{ name: 'web', address: '127.0.0.1', port: 0, mode: 'http' }],
    }),
  );
  // Not the harness's client: closeAll() after each test closes those.
  nlbClient = createNlbClient(
    createClientConnection({ target: `127.0.0.1:${nlb.grpcPort}`, timeoutMs: 5_000 }),
  );
  nlbRpc = nlbRpcOf(nlbClient);
  listenerPort = nlb.dataplane.addresses().find((a) => a.name === 'web')!.port;
});

afterEach(async () => {
  await Promise.all(controllers.splice(0).map((c) => c.kill('SIGKILL')));
  await h.closeAll();
});

afterAll(async () => {
  nlbClient?.close();
  await nlb?.stop();
  await backend?.close();
});

/** Managed instances (id → pid) as GetInstances reports them. */
async function instances(rpc: ModuleRpc): Promise<Map<string, number>> {
  const r = await rpc('getInstances', {});
  return new Map(r.instances.map((i) => [i.instanceId, Number(i.metadata.pid)]));
}

/** HEALTHY instances at the NLB. */
async function healthyAtNlb(): Promise<string[]> {
  const r = await nlbRpc('listModules', { statusFilter: HealthStatus.HEALTH_STATUS_HEALTHY });
  return r.modules.map((m) => m.instanceId).sort();
}

/** Starts the controller process and waits until it runs `n` instances. */
async function startController(port: number, dataDir: string, n: number, orphanTimeoutSeconds = 60) {
  const c = spawnController({
    nlb: `127.0.0.1:${nlb.grpcPort}`,
    port,
    dataDir,
    instances: n,
    orphanTimeoutSeconds,
  });
  controllers.push(c);
  const { rpc } = h.moduleClient(`127.0.0.1:${port}`);
  const ids = await waitFor(
    `the controller to run ${n} instance(s)`,
    async () => {
      if (c.child.exitCode !== null) throw new Error(`the controller exited:\n${c.output()}`);
      const m = await instances(rpc);
      return m.size === n && m;
    },
    30_000,
    100,
  );
  for (const pid of ids.values()) h.trackPid(pid);
  return { c, rpc, ids };
}

/** Points the ALB at the backend and routes shop.example.com to it. */
async function configure(rpc: ModuleRpc): Promise<void> {
  const cfg = { backends: [{ name: 'origin', address: backend.address }] };
  const u = await rpc('updateConfig', {
    config: { configType: 'module', configData: Buffer.from(JSON.stringify(cfg)) },
  });
  expect(u.success, u.message).toBe(true);
  const r = await rpc('updateRoutes', {
    routes: [{ routeId: 'shop', protocol: Protocol.PROTOCOL_HTTP, destinationPattern: 'shop.example.com' }],
  });
  expect(r.success, r.message).toBe(true);
}

it('a SIGKILLed controller leaves its instances serving; restarted, it adopts them, and Scale and stop still work', async () => {
  const dataDir = h.tempDir();
  const port = await freePort();
  const first = await startController(port, dataDir, 2);
  await configure(first.rpc);
  const ids = [...first.ids.keys()].sort();
  await waitFor(
    'both instances healthy at the NLB',
    async () => (await healthyAtNlb()).join() === ids.join(),
  );
  await waitFor('traffic through the NLB', () => httpGet(listenerPort, '/').then(() => true), 10_000);

  // The instance list a restart adopts from is private to the user (it holds the secrets).
  const recordsFile = join(dataDir, 'controller-alb-1.0.instances.json');
  expect(statSync(recordsFile).mode & 0o777).toBe(0o600);
  const records = (
    JSON.parse(readFileSync(recordsFile, 'utf8')) as { instances: Array<{ id: string; pid: number }> }
  ).instances;
  expect(records.map((r) => [r.id, r.pid]).sort()).toEqual([...first.ids.entries()].sort());

  const load = startLoad(listenerPort, { workers: 4 });
  await sleep(700);
  const beforeKill = load.succeeded();
  await first.c.kill('SIGKILL');
  await sleep(2_500); // > 2 heartbeat intervals without a controller
  const whileDown = load.succeeded() - beforeKill;
  for (const pid of first.ids.values()) expect(pidAlive(pid), `instance pid ${pid} survives`).toBe(true);
  expect(await healthyAtNlb()).toEqual(ids);

  // ---- Restart on the same port and data dir: the same instances, adopted.
  const second = await startController(port, dataDir, 2);
  expect([...second.ids.entries()].sort()).toEqual([...first.ids.entries()].sort());
  await sleep(1_000);
  await load.stop();
  const failed = load.failed();
  console.log(
    `controller kill under load: ${load.outcomes.length} requests, ${load.succeeded()} ok (${whileDown} while the controller was down), ${failed.length} failed`,
  );
  expect(failed, JSON.stringify(failed.slice(0, 5))).toEqual([]);
  expect(whileDown).toBeGreaterThan(0);
  expect(await healthyAtNlb()).toEqual(ids);
  const status = await second.rpc('getStatus', {});
  expect(status.details).toMatchObject({ desired_instances: '2', running_instances: '2' });
  // The adopted instances took the restarted controller's config pushes.
  const limit = {
    limitId: 'per-client',
    target: '*',
    requestsPerSecond: 1000,
    burstSize: 1000,
    enabled: true,
  };
  expect((await second.rpc('setRateLimit', { limit })).success).toBe(true);

  // ---- Scale still works: a third instance with a fresh id, then back to one.
  const up = await second.rpc('scale', { desiredInstances: 3, immediate: true });
  expect(up).toMatchObject({ success: true, currentInstances: 3 });
  const three = await instances(second.rpc);
  for (const pid of three.values()) h.trackPid(pid);
  const newcomer = [...three.keys()].find((id) => !ids.includes(id))!;
  expect(newcomer).toMatch(/^alb-1\.0-3-[0-9a-f]{4}$/);
  await waitFor('three healthy at the NLB', async () => (await healthyAtNlb()).length === 3, 10_000);
  const down = await second.rpc('scale', { desiredInstances: 1, immediate: true });
  expect(down).toMatchObject({ success: true, currentInstances: 1 });
  const [survivor] = (await instances(second.rpc)).keys();
  const stopped = [...three.entries()].filter(([id]) => id !== survivor);
  await waitFor(
    'the two surplus processes to exit',
    () => stopped.every(([, pid]) => !pidAlive(pid)),
    15_000,
  );
  expect(await httpGet(listenerPort, '/').then((r) => r.status)).toBe(200);

  // ---- A graceful stop stops the instances, adopted or not.
  await second.c.kill('SIGTERM');
  expect((await second.c.exited).code).toBe(0);
  await waitFor(
    'every instance process to be gone',
    () => [...three.values()].every((p) => !pidAlive(p)),
    10_000,
  );
  const left = JSON.parse(readFileSync(recordsFile, 'utf8')) as { instances: unknown[] };
  expect(left.instances).toEqual([]);
}, 90_000);

it('at restart a lost instance is replaced and the survivor adopted', async () => {
  const dataDir = h.tempDir();
  const port = await freePort();
  const first = await startController(port, dataDir, 2);
  const [lostId, keptId] = [...first.ids.keys()].sort();
  await first.c.kill('SIGKILL');
  process.kill(first.ids.get(lostId)!, 'SIGKILL');
  await waitFor('the lost instance to be gone', () => !pidAlive(first.ids.get(lostId)!), 5_000);

  const second = await startController(port, dataDir, 2);
  expect(second.ids.get(keptId)).toBe(first.ids.get(keptId));
  expect(second.ids.has(lostId)).toBe(false);
  const replacement = [...second.ids.keys()].find((id) => id !== keptId)!;
  // Ids continue after the adopted ones' sequence numbers: never a reused id.
  expect(Number(replacement.split('-')[2])).toBeGreaterThan(2);
  expect(second.c.output()).toMatch(new RegExp(`did not adopt instance ${lostId}: .*is gone`));
  await waitFor(
    'the NLB to list the survivor and the replacement',
    async () => (await healthyAtNlb()).join() === [keptId, replacement].sort().join(),
    10_000,
  );
}, 60_000);

it('an orphan whose controller does not come back drains, leaves the NLB and exits after its orphan period', async () => {
  const dataDir = h.tempDir();
  const port = await freePort();
  const first = await startController(port, dataDir, 1, 2);
  const [[id, pid]] = [...first.ids.entries()];
  await waitFor('the instance at the NLB', async () => (await healthyAtNlb()).includes(id), 10_000);
  const killedAt = Date.now();
  await first.c.kill('SIGKILL');
  await sleep(1_000);
  expect(pidAlive(pid), 'still serving within the orphan period').toBe(true);
  await waitFor('the orphan to exit', () => !pidAlive(pid), 15_000);
  const tookMs = Date.now() - killedAt;
  expect(tookMs).toBeGreaterThanOrEqual(2_000);
  // It unregistered on its way out (a crash would linger as unhealthy first).
  const listed = (await nlbRpc('listModules', {})).modules.map((m) => m.instanceId);
  expect(listed).not.toContain(id);
}, 40_000);
