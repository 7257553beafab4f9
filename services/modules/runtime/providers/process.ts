/**
 * The `process` provider: each instance is a child process (instance-child.ts) with its own
 * traffic listener. The controller talks to it over Node's IPC channel; a child that exits on
 * its own is reported so the controller can replace it.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../../../shared/logger.js';
import type { InstanceSnapshot, InstanceStatus } from '../instance.js';
import type { StatsSnapshot } from '../stats.js';
import type { ChildInit, ChildReply, ChildRequest, ChildEvent } from './child-protocol.js';
import type { InstanceHandle, InstanceLaunch, InstanceProvider } from './provider.js';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export interface ProcessProviderOptions {
  moduleType: string;
  logger: Logger;
  /** How instances reach the NLB. */
  nlb: ChildInit['nlb'];
  logLevel: string;
  startTimeoutMs?: number;
  onReload?: (id: string) => void;
}

/** The child entry next to this file: .ts under a TypeScript loader, .js when built. */
function childEntry(): { path: string; execArgv: string[] } {
  const self = fileURLToPath(import.meta.url);
  if (self.endsWith('.ts'))
    return { path: self.replace(/process\.ts$/, 'instance-child.ts'), execArgv: ['--import', 'tsx'] };
  return { path: self.replace(/process\.js$/, 'instance-child.js'), execArgv: [] };
}

/** Creates the provider. */
export function createProcessProvider(o: ProcessProviderOptions): InstanceProvider {
  return {
    kind: 'process',
    start: (l) => startChild(o, l),
  };
}

function startChild(o: ProcessProviderOptions, l: InstanceLaunch): Promise<InstanceHandle> {
  const entry = childEntry();
  const child: ChildProcess = fork(entry.path, [], {
    execArgv: entry.execArgv,
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, MP_INSTANCE_ID: l.id },
  });
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const exitListeners: Array<(reason: string) => void> = [];
  let nextReq = 1;
  let stopping = false;
  let exited = false;
  const startedAtMs = Date.now();

  const request = <T>(msg: DistributiveOmit<ChildRequest, 'reqId'>, timeoutMs = 10_000): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (exited || !child.connected) return reject(new Error(`instance ${l.id} is not running`));
      const reqId = nextReq++;
      const t = setTimeout(() => {
        pending.delete(reqId);
        reject(new Error(`instance ${l.id} did not answer ${msg.type} within ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(reqId, {
        resolve: (v) => {
          clearTimeout(t);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      child.send({ ...msg, reqId });
    });

  return new Promise<InstanceHandle>((resolve, reject) => {
    let trafficAddress = '';
    const startTimer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`instance ${l.id} did not start within ${o.startTimeoutMs ?? 20_000} ms`));
    }, o.startTimeoutMs ?? 20_000);

    child.on('message', (raw) => {
      const m = raw as ChildReply | ChildEvent;
      if (m.type === 'started') {
        clearTimeout(startTimer);
        trafficAddress = m.trafficAddress;
        resolve(handle);
      } else if (m.type === 'start-failed') {
        clearTimeout(startTimer);
        reject(new Error(`instance ${l.id} failed to start: ${m.message}`));
      } else if (m.type === 'reload-requested') {
        o.onReload?.(l.id);
      } else if (m.type === 'reply') {
        const p = pending.get(m.reqId);
        pending.delete(m.reqId);
        if (m.error) p?.reject(new Error(m.error));
        else p?.resolve(m.value);
      }
    });
    child.on('error', (e) => o.logger.warn(`instance ${l.id} process error: ${e.message}`));
    child.on('exit', (code, signal) => {
      exited = true;
      clearTimeout(startTimer);
      for (const p of pending.values()) p.reject(new Error(`instance ${l.id} exited`));
      pending.clear();
      if (!trafficAddress)
        reject(new Error(`instance ${l.id} exited before it started (code ${code}, signal ${signal})`));
      else if (!stopping)
        for (const fn of exitListeners) fn(signal ? `killed by ${signal}` : `exited with code ${code}`);
    });

    const init: ChildInit = {
      type: 'start',
      moduleType: o.moduleType,
      logLevel: o.logLevel,
      nlb: o.nlb,
      launch: l,
    };
    child.send(init);

    const handle: InstanceHandle = {
      id: l.id,
      get trafficAddress() {
        return trafficAddress;
      },
      pid: child.pid ?? null,
      startedAtMs,
      status: () =>
        request<{ status: InstanceStatus; lease: string; heartbeats: number }>({ type: 'status' }, 5000),
      stats: (reset) => request<StatsSnapshot>({ type: 'stats', reset }, 5000),
      apply: (snapshot: InstanceSnapshot) => request<void>({ type: 'apply', snapshot }),
      drain: (timeoutMs) => request<number>({ type: 'drain', timeoutMs }, timeoutMs + 10_000),
      async stop(graceful, timeoutMs) {
        if (exited) return;
        stopping = true;
        const gone = new Promise<void>((r) => child.once('exit', () => r()));
        try {
          await request<void>({ type: 'stop', graceful, timeoutMs }, timeoutMs + 10_000);
        } catch {
          // Not answering: make sure it is gone.
        }
        const killTimer = setTimeout(() => child.kill('SIGKILL'), 5000);
        if (!exited) child.kill('SIGTERM');
        await gone;
        clearTimeout(killTimer);
      },
      onUnexpectedExit: (fn) => exitListeners.push(fn),
    };
  });
}
