/**
 * The NLB under test, as its own process: the same `startNlb` that `mpctl serve nlb` runs,
 * configured through `nlbProcessSchema`, without oclif's start-up. The parent forks it with
 * an IPC channel and the config as JSON in argv[2]; it reports its ports, answers 'memory' with
 * process.memoryUsage(), profiles itself between 'profile-start' and 'profile-stop' (V8's
 * sampling profiler through node:inspector), and stops on 'stop' or when the parent goes away.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8';
import { nlbProcessSchema, startNlb, type NlbHandle } from '../services/nlb/main.js';
import type { FromNlb, ToNlb } from './control-plane-shared.js';

const send = (m: FromNlb) => process.send?.(m);

let handle: NlbHandle | undefined;
let exiting = false;
const exit = (code: number) => {
  if (exiting) return;
  exiting = true;
  const stopped = handle ? handle.stop() : Promise.resolve();
  const force = setTimeout(() => process.exit(code), 5000);
  force.unref();
  stopped.then(
    () => process.exit(code),
    () => process.exit(1),
  );
};

let profiler: { session: Session; cpu: boolean; heap: boolean } | undefined;

async function onMessage(m: ToNlb): Promise<void> {
  switch (m.type) {
    case 'stop':
      return exit(0);
    case 'memory':
      // V8's view of the same memory, to tell live data from heap the GC has not given back.
      return void send({
        type: 'memory',
        usage: process.memoryUsage(),
        spaces: Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, s.space_size])),
      });
    case 'profile-start': {
      const session = new Session();
      session.connect();
      profiler = { session, cpu: m.cpu, heap: m.heap };
      if (m.cpu) {
        await session.post('Profiler.enable');
        await session.post('Profiler.start');
      }
      if (m.heap) {
        await session.post('HeapProfiler.enable');
        // Objects a scavenge collects are left out: what remains is what got promoted (live,
        // or old-generation garbage), the part of the allocations that grows the heap.
        await session.post('HeapProfiler.startSampling', {
          samplingInterval: 32 * 1024,
          includeObjectsCollectedByMajorGC: true,
          includeObjectsCollectedByMinorGC: false,
        });
      }
      return void send({ type: 'profiling' });
    }
    case 'profile-stop': {
      const { session, cpu, heap } = profiler!;
      profiler = undefined;
      const files: string[] = [];
      if (cpu) {
        const { profile } = await session.post('Profiler.stop');
        files.push(`${m.base}.cpuprofile`);
        writeFileSync(files[files.length - 1], JSON.stringify(profile));
      }
      if (heap) {
        const { profile } = await session.post('HeapProfiler.stopSampling');
        files.push(`${m.base}.heapprofile`);
        writeFileSync(files[files.length - 1], JSON.stringify(profile));
      }
      session.disconnect();
      return void send({ type: 'profiled', files });
    }
    case 'heap-snapshot':
      writeHeapSnapshot(m.file);
      return void send({ type: 'heap-snapshot-written', file: m.file });
  }
}

process.on('message', (m: ToNlb) => {
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
  send({ type: 'ready', grpcPort: handle.grpcPort, adminPort: handle.adminPort });
} catch (e) {
  send({ type: 'failed', message: e instanceof Error ? e.message : String(e) });
  exit(1);
}
