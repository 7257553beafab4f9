/**
 * Entry point of an instance child process (process provider). Waits for its launch message on
 * the IPC channel, runs a ModuleInstanceRuntime, serves the control protocol on its unix socket
 * (control-channel.ts), and stops (unregistering gracefully) when told to or on SIGTERM/SIGINT.
 *
 * It outlives its controller on purpose: when no controller is attached (the one that started it
 * crashed), it keeps serving traffic and heartbeating so a restarted controller can adopt it. If
 * none attaches within the orphan period, it drains and exits, so nothing leaks.
 */
import { createSystemClock } from '../../../shared/clock.js';
import { createLogger, type LogLevel, type Logger } from '../../../shared/logger.js';
import { pluginFor } from '../../plugins.js';
import { ModuleInstanceRuntime } from '../instance.js';
import { createGrpcNlbApi } from '../nlb-api.js';
import type { ChildEvent, ChildIdentity, ChildInit, ChildRequest } from './child-protocol.js';
import { serveControl, type ControlServer } from './control-channel.js';

/** Drain budget when the instance stops on its own (signal, orphan period over). */
const OWN_STOP_DRAIN_MS = 5000;

// Logs go to the controller's stdout/stderr; once it is gone those pipes may be closed.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);

const ipcSend = (m: ChildEvent, then?: () => void) => {
  if (process.connected && process.send) process.send(m, undefined, {}, () => then?.());
  else then?.();
};

let runtime: ModuleInstanceRuntime | null = null;
let control: ControlServer | null = null;
let logger: Logger | null = null;
let stopping: Promise<void> | null = null;
let orphanTimer: NodeJS.Timeout | null = null;
/** Whether a controller ever attached over the socket (only then can one know how to adopt it). */
let everAttached = false;

async function stop(graceful: boolean, timeoutMs: number): Promise<void> {
  stopping ??= (async () => {
    if (orphanTimer) clearTimeout(orphanTimer);
    await runtime?.stop(graceful, timeoutMs).catch(() => undefined);
  })();
  return stopping;
}

async function stopAndExit(why: string): Promise<never> {
  logger?.info(`stopping: ${why}`);
  await stop(true, OWN_STOP_DRAIN_MS);
  await control?.close().catch(() => undefined);
  process.exit(0);
}

async function handle(m: Exclude<ChildRequest, { type: 'hello' }>): Promise<unknown> {
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
      return undefined;
  }
}

/**
 * Attached = a controller holds an authenticated control connection (or, during the launch, the
 * IPC channel). Unattached for the whole orphan period: drain and exit.
 */
function watchAttachment(orphanTimeoutMs: number): (attached: boolean) => void {
  return (attached) => {
    if (attached) {
      if (orphanTimer) {
        clearTimeout(orphanTimer);
        orphanTimer = null;
        logger?.info('a controller attached; no longer orphaned');
      }
      return;
    }
    if (orphanTimer || stopping) return;
    if (!everAttached) {
      // The launching controller died before it attached, so it never recorded this instance:
      // no restarted controller could adopt it.
      void stopAndExit('the controller went away before it attached');
      return;
    }
    logger?.warn(
      `no controller attached; serving on for ${orphanTimeoutMs} ms for a restarted controller to adopt this instance`,
    );
    orphanTimer = setTimeout(
      () => void stopAndExit(`no controller attached for ${orphanTimeoutMs} ms`),
      orphanTimeoutMs,
    );
    orphanTimer.unref();
  };
}

async function launch(m: ChildInit): Promise<void> {
  logger = createLogger({ level: m.logLevel as LogLevel, name: `instance` }).child({
    instance: m.launch.id,
  });
  const nlb = createGrpcNlbApi({ target: m.nlb.target, token: m.nlb.token, tls: m.nlb.tls });
  const startedAtMs = Date.now();
  const rt = new ModuleInstanceRuntime({
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
    onReloadRequested: () => control?.broadcast({ type: 'reload-requested' }),
  });
  runtime = rt;
  await rt.start();
  const attachment = watchAttachment(m.control.orphanTimeoutMs);
  const identity = (): ChildIdentity => ({
    instanceId: m.launch.id,
    moduleType: m.moduleType,
    version: m.launch.version,
    pid: process.pid,
    trafficAddress: rt.trafficAddress,
    startedAtMs,
    status: rt.status,
    controllerAddress: m.launch.controllerAddress,
    nlbTarget: m.nlb.target,
  });
  control = await serveControl({
    socketPath: m.control.socketPath,
    secret: m.control.secret,
    instanceId: m.launch.id,
    identity,
    handle,
    afterStop: () => void control?.close().finally(() => process.exit(0)),
    onAttached: (n) => {
      everAttached ||= n > 0;
      attachment(n > 0 || process.connected);
    },
    onProblem: (why) => logger?.warn(`control channel: ${why}`),
  });
  // The launching controller attaches over the socket next and then drops the IPC channel; a
  // controller killed before it attached leaves the instance unattached from the start.
  process.on('disconnect', () => attachment((control?.attached ?? 0) > 0));
  if (!process.connected) attachment(control.attached > 0);
  ipcSend({ type: 'started', trafficAddress: rt.trafficAddress });
}

process.once('message', (raw) => {
  const m = raw as ChildInit;
  if (m.type !== 'start') return;
  launch(m).catch((e: unknown) => {
    ipcSend({ type: 'start-failed', message: (e as Error).message }, () => process.exit(1));
  });
});

// The parent died before sending the launch message: nothing to serve.
process.once('disconnect', () => {
  if (!runtime) process.exit(1);
});

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => void stopAndExit(sig));
}
