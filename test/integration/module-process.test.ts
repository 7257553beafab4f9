/**
 * The `process` instance provider end to end: a controller whose instances are real child
 * processes that register with a real NLB and heartbeat. A SIGKILLed instance is replaced and the
 * replacement registers; scaling down drains and stops the surplus processes, which leave the
 * NLB; Shutdown leaves no child process behind.
 */
import { afterEach, expect, it } from 'vitest';
import {
  createModuleHarness,
  HealthStatus,
  pidAlive,
  waitFor,
  type ModuleRpc,
  type NlbRpc,
} from './module-fixture.js';

const h = createModuleHarness();

afterEach(() => h.closeAll());

/** Managed instances with their pids and lease heartbeats. */
async function instances(rpc: ModuleRpc) {
  const r = await rpc('getInstances', {});
  return r.instances
    .map((i) => ({
      id: i.instanceId,
      pid: Number(i.metadata.pid),
      heartbeats: Number(i.metadata.heartbeats),
      lease: i.metadata.lease,
    }))
    .sort((a, b) => a.id.localeCompare(b.id));
}

/** HEALTHY instances the NLB lists, id → pid it registered with. */
async function healthyAtNlb(nlb: NlbRpc): Promise<Map<string, number>> {
  const r = await nlb('listModules', { statusFilter: HealthStatus.HEALTH_STATUS_HEALTHY });
  return new Map(r.modules.map((m) => [m.instanceId, Number(m.metadata.pid)]));
}

it('Scale starts child processes that register and heartbeat; a killed one is replaced; Scale down and Shutdown stop them', async () => {
  const n = await h.startNlb();
  const mod = await h.startModule({ nlb: n.target, provider: 'process', instances: 1 });
  const seen = new Set<number>();
  const track = (list: Array<{ pid: number }>) => {
    for (const { pid } of list) {
      seen.add(pid);
      h.trackPid(pid);
    }
  };
  track(await instances(mod.rpc));

  // ---- Scale to 3: three child processes, registered and heartbeating.
  const up = await mod.rpc('scale', { desiredInstances: 3, immediate: true });
  expect(up).toMatchObject({ success: true, currentInstances: 3, desiredInstances: 3 });
  const three = await instances(mod.rpc);
  track(three);
  expect(three).toHaveLength(3);
  expect(new Set(three.map((i) => i.pid)).size).toBe(3);
  for (const i of three) {
    expect(i.pid).not.toBe(process.pid);
    expect(pidAlive(i.pid)).toBe(true);
  }
  await waitFor(
    'the NLB to list the three processes with their pids',
    async () => {
      const at = await healthyAtNlb(n.rpc);
      return three.every((i) => at.get(i.id) === i.pid) && at.size === 3;
    },
    10_000,
  );
  await waitFor(
    'every instance to heartbeat',
    async () => (await instances(mod.rpc)).every((i) => i.heartbeats >= 1),
    5_000,
  );

  // ---- SIGKILL one: the controller replaces it and the replacement registers.
  const victim = three[1];
  process.kill(victim.pid, 'SIGKILL');
  await waitFor('the killed process to be gone', () => !pidAlive(victim.pid), 5_000);
  const replaced = await waitFor(
    'a replacement instance',
    async () => {
      const now = await instances(mod.rpc);
      return now.length === 3 && !now.some((i) => i.id === victim.id) && now;
    },
    10_000,
  );
  track(replaced);
  const newcomer = replaced.find((i) => !three.some((t) => t.id === i.id))!;
  expect(newcomer.pid).not.toBe(victim.pid);
  expect(pidAlive(newcomer.pid)).toBe(true);
  await waitFor(
    'the replacement registered at the NLB',
    async () => (await healthyAtNlb(n.rpc)).get(newcomer.id) === newcomer.pid,
    10_000,
  );
  // The NLB notices the crash by missed heartbeats (3 × 1 s) and stops routing to it.
  await waitFor(
    'the killed instance to leave the healthy set',
    async () => !(await healthyAtNlb(n.rpc)).has(victim.id),
    6_000,
  );

  // ---- Scale to 1: two instances drain and stop; their processes exit and they leave the NLB.
  const down = await mod.rpc('scale', { desiredInstances: 1, immediate: true });
  expect(down).toMatchObject({ success: true, desiredInstances: 1, currentInstances: 1 });
  const [last] = await instances(mod.rpc);
  const stopped = replaced.filter((i) => i.id !== last.id);
  expect(stopped).toHaveLength(2);
  await waitFor('the two surplus processes to exit', () => stopped.every((i) => !pidAlive(i.pid)), 10_000);
  await waitFor(
    'the two stopped instances to leave ListModules',
    async () => {
      const listed = (await n.rpc('listModules', {})).modules.map((m) => m.instanceId);
      return stopped.every((i) => !listed.includes(i.id)) && listed.includes(last.id);
    },
    5_000,
  );
  expect(pidAlive(last.pid)).toBe(true);

  // ---- Shutdown: the controller stops its last instance; no child process is left.
  const bye = await mod.rpc('shutdown', { graceful: true, timeoutSeconds: 5 });
  expect(bye.success).toBe(true);
  let done = false;
  void mod.handle.done.then(() => (done = true));
  await waitFor('the controller to finish', () => done, 15_000);
  expect(seen.size).toBeGreaterThanOrEqual(4);
  await waitFor('every child process to be gone', () => [...seen].every((pid) => !pidAlive(pid)), 5_000);
  for (const pid of seen)
    expect(() => process.kill(pid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
  await waitFor(
    'the last instance to leave ListModules',
    async () => !(await healthyAtNlb(n.rpc)).has(last.id),
    5_000,
  );
}, 60_000);
