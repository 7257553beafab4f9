/**
 * The `process` provider: each instance is a child process (instance-child.ts) with its own
 * traffic listener. The launch goes over the fork's IPC channel; after it the controller talks
 * to the instance over the instance's control socket (control-channel.ts) and drops the IPC
 * channel. Children run in their own process group and survive a controller crash; a restarted
 * controller adopts them through `adopt` (socket + per-instance secret from the persisted
 * AdoptionRecord). An instance that ends on its own is reported so the controller can replace it.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../../../shared/logger.js';
import type { InstanceSnapshot, InstanceStatus } from '../instance.js';
import type { StatsSnapshot } from '../stats.js';
import type { ChildEvent, ChildInit, ChildReply } from './child-protocol.js';
import { ControlClient, controlSocketPath } from './control-channel.js';
import type { AdoptionRecord, InstanceHandle, InstanceLaunch, InstanceProvider } from './provider.js';

export const DEFAULT_ORPHAN_TIMEOUT_MS = 120_000;

export interface ProcessProviderOptions {
  moduleType: string;
  logger: Logger;
  /** How instances reach the NLB. */
  nlb: ChildInit['nlb'];
  logLevel: string;
  startTimeoutMs?: number;
  onReload?: (id: string) => void;
  /** Where control sockets live (the controller's data dir); a private temp dir when omitted. */
  controlDir?: string;
  /** How long an instance serves on without a controller before it drains and exits [120 s]. */
  orphanTimeoutMs?: number;
}

type ProcessRecord = Extract<AdoptionRecord, { kind: 'process' }>;

/** The child entry next to this file: .ts under a TypeScript loader, .js when built. */
function childEntry(): { path: string; execArgv: string[] } {
  const self = fileURLToPath(import.meta.url);
  if (self.endsWith('.ts'))
    return { path: self.replace(/process\.ts$/, 'instance-child.ts'), execArgv: ['--import', 'tsx'] };
  return { path: self.replace(/process\.js$/, 'instance-child.js'), execArgv: [] };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Whether a process with this pid runs (signal 0; ESRCH = gone). An adopted instance is not our
 * child, so its exit leaves a zombie until its new parent reaps it: on Linux a zombie counts
 * as gone.
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
  if (!HAVE_PROC) return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.charAt(stat.lastIndexOf(')') + 2) !== 'Z';
  } catch {
    return false; // gone between the two looks
  }
}

const HAVE_PROC = existsSync('/proc/self/stat');

/** Creates the provider. */
export function createProcessProvider(o: ProcessProviderOptions): InstanceProvider {
  let dir = o.controlDir;
  const controlDir = () => (dir ??= mkdtempSync(join(tmpdir(), 'mp-instances-')));
  return {
    kind: 'process',
    start: (l) => startChild(o, l, controlDir()),
    adopt: (record, l) => adoptChild(o, record, l),
  };
}

/** Forks the child, waits for `started` (bounded); rejects (and kills it) otherwise. */
function launchChild(
  o: ProcessProviderOptions,
  l: InstanceLaunch,
  init: ChildInit,
): Promise<{ child: ChildProcess; trafficAddress: string }> {
  const entry = childEntry();
  const child: ChildProcess = fork(entry.path, [], {
    execArgv: entry.execArgv,
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    // Its own process group: a signal to the controller's group (a terminal's ^C, a supervisor
    // killing the controller) does not take the instances with it; the controller stops them.
    detached: true,
    env: { ...process.env, MP_INSTANCE_ID: l.id },
  });
  const timeoutMs = o.startTimeoutMs ?? 20_000;
  return new Promise((resolve, reject) => {
    const done = (e: Error | null, trafficAddress = '') => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (e) {
        child.kill('SIGKILL');
        reject(e);
      } else resolve({ child, trafficAddress });
    };
    const timer = setTimeout(
      () => done(new Error(`instance ${l.id} did not start within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onMessage = (raw: unknown) => {
      const m = raw as ChildEvent;
      if (m.type === 'started') done(null, m.trafficAddress);
      else if (m.type === 'start-failed') done(new Error(`instance ${l.id} failed to start: ${m.message}`));
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
      done(new Error(`instance ${l.id} exited before it started (code ${code}, signal ${signal})`));
    child.on('message', onMessage);
    child.on('exit', onExit);
    child.on('error', (e) => o.logger.warn(`instance ${l.id} process error: ${e.message}`));
    child.send(init);
  });
}

async function startChild(
  o: ProcessProviderOptions,
  l: InstanceLaunch,
  dir: string,
): Promise<InstanceHandle> {
  const secret = randomBytes(32).toString('hex');
  const socketPath = controlSocketPath(dir, l.id);
  const startedAtMs = Date.now();
  const { child, trafficAddress } = await launchChild(o, l, {
    type: 'start',
    moduleType: o.moduleType,
    logLevel: o.logLevel,
    nlb: o.nlb,
    launch: l,
    control: { socketPath, secret, orphanTimeoutMs: o.orphanTimeoutMs ?? DEFAULT_ORPHAN_TIMEOUT_MS },
  });
  try {
    const { client, identity } = await ControlClient.attach(socketPath, { instanceId: l.id, secret });
    // From here on the socket is the only channel, as it will be for a controller that adopts it.
    if (child.connected) child.disconnect();
    const record: ProcessRecord = {
      kind: 'process',
      id: l.id,
      version: l.version,
      pid: identity.pid,
      controlSocket: socketPath,
      secret,
      trafficAddress,
      startedAtMs,
    };
    return controlledHandle(o, record, client, child);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
}

/** Re-attaches to an instance a previous controller started; see InstanceProvider.adopt. */
async function adoptChild(
  o: ProcessProviderOptions,
  r: AdoptionRecord,
  l: InstanceLaunch,
): Promise<InstanceHandle> {
  if (r.kind !== 'process')
    throw new Error(`instance ${r.id} was started by the ${r.kind} provider, not process`);
  let attached: Awaited<ReturnType<typeof ControlClient.attach>>;
  try {
    attached = await ControlClient.attach(r.controlSocket, { instanceId: r.id, secret: r.secret }, 3000);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const gone = code === 'ENOENT' || code === 'ECONNREFUSED';
    throw new Error(gone ? `instance ${r.id} (pid ${r.pid}) is gone` : (e as Error).message, { cause: e });
  }
  const { client, identity: id } = attached;
  const problems: string[] = [];
  if (id.moduleType !== o.moduleType) problems.push(`it is ${id.moduleType}, not ${o.moduleType}`);
  if (id.version !== l.version) problems.push(`it runs version ${id.version}, not ${l.version}`);
  if (id.controllerAddress !== l.controllerAddress)
    problems.push(
      `it registered with the NLB for controller ${id.controllerAddress}, and this controller is ${l.controllerAddress}`,
    );
  if (id.nlbTarget !== o.nlb.target) problems.push(`it talks to NLB ${id.nlbTarget}, not ${o.nlb.target}`);
  if (id.status !== 'HEALTHY') problems.push(`it is ${id.status}`);
  if (problems.length) {
    // Ours (it knew the secret) but unfit: let it drain and exit on its own; a new one replaces it.
    if (id.status === 'HEALTHY') await client.send({ type: 'stop', graceful: true, timeoutMs: 10_000 });
    client.close();
    throw new Error(`instance ${r.id} is running but cannot be adopted: ${problems.join('; ')}`);
  }
  try {
    await client.request<void>({ type: 'apply', snapshot: l.snapshot });
  } catch (e) {
    await client.send({ type: 'stop', graceful: true, timeoutMs: 10_000 });
    client.close();
    throw new Error(`instance ${r.id} did not take the current config: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return controlledHandle(o, { ...r, pid: id.pid, trafficAddress: id.trafficAddress }, client);
}

/**
 * The handle of an instance reached through its control socket; `child` when this controller
 * forked it (exit reported by the child process object), otherwise the end of the control
 * connection plus the pid disappearing tell that it ended.
 */
function controlledHandle(
  o: ProcessProviderOptions,
  r: ProcessRecord,
  client: ControlClient,
  child?: ChildProcess,
): InstanceHandle {
  const exitListeners: Array<(reason: string) => void> = [];
  const goneWaiters: Array<() => void> = [];
  let gone: string | null = null;
  let stopping = false;

  const finish = (reason: string) => {
    if (gone !== null) return;
    gone = reason;
    client.close();
    for (const w of goneWaiters.splice(0)) w();
    if (!stopping) for (const fn of exitListeners) fn(reason);
  };
  const waitGone = (ms: number) =>
    new Promise<boolean>((resolve) => {
      if (gone !== null) return resolve(true);
      const t = setTimeout(() => resolve(false), ms);
      goneWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  const signal = (sig: NodeJS.Signals) => {
    try {
      if (child) child.kill(sig);
      else process.kill(r.pid, sig);
    } catch {
      // Already gone.
    }
  };

  if (child) {
    if (child.exitCode !== null || child.signalCode !== null)
      finish(child.signalCode ? `killed by ${child.signalCode}` : `exited with code ${child.exitCode}`);
    child.once('exit', (code, sig) => finish(sig ? `killed by ${sig}` : `exited with code ${code}`));
  }
  client.onClose(() => {
    if (gone !== null) return;
    void (async () => {
      // An instance closes its control connections only on its way out; give it time to exit.
      const deadline = Date.now() + 3000;
      while (gone === null && pidAlive(r.pid) && Date.now() < deadline) await sleep(50);
      if (gone !== null) return;
      if (pidAlive(r.pid)) {
        o.logger.warn(
          `instance ${r.id} (pid ${r.pid}) dropped its control connection but still runs; killing it`,
        );
        signal('SIGKILL');
      }
      finish(child ? 'its control connection closed' : 'it exited');
    })();
  });
  client.onEvent((e) => {
    if (e.type === 'reload-requested') o.onReload?.(r.id);
  });

  return {
    id: r.id,
    trafficAddress: r.trafficAddress,
    pid: r.pid,
    startedAtMs: r.startedAtMs,
    adoption: r,
    status: () =>
      client.request<{ status: InstanceStatus; lease: string; heartbeats: number }>({ type: 'status' }, 5000),
    stats: (reset) => client.request<StatsSnapshot>({ type: 'stats', reset }, 5000),
    apply: (snapshot: InstanceSnapshot) => client.request<void>({ type: 'apply', snapshot }),
    drain: (timeoutMs) => client.request<number>({ type: 'drain', timeoutMs }, timeoutMs + 10_000),
    async stop(graceful, timeoutMs) {
      if (gone !== null) return;
      stopping = true;
      try {
        await client.request<ChildReply['value']>({ type: 'stop', graceful, timeoutMs }, timeoutMs + 10_000);
      } catch {
        // Not answering: make sure it is gone below.
      }
      if (await waitGone(5000)) return;
      signal('SIGTERM');
      if (await waitGone(5000)) return;
      signal('SIGKILL');
      await waitGone(5000);
    },
    onUnexpectedExit: (fn) => {
      if (gone !== null && !stopping) fn(gone);
      else exitListeners.push(fn);
    },
  };
}
