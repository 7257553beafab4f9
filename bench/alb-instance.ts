/**
 * One ALB instance for bench/alb.ts, in a process of its own: the real instance runtime and
 * handler with a stub NLB (the benchmark talks to the instance directly). Reads the module
 * config as JSON from argv[2], prints "READY <port>" on stdout, and stops on SIGTERM.
 */
import { albPlugin } from '../services/modules/alb/plugin.js';
import { ModuleInstanceRuntime } from '../services/modules/runtime/instance.js';
import type { NlbApi } from '../services/modules/runtime/nlb-api.js';
import { createSystemClock } from '../services/shared/clock.js';
import { silentLogger } from '../services/shared/logger.js';

const nlb: NlbApi = {
  target: 'bench:0',
  register: () => Promise.resolve({ success: true, message: 'registered', registrationId: 'bench' }),
  heartbeat: () =>
    Promise.resolve({
      acknowledged: true,
      message: 'ok',
      shouldReload: false,
      shouldScale: false,
      instructions: {},
    }),
  unregister: () => Promise.resolve({ success: true, message: 'ok', activeConnectionsDrained: 0 }),
  updateRouting: () =>
    Promise.resolve({ success: true, message: 'ok', routesUpdated: 0, validationErrors: [] }),
  updateDeployment: () => Promise.reject(new Error('not used')),
  close() {},
};

const runtime = new ModuleInstanceRuntime({
  id: 'alb-bench-1',
  plugin: albPlugin,
  version: 'bench',
  clock: createSystemClock(),
  logger: silentLogger(),
  nlb,
  controllerAddress: '127.0.0.1:1',
  host: '127.0.0.1',
  heartbeatIntervalMs: 60_000,
  snapshot: {
    routes: [],
    rateLimits: [],
    config: albPlugin.configSchema.parse(JSON.parse(process.argv[2] ?? '{}')),
    maxConnections: 0,
  },
});

await runtime.start();
process.stdout.write(`READY ${runtime.trafficAddress.split(':').pop()}\n`);
process.on('SIGTERM', () => {
  void runtime.stop(false, 0).finally(() => process.exit(0));
});
// The controller would ask over IPC; the benchmark asks with a signal.
process.on('SIGUSR2', () => {
  const s = runtime.statsSnapshot();
  process.stderr.write(
    `${JSON.stringify({ totalRequests: s.totalRequests, failedRequests: s.failedRequests })}\n`,
  );
});
