/**
 * Control-plane benchmark (`npm run bench:control-plane -- [--instances 10000] [--seconds 20]
 * [--clients 3]`): starts the real NLB as a child process, registers N fake instances from
 * several load-generator processes, sustains their heartbeats, times ListModules idle and
 * under load, and prints the figures beside the targets. The NLB's CPU and memory come from
 * /proc for its pid alone, so the load generator's share of the machine is not counted.
 *
 * A benchmark, not a test: `npm test` does not run it, and a missed target does not fail it
 * (exit 1 only when the benchmark itself or an RPC failed).
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ListModulesRequest, NLBServiceClient } from '../proto/gen/marchproxy/nlb.js';
import { HealthStatus, ModuleType } from '../proto/gen/marchproxy/types.js';
import { createClientConnection, createNlbClient, unaryCall } from '../services/shared/grpc/client.js';
import {
  Histogram,
  machineCpu,
  processCpuMs,
  processMemoryMb,
  sampleQuantile,
  setClockTicks,
  type FromNlb,
  type FromWorker,
  type PhaseResult,
  type ToNlb,
  type ToWorker,
} from './control-plane-shared.js';
import { compileForBench } from './compile.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const TARGET_HEARTBEATS_PER_S = 10_000;
const TARGET_LIST_P99_MS = 50;
const TARGET_RSS_MB = 300;
const CALL_TIMEOUT_MS = 10_000;
const LIST_TIMEOUT_MS = 30_000;
/** The heartbeat phase that carries the ListModules-under-load calls ends after this at most. */
const UNDER_LOAD_CAP_MS = 60_000;
/** The NLB runs with --heartbeat-interval 10: the fleet's own rate is instances / 10 per second. */
const HEARTBEAT_INTERVAL_S = 10;

// ---- options ---------------------------------------------------------------------------------

const USAGE = `usage: node --import tsx bench/control-plane.ts [options]

  --instances N    fake instances to register (default 10000)
  --seconds S      length of the measured heartbeat phase (default 20)
  --clients C      load-generator processes (default 3)
  --inflight K     calls in flight per load-generator process (default 100)
  --list-calls L   sequential ListModules calls per query kind and condition (default 50)
  --runtime R      how the NLB runs: "compiled" (default: the sources compiled with tsc into a
                   temp dir and run by plain node, as in production) or "tsx" (the sources
                   through tsx, as bin/dev.js does; about 40 MB more RSS)
  --cpu-prof DIR   profile the NLB (V8 sampling profiler) during registration, the heartbeat
                   phase and ListModules under load; writes nlb-<phase>.cpuprofile files to DIR
                   (summarise them with bench/cpuprofile-top.ts)
  --heap-prof DIR  the V8 sampling heap profiler over the same phases, keeping allocations that
                   outlived a scavenge (nlb-<phase>.heapprofile in DIR; --cpu-prof's DIR when
                   both are given; summarise with bench/heapprofile-top.ts)
  --nlb-node-options="FLAGS"  node/V8 flags for the NLB process only (default: the
                   Dockerfile's NODE_OPTIONS, how the NLB is deployed; "" for none), e.g.
                   "--trace-gc" or "--max-semi-space-size=4" (to try GC settings)
  --heap-snapshot DIR  write V8 heap snapshots of the NLB after registration and at the end
                   (nlb-<when>.heapsnapshot; each forces a full GC first, so the figures
                   measured after one are not comparable with a run without)
  --help           this text`;

interface Options {
  instances: number;
  seconds: number;
  clients: number;
  inflight: number;
  listCalls: number;
  runtime: 'compiled' | 'tsx';
  cpuProfDir: string | undefined;
  heapSnapshotDir: string | undefined;
  heapProfDir: string | undefined;
  nlbNodeOptions: string[];
}

/** NODE_OPTIONS as the Dockerfile deploys the NLB (the runtime stage's ENV), or "". */
function deployedNodeOptions(): string {
  const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
  return /^\s*NODE_OPTIONS=(\S+)/m.exec(dockerfile)?.[1].replace(/^"|"$/g, '') ?? '';
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      instances: { type: 'string', default: '10000' },
      seconds: { type: 'string', default: '20' },
      clients: { type: 'string', default: '3' },
      inflight: { type: 'string', default: '100' },
      'list-calls': { type: 'string', default: '50' },
      runtime: { type: 'string', default: 'compiled' },
      'cpu-prof': { type: 'string' },
      'heap-snapshot': { type: 'string' },
      'heap-prof': { type: 'string' },
      'nlb-node-options': { type: 'string', default: deployedNodeOptions() },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: string, v: string, min: number, max: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      console.error(`--${name} ${v}: use a whole number from ${min} to ${max}\n\n${USAGE}`);
      process.exit(2);
    }
    return n;
  };
  const runtime = (v: string) => {
    if (v === 'compiled' || v === 'tsx') return v;
    console.error(`--runtime ${v}: use compiled or tsx\n\n${USAGE}`);
    return process.exit(2);
  };
  return {
    instances: int('instances', values.instances, 1, 1_000_000),
    seconds: int('seconds', values.seconds, 1, 3600),
    clients: int('clients', values.clients, 1, 64),
    inflight: int('inflight', values.inflight, 1, 10_000),
    listCalls: int('list-calls', values['list-calls'], 1, 10_000),
    runtime: runtime(values.runtime),
    cpuProfDir: values['cpu-prof'] ? resolve(values['cpu-prof']) : undefined,
    heapSnapshotDir: values['heap-snapshot'] ? resolve(values['heap-snapshot']) : undefined,
    heapProfDir: values['heap-prof'] ? resolve(values['heap-prof']) : undefined,
    nlbNodeOptions: values['nlb-node-options'].split(/\s+/).filter(Boolean),
  };
}

// ---- child processes -------------------------------------------------------------------------

const children: ChildProcess[] = [];
let tmp: string | undefined;
let nlbStderr = '';

/** The next message of `type` from a child; rejects on its 'failed' message, its exit or a timeout. */
function next<T extends { type: string }>(
  child: ChildProcess,
  type: T['type'],
  timeoutMs: number,
  what: string,
): Promise<T> {
  return new Promise<T>((resolvePromise, reject) => {
    const done = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const onMessage = (m: { type: string; message?: string }) => {
      if (m.type === type) {
        done();
        resolvePromise(m as T);
      } else if (m.type === 'failed') {
        done();
        reject(new Error(`${what} failed: ${m.message}`));
      }
    };
    const onExit = (code: number | null, signal: string | null) => {
      done();
      reject(
        new Error(`${what} exited (${signal ?? `code ${code}`}) while the benchmark waited for '${type}'`),
      );
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${what} sent no '${type}' within ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs);
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolvePromise) => {
    const timer = setTimeout(() => resolvePromise(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolvePromise(true);
    });
  });
}

let cleaning: Promise<void> | undefined;
/** Stops every child (asking first, then SIGKILL) and removes the temp dir. Idempotent. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await Promise.all(
      children.map(async (c) => {
        if (c.connected) {
          try {
            c.send(
              c === nlbChild ? ({ type: 'stop' } satisfies ToNlb) : ({ type: 'exit' } satisfies ToWorker),
            );
          } catch {
            // The channel closed meanwhile; the kill below handles it.
          }
        }
        if (!(await exited(c, 5000))) {
          c.kill('SIGKILL');
          await exited(c, 2000);
        }
      }),
    );
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  })();
  return cleaning;
}

let nlbChild: ChildProcess | undefined;

/**
 * Compiles the NLB entry point (and what it imports) with tsc into the temp dir, beside a copy
 * of package.json and links to proto/ and node_modules/, so that plain node runs it as the
 * built `mpctl serve nlb` would. Returns the script to fork.
 */
async function buildNlb(): Promise<string> {
  const [nlb] = await compileForBench(join(tmp!, 'build'), [join(here, 'control-plane-nlb.ts')], 'the NLB');
  return nlb;
}

async function startNlbChild(
  opts: Options,
): Promise<{ child: ChildProcess; target: string; startMs: number }> {
  const script = opts.runtime === 'compiled' ? await buildNlb() : join(here, 'control-plane-nlb.ts');
  const started = performance.now();
  const config = {
    grpc: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    dataDir: join(tmp!, 'nlb'),
    logLevel: 'warn',
    heartbeatIntervalSeconds: HEARTBEAT_INTERVAL_S,
  };
  const child = fork(script, [JSON.stringify(config)], {
    execArgv: [...(opts.runtime === 'tsx' ? ['--import', 'tsx'] : []), ...opts.nlbNodeOptions],
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  nlbChild = child;
  children.push(child);
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => {
    nlbStderr = (nlbStderr + s).slice(-8000);
  });
  const ready = await next<Extract<FromNlb, { type: 'ready' }>>(child, 'ready', 60_000, 'the NLB');
  child.on('exit', (code, signal) => {
    if (!cleaning) console.error(`the NLB exited unexpectedly (${signal ?? `code ${code}`})\n${nlbStderr}`);
  });
  return { child, target: `127.0.0.1:${ready.grpcPort}`, startMs: performance.now() - started };
}

async function startWorkers(opts: Options, target: string): Promise<ChildProcess[]> {
  const workers: ChildProcess[] = [];
  const waits: Array<Promise<unknown>> = [];
  let first = 0;
  for (let w = 0; w < opts.clients; w++) {
    const count = Math.floor(opts.instances / opts.clients) + (w < opts.instances % opts.clients ? 1 : 0);
    const child = fork(join(here, 'control-plane-worker.ts'), [], {
      execArgv: ['--import', 'tsx'],
      stdio: 'inherit',
    });
    children.push(child);
    workers.push(child);
    const init: ToWorker = {
      type: 'init',
      target,
      first,
      count,
      inflight: opts.inflight,
      timeoutMs: CALL_TIMEOUT_MS,
    };
    waits.push(next(child, 'ready', 60_000, `load generator ${w + 1}`));
    child.send(init);
    first += count;
  }
  await Promise.all(waits);
  return workers;
}

/** Sends `msg` to every worker and collects each one's `reply` result. */
async function phase(
  workers: ChildProcess[],
  msg: ToWorker,
  reply: 'registered' | 'hb-done',
  timeoutMs: number,
): Promise<PhaseResult[]> {
  const waits = workers.map((w, i) =>
    next<Extract<FromWorker, { type: typeof reply }>>(w, reply, timeoutMs, `load generator ${i + 1}`),
  );
  for (const w of workers) w.send(msg);
  return (await Promise.all(waits)).map((m) => m.result);
}

// ---- figures -----------------------------------------------------------------------------------

interface Summary {
  answered: number;
  acknowledged: number;
  refused: number;
  errors: number;
  errorSamples: string[];
  /** Sum over workers of acknowledged calls per second of their own wall time. */
  ackPerSecond: number;
  maxElapsedMs: number;
  latency: Histogram;
}

function summarize(results: PhaseResult[]): Summary {
  const latency = new Histogram();
  for (const r of results) latency.merge(r.histogram);
  return {
    answered: results.reduce((a, r) => a + r.answered, 0),
    acknowledged: results.reduce((a, r) => a + r.acknowledged, 0),
    refused: results.reduce((a, r) => a + r.refused, 0),
    errors: results.reduce((a, r) => a + r.errors, 0),
    errorSamples: results.flatMap((r) => r.errorSamples).slice(0, 5),
    ackPerSecond: results.reduce(
      (a, r) => a + (r.elapsedMs > 0 ? (r.acknowledged * 1000) / r.elapsedMs : 0),
      0,
    ),
    maxElapsedMs: Math.max(...results.map((r) => r.elapsedMs)),
    latency,
  };
}

/** CPU of the NLB, of the benchmark's own processes and of the whole machine over a stretch of wall time. */
class CpuWindow {
  private readonly wall0 = performance.now();
  private readonly nlb0: number;
  private readonly bench0: number;
  private readonly machine0 = machineCpu();

  constructor(
    private readonly nlbPid: number,
    private readonly benchPids: number[],
  ) {
    this.nlb0 = processCpuMs(nlbPid);
    this.bench0 = this.benchCpuMs();
  }

  private benchCpuMs(): number {
    return this.benchPids.reduce((a, pid) => a + processCpuMs(pid), 0);
  }

  /** CPU times in ms of one core; `otherMs` is what the machine spent outside the NLB and the benchmark. */
  end(): { wallMs: number; nlbCpuMs: number; generatorCpuMs: number; otherMs: number; machineBusy: number } {
    const wallMs = performance.now() - this.wall0;
    const nlbCpuMs = processCpuMs(this.nlbPid) - this.nlb0;
    const generatorCpuMs = this.benchCpuMs() - this.bench0;
    const m = machineCpu();
    const busyMs = m.busyMs - this.machine0.busyMs;
    return {
      wallMs,
      nlbCpuMs,
      generatorCpuMs,
      otherMs: Math.max(0, busyMs - nlbCpuMs - generatorCpuMs),
      machineBusy: busyMs / Math.max(1, m.totalMs - this.machine0.totalMs),
    };
  }
}

type ListKind = 'page' | 'filter';

function listRequest(kind: ListKind, k: number, instances: number): ListModulesRequest {
  if (kind === 'page') {
    const pages = Math.max(1, Math.ceil(instances / 1000));
    return {
      moduleTypeFilter: ModuleType.MODULE_TYPE_UNSPECIFIED,
      statusFilter: HealthStatus.HEALTH_STATUS_UNSPECIFIED,
      query: {
        filters: [],
        sortBy: '',
        sortDesc: false,
        pagination: { page: (k % pages) + 1, pageSize: 1000, totalItems: 0, totalPages: 0 },
      },
    };
  }
  return {
    moduleTypeFilter: ModuleType.MODULE_TYPE_UNSPECIFIED,
    statusFilter: HealthStatus.HEALTH_STATUS_HEALTHY,
    query: {
      filters: [
        { field: 'version', operator: 'eq', value: '2.0.0' },
        { field: 'cpu_usage_percent', operator: 'gt', value: '50' },
      ],
      sortBy: 'cpu_usage_percent',
      sortDesc: true,
      pagination: { page: 1, pageSize: 1000, totalItems: 0, totalPages: 0 },
    },
  };
}

interface ListFigures {
  ms: number[];
  errors: number;
  errorSamples: string[];
  /** Items in the last page and the total it reported. */
  items: number;
  total: number;
}

/**
 * `calls` sequential ListModules calls of each kind, alternating page and filter so that both
 * see the same conditions (fewer when `until` says stop).
 */
async function listModules(
  client: NLBServiceClient,
  calls: number,
  instances: number,
  until: () => boolean = () => false,
): Promise<Record<ListKind, ListFigures>> {
  const out: Record<ListKind, ListFigures> = {
    page: { ms: [], errors: 0, errorSamples: [], items: 0, total: 0 },
    filter: { ms: [], errors: 0, errorSamples: [], items: 0, total: 0 },
  };
  for (let k = 0; k < calls && !until(); k++) {
    for (const kind of ['page', 'filter'] as const) {
      const f = out[kind];
      const t0 = performance.now();
      try {
        const res = await unaryCall(client, 'listModules', listRequest(kind, k, instances), {
          timeoutMs: LIST_TIMEOUT_MS,
        });
        f.ms.push(performance.now() - t0);
        f.items = res.modules.length;
        f.total = res.totalModules;
      } catch (e) {
        f.errors++;
        if (f.errorSamples.length < 3) f.errorSamples.push(e instanceof Error ? e.message : String(e));
      }
    }
  }
  return out;
}

// ---- output ----------------------------------------------------------------------------------

const f0 = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-');
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '-');

function table(rows: Array<[string, string, string?, boolean?]>): string {
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  const w2 = Math.max(...rows.map((r) => (r[2] ?? '').length));
  return rows
    .map(([name, value, target, pass]) => {
      const verdict = target === undefined || pass === undefined ? '' : pass ? 'PASS' : 'MISS';
      return `${name.padEnd(w0)}  ${value.padEnd(w1)}  ${(target ?? '').padEnd(w2)}  ${verdict}`.trimEnd();
    })
    .join('\n');
}

/** "RSS MB (V8 heap used / heap size, array buffers)". */
const mem = (m: { rss: number; heapUsed: number; heapTotal: number; buffers: number }) =>
  `${f0(m.rss)} MB (heap ${f0(m.heapUsed)} used of ${f0(m.heapTotal)}, array buffers ${f0(m.buffers)})`;

/** The larger V8 heap spaces, committed MB: "new 32, old 150, code 6, large 12". */
const spaces = (s: Record<string, number>) =>
  Object.entries(s)
    .filter(([, bytes]) => bytes >= 512 * 1024)
    .map(
      ([name, bytes]) =>
        `${name.replace(/_space$/, '').replace(/_object$/, '')} ${f0(bytes / (1024 * 1024))}`,
    )
    .join(', ') + ' MB';

const log = (msg: string) => console.error(`[bench] ${msg}`);

// ---- main ------------------------------------------------------------------------------------

async function main(opts: Options): Promise<number> {
  try {
    setClockTicks(Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()));
  } catch {
    // 100, the Linux default.
  }
  tmp = mkdtempSync(join(tmpdir(), 'mp-bench-cp-'));
  const problems: string[] = [];
  // How busy the machine is without us: it is shared, and other work skews every figure.
  const m0 = machineCpu();
  await sleep(1000);
  const m1 = machineCpu();
  const idleBusy = (m1.busyMs - m0.busyMs) / Math.max(1, m1.totalMs - m0.totalMs);

  log(`starting the NLB (${opts.runtime === 'compiled' ? 'compiling it first' : 'through tsx'})`);
  const nlb = await startNlbChild(opts);
  const pid = nlb.child.pid!;
  log(
    `NLB pid ${pid} serving on ${nlb.target} after ${f0(nlb.startMs)} ms; starting ${opts.clients} load generator(s)`,
  );
  const workers = await startWorkers(opts, nlb.target);
  const memory = async () => {
    const waiting = next<Extract<FromNlb, { type: 'memory' }>>(nlb.child, 'memory', 10_000, 'the NLB');
    nlb.child.send({ type: 'memory' } satisfies ToNlb);
    const { usage, spaces } = await waiting;
    const mb = (n: number) => n / (1024 * 1024);
    return {
      ...processMemoryMb(pid),
      heapUsed: mb(usage.heapUsed),
      heapTotal: mb(usage.heapTotal),
      buffers: mb(usage.arrayBuffers),
      spaces,
    };
  };
  /** Writes a heap snapshot of the NLB when --heap-snapshot is given. */
  const heapSnapshot = async (name: string) => {
    if (!opts.heapSnapshotDir) return;
    mkdirSync(opts.heapSnapshotDir, { recursive: true });
    const file = join(opts.heapSnapshotDir, `nlb-${name}.heapsnapshot`);
    const written = next(nlb.child, 'heap-snapshot-written', 300_000, 'the NLB');
    nlb.child.send({ type: 'heap-snapshot', file } satisfies ToNlb);
    await written;
    log(`NLB heap snapshot ${name}: ${file}`);
  };
  /** Runs `f` with the NLB's CPU and/or heap profiler on when --cpu-prof / --heap-prof is given. */
  const profiled = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
    const dir = opts.cpuProfDir ?? opts.heapProfDir;
    if (!dir) return f();
    mkdirSync(dir, { recursive: true });
    const started = next(nlb.child, 'profiling', 10_000, 'the NLB');
    nlb.child.send({
      type: 'profile-start',
      cpu: Boolean(opts.cpuProfDir),
      heap: Boolean(opts.heapProfDir),
    } satisfies ToNlb);
    await started;
    const result = await f();
    const written = next<Extract<FromNlb, { type: 'profiled' }>>(nlb.child, 'profiled', 60_000, 'the NLB');
    nlb.child.send({ type: 'profile-stop', base: join(dir, `nlb-${name}`) } satisfies ToNlb);
    for (const file of (await written).files) log(`NLB profile of ${name}: ${file}`);
    return result;
  };
  const rssBefore = await memory();

  // Registration.
  log(`registering ${f0(opts.instances)} instances`);
  const benchPids = [process.pid, ...workers.map((w) => w.pid!)];
  let cpu = new CpuWindow(pid, benchPids);
  const reg = summarize(
    await profiled('registration', () =>
      phase(workers, { type: 'register' }, 'registered', 60_000 + opts.instances * 20),
    ),
  );
  const regCpu = cpu.end();
  if (reg.errors || reg.refused) {
    throw new Error(
      `registration failed for ${reg.errors + reg.refused} instance(s): ${reg.errorSamples.join('; ')}`,
    );
  }
  await sleep(1000);
  const rssAfterRegistration = await memory();
  await heapSnapshot('after-registration');

  // Warm-up: one heartbeat from every instance, so that each has stats to filter and sort on.
  log('warm-up: one heartbeat from every instance');
  const warm = summarize(
    await phase(
      workers,
      { type: 'hb-start', durationMs: 0, passes: 1, ratePerSecond: 0 },
      'hb-done',
      60_000 + opts.instances * 20,
    ),
  );
  if (warm.errors || warm.refused) {
    problems.push(`warm-up heartbeats: ${warm.errors} error(s), ${warm.refused} refused`);
  }

  // ListModules with nothing else going on.
  log(`ListModules idle: ${opts.listCalls} paged and ${opts.listCalls} filtered and sorted, alternating`);
  const conn = createClientConnection({ target: nlb.target, timeoutMs: LIST_TIMEOUT_MS });
  const client = createNlbClient(conn);
  await listModules(client, 3, opts.instances); // warm the path up
  const idle = await listModules(client, opts.listCalls, opts.instances);

  // Sustained heartbeats, as fast as the load generators go.
  log(`heartbeats for ${opts.seconds} s from ${opts.clients} process(es) × ${opts.inflight} in flight`);
  cpu = new CpuWindow(pid, benchPids);
  const hbResults = await profiled('heartbeats', () =>
    phase(
      workers,
      { type: 'hb-start', durationMs: opts.seconds * 1000, passes: 0, ratePerSecond: 0 },
      'hb-done',
      opts.seconds * 1000 + 60_000,
    ),
  );
  const hbCpu = cpu.end();
  const hb = summarize(hbResults);
  const rssAfterHeartbeats = await memory();

  /** ListModules while heartbeats go on at `rate` per second in all (0 = as fast as possible). */
  const listUnderLoad = async (name: string, rate: number) => {
    const window = new CpuWindow(pid, benchPids);
    return profiled(name, async () => {
      const loaded = phase(
        workers,
        { type: 'hb-start', durationMs: UNDER_LOAD_CAP_MS, passes: 0, ratePerSecond: rate / opts.clients },
        'hb-done',
        UNDER_LOAD_CAP_MS + 60_000,
      );
      let over = false;
      void loaded.then(
        () => (over = true),
        () => (over = true),
      );
      await sleep(1000);
      const lists = await listModules(client, opts.listCalls, opts.instances, () => over);
      for (const w of workers) w.send({ type: 'hb-stop' } satisfies ToWorker);
      return { ...lists, heartbeats: summarize(await loaded), cpu: window.end() };
    });
  };
  // The fleet's own rate: every instance once per heartbeat interval.
  const fleetRate = opts.instances / HEARTBEAT_INTERVAL_S;
  log(`ListModules while the fleet heartbeats at its interval (${f0(fleetRate)}/s)`);
  const atFleetRate = await listUnderLoad('list-fleet-rate', fleetRate);
  log('ListModules under saturating heartbeat load');
  const saturated = await listUnderLoad('list-saturated', 0);
  client.close();
  await sleep(1000);
  const rssEnd = await memory();
  await heapSnapshot('end');

  // ---- report ----
  const cpuPerHbUs = hb.answered ? (hbCpu.nlbCpuMs * 1000) / hb.answered : NaN;
  const lists: Array<[string, ListFigures]> = [
    ['ListModules idle, page_size 1000', idle.page],
    ['ListModules idle, filter + sort', idle.filter],
    [`ListModules at ${f0(fleetRate)} heartbeats/s, page_size 1000`, atFleetRate.page],
    [`ListModules at ${f0(fleetRate)} heartbeats/s, filter + sort`, atFleetRate.filter],
    ['ListModules, saturating heartbeats, page_size 1000', saturated.page],
    ['ListModules, saturating heartbeats, filter + sort', saturated.filter],
  ];
  for (const [name, l] of lists) {
    if (l.errors) problems.push(`${name}: ${l.errors} error(s): ${l.errorSamples.join('; ')}`);
  }
  for (const [name, h] of [
    ['heartbeats', hb],
    ['heartbeats at the fleet rate', atFleetRate.heartbeats],
    ['saturating heartbeats', saturated.heartbeats],
  ] as const) {
    if (h.errors) problems.push(`${name}: ${h.errors} error(s): ${h.errorSamples.join('; ')}`);
    if (h.refused) problems.push(`${name}: ${h.refused} not acknowledged: ${h.errorSamples.join('; ')}`);
  }
  const loadLine = (l: Awaited<ReturnType<typeof listUnderLoad>>) =>
    `${f0(l.heartbeats.ackPerSecond)}/s, p99 ${f2(l.heartbeats.latency.quantile(0.99))} ms ` +
    `(${f1(l.cpu.wallMs / 1000)} s, NLB ${f0((l.cpu.nlbCpuMs / l.cpu.wallMs) * 100)} % CPU)`;

  const cores = availableParallelism();
  const rows: Array<[string, string, string?, boolean?]> = [
    ['figure', 'measured', 'target', undefined],
    ['NLB start (fork to serving)', `${f0(nlb.startMs)} ms`],
    [
      'registration',
      `${f0(opts.instances / (reg.maxElapsedMs / 1000))}/s, p50 ${f2(reg.latency.quantile(0.5))} ms, p99 ${f2(reg.latency.quantile(0.99))} ms`,
    ],
    ['NLB CPU per registration', `${f0((regCpu.nlbCpuMs * 1000) / opts.instances)} µs`],
    [
      'heartbeats/s handled (acknowledged)',
      `${f0(hb.ackPerSecond)}/s`,
      '≥ 10,000/s',
      hb.ackPerSecond >= TARGET_HEARTBEATS_PER_S,
    ],
    ['Heartbeat latency p50 / p99', `${f2(hb.latency.quantile(0.5))} / ${f2(hb.latency.quantile(0.99))} ms`],
    ['Heartbeat latency max (bucket)', `${f1(hb.latency.quantile(1))} ms`],
    ['heartbeats answered / errors / refused', `${f0(hb.answered)} / ${f0(hb.errors)} / ${f0(hb.refused)}`],
    ['NLB CPU per heartbeat', `${f1(cpuPerHbUs)} µs`],
    [
      'heartbeats/s one free core could take',
      `${f0(1e6 / cpuPerHbUs)}/s (1 s / CPU per heartbeat)`,
      '≥ 10,000/s',
      1e6 / cpuPerHbUs >= TARGET_HEARTBEATS_PER_S,
    ],
    ['NLB CPU during heartbeats', `${f0((hbCpu.nlbCpuMs / hbCpu.wallMs) * 100)} % of one core`],
    [
      'load generator CPU during heartbeats',
      `${f0((hbCpu.generatorCpuMs / hbCpu.wallMs) * 100)} % of one core (${opts.clients} processes + parent)`,
    ],
    [
      'other CPU during heartbeats',
      `${f0((hbCpu.otherMs / hbCpu.wallMs) * 100)} % of one core (kernel, other processes)`,
    ],
    [
      'machine busy during heartbeats',
      `${f0(hbCpu.machineBusy * 100)} % of ${cores} cores (${f0(idleBusy * 100)} % before the run)`,
    ],
  ];
  for (const [name, l] of lists) {
    const p99 = sampleQuantile(l.ms, 0.99);
    rows.push([
      name,
      `p50 ${f1(sampleQuantile(l.ms, 0.5))} / p99 ${f1(p99)} ms (${l.ms.length} calls, ${f0(l.items)} of ${f0(l.total)})`,
      'p99 < 50 ms',
      l.ms.length > 0 && p99 < TARGET_LIST_P99_MS,
    ]);
  }
  rows.push(
    [`heartbeats during ListModules at ${f0(fleetRate)}/s`, loadLine(atFleetRate)],
    ['heartbeats during ListModules, saturating', loadLine(saturated)],
    ['NLB RSS before registration', mem(rssBefore)],
    [
      'NLB RSS after registration',
      mem(rssAfterRegistration),
      '< 300 MB',
      rssAfterRegistration.rss < TARGET_RSS_MB,
    ],
    ['NLB RSS after the heartbeat phase', mem(rssAfterHeartbeats)],
    ['NLB RSS at the end', mem(rssEnd), '< 300 MB', rssEnd.rss < TARGET_RSS_MB],
    ['NLB peak RSS (VmHWM)', `${f0(rssEnd.peak)} MB`, '< 300 MB', rssEnd.peak < TARGET_RSS_MB],
    ['V8 heap spaces at the end (committed)', spaces(rssEnd.spaces)],
  );

  console.log('');
  console.log('MarchProxy NLB control-plane benchmark');
  console.log(
    `machine: ${cores} cores (nproc), Node ${process.version}, ${process.platform} ${process.arch}; NLB ${opts.runtime}; ` +
      `${f0(opts.instances)} instances, ${opts.clients} load-generator processes × ${opts.inflight} calls in flight, ` +
      `${opts.seconds} s of heartbeats${opts.cpuProfDir || opts.heapProfDir ? '; NLB profiled (its CPU figures include the profiler)' : ''}` +
      `${opts.nlbNodeOptions.length ? `; NLB node options: ${opts.nlbNodeOptions.join(' ')}` : ''}`,
  );
  console.log(
    `note: the load generator shares these ${cores} cores with the NLB, so heartbeats/s is bounded by both; ` +
      'NLB CPU per heartbeat is the figure to compare between runs.',
  );
  console.log('');
  console.log(table(rows));
  if (problems.length) {
    console.log('');
    console.log('errors:');
    for (const p of problems) console.log(`  - ${p}`);
  }
  console.log('');
  return problems.length ? 1 : 0;
}

const opts = parseOptions();
/** Set when the run is being stopped from outside (signal, time limit): errors that follow are expected. */
let abortedWith: number | undefined;
const abort = (why: string, code: number) => {
  if (abortedWith !== undefined) return;
  abortedWith = code;
  console.error(`[bench] ${why}: stopping the NLB and the load generators`);
  void cleanup().finally(() => process.exit(code));
};
const limitMs = 120_000 + opts.seconds * 1000 + 2 * UNDER_LOAD_CAP_MS + opts.instances * 10;
setTimeout(() => abort(`gave up after ${Math.round(limitMs / 1000)} s`, 1), limitMs).unref();
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => abort(signal, 130));

let code = 1;
try {
  code = await main(opts);
} catch (e) {
  if (abortedWith === undefined) {
    console.error(`[bench] failed: ${e instanceof Error ? e.message : String(e)}`);
    if (nlbStderr) console.error(`[bench] NLB stderr (last lines):\n${nlbStderr}`);
  }
}
await cleanup();
process.exit(abortedWith ?? code);
