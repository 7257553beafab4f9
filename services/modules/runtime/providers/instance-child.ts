/**
 * Entry point of an instance child process (process provider). Waits for its launch message,
 * runs a ModuleInstanceRuntime, answers the controller's requests, and stops (unregistering
 * gracefully) when told to, on SIGTERM, or when the controller goes away.
 */
import { createSystemClock } from '../../../shared/clock.js';
import { createLogger, type LogLevel } from '../../../shared/logger.js';
import { pluginFor } from '../../plugins.js';
import { ModuleInstanceRuntime } from '../instance.js';
import { createGrpcNlbApi } from '../nlb-api.js';
import type { ChildEvent, ChildInit, ChildReply, ChildRequest } from './child-protocol.js';

const send = (m: ChildEvent | ChildReply) => {
  if (process.connected) process.send?.(m);
};

let runtime: ModuleInstanceRuntime | null = null;
let stopping: Promise<void> | null = null;

async function stop(graceful: boolean, timeoutMs: number): Promise<void> {
  stopping ??= (async () => {
    await runtime?.stop(graceful, timeoutMs).catch(() => undefined);
  })();
  return stopping;
}

async function handle(m: ChildRequest): Promise<unknown> {
  if (!runtime) throw new Error('instance not started');
  switch (m.type) {
    case 'status':
      return {
        status: runtime.status,
        lease: runtime.lease.state,
        heartbeats: runtime.lease.counts.heartbeats,
      };
    case 'stats': {
      const s = runtime.statsSnapshot();
      if (m.reset) runtime.resetStats();
      return s;
    }
    case 'apply':
      return runtime.apply(m.snapshot);
    case 'drain':
      return runtime.drain(m.timeoutMs);
    case 'stop':
      await stop(m.graceful, m.timeoutMs);
      setImmediate(() => process.exit(0));
      return undefined;
  }
}

process.on('message', (raw) => {
  const m = raw as ChildInit | ChildRequest;
  if (m.type === 'start') {
    void (async () => {
      try {
        const logger = createLogger({ level: m.logLevel as LogLevel, name: `instance` }).child({
          instance: m.launch.id,
        });
        const nlb = createGrpcNlbApi({ target: m.nlb.target, token: m.nlb.token, tls: m.nlb.tls });
        runtime = new ModuleInstanceRuntime({
          id: m.launch.id,
          plugin: pluginFor(m.moduleType),
          version: m.launch.version,
          clock: createSystemClock(),
          logger,
          nlb,
          controllerAddress: m.launch.controllerAddress,
          host: m.launch.host,
          heartbeatIntervalMs: m.launch.heartbeatIntervalMs,
          snapshot: m.launch.snapshot,
          onReloadRequested: () => send({ type: 'reload-requested' }),
        });
        await runtime.start();
        send({ type: 'started', trafficAddress: runtime.trafficAddress });
      } catch (e) {
        send({ type: 'start-failed', message: (e as Error).message });
        process.exit(1);
      }
    })();
    return;
  }
  handle(m).then(
    (value) => send({ type: 'reply', reqId: m.reqId, value }),
    (e: unknown) => send({ type: 'reply', reqId: m.reqId, error: (e as Error).message }),
  );
});

// The controller went away (crash or kill): leave the NLB cleanly instead of lingering.
process.on('disconnect', () => {
  void stop(true, 5000).then(() => process.exit(0));
});
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    void stop(true, 5000).then(() => process.exit(0));
  });
}
