/**
 * Data-plane benchmark (`npm run bench:dataplane -- [--seconds 10] [--reps 3] [--pin]`): in one
 * run on one machine, measures HTTP keep-alive requests/s and p99, new connections/s and bulk
 * Gbit/s for three paths to the same nginx backend: direct, HAProxy in `mode tcp` (N threads),
 * and the NLB (a sniffing listener served by N data-plane workers; the backend registered by
 * hand over gRPC, PROXY header off).
 * Repetitions are interleaved (rep → test → path), figures are medians, and the proxies' CPU
 * per request / connection / GB comes from /proc/<pid>/stat (PERF-NOTES.md "How to measure
 * fairly"). The machine may be shared: every measurement also records the CPU that processes
 * outside the benchmark used, and a disturbed one is repeated.
 *
 * A benchmark, not a test: `npm test` does not run it, and a missed target does not fail it
 * (exit 1 only when the benchmark itself broke).
 */
import { execFileSync, fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  accessSync,
  constants,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer, connect as netConnect } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { ModuleServiceService, type ModuleServiceServer } from '../proto/gen/marchproxy/module.js';
import { HealthStatus, ModuleType, Protocol, ProxyProtocolMode } from '../proto/gen/marchproxy/types.js';
import { createClientConnection, createNlbClient, unaryCall } from '../services/shared/grpc/client.js';
import type { FromDataplaneNlb, ToDataplaneNlb } from './dataplane-nlb.js';
import { compileForBench } from './compile.js';

const here = dirname(fileURLToPath(import.meta.url));

/** The issue's targets, as NLB / HAProxy ratios. */
const TARGET_KEEPALIVE_RATIO = 0.9;
const TARGET_CONN_RATIO = 0.7;
const TARGET_P99_RATIO = 1.5;
/** wrk connections (PERF-NOTES' reference figures use 50). */
const CONNECTIONS = 50;
/** Size of the file the bulk test downloads, again and again, over one connection. */
const BULK_FILE_BYTES = 256 * 1024 * 1024;
/** Node's bulk throughput is bimodal run to run: take the median of at least this many samples. */
const MIN_BULK_SAMPLES = 5;
const WARMUP_SECONDS = 2;
const KEEPALIVE_BODY = 'hello from the benchmark backend\n';

// ---- options ---------------------------------------------------------------------------------

const USAGE = `usage: node --import tsx bench/dataplane.ts [options]

  --seconds S       length of each measurement (default 10)
  --reps R          interleaved repetitions (default 3); medians are reported
  --pin             pin cores with taskset: load generator and backend on core 0, the proxy
                    alone on core 1 (the direct path: backend on core 1); wrk runs 1 thread.
                    Without it nothing is pinned and wrk runs 2 threads.
  --tests LIST      keepalive,conn,bulk (default all three)
  --paths LIST      direct,haproxy,nlb (default all three)
  --max-other P     a measurement is disturbed when processes outside the benchmark used more
                    than P % of one core during it (default 10)
  --retries N       repeat a disturbed measurement up to N times, keeping the least
                    disturbed attempt (default 2)
  --quiet-wait S    before each measurement, wait up to S seconds for other processes to
                    use at most --max-other (default 30)
  --workers N       the NLB's data-plane workers (dataplane.workers; default 1: the NLB's own
                    process serves the listener)
  --haproxy-threads N
                    HAProxy's nbthread (default: the same as --workers, the fair comparison)
  --cpu-prof DIR    after the measured repetitions, profile the NLB (V8 sampling profiler)
                    during one extra run of each test; writes DIR/nlb-<test>.cpuprofile
                    (summarise with bench/cpuprofile-top.ts). The table is not affected.
                    Needs --workers 1 (it profiles the NLB's own process).
  --relay MODE      the NLB's dataplane.relay: native (default: the native relay forwards
                    connected pairs; the run fails if it is not built), js (forward.ts), auto
  --help            this text`;

const TESTS = ['keepalive', 'conn', 'bulk'] as const;
const PATHS = ['direct', 'haproxy', 'nlb'] as const;
type TestName = (typeof TESTS)[number];
type PathName = (typeof PATHS)[number];

interface Options {
  seconds: number;
  reps: number;
  pin: boolean;
  tests: TestName[];
  paths: PathName[];
  maxOtherPct: number;
  retries: number;
  quietWaitS: number;
  cpuProfDir: string | undefined;
  workers: number;
  /** The NLB's dataplane.relay. */
  relay: 'native' | 'js' | 'auto';
  haproxyThreads: number;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '10' },
      reps: { type: 'string', default: '3' },
      pin: { type: 'boolean', default: false },
      tests: { type: 'string', default: TESTS.join(',') },
      paths: { type: 'string', default: PATHS.join(',') },
      'max-other': { type: 'string', default: '10' },
      retries: { type: 'string', default: '2' },
      'quiet-wait': { type: 'string', default: '30' },
      'cpu-prof': { type: 'string' },
      workers: { type: 'string', default: '1' },
      'haproxy-threads': { type: 'string' },
      relay: { type: 'string', default: 'native' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const fail = (msg: string): never => {
    console.error(`${msg}\n\n${USAGE}`);
    return process.exit(2);
  };
  const num = (name: string, v: string, min: number, max: number, int = true) => {
    const n = Number(v);
    if (!Number.isFinite(n) || (int && !Number.isInteger(n)) || n < min || n > max)
      fail(`--${name} ${v}: use a${int ? ' whole' : ''} number from ${min} to ${max}`);
    return n;
  };
  const list = <T extends string>(name: string, v: string, all: readonly T[]): T[] => {
    const items = v.split(',').map((s) => s.trim());
    for (const i of items) if (!all.includes(i as T)) fail(`--${name}: ${i} is not one of ${all.join(', ')}`);
    return all.filter((a) => items.includes(a));
  };
  const workers = num('workers', values.workers, 1, 64);
  if (values['cpu-prof'] && workers > 1)
    fail('--cpu-prof profiles the NLB process itself: use it with --workers 1');
  const relay = values.relay;
  if (relay !== 'native' && relay !== 'js' && relay !== 'auto')
    fail(`--relay ${relay}: use native, js or auto`);
  return {
    workers,
    relay: relay as Options['relay'],
    haproxyThreads: num('haproxy-threads', values['haproxy-threads'] ?? String(workers), 1, 64),
    seconds: num('seconds', values.seconds, 1, 600),
    reps: num('reps', values.reps, 1, 50),
    pin: values.pin,
    tests: list('tests', values.tests, TESTS),
    paths: list('paths', values.paths, PATHS),
    maxOtherPct: num('max-other', values['max-other'], 0, 200, false),
    retries: num('retries', values.retries, 0, 10),
    quietWaitS: num('quiet-wait', values['quiet-wait'], 0, 600),
    cpuProfDir: values['cpu-prof'] ? resolve(values['cpu-prof']) : undefined,
  };
}

// ---- tools -----------------------------------------------------------------------------------

const SEARCH_PATH = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

function which(cmd: string): string | undefined {
  for (const dir of SEARCH_PATH) {
    if (!dir) continue;
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The Debian packages the benchmark needs; installs missing ones as root, else says how. */
function ensureTools(pin: boolean): Record<'haproxy' | 'wrk' | 'nginx' | 'taskset', string> {
  const wanted = { haproxy: 'haproxy', wrk: 'wrk', nginx: 'nginx', taskset: 'util-linux' } as const;
  const missing = () => Object.entries(wanted).filter(([cmd]) => !which(cmd));
  let m = missing();
  if (m.length && !(m.length === 1 && m[0][0] === 'taskset' && !pin)) {
    const pkgs = [...new Set(m.map(([, pkg]) => pkg))];
    const cmd = `apt-get install -y ${pkgs.join(' ')}`;
    if (process.getuid?.() !== 0) {
      console.error(
        `[bench] missing: ${m.map(([c]) => c).join(', ')}. Install them with:\n\n  sudo ${cmd}\n`,
      );
      process.exit(2);
    }
    log(`missing ${m.map(([c]) => c).join(', ')}: running ${cmd}`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    try {
      execFileSync('apt-get', ['install', '-y', ...pkgs], { stdio: 'inherit', env });
    } catch {
      execFileSync('apt-get', ['update'], { stdio: 'inherit', env });
      execFileSync('apt-get', ['install', '-y', ...pkgs], { stdio: 'inherit', env });
    }
    m = missing();
    if (m.length) throw new Error(`still missing after apt-get: ${m.map(([c]) => c).join(', ')}`);
  }
  return {
    haproxy: which('haproxy')!,
    wrk: which('wrk')!,
    nginx: which('nginx')!,
    taskset: which('taskset') ?? 'taskset',
  };
}

function versionOf(cmd: string, args: string[], re: RegExp): string {
  // nginx -v and wrk -v print on stderr (wrk exits 1).
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return re.exec(`${r.stdout ?? ''}${r.stderr ?? ''}`)?.[1] ?? '?';
}

// ---- processes -------------------------------------------------------------------------------

const children = new Set<ChildProcess>();
let tmp: string | undefined;
let nlbChild: ChildProcess | undefined;
let nlbStderr = '';
let controller: grpc.Server | undefined;

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((r) => {
    const timer = setTimeout(() => r(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      r(true);
    });
  });
}

let cleaning: Promise<void> | undefined;
/** Stops every child (asking first, then SIGKILL), the fake controller, and removes the temp dir. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await Promise.all(
      [...children].map(async (c) => {
        try {
          if (c === nlbChild && c.connected) c.send({ type: 'stop' } satisfies ToDataplaneNlb);
          else c.kill('SIGTERM');
        } catch {
          // gone meanwhile
        }
        if (!(await exited(c, 3000))) {
          c.kill('SIGKILL');
          await exited(c, 2000);
        }
      }),
    );
    controller?.forceShutdown();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  })();
  return cleaning;
}

/** Runs a command to its end; rejects on a non-zero exit (unless allowed) or the timeout. */
function run(
  cmd: string,
  args: string[],
  timeoutMs: number,
  okCodes: number[] = [0],
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr = (stderr + s).slice(-4000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== null && okCodes.includes(code)) resolvePromise({ stdout, stderr });
      else
        reject(
          new Error(
            `${cmd} ${args.join(' ')} exited (${signal ?? `code ${code}`}): ${stderr.trim() || stdout.trim()}`,
          ),
        );
    });
  });
}

/** A free loopback TCP port (asked of the kernel, then released). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const a = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  if (!a || typeof a !== 'object') throw new Error('no free port');
  return a.port;
}

/** Resolves once something accepts on the port; rejects after `timeoutMs` or when `child` exits. */
async function waitForPort(
  port: number,
  timeoutMs: number,
  child: ChildProcess,
  what: string,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${what} exited while starting`);
    const ok = await new Promise<boolean>((r) => {
      const s = netConnect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        r(true);
      });
      s.once('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`${what} does not accept on port ${port}`);
    await sleep(50);
  }
}

/** `cmd args` pinned to `core` with taskset, or as is. */
function onCore(core: number | null, cmd: string, args: string[]): [string, string[]] {
  return core === null ? [cmd, args] : [tools.taskset, ['-c', String(core), cmd, ...args]];
}

/** Moves every thread of a running process to `core`. */
function pinPid(pid: number, core: number): void {
  execFileSync(tools.taskset, ['-a', '-p', '-c', String(core), String(pid)], { stdio: 'ignore' });
}

async function startNginx(dir: string, core: number | null): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  mkdirSync(join(dir, 'html'), { recursive: true });
  mkdirSync(join(dir, 'logs'), { recursive: true });
  writeFileSync(join(dir, 'html', 'index.txt'), KEEPALIVE_BODY);
  // The bulk file: real (not sparse) zeros, read once into the page cache.
  const mb = Buffer.alloc(1024 * 1024);
  const file = join(dir, 'html', 'bulk.bin');
  writeFileSync(file, '');
  for (let i = 0; i < BULK_FILE_BYTES / mb.length; i++) writeFileSync(file, mb, { flag: 'a' });
  const conf = `
daemon off;
master_process off;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'logs', 'error.log')} warn;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 300s;
  keepalive_requests 100000000;
  client_body_temp_path ${join(dir, 'tmp-body')};
  proxy_temp_path ${join(dir, 'tmp-proxy')};
  fastcgi_temp_path ${join(dir, 'tmp-fcgi')};
  uwsgi_temp_path ${join(dir, 'tmp-uwsgi')};
  scgi_temp_path ${join(dir, 'tmp-scgi')};
  default_type application/octet-stream;
  open_file_cache max=16 inactive=600s;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    root ${join(dir, 'html')};
    location = / { default_type text/plain; return 200 '${KEEPALIVE_BODY.trim()}\\n'; }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const [cmd, args] = onCore(core, tools.nginx, [
    '-p',
    dir,
    '-c',
    join(dir, 'nginx.conf'),
    '-e',
    join(dir, 'logs', 'error.log'),
  ]);
  const child = track(spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] }));
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err = (err + s).slice(-4000)));
  await waitForPort(port, 10_000, child, `nginx (${err.trim()})`);
  return { child, port };
}

async function startHaproxy(
  dir: string,
  backendPort: number,
  core: number | null,
  threads: number,
): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  // mode tcp, as many threads as the NLB has workers, default buffers, no logging: PERF-NOTES'
  // fair setup.
  const conf = `global
  nbthread ${threads}
  maxconn 4096

defaults
  mode tcp
  timeout connect 2s
  timeout client 300s
  timeout server 300s

frontend bench
  bind 127.0.0.1:${port}
  default_backend nginx

backend nginx
  server s1 127.0.0.1:${backendPort}
`;
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, conf);
  const [cmd, args] = onCore(core, tools.haproxy, ['-f', file, '-db']);
  const child = track(spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] }));
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err = (err + s).slice(-4000)));
  child.on('exit', (code, signal) => {
    if (!cleaning) console.error(`[bench] HAProxy exited (${signal ?? `code ${code}`}): ${err.trim()}`);
  });
  await waitForPort(port, 10_000, child, 'HAProxy');
  return { child, port };
}

/** The next message of `type` from the NLB child; rejects on 'failed', its exit or a timeout. */
function nextFromNlb<T extends FromDataplaneNlb>(
  child: ChildProcess,
  type: T['type'],
  timeoutMs: number,
): Promise<T> {
  return new Promise<T>((resolvePromise, reject) => {
    const done = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const onMessage = (m: FromDataplaneNlb) => {
      if (m.type === type) {
        done();
        resolvePromise(m as T);
      } else if (m.type === 'failed') {
        done();
        reject(new Error(`the NLB failed: ${m.message}`));
      }
    };
    const onExit = (code: number | null, signal: string | null) => {
      done();
      reject(
        new Error(`the NLB exited (${signal ?? `code ${code}`}) while the benchmark waited for '${type}'`),
      );
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`the NLB sent no '${type}' within ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs);
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

/**
 * Compiles the NLB child entry and the bulk client (and what they import) with tsc into the
 * temp dir, beside a copy of package.json and links to proto/ and node_modules/, so that plain
 * node runs them without tsx's loader (as bench/control-plane.ts does).
 */
async function build(): Promise<{ nlb: string; bulk: string }> {
  const [nlb, bulk] = await compileForBench(
    join(tmp!, 'build'),
    [join(here, 'dataplane-nlb.ts'), join(here, 'dataplane-bulk.ts')],
    'the NLB',
  );
  return { nlb, bulk };
}

async function startNlbChild(
  script: string,
  core: number | null,
  workers: number,
  relay: Options['relay'],
): Promise<{ child: ChildProcess; grpcPort: number; port: number }> {
  const config = {
    grpc: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    dataDir: '', // in memory
    logLevel: 'warn',
    // No heartbeats are sent: the hand-registered instance must stay healthy through the run.
    heartbeatIntervalSeconds: 3600,
    listeners: [{ name: 'bench', address: '127.0.0.1', port: 0, mode: 'sniff' }],
    dataplane: { workers, relay },
  };
  // fork() runs `execPath ...execArgv script`: taskset execs node, which keeps the IPC channel.
  const child = track(
    fork(script, [JSON.stringify(config)], {
      ...(core === null ? {} : { execPath: tools.taskset, execArgv: ['-c', String(core), process.execPath] }),
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    }),
  );
  nlbChild = child;
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => {
    nlbStderr = (nlbStderr + s).slice(-8000);
  });
  const ready = await nextFromNlb<Extract<FromDataplaneNlb, { type: 'ready' }>>(child, 'ready', 60_000);
  child.on('exit', (code, signal) => {
    if (!cleaning)
      console.error(`[bench] the NLB exited unexpectedly (${signal ?? `code ${code}`})\n${nlbStderr}`);
  });
  const listener = ready.listeners.find((l) => l.name === 'bench');
  if (!listener) throw new Error('the NLB reported no bench listener');
  return { child, grpcPort: ready.grpcPort, port: listener.port };
}

/** A module controller that answers CanHandle "yes" (the NLB caches it for 30 s). */
async function startController(): Promise<number> {
  const server = new grpc.Server();
  const impl: Pick<ModuleServiceServer, 'canHandle'> = {
    canHandle: (_call, cb) => cb(null, { canHandle: true, priority: 0, reason: 'benchmark', metadata: {} }),
  };
  server.addService(ModuleServiceService, impl);
  const port = await new Promise<number>((r, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : r(p),
    ),
  );
  controller = server;
  return port;
}

/** Registers the backend by hand: an ALB instance whose traffic_address is nginx, no PROXY header. */
async function registerBackend(grpcPort: number, controllerPort: number, backendPort: number): Promise<void> {
  const conn = createClientConnection({ target: `127.0.0.1:${grpcPort}`, timeoutMs: 10_000 });
  const client = createNlbClient(conn);
  try {
    const r = await unaryCall(client, 'registerModule', {
      instance: {
        instanceId: 'bench-nginx',
        moduleType: ModuleType.MODULE_TYPE_ALB,
        address: `127.0.0.1:${controllerPort}`,
        healthStatus: HealthStatus.HEALTH_STATUS_HEALTHY,
        metadata: { bench: 'dataplane' },
        startedAt: new Date(),
        currentConnections: 0,
        maxConnections: 0,
        version: '1.0.0',
        trafficWeight: 0,
        trafficAddress: `127.0.0.1:${backendPort}`,
        proxyProtocol: ProxyProtocolMode.PROXY_PROTOCOL_MODE_NONE,
        draining: false,
        protocols: [Protocol.PROTOCOL_HTTP],
      },
      initialRoutes: [
        {
          routeId: '',
          protocol: Protocol.PROTOCOL_HTTP,
          sourcePattern: '',
          destinationPattern: '',
          sourcePort: 0,
          destinationPort: 0,
          headers: {},
          pathPattern: '',
          priority: 10,
          metadata: {},
        },
      ],
      healthConfig: undefined,
      capabilities: {},
    });
    if (!r.success) throw new Error(`RegisterModule refused: ${r.message || r.error?.message}`);
  } finally {
    client.close();
  }
}

/** One GET through `port`; resolves with the status and body (a sanity check of each path). */
function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (s: string) => (body += s));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

// ---- CPU accounting --------------------------------------------------------------------------

let clockTicks = 100;

/** Live child processes of `pid` (the NLB's data-plane workers), from /proc. */
function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** utime + stime (+ cutime + cstime: reaped children, e.g. wrk) of a process, in ms. */
function pidCpuMs(pid: number | undefined, withChildren = false): number {
  if (!pid) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]) + (withChildren ? Number(f[13]) + Number(f[14]) : 0);
    return (ticks * 1000) / clockTicks;
  } catch {
    return 0;
  }
}

/** The machine's CPU time by kind (all cores, ms) from /proc/stat. */
function machineCpu(): { busy: number; steal: number; softirq: number } {
  const v = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const ms = (t: number) => (t * 1000) / clockTicks;
  // user nice system idle iowait irq softirq steal
  return { busy: ms(v[0] + v[1] + v[2]), softirq: ms(v[5] + v[6]), steal: ms(v[7]) };
}

interface Pids {
  backend: number;
  haproxy?: number;
  nlb?: number;
  /** The NLB's data-plane worker processes (none with --workers 1). */
  nlbWorkers?: number[];
}
let pids: Pids = { backend: 0 };

interface CpuSnapshot {
  at: number;
  machine: ReturnType<typeof machineCpu>;
  ours: number;
  proxy: number;
  backend: number;
}

/** A process's CPU, and for the NLB its workers' too. */
function proxyCpuMs(pid: number | undefined): number {
  let ms = pidCpuMs(pid);
  if (pid !== undefined && pid === pids.nlb) for (const w of pids.nlbWorkers ?? []) ms += pidCpuMs(w);
  return ms;
}

function snapshot(proxyPid: number | undefined): CpuSnapshot {
  const ours =
    pidCpuMs(process.pid, true) + pidCpuMs(pids.backend) + pidCpuMs(pids.haproxy) + proxyCpuMs(pids.nlb);
  return {
    at: performance.now(),
    machine: machineCpu(),
    ours,
    proxy: proxyCpuMs(proxyPid),
    backend: pidCpuMs(pids.backend),
  };
}

interface CpuWindow {
  wallMs: number;
  proxyMs: number;
  backendMs: number;
  /** CPU used by processes outside the benchmark (and the kernel threads), ms. */
  otherMs: number;
  stealMs: number;
  softirqMs: number;
}

function window(a: CpuSnapshot, b: CpuSnapshot): CpuWindow {
  return {
    wallMs: b.at - a.at,
    proxyMs: b.proxy - a.proxy,
    backendMs: b.backend - a.backend,
    otherMs: Math.max(0, b.machine.busy - a.machine.busy - (b.ours - a.ours)),
    stealMs: b.machine.steal - a.machine.steal,
    softirqMs: b.machine.softirq - a.machine.softirq,
  };
}

/**
 * Waits until processes outside the benchmark use at most `pct` % of a core over a second, or
 * `maxMs` passes; returns the last figure.
 */
async function waitQuiet(pct: number, maxMs: number): Promise<number> {
  const until = Date.now() + maxMs;
  let said = false;
  for (;;) {
    const a = snapshot(undefined);
    await sleep(1000);
    const w = window(a, snapshot(undefined));
    const other = (w.otherMs / w.wallMs) * 100;
    if (other <= pct || Date.now() >= until) return other;
    if (!said) log(`  waiting for other processes to quieten (${f0(other)} % of a core)`);
    said = true;
  }
}

// ---- measurements ----------------------------------------------------------------------------

interface Sample {
  /** keepalive: requests/s; conn: connections/s; bulk: Gbit/s. */
  rate: number;
  /** keepalive / conn: wrk's latency p50 / p99 in ms. */
  p50Ms?: number;
  p99Ms?: number;
  /** Requests (keepalive), connections (conn) or bytes (bulk) in the window. */
  units: number;
  errors: string[];
  cpu: CpuWindow;
  /** Tries it took (a disturbed measurement is repeated). */
  attempts: number;
  disturbed: boolean;
}

/** "2.31ms" → 2.31; "812.00us" → 0.812; "1.02s" → 1020. */
function wrkMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}

function parseWrk(out: string): {
  rate: number;
  units: number;
  p50Ms: number;
  p99Ms: number;
  errors: string[];
} {
  const rate = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const units = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
  const p50Ms = wrkMs(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? '');
  const p99Ms = wrkMs(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? '');
  const errors: string[] = [];
  const sock = /Socket errors: (.*)/.exec(out)?.[1];
  if (sock) errors.push(`socket errors: ${sock}`);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1];
  if (non2xx) errors.push(`${non2xx} non-2xx responses`);
  if (!Number.isFinite(rate) || !Number.isFinite(units))
    throw new Error(`could not read wrk's output:\n${out}`);
  return { rate, units, p50Ms, p99Ms, errors };
}

interface Ctx {
  opts: Options;
  ports: Record<PathName, number>;
  bulkScript: string;
  /** wrk threads: 1 when pinned (one core), else 2. */
  wrkThreads: number;
  genCore: number | null;
}

async function wrk(ctx: Ctx, port: number, seconds: number, close: boolean) {
  const args = [
    ...['-t', String(ctx.wrkThreads), '-c', String(CONNECTIONS), '-d', `${seconds}s`, '--latency'],
    ...(close ? ['-H', 'Connection: close'] : []),
    `http://127.0.0.1:${port}/`,
  ];
  const [cmd, a] = onCore(ctx.genCore, tools.wrk, args);
  const { stdout } = await run(cmd, a, seconds * 1000 + 30_000);
  return parseWrk(stdout);
}

async function bulk(ctx: Ctx, port: number, seconds: number) {
  const [cmd, a] = onCore(ctx.genCore, process.execPath, [
    ctx.bulkScript,
    String(port),
    '/bulk.bin',
    String(seconds),
  ]);
  const { stdout } = await run(cmd, a, seconds * 1000 + 40_000, [0, 1]);
  const r = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as {
    bytes: number;
    seconds: number;
    responses: number;
    error?: string;
  };
  return { rate: (r.bytes * 8) / r.seconds / 1e9, units: r.bytes, errors: r.error ? [r.error] : [] };
}

/** The proxy a path goes through (its pid), if any. */
const proxyPid = (path: PathName) =>
  path === 'haproxy' ? pids.haproxy : path === 'nlb' ? pids.nlb : undefined;

/** One measurement of `test` on `path`, repeated while other processes disturb it. */
async function measure(ctx: Ctx, test: TestName, path: PathName, seconds: number): Promise<Sample> {
  const { opts } = ctx;
  const port = ctx.ports[path];
  // Direct: no proxy, so the backend gets the proxy's core (PERF-NOTES: "direct (two cores)").
  const moveBackend = opts.pin && path === 'direct';
  let best: Sample | undefined;
  for (let attempt = 1; attempt <= 1 + opts.retries; attempt++) {
    await waitQuiet(opts.maxOtherPct, opts.quietWaitS * 1000);
    if (moveBackend) pinPid(pids.backend, 1);
    const a = snapshot(proxyPid(path));
    let r: { rate: number; units: number; p50Ms?: number; p99Ms?: number; errors: string[] };
    try {
      r = test === 'bulk' ? await bulk(ctx, port, seconds) : await wrk(ctx, port, seconds, test === 'conn');
    } finally {
      if (moveBackend) pinPid(pids.backend, 0);
    }
    const cpu = window(a, snapshot(proxyPid(path)));
    const otherPct = (cpu.otherMs / cpu.wallMs) * 100;
    const s: Sample = { ...r, cpu, attempts: attempt, disturbed: otherPct > opts.maxOtherPct };
    if (!best || cpu.otherMs / cpu.wallMs < best.cpu.otherMs / best.cpu.wallMs) best = { ...s };
    best.attempts = attempt;
    if (!s.disturbed) break;
    log(`  ${test} ${path}: disturbed (other processes used ${f0(otherPct)} % of a core); repeating`);
  }
  return best!;
}

// ---- figures ---------------------------------------------------------------------------------

const f0 = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–');
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '–');
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '–');
const kilo = (n: number) => (Number.isFinite(n) ? `${(n / 1000).toFixed(1)}k` : '–');

function median(xs: number[]): number {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** Proxy CPU per unit of work: µs per request / connection, ms per GB. */
function cpuPer(test: TestName, s: Sample): number {
  if (!s.units) return NaN;
  return test === 'bulk' ? s.cpu.proxyMs / (s.units / 1e9) : (s.cpu.proxyMs * 1000) / s.units;
}

const log = (msg: string) => console.error(`[bench] ${msg}`);

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
const nlbShape = (workers: number, relay: Options['relay']) =>
  (workers === 1 ? '1 process' : `${workers} workers (+ the control-plane process)`) +
  (relay === 'js' ? ', JavaScript forwarding' : ', native relay');
const pathLabel = (p: PathName, o: Options): string =>
  p === 'direct'
    ? 'direct (nginx, no proxy)'
    : p === 'haproxy'
      ? `HAProxy mode tcp, ${plural(o.haproxyThreads, 'thread')}`
      : `NLB sniffing listener, ${nlbShape(o.workers, o.relay)}`;

// ---- main ------------------------------------------------------------------------------------

let tools: ReturnType<typeof ensureTools>;

async function main(opts: Options): Promise<number> {
  tools = ensureTools(opts.pin);
  try {
    clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    // 100, the Linux default.
  }
  const cores = availableParallelism();
  if (opts.pin && cores < 2) throw new Error('--pin needs at least 2 cores');
  tmp = mkdtempSync(join(tmpdir(), 'mp-bench-dp-'));
  const genCore = opts.pin ? 0 : null;
  const proxyCore = opts.pin ? 1 : null;
  // The parent (the fake controller, the bookkeeping) stays with the load generator.
  if (opts.pin) pinPid(process.pid, 0);

  const m0 = machineCpu();
  const b0 = pidCpuMs(process.pid, true);
  await sleep(1000);
  const idleOtherPct = (machineCpu().busy - m0.busy - (pidCpuMs(process.pid, true) - b0)) / 10;

  log('compiling the NLB entry with tsc');
  const scripts = await build();
  log('starting nginx, HAProxy, the NLB');
  const nginx = await startNginx(join(tmp, 'nginx'), genCore);
  const haproxy = await startHaproxy(tmp, nginx.port, proxyCore, opts.haproxyThreads);
  const controllerPort = await startController();
  const nlb = await startNlbChild(scripts.nlb, proxyCore, opts.workers, opts.relay);
  pids = {
    backend: nginx.child.pid!,
    haproxy: haproxy.child.pid!,
    nlb: nlb.child.pid!,
    nlbWorkers: opts.workers > 1 ? childPids(nlb.child.pid!) : [],
  };
  if (opts.workers > 1 && pids.nlbWorkers!.length !== opts.workers)
    throw new Error(`the NLB runs ${pids.nlbWorkers!.length} worker process(es), not ${opts.workers}`);
  await registerBackend(nlb.grpcPort, controllerPort, nginx.port);
  const ports: Record<PathName, number> = { direct: nginx.port, haproxy: haproxy.port, nlb: nlb.port };
  for (const p of PATHS) {
    for (const path of ['/', '/index.txt']) {
      const r = await get(ports[p], path);
      if (r.status !== 200 || r.body !== KEEPALIVE_BODY)
        throw new Error(
          `GET ${path} through ${p} answered ${r.status} ${JSON.stringify(r.body.slice(0, 200))}`,
        );
    }
  }
  const ctx: Ctx = { opts, ports, bulkScript: scripts.bulk, wrkThreads: opts.pin ? 1 : 2, genCore };
  log(
    `nginx :${nginx.port} (pid ${pids.backend}), HAProxy :${haproxy.port} (pid ${pids.haproxy}), ` +
      `NLB :${nlb.port} (pid ${pids.nlb}${pids.nlbWorkers!.length ? `, workers ${pids.nlbWorkers!.join(', ')}` : ''}, gRPC :${nlb.grpcPort}); every path answers`,
  );

  const bulkSamples = Math.ceil(MIN_BULK_SAMPLES / opts.reps);
  const bulkSeconds = Math.max(1, Math.round(opts.seconds / bulkSamples));

  log(`warm-up: ${WARMUP_SECONDS} s of each test on each path`);
  for (const test of opts.tests)
    for (const path of opts.paths) {
      const port = ports[path];
      if (test === 'bulk') await bulk(ctx, port, WARMUP_SECONDS);
      else await wrk(ctx, port, WARMUP_SECONDS, test === 'conn');
    }

  const samples = new Map<string, Sample[]>();
  const key = (t: TestName, p: PathName) => `${t}/${p}`;
  const perRep: string[] = [];
  for (let rep = 0; rep < opts.reps; rep++) {
    for (const test of opts.tests) {
      // Rotate the path order from rep to rep, so that no path always runs first or last.
      const order = opts.paths.map((_, i) => opts.paths[(i + rep) % opts.paths.length]);
      for (const path of order) {
        const runs = test === 'bulk' ? bulkSamples : 1;
        for (let i = 0; i < runs; i++) {
          const s = await measure(ctx, test, path, test === 'bulk' ? bulkSeconds : opts.seconds);
          samples.set(key(test, path), [...(samples.get(key(test, path)) ?? []), s]);
          const line =
            `rep ${rep + 1} ${test.padEnd(9)} ${path.padEnd(7)} ` +
            (test === 'bulk'
              ? `${f2(s.rate)} Gbit/s`
              : `${f0(s.rate)}/s p50 ${f2(s.p50Ms!)} p99 ${f2(s.p99Ms!)} ms`) +
            `; proxy ${path === 'direct' ? '–' : `${f0((s.cpu.proxyMs / s.cpu.wallMs) * 100)} % core, ${f1(cpuPer(test, s))} ${test === 'bulk' ? 'ms/GB' : test === 'conn' ? 'µs/conn' : 'µs/req'}`}` +
            `; backend ${f0((s.cpu.backendMs / s.cpu.wallMs) * 100)} %; other ${f0((s.cpu.otherMs / s.cpu.wallMs) * 100)} %` +
            `${s.disturbed ? ' DISTURBED' : ''}${s.attempts > 1 ? ` (${s.attempts} tries)` : ''}` +
            `${s.errors.length ? `; ${s.errors.join(', ')}` : ''}`;
          perRep.push(line);
          log(line);
        }
      }
    }
  }

  if (opts.cpuProfDir && opts.paths.includes('nlb')) {
    mkdirSync(opts.cpuProfDir, { recursive: true });
    for (const test of opts.tests) {
      const started = nextFromNlb(nlb.child, 'profiling', 10_000);
      nlb.child.send({ type: 'profile-start' } satisfies ToDataplaneNlb);
      await started;
      if (test === 'bulk') await bulk(ctx, nlb.port, opts.seconds);
      else await wrk(ctx, nlb.port, opts.seconds, test === 'conn');
      const file = join(opts.cpuProfDir, `nlb-${test}.cpuprofile`);
      const written = nextFromNlb(nlb.child, 'profiled', 60_000);
      nlb.child.send({ type: 'profile-stop', file } satisfies ToDataplaneNlb);
      await written;
      log(`NLB CPU profile of ${test}: ${file}`);
    }
  }

  // ---- report ----
  const med = (t: TestName, p: PathName, f: (s: Sample) => number) =>
    median((samples.get(key(t, p)) ?? []).map(f));
  const fig = (p: PathName) => ({
    rps: med('keepalive', p, (s) => s.rate),
    p50: med('keepalive', p, (s) => s.p50Ms!),
    p99: med('keepalive', p, (s) => s.p99Ms!),
    cps: med('conn', p, (s) => s.rate),
    connP99: med('conn', p, (s) => s.p99Ms!),
    gbps: med('bulk', p, (s) => s.rate),
    cpuReq: med('keepalive', p, (s) => cpuPer('keepalive', s)),
    cpuConn: med('conn', p, (s) => cpuPer('conn', s)),
    cpuGb: med('bulk', p, (s) => cpuPer('bulk', s)),
    busyKa: med('keepalive', p, (s) => (s.cpu.proxyMs / s.cpu.wallMs) * 100),
    busyConn: med('conn', p, (s) => (s.cpu.proxyMs / s.cpu.wallMs) * 100),
    busyBulk: med('bulk', p, (s) => (s.cpu.proxyMs / s.cpu.wallMs) * 100),
  });
  const figs = Object.fromEntries(opts.paths.map((p) => [p, fig(p)])) as Record<
    PathName,
    ReturnType<typeof fig>
  >;
  const all = [...samples.values()].flat();
  const disturbed = all.filter((s) => s.disturbed).length;
  const others = all.map((s) => (s.cpu.otherMs / s.cpu.wallMs) * 100);
  const errors = [...samples.entries()].flatMap(([k, ss]) =>
    ss.flatMap((s) => s.errors.map((e) => `${k}: ${e}`)),
  );

  const out: string[] = [];
  const haproxyV = versionOf(tools.haproxy, ['-v'], /version (\S+)/);
  const nginxV = versionOf(tools.nginx, ['-v'], /nginx\/(\S+)/);
  const wrkV = versionOf(tools.wrk, ['-v'], /wrk (?:debian\/)?(\S+)/);
  out.push('MarchProxy NLB data-plane benchmark', '');
  out.push(
    `machine: ${cores} cores, Node ${process.version}, HAProxy ${haproxyV}, nginx ${nginxV}, wrk ${wrkV}; ` +
      `${opts.reps} interleaved rep(s) × ${opts.seconds} s (bulk: ${bulkSamples} × ${bulkSeconds} s per rep); medians`,
  );
  out.push(
    opts.pin
      ? `cores: pinned: wrk (1 thread) / bulk client and nginx on core 0, the proxy alone on core 1 (HAProxy ${plural(opts.haproxyThreads, 'thread')}, NLB ${nlbShape(opts.workers, opts.relay)}); direct: nginx on core 1`
      : `cores: nothing pinned; wrk 2 threads; HAProxy ${plural(opts.haproxyThreads, 'thread')}, NLB ${nlbShape(opts.workers, opts.relay)}`,
  );
  out.push(
    `load: ${CONNECTIONS} wrk connections; keep-alive GET / (${KEEPALIVE_BODY.length}-byte body); new connections: ` +
      `the same with Connection: close (one request per connection); bulk: one connection GETting a ` +
      `${BULK_FILE_BYTES / 2 ** 20} MiB file over and over (instance → client)`,
  );
  out.push(
    `background: other processes used ${f0(idleOtherPct)} % of a core before the run; during measurements median ` +
      `${f0(median(others))} %, max ${f0(Math.max(...others))} %; ${disturbed} of ${all.length} measurement(s) ` +
      `above ${opts.maxOtherPct} % after ${opts.retries} retries${disturbed ? ' (DISTURBED: figures less reliable)' : ''}`,
  );
  out.push('');
  const row = (cells: string[]) => `| ${cells.join(' | ')} |`;
  out.push(
    row([
      'path',
      'keep-alive req/s',
      'p50 / p99',
      'new conn/s',
      'conn p99',
      'bulk Gbit/s',
      'µs CPU / req',
      'µs CPU / conn',
      'ms CPU / GB',
      'proxy core % (ka / conn / bulk)',
    ]),
  );
  out.push(row(Array<string>(10).fill('---')));
  for (const p of opts.paths) {
    const x = figs[p];
    const proxy = p !== 'direct';
    out.push(
      row([
        pathLabel(p, opts),
        kilo(x.rps),
        `${f2(x.p50)} / ${f2(x.p99)} ms`,
        kilo(x.cps),
        `${f2(x.connP99)} ms`,
        f2(x.gbps),
        proxy ? f1(x.cpuReq) : '–',
        proxy ? f0(x.cpuConn) : '–',
        proxy ? f0(x.cpuGb) : '–',
        proxy ? `${f0(x.busyKa)} / ${f0(x.busyConn)} / ${f0(x.busyBulk)}` : '–',
      ]),
    );
  }
  if (figs.nlb && figs.haproxy) {
    const n = figs.nlb;
    const h = figs.haproxy;
    // A verdict resting on a disturbed measurement says so: repeat the run before believing it.
    const shaky = (t: TestName) =>
      (['haproxy', 'nlb'] as const).some((p) => (samples.get(key(t, p)) ?? []).some((s) => s.disturbed));
    const verdict = (ok: boolean, v: number, t: TestName) =>
      Number.isFinite(v) ? `${ok ? 'PASS' : 'MISS'}${shaky(t) ? ' (disturbed)' : ''}` : '';
    const r = {
      rps: n.rps / h.rps,
      cps: n.cps / h.cps,
      p99: n.p99 / h.p99,
    };
    out.push('');
    out.push(row(['NLB / HAProxy', 'ratio', 'target', '']));
    out.push(row(['---', '---', '---', '---']));
    out.push(
      row([
        'keep-alive req/s',
        `${f2(r.rps)}×`,
        `≥ ${TARGET_KEEPALIVE_RATIO}×`,
        verdict(r.rps >= TARGET_KEEPALIVE_RATIO, r.rps, 'keepalive'),
      ]),
    );
    out.push(
      row([
        'new connections/s',
        `${f2(r.cps)}×`,
        `≥ ${TARGET_CONN_RATIO}×`,
        verdict(r.cps >= TARGET_CONN_RATIO, r.cps, 'conn'),
      ]),
    );
    out.push(
      row([
        'keep-alive p99',
        `${f2(r.p99)}×`,
        `≤ ${TARGET_P99_RATIO}×`,
        verdict(r.p99 <= TARGET_P99_RATIO, r.p99, 'keepalive'),
      ]),
    );
    out.push(row(['bulk Gbit/s', `${f2(n.gbps / h.gbps)}×`, '', '']));
    out.push(row(['proxy CPU per request', `${f2(n.cpuReq / h.cpuReq)}×`, '', '']));
    out.push(row(['proxy CPU per connection', `${f2(n.cpuConn / h.cpuConn)}×`, '', '']));
    out.push(row(['proxy CPU per GB', `${f2(n.cpuGb / h.cpuGb)}×`, '', '']));
  }
  out.push('', 'measurements (other = % of one core used by processes outside the benchmark):');
  for (const l of perRep) out.push(`  ${l}`);
  if (errors.length) {
    out.push('', 'load-generator errors:');
    for (const e of errors.slice(0, 20)) out.push(`  - ${e}`);
  }
  console.log(`\n${out.join('\n')}\n`);
  return 0;
}

const opts = parseOptions();
let abortedWith: number | undefined;
const abort = (why: string, code: number) => {
  if (abortedWith !== undefined) return;
  abortedWith = code;
  console.error(`[bench] ${why}: stopping nginx, HAProxy, the NLB and the load generator`);
  void cleanup().finally(() => process.exit(code));
};
const perMeasurement = opts.seconds + 3 + opts.quietWaitS;
const measurements = opts.reps * opts.tests.length * opts.paths.length * (1 + opts.retries);
const limitMs =
  (180 + 30 + measurements * perMeasurement + (opts.cpuProfDir ? 3 * (opts.seconds + 30) : 0)) * 1000;
setTimeout(() => abort(`gave up after ${Math.round(limitMs / 1000)} s`, 1), limitMs).unref();
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => abort(signal, 130));

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
