/**
 * Pieces for the fault tests (fault-*.test.ts) and the chaos test: a module controller run as a
 * real `mpctl serve module` child process (so it can be SIGKILLed), an HTTP load driver on a
 * keep-alive agent that records the time and outcome of every request, and NLB config helpers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { UpdateNLBConfigRequest, GetNLBConfigRequest } from '../../proto/gen/marchproxy/nlb.js';
import { createClientConnection, createNlbClient, unaryCall } from '../../services/shared/grpc/client.js';
import { exited } from './module-fixture.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ControllerProcess {
  child: ChildProcess;
  pid: number;
  /** stderr and stdout so far (instances' logs included: they share the pipes). */
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` and waits (bounded: SIGKILL after 15 s) for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface ControllerProcessOptions {
  nlb: string;
  port: number;
  dataDir: string;
  type?: string;
  version?: string;
  instances?: number;
  heartbeatIntervalSeconds?: number;
  orphanTimeoutSeconds?: number;
  logLevel?: string;
}

/** `mpctl serve module` from source with the process provider, on a fixed port. */
export function spawnController(o: ControllerProcessOptions): ControllerProcess {
  // prettier-ignore
  const args = [
    '--import', 'tsx', 'bin/dev.js', 'serve', 'module', o.type ?? 'alb', '--version', o.version ?? '1.0',
    '--instances', String(o.instances ?? 2), '--host', '127.0.0.1', '--port', String(o.port), '--nlb', o.nlb,
    '--provider', 'process', '--data-dir', o.dataDir, '--heartbeat-interval', String(o.heartbeatIntervalSeconds ?? 1),
    '--log-level', o.logLevel ?? 'warn',
  ];
  const env: NodeJS.ProcessEnv = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MP_'))),
    NODE_ENV: 'test',
    ...(o.orphanTimeoutSeconds ? { MP_MODULE_ORPHAN_TIMEOUT: String(o.orphanTimeoutSeconds) } : {}),
  };
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (b: Buffer) => (out = (out + b.toString()).slice(-20_000));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exitedP = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    pid: child.pid ?? 0,
    output: () => out,
    exited: exitedP,
    async kill(signal = 'SIGKILL') {
      if (exited(child)) return;
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exitedP;
      clearTimeout(t);
    },
  };
}

/** Sets an NLB config section through UpdateNLBConfig; throws with the NLB's reasons on refusal. */
export async function updateNlbConfig(target: string, section: string, body: unknown): Promise<void> {
  const client = createNlbClient(createClientConnection({ target, timeoutMs: 5_000 }));
  try {
    const r = await unaryCall(
      client,
      'updateNlbConfig',
      UpdateNLBConfigRequest.fromPartial({
        config: { configType: section, configData: Buffer.from(JSON.stringify(body)) },
      }),
    );
    if (!r.success) throw new Error(`UpdateNLBConfig ${section} refused: ${r.message}`);
  } finally {
    client.close();
  }
}

/** Reads an NLB config section back (parsed JSON). */
export async function getNlbConfig(target: string, section: string): Promise<Record<string, unknown>> {
  const client = createNlbClient(createClientConnection({ target, timeoutMs: 5_000 }));
  try {
    const r = await unaryCall(
      client,
      'getNlbConfig',
      GetNLBConfigRequest.fromPartial({ configType: section }),
    );
    return JSON.parse(Buffer.from(r.configs[0].configData).toString()) as Record<string, unknown>;
  } finally {
    client.close();
  }
}

export interface Outcome {
  /** When the request was sent and when it ended (Date.now()). */
  startMs: number;
  endMs: number;
  ok: boolean;
  error?: string;
}

export interface HttpOutcome {
  status: number;
  body: string;
}

/** One GET with a deadline; rejects on a network error, a timeout or a non-2xx answer. */
export function httpGet(
  port: number,
  path: string,
  o: { host?: string; agent?: Agent; timeoutMs?: number } = {},
): Promise<HttpOutcome> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        headers: { host: o.host ?? 'shop.example.com' },
        agent: o.agent ?? false,
        timeout: o.timeoutMs ?? 5_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString();
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve({ status, body });
          else reject(new Error(`HTTP ${status}: ${body.slice(0, 200)}`));
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Load from `workers` concurrent loops over one keep-alive agent; every request's outcome is
 * recorded with its times. `stop()` ends the loops and waits for requests in flight.
 */
export function startLoad(port: number, o: { workers?: number; pauseMs?: number; host?: string } = {}) {
  const agent = new Agent({ keepAlive: true, maxSockets: o.workers ?? 4 });
  const outcomes: Outcome[] = [];
  let running = true;
  const loop = async () => {
    while (running) {
      const startMs = Date.now();
      let ok = true;
      try {
        await httpGet(port, '/', { agent, host: o.host, timeoutMs: 5_000 });
        outcomes.push({ startMs, endMs: Date.now(), ok: true });
      } catch (e) {
        ok = false;
        outcomes.push({ startMs, endMs: Date.now(), ok: false, error: (e as Error).message });
      }
      // Refused connections fail in microseconds: back off a little rather than spin.
      await new Promise((r) => setTimeout(r, ok ? (o.pauseMs ?? 10) : Math.max(50, o.pauseMs ?? 10)));
    }
  };
  const loops = Array.from({ length: o.workers ?? 4 }, loop);
  return {
    outcomes,
    succeeded: () => outcomes.filter((x) => x.ok).length,
    failed: () => outcomes.filter((x) => !x.ok),
    async stop(): Promise<void> {
      running = false;
      await Promise.all(loops);
      agent.destroy();
    },
  };
}
