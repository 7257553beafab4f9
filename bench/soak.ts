/**
 * Soak benchmark (`npm run bench:soak -- [--minutes 10] [--json]`): runs the real local stack —
 * the NLB, an ALB and (when PostgreSQL is installed) a DBLB controller, each in its own process
 * with its instances as child processes of the `process` provider, and the demo echo backend —
 * under mixed client traffic and control-plane churn at the same time (bench/soak-traffic.ts,
 * bench/soak-churn.ts), samples every process's RSS (/proc/<pid>/status VmRSS) and open file
 * descriptors (/proc/<pid>/fd) every 10 s, and checks the growth after warm-up against the bound
 * stated in bench/soak-report.ts and docs/bench-soak.md.
 *
 * Not run by `npm test` or CI. Exit code 0 when every process stayed within the bound, 1 when
 * one did not or the soak could not run, 130 when interrupted. Every process it started is
 * stopped on exit, Ctrl-C included: the stack's processes carry a per-run marker in their
 * environment (inherited by the instances), so even an instance whose controller died is found.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { request as httpRequest } from 'node:http';
import { Protocol } from '../proto/gen/marchproxy/types.js';
import { moduleProcessSchema } from '../services/modules/runtime/main.js';
import { createClientConnection, createNlbClient, unaryCall } from '../services/shared/grpc/client.js';
import {
  newChurnCounters,
  operatorRoute,
  runChurn,
  updateNlbConfig,
  type ChurnCounters,
} from './soak-churn.js';
import {
  FD_GROWTH,
  judge,
  RSS_GROWTH_MB,
  RSS_GROWTH_PCT,
  verdictTable,
  WARMUP_FRACTION,
  type ProcSample,
  type Sample,
} from './soak-report.js';
import type { FromStack, StackSpec, ToStack } from './soak-stack.js';
import { loadPg, newCounters, runHttpTraffic, runPgTraffic, type TrafficCounters } from './soak-traffic.js';
import { compileForBench } from './compile.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');

const USAGE = `usage: npm run bench:soak -- [options]

Runs the local stack (NLB, ALB and DBLB controllers with their instance processes, echo backend)
under mixed traffic and control-plane churn, samples every process's RSS and open fds, and
checks their growth after warm-up (the first ${WARMUP_FRACTION * 100} % of the run): RSS ≤ warm-up × ${1 + RSS_GROWTH_PCT / 100} + ${RSS_GROWTH_MB} MB,
fds ≤ warm-up + ${FD_GROWTH}, per process. Exit 1 when a process is over the bound.

  --minutes M         length of the run (default 10; fractions allowed, at least 0.5)
  --rate R            HTTP requests per second through the NLB (default 200; 3/4 keep-alive)
  --pg-rate Q         PostgreSQL queries per second on pooled sessions (default 20; plus 2 new
                      sessions per second); needs PostgreSQL 15 and the pg client
  --no-postgres       leave PostgreSQL and the DBLB out
  --sample-seconds S  seconds between samples (default 10)
  --runtime R         "compiled" (default: the sources compiled with tsc into a temp dir and run
                      by plain node, as in production) or "tsx" (through tsx; more RSS)
  --gc                run the stack's own processes with --expose-gc and take their V8 heap
                      in use after a full GC at every sample (a diagnostic: it changes their
                      RSS; without it the heap column is the heap in use as found)
  --heap-snapshot DIR write V8 heap snapshots of the stack's own processes at warm-up end and
                      at the end (<role>-warm/-end.heapsnapshot; bench/heapsnapshot-top.ts
                      summarises one)
  --json              print the samples and the verdict as JSON on stdout (progress on stderr)
  --help              this text
`;

interface Options {
  minutes: number;
  rate: number;
  pgRate: number;
  postgres: boolean;
  sampleSeconds: number;
  runtime: 'compiled' | 'tsx';
  gc: boolean;
  heapSnapshotDir: string | undefined;
  json: boolean;
}

function parseOptions(): Options {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        minutes: { type: 'string', default: '10' },
        rate: { type: 'string', default: '200' },
        'pg-rate': { type: 'string', default: '20' },
        'no-postgres': { type: 'boolean', default: false },
        'sample-seconds': { type: 'string', default: '10' },
        runtime: { type: 'string', default: 'compiled' },
        gc: { type: 'boolean', default: false },
        'heap-snapshot': { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    }));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const num = (name: string, v: string, min: number, max: number) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) {
      process.stderr.write(`--${name} ${v}: use a number from ${min} to ${max}\n\n${USAGE}`);
      process.exit(2);
    }
    return n;
  };
  if (values.runtime !== 'compiled' && values.runtime !== 'tsx') {
    process.stderr.write(`--runtime ${values.runtime}: use compiled or tsx\n\n${USAGE}`);
    process.exit(2);
  }
  return {
    minutes: num('minutes', values.minutes, 0.5, 24 * 60),
    rate: num('rate', values.rate, 1, 5000),
    pgRate: num('pg-rate', values['pg-rate'], 1, 1000),
    postgres: !values['no-postgres'],
    sampleSeconds: num('sample-seconds', values['sample-seconds'], 1, 600),
    runtime: values.runtime,
    gc: values.gc,
    heapSnapshotDir: values['heap-snapshot'] ? resolve(values['heap-snapshot']) : undefined,
    json: values.json,
  };
}

const opts = parseOptions();
const out = (s: string) => (opts.json ? process.stderr : process.stdout).write(`${s}\n`);
const log = (s: string) => process.stderr.write(`[bench:soak] ${s}\n`);

// ---- processes ---------------------------------------------------------------------------------

const RUN_ID = randomBytes(6).toString('hex');
const MARKER = `MP_SOAK_RUN=${RUN_ID}`;
const tmp = mkdtempSync(join(tmpdir(), 'mp-bench-soak-'));
const stack: Array<{ role: string; child: ChildProcess }> = [];
/** The last lines each stack process wrote (stdout and stderr), and how many. */
const output = new Map<string, { lines: string[]; count: number }>();

function capture(role: string, child: ChildProcess): void {
  const o = { lines: [] as string[], count: 0 };
  output.set(role, o);
  let partial = '';
  const onData = (s: string) => {
    const parts = (partial + s).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      if (!line.trim()) continue;
      o.count++;
      o.lines.push(line.slice(0, 400));
      if (o.lines.length > 200) o.lines.shift();
    }
  };
  child.stdout?.setEncoding('utf8').on('data', onData);
  child.stderr?.setEncoding('utf8').on('data', onData);
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}

/**
 * Compiles the stack's entry point and the instance child (forked by the process provider by
 * path, so tsc would not follow it) into the temp dir, beside package.json and links to proto/
 * and node_modules/, so that plain node runs them as the built `mpctl` would.
 */
async function build(): Promise<string> {
  const [stack] = await compileForBench(join(tmp, 'build'), [join(here, 'soak-stack.ts')], 'the stack');
  return stack;
}

let script = join(here, 'soak-stack.ts');

/**
 * Entry points the stack forks by path (the process provider's instances, the NLB's data-plane
 * workers): tsc does not reach them from soak-stack.ts, so they are compiled beside it.
 */
/** Progress-table and report names of the processes forked by path, by script name. */
const FORKED_NAMES: Record<string, string> = { 'worker-main': 'worker' };

/** Forks one stack process and waits for its 'ready'. */
function startStack(
  role: string,
  spec: StackSpec,
  timeoutMs = 60_000,
): Promise<Extract<FromStack, { type: 'ready' }>> {
  const child = fork(script, [JSON.stringify(spec)], {
    cwd: root,
    execArgv: [...(opts.runtime === 'tsx' ? ['--import', 'tsx'] : []), ...(opts.gc ? ['--expose-gc'] : [])],
    env: { ...process.env, MP_SOAK_RUN: RUN_ID, MP_SOAK_ROLE: role },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  stack.push({ role, child });
  capture(role, child);
  return new Promise((res, rej) => {
    const done = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const tail = () => (output.get(role)?.lines.slice(-10).join('\n') ?? '').trim();
    const onMessage = (m: FromStack) => {
      if (m.type === 'ready') {
        done();
        res(m);
      } else if (m.type === 'failed') {
        done();
        rej(new Error(`${role} failed to start: ${m.message}\n${tail()}`));
      }
    };
    const onExit = (code: number | null, signal: string | null) => {
      done();
      rej(new Error(`${role} exited (${signal ?? `code ${code}`}) before it was ready\n${tail()}`));
    };
    const timer = setTimeout(() => {
      done();
      rej(new Error(`${role} was not ready within ${timeoutMs / 1000} s\n${tail()}`));
    }, timeoutMs);
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((res) => {
    const timer = setTimeout(() => res(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      res(true);
    });
  });
}

/** Sends `msg` to a stack process and resolves with its reply of `type`, or null (timeout, gone). */
function ask<T extends FromStack['type']>(
  child: ChildProcess,
  msg: ToStack,
  type: T,
  timeoutMs: number,
): Promise<Extract<FromStack, { type: T }> | null> {
  if (!child.connected) return Promise.resolve(null);
  return new Promise((res) => {
    const done = (v: Extract<FromStack, { type: T }> | null) => {
      clearTimeout(timer);
      child.off('message', onMessage);
      res(v);
    };
    const onMessage = (m: FromStack) => {
      if (m.type === type) done(m as Extract<FromStack, { type: T }>);
    };
    const timer = setTimeout(() => done(null), timeoutMs);
    child.on('message', onMessage);
    try {
      child.send(msg);
    } catch {
      done(null);
    }
  });
}

/** Heap snapshots of the stack's own processes into opts.heapSnapshotDir, named <role>-<when>. */
async function heapSnapshots(when: string): Promise<void> {
  const dir = opts.heapSnapshotDir;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  for (const { role, child } of stack) {
    const file = join(dir, `${role}-${when}.heapsnapshot`);
    const r = await ask(child, { type: 'heap-snapshot', file }, 'heap-snapshot-written', 120_000);
    log(r ? `wrote ${file}` : `no heap snapshot from ${role}`);
  }
}

/** Processes that carry this run's marker: the stack and every instance it started. */
function markedProcesses(): Array<{ pid: number; env: Map<string, string> }> {
  const found: Array<{ pid: number; env: Map<string, string> }> = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!pid || pid === process.pid) continue;
    let environ: string;
    try {
      environ = readFileSync(`/proc/${pid}/environ`, 'latin1');
    } catch {
      continue; // gone, or not ours to read
    }
    const vars = environ.split('\0');
    if (!vars.includes(MARKER)) continue;
    const env = new Map<string, string>();
    for (const v of vars) {
      const i = v.indexOf('=');
      if (v.startsWith('MP_')) env.set(v.slice(0, i), v.slice(i + 1));
    }
    found.push({ pid, env });
  }
  return found;
}

let pgHarness: { closeAll(): Promise<void> } | undefined;
let cleaning: Promise<void> | undefined;

/**
 * Stops the module controllers first (they drain and stop their instances), then the NLB and
 * the echo backend, asking each over IPC and killing what does not exit; then any marked
 * process still alive (an instance left behind); then PostgreSQL and the temp dir. Idempotent.
 */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    const stopAll = async (which: typeof stack) =>
      Promise.all(
        which.map(async ({ child }) => {
          if (child.connected) {
            try {
              child.send({ type: 'stop' } satisfies ToStack);
            } catch {
              // The channel closed meanwhile; the signals below handle it.
            }
          } else child.kill('SIGTERM');
          if (!(await exited(child, 25_000))) {
            child.kill('SIGKILL');
            await exited(child, 2000);
          }
        }),
      );
    await stopAll(stack.filter((s) => s.role.endsWith('-ctl')));
    await stopAll(stack.filter((s) => !s.role.endsWith('-ctl')));
    let left = markedProcesses();
    if (left.length) {
      log(`stopping ${left.length} process(es) left behind: ${left.map((p) => p.pid).join(', ')}`);
      for (const p of left) killQuietly(p.pid, 'SIGTERM');
      const deadline = Date.now() + 5000;
      while ((left = markedProcesses()).length && Date.now() < deadline) await sleep(100);
      for (const p of left) killQuietly(p.pid, 'SIGKILL');
    }
    await pgHarness?.closeAll().catch((e: unknown) => log(`stopping PostgreSQL: ${String(e)}`));
    rmSync(tmp, { recursive: true, force: true });
  })();
  return cleaning;
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

// ---- sampling ----------------------------------------------------------------------------------

function readProc(pid: number): { rssMb: number; fds: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
    const fds = readdirSync(`/proc/${pid}/fd`).length;
    return Number.isFinite(rssKb) ? { rssMb: rssKb / 1024, fds } : null;
  } catch {
    return null; // exited between the scan and the read
  }
}

/** What a process runs: the script's base name without extension (node's first non-option argument). */
function scriptName(pid: number): string {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(1);
    for (let i = 0; i < args.length; i++) {
      if (args[i] === '--import' || args[i] === '-r' || args[i] === '--require') i++;
      else if (!args[i].startsWith('-')) return basename(args[i]).replace(/\.[cm]?[jt]s$/, '');
    }
  } catch {
    // gone
  }
  return 'child';
}

/**
 * Every process of the stack now, named: the stack's own processes by role (nlb, echo,
 * alb-ctl…), instances by their instance id, other children by their parent's role and what
 * they run (nlb-worker for the NLB's data-plane workers).
 */
async function sampleStack(): Promise<ProcSample[]> {
  const direct = new Set(stack.map((s) => s.child.pid));
  const heaps = new Map<number, number>();
  await Promise.all(
    stack.map(async ({ child }) => {
      const r = await ask(child, { type: 'memory', gc: opts.gc }, 'memory', 5000);
      if (r && child.pid) heaps.set(child.pid, r.usage.heapUsed / 2 ** 20);
    }),
  );
  const procs: ProcSample[] = [];
  for (const { pid, env } of markedProcesses()) {
    const r = readProc(pid);
    if (!r) continue;
    const role = env.get('MP_SOAK_ROLE') ?? '?';
    const instance = env.get('MP_INSTANCE_ID');
    if (direct.has(pid)) procs.push({ name: role, role, pid, ...r, heapMb: heaps.get(pid) });
    else if (instance)
      procs.push({ name: instance, role: `${role.replace(/-ctl$/, '')}-instance`, pid, ...r });
    else {
      const script = scriptName(pid);
      // Forked from a stack process and not yet exec'd: still a copy of its parent, for a moment.
      if (script === 'soak-stack') continue;
      const name = `${role}-${FORKED_NAMES[script] ?? script}`;
      procs.push({ name, role: name, pid, ...r });
    }
  }
  return procs.sort((a, b) => a.pid - b.pid);
}

// ---- the run -----------------------------------------------------------------------------------

/** One GET through the NLB; resolves with the status (0 on a failure). */
function probeHttp(port: number): Promise<number> {
  return new Promise((res) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        path: '/probe',
        agent: false,
        headers: { host: 'soak.test' },
        timeout: 3000,
      },
      (r) => {
        r.resume();
        r.on('end', () => res(r.statusCode ?? 0));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => res(0));
    req.end();
  });
}

async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs / 1000} s`);
    await sleep(250);
  }
}

/** What the NLB has registered and routes, for an error message. */
async function registered(target: string): Promise<string> {
  const c = createNlbClient(createClientConnection({ target, timeoutMs: 5000 }));
  try {
    const m = await unaryCall(c, 'listModules', { moduleTypeFilter: 0, statusFilter: 0, query: undefined });
    const r = await unaryCall(c, 'getRoutingTable', {
      protocolFilter: 0,
      destinationFilter: '',
      query: undefined,
    });
    return (
      `registered: ${m.modules.map((x) => `${x.instanceId} (type ${x.moduleType}, health ${x.healthStatus}, traffic ${x.trafficAddress || 'none'})`).join(', ') || 'none'}; ` +
      `routes: ${JSON.stringify(r).slice(0, 600)}`
    );
  } catch (e) {
    return `the NLB did not answer: ${(e as Error).message}`;
  } finally {
    c.close();
  }
}

/** The NLB's data-plane failure series (admin /metrics), for an error message. */
async function dataplaneFailures(adminPort: number): Promise<string> {
  try {
    const text = await (
      await fetch(`http://127.0.0.1:${adminPort}/metrics`, { signal: AbortSignal.timeout(5000) })
    ).text();
    const lines = text
      .split('\n')
      .filter((l) =>
        /^mp_nlb_dataplane_(routing|detection|connect)_failures_total|^mp_nlb_dataplane_connections_rejected_total/.test(
          l,
        ),
      );
    return `NLB data-plane failures: ${lines.join('; ') || 'none'}`;
  } catch (e) {
    return `no NLB metrics: ${(e as Error).message}`;
  }
}

interface ProcessCells {
  header: string[];
  cells: (procs: ProcSample[]) => string[];
}

/** Progress-table columns: fixed processes, the oldest instance of each type, the others summed. */
function processColumns(types: string[]): ProcessCells {
  const cell = (p: ProcSample | undefined) => (p ? `${p.rssMb.toFixed(1)}/${p.fds}` : '-');
  const header = ['nlb', 'nlb-w', 'echo'];
  for (const t of types) header.push(`${t}-ctl`, `${t}#1`, `${t}+`);
  return {
    header,
    cells: (procs) => {
      const workers = procs.filter((p) => p.role === 'nlb-worker');
      const row = [
        cell(procs.find((p) => p.name === 'nlb')),
        workers.length ? `${workers.length}×${workers.reduce((a, p) => a + p.rssMb, 0).toFixed(0)}` : '-',
        cell(procs.find((p) => p.name === 'echo')),
      ];
      for (const t of types) {
        const inst = procs.filter((p) => p.role === `${t}-instance`).sort((a, b) => a.pid - b.pid);
        const rest = inst.slice(1);
        row.push(
          cell(procs.find((p) => p.name === `${t}-ctl`)),
          cell(inst[0]),
          rest.length ? `${rest.length}×${rest.reduce((a, p) => a + p.rssMb, 0).toFixed(0)}` : '-',
        );
      }
      return row;
    },
  };
}

/** Groups client failures by kind and by the control-plane event just before them (≤ 15 s). */
function explainErrors(t: TrafficCounters, churn: ChurnCounters, startedAt: number) {
  const events = [...churn.events].sort((a, b) => a.at - b.at);
  const groups = new Map<string, { count: number; firstS: number; lastS: number }>();
  for (const e of t.errorLog) {
    const before = events.filter((ev) => ev.at <= e.at + 500 && e.at - ev.at <= 15_000).pop();
    const key = `${e.source}: ${e.kind} — ${before ? `within 15 s after "${before.what}"` : 'no control-plane event in the 15 s before'}`;
    const g = groups.get(key) ?? { count: 0, firstS: Infinity, lastS: 0 };
    g.count++;
    g.firstS = Math.min(g.firstS, (e.at - startedAt) / 1000);
    g.lastS = Math.max(g.lastS, (e.at - startedAt) / 1000);
    groups.set(key, g);
  }
  return [...groups.entries()]
    .sort((a, b) => b[1].count - a[1].count)
    .map(([what, g]) => ({ what, count: g.count, firstS: Math.round(g.firstS), lastS: Math.round(g.lastS) }));
}

async function main(): Promise<number> {
  const runSeconds = opts.minutes * 60;
  const pg = opts.postgres ? await loadPg() : null;
  let withPg = false;
  let pgServer: { address: string } | undefined;
  if (opts.postgres) {
    const fixture = await import('../test/integration/dblb-fixture.js');
    if (!fixture.tools.postgres)
      log('PostgreSQL 15 is not installed: the DBLB part is skipped (apt-get install -y postgresql-15)');
    else if (!pg) log('the pg client is not installed (npm ci): the DBLB part is skipped');
    else {
      const h = fixture.createDbHarness();
      pgHarness = h;
      pgServer = await h.startPostgres({ maxConnections: 200 });
      withPg = true;
    }
  } else log('--no-postgres: the DBLB part is skipped');

  if (opts.runtime === 'compiled') {
    log('compiling the stack with tsc (--runtime tsx skips this)…');
    script = await build();
  }
  const echo = await startStack('echo', { role: 'echo' });
  const [httpPort, pgPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const listeners = [
    { name: 'http', address: '127.0.0.1', port: httpPort, mode: 'http' },
    ...(withPg ? [{ name: 'postgres', address: '127.0.0.1', port: pgPort, mode: 'postgres' }] : []),
  ];
  const nlb = await startStack('nlb', {
    role: 'nlb',
    config: {
      grpc: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: adminPort },
      dataDir: join(tmp, 'nlb'),
      logLevel: 'warn',
      listeners,
      dataplane: { drainGraceMs: 2000 },
    },
  });
  const nlbTarget = `127.0.0.1:${nlb.grpcPort}`;

  // The NLB's own settings for the run, through the API as an operator would set them.
  const setup = newChurnCounters();
  const admin = createNlbClient(createClientConnection({ target: nlbTarget, timeoutMs: 10_000 }));
  try {
    // Metrics kept 60 s (not 1 h), so that retention reaches its steady state in the warm-up
    // and growth after it is not the store filling up as designed.
    await updateNlbConfig(admin, setup, 'metrics', { retentionSeconds: 60 });
    // Abandoned fake instances are evicted within the run.
    await updateNlbConfig(admin, setup, 'heartbeat', {
      intervalSeconds: 2,
      missedHeartbeats: 3,
      evictAfterSeconds: 20,
      drainTimeoutSeconds: 5,
    });
    // The Scale churn alone decides the instance counts.
    await updateNlbConfig(admin, setup, 'scaling', {
      defaults: { minInstances: 1, maxInstances: 10, autoScalingEnabled: false },
    });
  } finally {
    admin.close();
  }
  if (setup.errors) throw new Error(`configuring the NLB failed: ${JSON.stringify(setup.errorSamples)}`);

  const moduleBase = (type: string) => ({
    type,
    version: '1.0',
    instances: 1,
    grpc: { host: '127.0.0.1', port: 0 },
    nlb: nlbTarget,
    dataDir: join(tmp, type),
    logLevel: 'warn',
    heartbeatIntervalSeconds: 2,
    // Instances whose controller died leave soon (when this version of the runtime has it).
    ...('orphanTimeoutSeconds' in moduleProcessSchema.shape ? { orphanTimeoutSeconds: 10 } : {}),
  });
  const alb = await startStack('alb-ctl', {
    role: 'module',
    config: moduleBase('alb'),
    moduleConfig: { backends: [{ name: 'echo', address: echo.address, weight: 1 }] },
  });
  if (alb.problems?.length) throw new Error(`configuring the ALB failed: ${alb.problems.join('; ')}`);
  const dblb = withPg
    ? await startStack('dblb-ctl', {
        role: 'module',
        config: moduleBase('dblb'),
        moduleConfig: { backends: [{ name: 'pg', protocol: 'postgres', address: pgServer!.address }] },
      })
    : undefined;
  if (dblb?.problems?.length) throw new Error(`configuring the DBLB failed: ${dblb.problems.join('; ')}`);

  const baseRoutes = [
    operatorRoute({ moduleType: 'ALB', routeId: 'soak-http', protocol: Protocol.PROTOCOL_HTTP, priority: 1 }),
    ...(withPg
      ? [
          operatorRoute({
            moduleType: 'DBLB',
            routeId: 'soak-pg',
            protocol: Protocol.PROTOCOL_POSTGRES,
            priority: 1,
          }),
        ]
      : []),
  ];
  const churnOptions = {
    nlbTarget,
    albController: alb.address!,
    dblbController: dblb?.address,
    baseRoutes,
    listeners,
  };
  {
    const c = createNlbClient(createClientConnection({ target: nlbTarget, timeoutMs: 10_000 }));
    try {
      const r = await unaryCall(c, 'updateRouting', {
        routes: baseRoutes,
        replaceAll: true,
        sourceInstanceId: '',
        validateOnly: false,
      });
      if (!r.success) throw new Error(`UpdateRouting refused: ${r.message} ${r.validationErrors.join('; ')}`);
    } finally {
      c.close();
    }
  }
  let lastStatus = 0;
  await waitFor(
    'HTTP through the NLB did not answer 200',
    async () => (lastStatus = await probeHttp(httpPort)) === 200,
    30_000,
  ).catch(async (e: Error) => {
    throw new Error(
      `${e.message} (last answer: ${lastStatus || 'none, the connection failed'}); ${await registered(nlbTarget)}; ` +
        `${await dataplaneFailures(adminPort)}`,
    );
  });
  if (withPg && pg) {
    await waitFor(
      'PostgreSQL through the NLB did not answer',
      async () => {
        const client = new pg.Client({
          host: '127.0.0.1',
          port: pgPort,
          user: 'postgres',
          database: 'postgres',
          connectionTimeoutMillis: 3000,
        });
        client.on('error', () => undefined);
        try {
          await client.connect();
          await client.query('SELECT 1');
          return true;
        } catch {
          return false;
        } finally {
          await client.end().catch(() => undefined);
        }
      },
      30_000,
    );
  }

  const types = withPg ? ['alb', 'dblb'] : ['alb'];
  const columns = processColumns(types);
  log(
    `stack up: NLB ${nlbTarget} (http :${httpPort}${withPg ? `, postgres :${pgPort}` : ''}), ALB ${alb.address}` +
      `${dblb ? `, DBLB ${dblb.address}` : ''}; runtime ${opts.runtime}; ${opts.minutes} min, HTTP ${opts.rate} req/s` +
      `${withPg ? `, PostgreSQL ${opts.pgRate} q/s + 2 sessions/s` : ''}; warm-up ends at ${Math.round(runSeconds * WARMUP_FRACTION)} s`,
  );

  const http = newCounters();
  const pgCounters = newCounters();
  const churn = newChurnCounters();
  const stop = new AbortController();
  // Every paced loop waits on this signal at once; more than Node's default of 10 is expected.
  setMaxListeners(100, stop.signal);
  const startedAt = Date.now();
  const load = [
    runHttpTraffic({ port: httpPort, rate: opts.rate }, http, stop.signal),
    ...(withPg && pg
      ? [runPgTraffic({ pg, port: pgPort, rate: opts.pgRate, connectRate: 2 }, pgCounters, stop.signal)]
      : []),
    runChurn(churnOptions, churn, stop.signal),
  ];
  const loadDone = Promise.all(load);
  void loadDone.catch(() => undefined);

  const samples: Sample[] = [];
  const header = [
    'time',
    'load1',
    'http req',
    'req/s',
    'err',
    ...(withPg ? ['pg q', 'q/s', 'err'] : []),
    'cp calls',
    'err',
    '|',
    ...columns.header.map((h) => `${h} MB/fd`),
  ];
  const rows: string[][] = [];
  const widths = header.map((h) => Math.max(h.length, 7));
  const alignRow = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join(' ')
      .trimEnd();
  out(alignRow(header));
  let last = { t: 0, http: 0, pg: 0 };
  const takeSample = async (t: number): Promise<Sample> => {
    const procs = await sampleStack();
    const dt = Math.max(0.001, t - last.t);
    const s: Sample = {
      t,
      procs,
      http: { requests: http.requests, errors: http.errors, perSecond: (http.requests - last.http) / dt },
      pg: withPg
        ? {
            queries: pgCounters.requests,
            errors: pgCounters.errors,
            perSecond: (pgCounters.requests - last.pg) / dt,
          }
        : null,
      controlPlane: { calls: churn.calls, errors: churn.errors },
      loadAvg1: loadavg()[0],
    };
    last = { t, http: http.requests, pg: pgCounters.requests };
    const mmss = `${Math.floor(t / 60)}:${String(Math.round(t % 60)).padStart(2, '0')}`;
    rows.push([
      mmss,
      s.loadAvg1.toFixed(2),
      String(s.http.requests),
      s.http.perSecond.toFixed(0),
      String(s.http.errors),
      ...(s.pg ? [String(s.pg.queries), s.pg.perSecond.toFixed(0), String(s.pg.errors)] : []),
      String(s.controlPlane.calls),
      String(s.controlPlane.errors),
      '|',
      ...columns.cells(procs),
    ]);
    out(alignRow(rows[rows.length - 1]));
    return s;
  };

  samples.push(await takeSample(0));
  let warmSnapshot = false;
  for (let k = 1; ; k++) {
    const t = Math.min(runSeconds, k * opts.sampleSeconds);
    const waitMs = startedAt + t * 1000 - Date.now();
    if (waitMs > 0) await sleep(waitMs);
    if (interrupted) break;
    samples.push(await takeSample((Date.now() - startedAt) / 1000));
    if (!warmSnapshot && t >= runSeconds * WARMUP_FRACTION) {
      warmSnapshot = true;
      await heapSnapshots('warm');
    }
    if (t >= runSeconds) break;
  }
  if (!interrupted) await heapSnapshots('end');
  stop.abort();
  const settled = await Promise.race([loadDone.then(() => true), sleep(30_000).then(() => false)]);
  if (!settled)
    log('the traffic and churn loops did not finish within 30 s of the end (calls still in flight)');
  if (interrupted) return 130;

  const verdicts = judge(samples, runSeconds);
  const bounded = verdicts.filter((v) => v.bounded);
  const failed = bounded.filter((v) => v.pass === false);
  const errors = explainErrors(
    { ...http, errorLog: [...http.errorLog, ...pgCounters.errorLog] },
    churn,
    startedAt,
  );
  const loads = samples.map((s) => s.loadAvg1);
  const stackLog = Object.fromEntries(
    [...output].map(([role, o]) => [role, { lines: o.count, last: o.lines.slice(-5) }]),
  );
  const result = {
    runId: RUN_ID,
    minutes: opts.minutes,
    runtime: opts.runtime,
    withPostgres: withPg,
    bound: {
      warmupFraction: WARMUP_FRACTION,
      rssGrowthPct: RSS_GROWTH_PCT,
      rssGrowthMb: RSS_GROWTH_MB,
      fdGrowth: FD_GROWTH,
    },
    loadAvg1: {
      min: Math.min(...loads),
      mean: loads.reduce((a, b) => a + b, 0) / loads.length,
      max: Math.max(...loads),
    },
    http: {
      requests: http.requests,
      ok: http.ok,
      errors: http.errors,
      bySource: http.bySource,
      errorKinds: http.errorKinds,
    },
    pg: withPg
      ? {
          queries: pgCounters.requests,
          ok: pgCounters.ok,
          errors: pgCounters.errors,
          bySource: pgCounters.bySource,
          errorKinds: pgCounters.errorKinds,
        }
      : null,
    controlPlane: {
      calls: churn.calls,
      errors: churn.errors,
      byMethod: churn.byMethod,
      errorSamples: churn.errorSamples,
      fakesRegistered: churn.fakesRegistered,
      fakesAbandoned: churn.fakesAbandoned,
      streamMessages: churn.streamMessages,
      events: churn.events.length,
    },
    clientErrorsExplained: errors,
    stackLog,
    verdicts,
    pass: failed.length === 0 && bounded.length > 0,
    samples,
  };
  if (opts.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  out('');
  out(
    `Ran ${opts.minutes} min (${opts.runtime}); load average (1 min) ${result.loadAvg1.min.toFixed(2)}-${result.loadAvg1.max.toFixed(2)}, mean ${result.loadAvg1.mean.toFixed(2)}.`,
  );
  const bySource = (c: TrafficCounters) =>
    Object.entries(c.bySource)
      .map(([k, v]) => `${k} ${v.requests}${v.errors ? ` (${v.errors} failed)` : ''}`)
      .join(', ');
  out(`HTTP: ${http.requests} requests, ${http.errors} failed — ${bySource(http)}`);
  if (withPg)
    out(`PostgreSQL: ${pgCounters.requests} queries, ${pgCounters.errors} failed — ${bySource(pgCounters)}`);
  out(
    `Control plane: ${churn.calls} calls, ${churn.errors} failed; ${churn.fakesRegistered} fake instances (${churn.fakesAbandoned} abandoned to eviction), ${churn.streamMessages} StreamNLBMetrics messages`,
  );
  out(
    `  ${Object.entries(churn.byMethod)
      .map(([m, v]) => `${m} ${v.calls}${v.errors ? ` (${v.errors} failed)` : ''}`)
      .join(', ')}`,
  );
  for (const [m, s] of Object.entries(churn.errorSamples))
    out(`  ${m} failures, e.g.: ${s.slice(0, 2).join(' | ')}`);
  if (errors.length) {
    out('Client failures by kind and the control-plane event before them:');
    for (const e of errors) out(`  ${String(e.count).padStart(5)}  ${e.what} (${e.firstS}-${e.lastS} s)`);
  }
  out(
    'Stack output lines (stdout + stderr, log level warn): ' +
      Object.entries(stackLog)
        .map(([r, o]) => `${r} ${o.lines}`)
        .join(', '),
  );
  for (const [r, o] of Object.entries(stackLog))
    for (const l of o.last.slice(-2)) out(`  ${r}: ${l.slice(0, 200)}`);
  out('');
  out(
    `Bound per process (alive from warm-up end to the end): RSS ≤ warm-up × ${1 + RSS_GROWTH_PCT / 100} + ${RSS_GROWTH_MB} MB, fds ≤ warm-up + ${FD_GROWTH}; ` +
      `warm-up = first ${WARMUP_FRACTION * 100} % (${Math.round(runSeconds * WARMUP_FRACTION)} s); values are medians of the 3 nearest samples.`,
  );
  out(verdictTable(verdicts));
  out('');
  out(
    result.pass
      ? `PASS: ${bounded.length} process(es) within the bound`
      : `FAIL: ${failed.map((v) => `${v.name} (${v.reason})`).join('; ') || 'no process was alive for the whole run'}`,
  );
  return result.pass ? 0 : 1;
}

let interrupted = false;
const onSignal = () => {
  if (interrupted) return;
  interrupted = true;
  log('interrupted: stopping every process of the stack…');
  void cleanup().finally(() => process.exit(130));
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);

let code: number;
try {
  code = await main();
} catch (e) {
  log(`failed: ${(e as Error).message}`);
  for (const [role, o] of output)
    if (o.lines.length) log(`last output of ${role}:\n  ${o.lines.slice(-8).join('\n  ')}`);
  code = 1;
} finally {
  await cleanup();
}
process.exit(code);
