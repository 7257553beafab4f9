/**
 * ALB benchmark (`npm run bench:alb -- [--duration 10] [--reps 3] [--connections 50]
 * [--no-pin] [--json]`): one ALB instance (its own process, the real runtime and handler) and
 * nginx as a reverse proxy (one worker, keep-alive upstream, the same forwarded headers) in
 * front of the same backend (a separate nginx answering a small static body), measured with wrk
 * in one run, repetitions interleaved, medians reported with the ALB/nginx ratios beside the
 * targets (≥ 0.6× nginx's requests/s, p99 ≤ 2× nginx's). Proxy CPU per request comes from
 * /proc. Pinned by default (PERF-NOTES.md): wrk and the backend on core 0, the proxy under test
 * alone on core 1.
 *
 * A benchmark, not a test: a missed target does not fail it (exit 1 only when it could not run).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { compileForBench } from './compile.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TARGET_RPS_RATIO = 0.6;
const TARGET_P99_RATIO = 2;

const USAGE = `usage: npm run bench:alb -- [options]

  --duration S     seconds per measured wrk run (default 10)
  --reps N         repetitions, interleaved across paths (default 3)
  --connections C  wrk connections (default 50)
  --warmup S       seconds of warm-up per path (default 2)
  --no-pin         do not pin cores (default: pinned when there are 2+ cores and taskset)
  --profile DIR    write a V8 CPU profile of the ALB instance into DIR
  --json           print the result as JSON
`;

const { values: opts } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    reps: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    warmup: { type: 'string', default: '2' },
    'no-pin': { type: 'boolean', default: false },
    profile: { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (opts.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const durationS = Number(opts.duration);
const reps = Number(opts.reps);
const connections = Number(opts.connections);
const warmupS = Number(opts.warmup);

const log = (msg: string) => process.stderr.write(`[bench:alb] ${msg}\n`);

function which(cmd: string): string | null {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

const tools = {
  wrk: which('wrk'),
  nginx: which('nginx') ?? (existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : null),
};
if (!tools.wrk || !tools.nginx) {
  log(
    `needs wrk and nginx (Debian: apt-get install -y wrk nginx); missing: ${Object.entries(tools)
      .filter(([, v]) => !v)
      .map(([k]) => k)
      .join(', ')}`,
  );
  process.exit(1);
}
const pin = !opts['no-pin'] && availableParallelism() >= 2 && which('taskset') !== null;
/** Core 0: load generator and backend; core 1: the proxy under test. */
const onCore = (core: 0 | 1, cmd: string, args: string[]): [string, string[]] =>
  pin ? ['taskset', ['-c', String(core), cmd, ...args]] : [cmd, args];

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

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** CPU time (user + system) of a process in ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

// ---- processes -------------------------------------------------------------------------------

const dir = mkdtempSync(join(tmpdir(), 'mp-bench-alb-'));
const children: ChildProcess[] = [];

function nginxConfig(name: string, server: string, upstream = ''): string {
  const base = join(dir, name);
  mkdirSync(join(base, 'tmp'), { recursive: true });
  const conf = join(base, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes 1;
daemon off;
master_process on;
pid ${base}/nginx.pid;
error_log ${base}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${base}/tmp/body;
  proxy_temp_path ${base}/tmp/proxy;
  fastcgi_temp_path ${base}/tmp/fastcgi;
  uwsgi_temp_path ${base}/tmp/uwsgi;
  scgi_temp_path ${base}/tmp/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  ${upstream}
  ${server}
}
`,
  );
  return conf;
}

function startNginx(name: string, conf: string, core: 0 | 1): ChildProcess {
  const base = join(dir, name);
  const [cmd, args] = onCore(core, tools.nginx!, ['-p', base, '-e', join(base, 'error.log'), '-c', conf]);
  const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  c.stderr?.on('data', (b: Buffer) => log(`${name}: ${b.toString().trim()}`));
  children.push(c);
  return c;
}

async function waitHttp(port: number, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(1000) });
      await r.text();
      if (r.status === 200) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${what} did not answer on port ${port} within 15 s`);
    await sleep(50);
  }
}

/**
 * Compiles the instance entry point (and what it imports) with tsc into the temp dir, so that
 * plain node runs it as a built module instance would (tsx adds a helper call per closure).
 */
async function buildInstance(): Promise<string> {
  const [instance] = await compileForBench(
    join(dir, 'build'),
    [join(root, 'bench/alb-instance.ts')],
    'the ALB instance',
  );
  return instance;
}

async function startAlb(backendPort: number): Promise<{ child: ChildProcess; port: number }> {
  const config = JSON.stringify({ backends: [{ name: 'backend', address: `127.0.0.1:${backendPort}` }] });
  const script = await buildInstance();
  const prof = opts.profile ? ['--cpu-prof', `--cpu-prof-dir=${resolve(opts.profile)}`] : [];
  const [cmd, args] = onCore(1, process.execPath, [...prof, script, config]);
  const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  child.stderr?.on('data', (b: Buffer) => log(`alb: ${b.toString().trim()}`));
  return new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error('the ALB instance did not start within 30 s')), 30_000);
    let out = '';
    child.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /READY (\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        res({ child, port: Number(m[1]) });
      }
    });
    child.once('exit', (code) => rej(new Error(`the ALB instance exited (${code})`)));
  });
}

async function stopAll(): Promise<void> {
  await Promise.all(
    children.splice(0).map(
      (c) =>
        new Promise<void>((res) => {
          if (c.exitCode !== null || c.signalCode !== null) return res();
          const t = setTimeout(() => c.kill('SIGKILL'), 3000);
          c.once('exit', () => {
            clearTimeout(t);
            res();
          });
          c.kill('SIGTERM');
        }),
    ),
  );
  rmSync(dir, { recursive: true, force: true });
}

// ---- measuring -------------------------------------------------------------------------------

interface Run {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  errors: number;
  /** Proxy CPU per request in µs (null for the direct path). */
  cpuUsPerReq: number | null;
}

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n;
}

async function wrk(port: number, seconds: number, proxyPids: number[]): Promise<Run> {
  const before = proxyPids.reduce((a, p) => a + cpuMs(p), 0);
  const [cmd, args] = onCore(0, tools.wrk!, [
    '-t1',
    `-c${connections}`,
    `-d${seconds}s`,
    '--timeout',
    '5s',
    '--latency',
    `http://127.0.0.1:${port}/`,
  ]);
  const { stdout } = await promisify(execFile)(cmd, args, {
    encoding: 'utf8',
    timeout: (seconds + 30) * 1000,
  });
  const after = proxyPids.reduce((a, p) => a + cpuMs(p), 0);
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const errors = non2xx + (sock ? sock.slice(1).reduce((a, x) => a + Number(x), 0) : 0);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? 0),
    p50Ms: toMs(/^\s+50%\s+(\S+)/m.exec(stdout)?.[1] ?? ''),
    p99Ms: toMs(/^\s+99%\s+(\S+)/m.exec(stdout)?.[1] ?? ''),
    requests,
    errors,
    cpuUsPerReq: proxyPids.length && requests ? ((after - before) * 1000) / requests : null,
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// ---- main ------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const [backendPort, nginxPort] = [await freePort(), await freePort()];
  const backend = startNginx(
    'backend',
    nginxConfig(
      'backend',
      `server { listen 127.0.0.1:${backendPort}; location / { default_type text/plain; return 200 "hello from the backend\\n"; } }`,
    ),
    0,
  );
  const proxy = startNginx(
    'proxy',
    nginxConfig(
      'proxy',
      `server {
    listen 127.0.0.1:${nginxPort};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Request-Id $request_id;
      add_header X-Request-Id $request_id;
    }
  }`,
      `upstream backend { server 127.0.0.1:${backendPort}; keepalive 256; }`,
    ),
    1,
  );
  await waitHttp(backendPort, 'the backend nginx');
  await waitHttp(nginxPort, 'the proxy nginx');
  const alb = await startAlb(backendPort);
  await waitHttp(alb.port, 'the ALB instance');
  const nginxWorkers = childrenOf(proxy.pid!);
  void backend;
  const paths = [
    { name: 'direct (no proxy)', port: backendPort, pids: [] as number[] },
    { name: 'nginx reverse proxy', port: nginxPort, pids: nginxWorkers },
    { name: 'ALB instance', port: alb.port, pids: [alb.child.pid!] },
  ];
  const loadBefore = loadavg()[0];
  log(
    `${pin ? 'pinned: wrk + backend on core 0, proxy on core 1' : 'not pinned'}; ${connections} connections, ` +
      `${reps} × ${durationS} s per path (after ${warmupS} s warm-up); CLK_TCK ${CLK_TCK}; ` +
      `load average ${loadBefore.toFixed(2)}`,
  );
  for (const p of paths) await wrk(p.port, warmupS, p.pids);
  const runs = new Map<string, Run[]>(paths.map((p) => [p.name, []]));
  for (let r = 0; r < reps; r++) {
    for (const p of paths) {
      const run = await wrk(p.port, durationS, p.pids);
      runs.get(p.name)!.push(run);
      log(
        `rep ${r + 1} ${p.name}: ${run.rps.toFixed(0)} req/s, p50 ${run.p50Ms.toFixed(2)} ms, p99 ${run.p99Ms.toFixed(2)} ms` +
          `${run.cpuUsPerReq !== null ? `, ${run.cpuUsPerReq.toFixed(1)} µs CPU/req` : ''}${run.errors ? `, ${run.errors} errors` : ''}`,
      );
    }
  }
  const summary = paths.map((p) => {
    const rs = runs.get(p.name)!;
    return {
      path: p.name,
      rps: median(rs.map((x) => x.rps)),
      p50Ms: median(rs.map((x) => x.p50Ms)),
      p99Ms: median(rs.map((x) => x.p99Ms)),
      cpuUsPerReq: rs[0].cpuUsPerReq === null ? null : median(rs.map((x) => x.cpuUsPerReq!)),
      errors: rs.reduce((a, x) => a + x.errors, 0),
    };
  });
  // Other jobs on the machine move every figure: the load average goes with them.
  const loadAfter = loadavg()[0];
  log(`load average ${loadAfter.toFixed(2)} at the end`);
  const [, ng, al] = summary;
  const rpsRatio = al.rps / ng.rps;
  const p99Ratio = al.p99Ms / ng.p99Ms;
  const result = {
    pinned: pin,
    connections,
    durationS,
    reps,
    loadAverage: { before: loadBefore, after: loadAfter },
    paths: summary,
    albVsNginx: {
      rpsRatio,
      p99Ratio,
      rpsTargetMet: rpsRatio >= TARGET_RPS_RATIO,
      p99TargetMet: p99Ratio <= TARGET_P99_RATIO,
    },
  };
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }
  const rows = summary.map((s) => [
    s.path,
    s.rps.toFixed(0),
    s.p50Ms.toFixed(2),
    s.p99Ms.toFixed(2),
    s.cpuUsPerReq === null ? '-' : s.cpuUsPerReq.toFixed(1),
    String(s.errors),
  ]);
  const header = ['path', 'req/s', 'p50 ms', 'p99 ms', 'proxy µs CPU/req', 'errors'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  process.stdout.write(`${line(header)}\n${rows.map(line).join('\n')}\n\n`);
  process.stdout.write(
    `ALB / nginx requests/s: ${rpsRatio.toFixed(2)}× (target ≥ ${TARGET_RPS_RATIO}×: ${result.albVsNginx.rpsTargetMet ? 'met' : 'MISSED'})\n` +
      `ALB / nginx p99:        ${p99Ratio.toFixed(2)}× (target ≤ ${TARGET_P99_RATIO}×: ${result.albVsNginx.p99TargetMet ? 'met' : 'MISSED'})\n`,
  );
}

let exitCode = 0;
const interrupted = () => {
  void stopAll().finally(() => process.exit(130));
};
process.once('SIGINT', interrupted);
process.once('SIGTERM', interrupted);
try {
  await main();
} catch (e) {
  log(`failed: ${(e as Error).message}`);
  exitCode = 1;
} finally {
  await stopAll();
}
process.exit(exitCode);
