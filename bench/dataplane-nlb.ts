/**
 * The NLB under test in the data-plane benchmark (bench/dataplane.ts), as its own process: the
 * same `startNlb` that `mpctl serve nlb` runs, configured through `nlbProcessSchema` (config as
 * JSON in argv[2]). It reports its gRPC port and its listeners' bound ports over the IPC
 * channel, profiles itself between 'profile-start' and 'profile-stop' (V8's sampling profiler
 * through node:inspector), and stops on 'stop' or when the parent goes away.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { nlbProcessSchema, startNlb, type NlbHandle } from '../services/nlb/main.js';

/** Parent → NLB child. */
export type ToDataplaneNlb =
  { type: 'stop' } | { type: 'profile-start' } | { type: 'profile-stop'; file: string };
/** NLB child → parent. */
export type FromDataplaneNlb =
  | { type: 'ready'; grpcPort: number; listeners: Array<{ name: string; port: number }> }
  | { type: 'profiling' }
  | { type: 'profiled'; file: string }
  | { type: 'failed'; message: string };

const send = (m: FromDataplaneNlb) => process.send?.(m);

let handle: NlbHandle | undefined;
let exiting = false;
const exit = (code: number) => {
  if (exiting) return;
  exiting = true;
  // The benchmark's connections are gone by now: no drain grace needed.
  const stopped = handle ? handle.dataplane.stop(0).then(() => handle!.stop()) : Promise.resolve();
  const force = setTimeout(() => process.exit(code), 5000);
  force.unref();
  stopped.then(
    () => process.exit(code),
    () => process.exit(1),
  );
};

let profiler: Session | undefined;

async function onMessage(m: ToDataplaneNlb): Promise<void> {
  switch (m.type) {
    case 'stop':
      return exit(0);
    case 'profile-start':
      profiler = new Session();
      profiler.connect();
      await profiler.post('Profiler.enable');
      await profiler.post('Profiler.start');
      return void send({ type: 'profiling' });
    case 'profile-stop': {
      const { profile } = await profiler!.post('Profiler.stop');
      profiler!.disconnect();
      profiler = undefined;
      writeFileSync(m.file, JSON.stringify(profile));
      return void send({ type: 'profiled', file: m.file });
    }
  }
}

process.on('message', (m: ToDataplaneNlb) => {
  onMessage(m).catch((e: unknown) =>
    send({ type: 'failed', message: e instanceof Error ? e.message : String(e) }),
  );
});
process.on('disconnect', () => exit(0));
process.on('SIGINT', () => exit(0));
process.on('SIGTERM', () => exit(0));

try {
  const config = nlbProcessSchema.parse(JSON.parse(process.argv[2] ?? '{}'));
  handle = await startNlb(config);
  const failed = Object.entries(handle.dataplane.failed());
  if (failed.length)
    throw new Error(`listener(s) not running: ${failed.map(([n, w]) => `${n}: ${w}`).join('; ')}`);
  send({
    type: 'ready',
    grpcPort: handle.grpcPort,
    listeners: handle.dataplane.addresses().map((l) => ({ name: l.name, port: l.port })),
  });
} catch (e) {
  send({ type: 'failed', message: e instanceof Error ? e.message : String(e) });
  exit(1);
}
