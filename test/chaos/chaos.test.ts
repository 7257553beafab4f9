/**
 * Chaos (issue 12): a local stack of real processes — the NLB (`mpctl serve nlb`), an ALB 1.0
 * controller (`mpctl serve module`) with three instance processes, a real HTTP backend (nginx
 * when installed, else the demo echo server) and an in-process ALB 2.0 controller holding a
 * traffic weight — under HTTP load from a keep-alive client. In sequence it SIGKILLs an
 * instance, the controller (then restarts it) and the NLB (then restarts it).
 *
 * Asserts: every failed request falls in the window around the kill of a process that carried
 * requests (an instance, the NLB; the controller carries none, so its window excuses nothing);
 * the stack serves again after each restart; and the durable settings made before the chaos
 * (UpdateNLBConfig, UpdateRouting, SetRateLimit, UpdateRoutes, SetTrafficWeight) read back
 * unchanged at the end. Bounded: ≤ 90 s; every process is killed in afterAll.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import {
  getNlbConfig,
  httpGet,
  spawnController,
  startLoad,
  updateNlbConfig,
  type ControllerProcess,
  type Outcome,
} from '../integration/fault-fixture.js';
import {
  createModuleHarness,
  freePort,
  pidAlive,
  Protocol,
  sleep,
  waitFor,
  type ModuleRpc,
} from '../integration/module-fixture.js';
import { spawnNlbProcess, type NlbProcess } from '../integration/nlb-process-fixture.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const HOST = 'shop.example.com';
const h = createModuleHarness();
const nlbs: NlbProcess[] = [];
const controllers: ControllerProcess[] = [];
const others: ChildProcess[] = [];
const pids = new Set<number>();
const dirs: string[] = [];

afterAll(async () => {
  await Promise.all(controllers.map((c) => c.kill('SIGKILL')));
  await h.closeAll();
  await Promise.all(nlbs.map((n) => n.kill('SIGKILL')));
  for (const c of others) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  // Instances run in their own process groups and outlive a SIGKILLed controller: kill them too.
  for (const pid of pids) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}, 30_000);

const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'mp-chaos-'));
  dirs.push(d);
  return d;
};

/** nginx (master_process off: one process to kill) or, without it, the demo echo server. */
async function startBackend(): Promise<{ kind: string; address: string }> {
  const port = await freePort();
  const hasNginx = spawnSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).status === 0;
  let child: ChildProcess;
  if (hasNginx) {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'nginx.conf'),
      `daemon off; master_process off; worker_processes 1; pid ${dir}/nginx.pid; error_log stderr warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  keepalive_timeout 30s;
  server { listen 127.0.0.1:${port}; location / { return 200 "nginx ok\\n"; } }
}
`,
    );
    child = spawn('nginx', ['-p', dir, '-e', 'stderr', '-c', join(dir, 'nginx.conf')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  } else {
    const script = `const m = await import('./services/demo/echo-http.ts'); await m.startEchoHttp({ version: 'v1', host: '127.0.0.1', port: ${port} });`;
    child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  }
  others.push(child);
  let err = '';
  child.stderr?.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-2000)));
  await waitFor(
    'the backend to answer',
    async () => {
      if (child.exitCode !== null) throw new Error(`the backend exited: ${err}`);
      return (await fetch(`http://127.0.0.1:${port}/`)).ok;
    },
    15_000,
    100,
  );
  return { kind: hasNginx ? 'nginx' : 'echo-http', address: `127.0.0.1:${port}` };
}

/** Instance id → pid of a controller; remembers every pid for afterAll. */
async function instances(rpc: ModuleRpc): Promise<Map<string, number>> {
  const r = await rpc('getInstances', {});
  const m = new Map(r.instances.map((i) => [i.instanceId, Number(i.metadata.pid)]));
  for (const pid of m.values()) pids.add(pid);
  return m;
}

interface Window {
  what: string;
  fromMs: number;
  toMs: number;
  /** Whether the killed process carried client requests (only then are failures excused). */
  carriesRequests: boolean;
}

it('survives SIGKILL of an instance, the controller and the NLB with failures only around the kills and settings intact', async () => {
  const t0 = Date.now();
  const log = (line: string) => console.log(`[chaos +${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}`);

  // ---------------------------------------------------------------- the stack
  const backend = await startBackend();
  const nlbDir = tempDir();
  const ctlDir = tempDir();
  const nlbOpts = { dataDir: nlbDir, heartbeatIntervalSeconds: 1 };
  let nlb = await spawnNlbProcess(nlbOpts, (p) => nlbs.push(p));
  const listenerPort = await freePort();
  const listeners = {
    listeners: [
      { name: 'web', address: '127.0.0.1', port: listenerPort, mode: 'http', idleTimeoutMs: 120_000 },
    ],
  };
  await updateNlbConfig(nlb.target, 'listeners', listeners);
  const ctlPort = await freePort();
  const startController = () => {
    const c = spawnController({
      nlb: nlb.target,
      port: ctlPort,
      dataDir: ctlDir,
      instances: 3,
      orphanTimeoutSeconds: 60,
    });
    controllers.push(c);
    return c;
  };
  let ctl = startController();
  const { rpc: v1 } = h.moduleClient(`127.0.0.1:${ctlPort}`);
  const initial = await waitFor(
    'three 1.0 instances',
    async () => {
      if (ctl.child.exitCode !== null) throw new Error(`the controller exited:\n${ctl.output()}`);
      const m = await instances(v1);
      return m.size === 3 && m;
    },
    30_000,
    100,
  );
  const v2 = await h.startModule({ nlb: nlb.target, version: '2.0', instances: 1 });
  log(`stack up: backend ${backend.kind} ${backend.address}, NLB ${nlb.target}, listener :${listenerPort}`);

  // ---------------------------------------------------------------- durable settings
  const albConfig = Buffer.from(JSON.stringify({ backends: [{ name: 'origin', address: backend.address }] }));
  const shop = { routeId: 'shop', protocol: Protocol.PROTOCOL_HTTP, destinationPattern: HOST };
  for (const rpc of [v1, v2.rpc]) {
    const c = await rpc('updateConfig', { config: { configType: 'module', configData: albConfig } });
    expect(c.success, c.message).toBe(true);
    const r = await rpc('updateRoutes', { routes: [shop] });
    expect(r.success, r.message).toBe(true);
  }
  const limit = {
    limitId: 'per-client',
    target: '*',
    requestsPerSecond: 50_000,
    requestsPerMinute: 0,
    requestsPerHour: 0,
    burstSize: 50_000,
    enabled: true,
    metadata: { owner: 'chaos' },
  };
  const rl = await v1('setRateLimit', { limit });
  expect(rl.success, rl.message).toBe(true);
  const nlbRpc = () => h.nlbClient(nlb.target);
  const opsRoute = {
    routeId: 'ops-api',
    destinationPattern: 'api.example.com',
    pathPattern: '/v1/*',
    priority: 7,
    protocol: Protocol.PROTOCOL_HTTP,
    metadata: { module_type: 'ALB' },
  };
  const ur = await nlbRpc()('updateRouting', { routes: [opsRoute] });
  expect(ur.success, ur.message).toBe(true);
  await waitFor(
    'both versions at the NLB',
    async () => {
      const r = await nlbRpc()('listModules', {});
      return r.modules.length === 4;
    },
    10_000,
  );
  const tw = await v2.rpc('setTrafficWeight', { version: '2.0', weight: 10 });
  expect(tw.success, tw.message).toBe(true);
  const settings = async () => ({
    listeners: await getNlbConfig(nlb.target, 'listeners'),
    opsRoute: (await nlbRpc()('getRoutingTable', {})).entries.find((e) => e.route?.routeId === 'ops-api'),
    rateLimits: (await v1('getRateLimits', {})).limits,
    routes: (await v1('getRoutes', {})).routes,
    weights: (await v1('getActiveVersion', {})).versionWeights,
  });
  const before = await settings();
  expect(before.weights).toEqual({ '1.0': 90, '2.0': 10 });
  expect(before.opsRoute).toBeDefined();
  expect(before.rateLimits).toHaveLength(1);
  await waitFor('traffic through the stack', () => httpGet(listenerPort, '/').then(() => true), 10_000);

  // ---------------------------------------------------------------- chaos under load
  const load = startLoad(listenerPort, { workers: 4, pauseMs: 5, host: HOST });
  const windows: Window[] = [];
  await sleep(3_000);

  // 1. An instance.
  const [victimId, victimPid] = [...initial.entries()][0];
  let at = Date.now();
  process.kill(victimPid, 'SIGKILL');
  log(`SIGKILL instance ${victimId} (pid ${victimPid})`);
  windows.push({ what: `instance ${victimId}`, fromMs: at - 100, toMs: at + 5_000, carriesRequests: true });
  const replaced = await waitFor(
    'the controller to replace the instance',
    async () => {
      const m = await instances(v1);
      return m.size === 3 && !m.has(victimId) && m;
    },
    15_000,
    100,
  );
  log(`replaced by ${[...replaced.keys()].find((id) => !initial.has(id))}`);
  await sleep(5_000);

  // 2. The controller, then a restart on the same data dir: it adopts the three instances.
  at = Date.now();
  await ctl.kill('SIGKILL');
  log(`SIGKILL controller (pid ${ctl.pid})`);
  await sleep(2_000);
  ctl = startController();
  const adopted = await waitFor(
    'the restarted controller to report its instances',
    async () => {
      if (ctl.child.exitCode !== null) throw new Error(`the controller exited:\n${ctl.output()}`);
      const m = await instances(v1);
      return m.size === 3 && m;
    },
    30_000,
    100,
  );
  windows.push({ what: 'controller', fromMs: at - 100, toMs: Date.now(), carriesRequests: false });
  expect([...adopted.entries()].sort()).toEqual([...replaced.entries()].sort());
  log(`controller restarted and adopted ${[...adopted.keys()].join(', ')}`);
  await sleep(3_000);

  // 3. The NLB, then a restart on the same ports and data dir.
  at = Date.now();
  await nlb.kill('SIGKILL');
  log('SIGKILL NLB');
  await sleep(1_500);
  nlb = await spawnNlbProcess({ ...nlbOpts, grpcPort: nlb.grpcPort }, (p) => nlbs.push(p));
  const servingAt = await waitFor(
    'the stack to serve again after the NLB restart',
    () => httpGet(listenerPort, '/', { timeoutMs: 2_000 }).then(() => Date.now()),
    15_000,
    50,
  );
  windows.push({ what: 'NLB', fromMs: at - 100, toMs: servingAt + 3_000, carriesRequests: true });
  log(`NLB back, serving again ${servingAt - at} ms after the kill`);
  await sleep(4_000);
  await load.stop();

  // ---------------------------------------------------------------- report and verdict
  const failures = load.failed();
  const excused = (f: Outcome) =>
    windows.find((w) => w.carriesRequests && f.endMs >= w.fromMs && f.startMs <= w.toMs);
  const unexcused = failures.filter((f) => !excused(f));
  log(`requests sent ${load.outcomes.length}, succeeded ${load.succeeded()}, failed ${failures.length}`);
  for (const w of windows) {
    const n = failures.filter((f) => f.endMs >= w.fromMs && f.startMs <= w.toMs).length;
    log(
      `window ${w.what}: ${w.toMs - w.fromMs} ms, ${n} failure(s)${w.carriesRequests ? '' : ' (carries no requests)'}`,
    );
  }
  const errors = new Map<string, number>();
  for (const f of failures) errors.set(f.error ?? '?', (errors.get(f.error ?? '?') ?? 0) + 1);
  for (const [e, n] of errors) log(`  ${n} × ${e}`);
  expect(
    unexcused.map((f) => ({ at: f.startMs - t0, error: f.error })),
    'failures outside any kill window of a request-carrying process',
  ).toEqual([]);
  expect(load.succeeded()).toBeGreaterThan(0);
  // Served after the last restart, not only before the chaos.
  expect(load.outcomes.some((o) => o.ok && o.startMs > servingAt)).toBe(true);

  const after = await settings();
  expect(after).toEqual(before);
  const stored = JSON.parse(readFileSync(join(ctlDir, 'controller-alb-1.0.json'), 'utf8')) as {
    state: { desired: number };
  };
  expect(stored.state.desired).toBe(3);
  log('durable settings intact: listeners, operator route, rate limit, module routes, traffic weights');
  expect(Date.now() - t0).toBeLessThan(90_000);
}, 90_000);
