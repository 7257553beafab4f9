/**
 * The NLB as a child process for the durability tests: `mpctl serve nlb` run from source
 * (bin/dev.js) on pre-picked loopback ports, waited for through /readyz, retried on a port
 * clash, and killed (SIGKILL fallback) by the harness in nlb-fixture.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A loopback port that was free a moment ago (bound, read, released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface NlbProcess {
  child: ChildProcess;
  grpcPort: number;
  adminPort: number;
  target: string;
  adminUrl: string;
  /** stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code or signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` (default SIGKILL) and waits for the exit; SIGKILL after 10 s. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface NlbProcessOptions {
  dataDir: string;
  /** A fixed gRPC port (restarts); a free one is picked when omitted. */
  grpcPort?: number;
  heartbeatIntervalSeconds?: number;
  extraArgs?: string[];
}

function spawnOnce(opts: NlbProcessOptions, grpcPort: number, adminPort: number): NlbProcess {
  // prettier-ignore
  const args = [
    join(REPO_ROOT, 'bin/dev.js'), 'serve', 'nlb', '--grpc-host', '127.0.0.1', '--grpc-port', String(grpcPort),
    '--admin-host', '127.0.0.1', '--admin-port', String(adminPort), '--data-dir', opts.dataDir, '--log-level', 'warn',
    ...(opts.heartbeatIntervalSeconds ? ['--heartbeat-interval', String(opts.heartbeatIntervalSeconds)] : []),
    ...(opts.extraArgs ?? []),
  ];
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MP_')));
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    grpcPort,
    adminPort,
    target: `127.0.0.1:${grpcPort}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    output: () => out,
    exited,
    async kill(signal = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Starts `mpctl serve nlb` from source and waits until /readyz answers; retries on a port clash. */
export async function spawnNlbProcess(
  opts: NlbProcessOptions,
  track: (p: NlbProcess) => void,
): Promise<NlbProcess> {
  for (let attempt = 1; ; attempt++) {
    const p = spawnOnce(opts, opts.grpcPort ?? (await freePort()), await freePort());
    track(p);
    let exit: unknown = null;
    void p.exited.then((e) => (exit = e));
    const deadline = Date.now() + 30_000;
    while (!exit) {
      const ready = await fetch(`${p.adminUrl}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ready) return p;
      if (Date.now() > deadline) {
        await p.kill();
        throw new Error(`the NLB process on ${p.target} was not ready after 30 s:\n${p.output()}`);
      }
      await sleep(100);
    }
    if (attempt < 4 && /EADDRINUSE/.test(p.output())) {
      await sleep(200 * attempt);
      continue;
    }
    throw new Error(`the NLB process exited (${JSON.stringify(exit)}) before it was ready:\n${p.output()}`);
  }
}
