/**
 * Liveness across an NLB restart (DESIGN.md §3): the NLB runs as a real `mpctl serve nlb` child
 * process, is SIGKILLed for longer than a heartbeat interval and started again on the same port.
 * Its registry is soft state, so it starts empty; instances' next heartbeats are told to
 * re-register, and every instance is back in ListModules within one interval (+ slack).
 */
import { connect } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import {
  createModuleHarness,
  exited,
  freePort,
  HealthStatus,
  listedIds,
  Protocol,
  managedIds,
  sleep,
  stderrOf,
  stopChild,
  waitFor,
  type NlbRpc,
} from './module-fixture.js';

const h = createModuleHarness();

/** Whether 127.0.0.1:port accepts a TCP connection now. */
function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
const INTERVAL_S = 1;
/** Scheduling slack on top of one interval (a busy CI box, the registration round trip). */
const SLACK_MS = 1_500;

afterEach(() => h.closeAll());

it('every instance is back in ListModules within one heartbeat interval after the NLB restarts', async () => {
  const [grpcPort, adminPort] = [await freePort(), await freePort()];
  const dataDir = h.tempDir();
  const args = [
    'serve',
    'nlb',
    '--grpc-host',
    '127.0.0.1',
    '--grpc-port',
    String(grpcPort),
    '--admin-host',
    '127.0.0.1',
    '--admin-port',
    String(adminPort),
    '--data-dir',
    dataDir,
    '--heartbeat-interval',
    String(INTERVAL_S),
    '--log-level',
    'silent',
  ];
  const target = `127.0.0.1:${grpcPort}`;
  let nlb: NlbRpc = h.nlbClient(target);
  /**
   * Starts the NLB child; resolves once it answers. `readyAtMs` is when its port first accepted
   * a TCP connection (a fresh probe each time, so no client reconnect backoff delays it).
   */
  const startNlbProcess = async () => {
    const child = h.spawnCli(args);
    const readyAtMs = await waitFor(
      'the NLB process to listen',
      async () => {
        if (exited(child)) throw new Error(`the NLB exited: ${stderrOf(child)}`);
        return (await canConnect(grpcPort)) && Date.now();
      },
      20_000,
      10,
    );
    // A fresh channel: the old one may sit in reconnect backoff and would time the test, not the NLB.
    nlb = h.nlbClient(target);
    await waitFor('the NLB to answer', () => nlb('listModules', {}).then(() => true), 5_000);
    return { child, readyAtMs };
  };

  let nlbProc = await startNlbProcess();
  const alb = await h.startModule({
    nlb: target,
    type: 'alb',
    instances: 2,
    heartbeatIntervalSeconds: INTERVAL_S,
  });
  const dblb = await h.startModule({
    nlb: target,
    type: 'dblb',
    instances: 1,
    heartbeatIntervalSeconds: INTERVAL_S,
  });
  const all = [...(await managedIds(alb.rpc)), ...(await managedIds(dblb.rpc))].sort();
  expect(all).toHaveLength(3);
  await waitFor('all three registered', async () => (await listedIds(nlb)).join() === all.join(), 10_000);
  const web = { routeId: 'web', protocol: Protocol.PROTOCOL_HTTP, destinationPattern: 'shop.example.com' };
  expect((await alb.rpc('updateRoutes', { routes: [web] })).success).toBe(true);
  const albRoutes = (await managedIds(alb.rpc)).map((id) => `${id}:web`);

  // ---- Kill the NLB for several intervals.
  nlbProc.child.kill('SIGKILL');
  await stopChild(nlbProc.child);
  expect(nlbProc.child.signalCode).toBe('SIGKILL');
  await sleep(3 * INTERVAL_S * 1000);

  // ---- Start it again on the same port: the registry is rebuilt by heartbeats.
  nlbProc = await startNlbProcess();
  const back = await waitFor(
    'every instance back in ListModules',
    async () => {
      const r = await nlb('listModules', { statusFilter: HealthStatus.HEALTH_STATUS_HEALTHY });
      const ids = r.modules.map((m) => m.instanceId).sort();
      return ids.join() === all.join() && Date.now();
    },
    INTERVAL_S * 1000 + SLACK_MS + 5_000,
    25,
  );
  const tookMs = back - nlbProc.readyAtMs;
  expect(tookMs, `re-registration took ${tookMs} ms`).toBeLessThanOrEqual(INTERVAL_S * 1000 + SLACK_MS);

  // The re-registered instances bring back their routes and their controllers' addresses.
  const table = await nlb('getRoutingTable', {});
  expect(table.entries.map((e) => e.route!.routeId).sort()).toEqual(albRoutes);
  const modules = (await nlb('listModules', {})).modules;
  for (const m of modules)
    expect(m.address).toBe(m.instanceId.startsWith('alb') ? alb.address : dblb.address);
  // And the controllers see healthy leases.
  for (const m of [alb, dblb]) {
    const checks = (await m.rpc('healthCheck', {})).checks;
    for (const [k, v] of Object.entries(checks))
      if (k.startsWith('instance:')) expect(v).toMatch(/^ok \(lease registered\)/);
  }
}, 60_000);
