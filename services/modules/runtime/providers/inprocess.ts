/** The `inprocess` provider: instances live in the controller's process (tests, simulator). */
import type { Clock } from '../../../shared/clock.js';
import type { Logger } from '../../../shared/logger.js';
import { ModuleInstanceRuntime } from '../instance.js';
import type { NlbApi } from '../nlb-api.js';
import type { StatsSnapshot } from '../stats.js';
import type { ModuleTypePlugin } from '../plugin.js';
import type { InstanceHandle, InstanceLaunch, InstanceProvider } from './provider.js';

export interface InprocessDeps {
  plugin: ModuleTypePlugin;
  clock: Clock;
  logger: Logger;
  /** Each instance gets its own NLB client (as separate processes would). */
  nlbApi: () => NlbApi;
  onReload?: (id: string) => void;
  /** Synthetic stats for simulated load (see InstanceOptions.statsFilter). */
  statsFilter?: (instanceId: string, measured: StatsSnapshot) => StatsSnapshot;
  /** Passed to every instance (see InstanceOptions). */
  random?: () => number;
  processSampler?: () => { cpuPercent: number; rssMb: number };
}

/** Creates the provider; `kill(id)` simulates a crash (for tests and the simulator). */
export function createInprocessProvider(
  d: InprocessDeps,
): InstanceProvider & { kill(id: string): Promise<void> } {
  const live = new Map<
    string,
    { rt: ModuleInstanceRuntime; api: NlbApi; exit: Array<(r: string) => void> }
  >();
  return {
    kind: 'inprocess',
    async start(l: InstanceLaunch): Promise<InstanceHandle> {
      const api = d.nlbApi();
      const rt = new ModuleInstanceRuntime({
        id: l.id,
        plugin: d.plugin,
        version: l.version,
        clock: d.clock,
        logger: d.logger.child({ instance: l.id }),
        nlb: api,
        controllerAddress: l.controllerAddress,
        host: l.host,
        heartbeatIntervalMs: l.heartbeatIntervalMs,
        snapshot: l.snapshot,
        onReloadRequested: () => d.onReload?.(l.id),
        statsFilter: d.statsFilter,
        random: d.random,
        processSampler: d.processSampler,
      });
      await rt.start();
      const entry = { rt, api, exit: [] as Array<(r: string) => void> };
      live.set(l.id, entry);
      const startedAtMs = d.clock.now();
      return {
        id: l.id,
        get trafficAddress() {
          return rt.trafficAddress;
        },
        pid: null,
        startedAtMs,
        status: () =>
          Promise.resolve({
            status: rt.status,
            lease: rt.lease.state,
            heartbeats: rt.lease.counts.heartbeats,
          }),
        stats: (reset) => {
          const s = rt.statsSnapshot();
          if (reset) rt.resetStats();
          return Promise.resolve(s);
        },
        apply: (snapshot) => rt.apply(snapshot),
        drain: (ms) => rt.drain(ms),
        stop: async (graceful, ms) => {
          live.delete(l.id);
          await rt.stop(graceful, ms);
          api.close();
        },
        onUnexpectedExit: (fn) => entry.exit.push(fn),
      };
    },
    async kill(id) {
      const e = live.get(id);
      if (!e) throw new Error(`no in-process instance ${id}`);
      live.delete(id);
      // A crash: no unregistration, listener and connections gone at once.
      e.rt.crash();
      e.api.close();
      await Promise.resolve();
      for (const fn of e.exit) fn('killed');
    },
  };
}
