/**
 * One process of the soak benchmark's stack (bench/soak.ts), forked with an IPC channel and
 * its role and config as JSON in argv[2]:
 *
 * - `nlb`: the same `startNlb` that `mpctl serve nlb` runs (config through nlbProcessSchema);
 *   reports its gRPC port and its listeners' bound ports.
 * - `module`: the same `startModule` that `mpctl serve module` runs, with the `process`
 *   provider (one child process per instance, which inherit this process's environment and so
 *   the soak's run marker); applies `moduleConfig` like `mpctl dev` does for its demo backends.
 * - `echo`: the demo HTTP echo service (services/demo/echo-http.ts), the ALB's backend.
 *
 * Each stops cleanly on 'stop', SIGINT/SIGTERM, or when the parent goes away.
 */
import { writeHeapSnapshot } from 'node:v8';
import { startEchoHttp, type EchoHttpServer } from '../services/demo/echo-http.js';
import { moduleProcessSchema, startModule, type ModuleHandle } from '../services/modules/runtime/main.js';
import { nlbProcessSchema, startNlb, type NlbHandle } from '../services/nlb/main.js';

/** What the parent passes in argv[2]. */
export type StackSpec =
  | { role: 'nlb'; config: unknown }
  | { role: 'module'; config: unknown; moduleConfig?: unknown }
  | { role: 'echo' };

/** Parent → child. */
export type ToStack =
  | { type: 'stop' }
  /** process.memoryUsage(), after a full GC when `gc` (the process runs with --expose-gc). */
  | { type: 'memory'; gc: boolean }
  /** Writes a V8 heap snapshot to `file` (forces a full GC first). */
  | { type: 'heap-snapshot'; file: string };
/** Child → parent. */
export type FromStack =
  | {
      type: 'ready';
      /** nlb: gRPC port; module: ModuleService port. */
      grpcPort?: number;
      /** nlb: bound ports of the client listeners. */
      listeners?: Array<{ name: string; port: number }>;
      /** module: the controller's ModuleService address; echo: host:port. */
      address?: string;
      /** module: problems applying moduleConfig (empty when it applied). */
      problems?: string[];
    }
  | { type: 'memory'; usage: NodeJS.MemoryUsage }
  | { type: 'heap-snapshot-written'; file: string }
  | { type: 'failed'; message: string };

const send = (m: FromStack) => process.send?.(m);

let stopHandle: (() => Promise<void>) | undefined;
let exiting = false;
function exit(code: number): void {
  if (exiting) return;
  exiting = true;
  const stopped = stopHandle ? stopHandle() : Promise.resolve();
  // A module's graceful stop drains its instances (bounded at 10 s in startModule).
  const force = setTimeout(() => process.exit(code), 20_000);
  force.unref();
  stopped.then(
    () => process.exit(code),
    () => process.exit(1),
  );
}

process.on('message', (m: ToStack) => {
  if (m.type === 'stop') exit(0);
  else if (m.type === 'memory') {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (m.gc && gc) gc();
    send({ type: 'memory', usage: process.memoryUsage() });
  } else if (m.type === 'heap-snapshot') {
    writeHeapSnapshot(m.file);
    send({ type: 'heap-snapshot-written', file: m.file });
  }
});
process.on('disconnect', () => exit(0));
process.on('SIGINT', () => exit(0));
process.on('SIGTERM', () => exit(0));

async function startNlbRole(config: unknown): Promise<void> {
  const handle: NlbHandle = await startNlb(nlbProcessSchema.parse(config));
  // Connections still open at the end are the soak's own: no drain grace needed.
  stopHandle = () => handle.dataplane.stop(0).then(() => handle.stop());
  const failed = Object.entries(handle.dataplane.failed());
  if (failed.length)
    throw new Error(`listener(s) not running: ${failed.map(([n, w]) => `${n}: ${w}`).join('; ')}`);
  send({
    type: 'ready',
    grpcPort: handle.grpcPort,
    listeners: handle.dataplane.addresses().map((l) => ({ name: l.name, port: l.port })),
  });
}

async function startModuleRole(config: unknown, moduleConfig: unknown): Promise<void> {
  const handle: ModuleHandle = await startModule(moduleProcessSchema.parse(config));
  stopHandle = () => handle.stop(true);
  const problems: string[] = [];
  if (moduleConfig !== undefined) {
    const checked = handle.controller.validateConfig(moduleConfig);
    if (!checked.ok) problems.push(...checked.problems);
    else problems.push(...(await handle.controller.updateConfig(checked.config)));
  }
  send({ type: 'ready', grpcPort: handle.port, address: handle.address, problems });
}

async function startEchoRole(): Promise<void> {
  const echo: EchoHttpServer = await startEchoHttp({ version: 'v1', host: '127.0.0.1', port: 0 });
  stopHandle = () => echo.close();
  send({ type: 'ready', address: echo.address });
}

try {
  const spec = JSON.parse(process.argv[2] ?? '{}') as StackSpec;
  if (spec.role === 'nlb') await startNlbRole(spec.config);
  else if (spec.role === 'module') await startModuleRole(spec.config, spec.moduleConfig);
  else if (spec.role === 'echo') await startEchoRole();
  else throw new Error(`unknown role in ${process.argv[2]}`);
} catch (e) {
  send({ type: 'failed', message: e instanceof Error ? e.message : String(e) });
  exit(1);
}
