/**
 * The instance provider of a simulated controller: the real `inprocess` provider, whose
 * instances report the load model's stats (statsFilter) instead of measured ones, with a boot
 * delay from the profile (and slowStart faults), and every start and stop tracked for virtual
 * time. Fakes carry no real connections, so they get the placeholder data plane rather than
 * their type's (whose per-instance sweepers and health checks would only cost virtual-time steps).
 */
import { createCountingHandler } from '../../services/modules/common/counting-handler.js';
import { pluginFor } from '../../services/modules/plugins.js';
import type { NlbApi } from '../../services/modules/runtime/nlb-api.js';
import { createInprocessProvider } from '../../services/modules/runtime/providers/inprocess.js';
import type { InstanceHandle, InstanceProvider } from '../../services/modules/runtime/providers/provider.js';
import type { ModuleTypeName } from '../../services/nlb/domain/types.js';
import type { Clock } from '../../services/shared/clock.js';
import type { Logger } from '../../services/shared/logger.js';
import type { Rng } from '../../services/shared/rng.js';
import { FakeInstance, type Profile } from '../model/fake-model.js';
import type { FaultBook } from './fault-book.js';
import type { Inflight } from './virtual-time.js';

export interface FakeProviderOptions {
  type: ModuleTypeName;
  version: string;
  profile: Profile;
  /** This controller's random stream (boot jitter, retry jitter, each fake's noise). */
  rng: Rng;
  clock: Clock;
  logger: Logger;
  inflight: Inflight;
  faults: FaultBook;
  /** Every fake of the run, by instance id. */
  fakes: Map<string, FakeInstance>;
  nlbApi: () => NlbApi;
  /** True while the fleet present at the start is created: no boot delay then. */
  booting: () => boolean;
}

/** Creates the provider; `kill(id)` crashes an instance as the inprocess provider does. */
export function createFakeProvider(
  o: FakeProviderOptions,
): InstanceProvider & { kill(id: string): Promise<void> } {
  const plugin = pluginFor(o.type);
  const jitter = o.rng.fork('jitter');
  const boot = o.rng.fork('boot');
  const inner = createInprocessProvider({
    plugin: { ...plugin, placeholderDataPlane: true, createHandler: (ctx) => createCountingHandler(ctx) },
    clock: o.clock,
    logger: o.logger,
    nlbApi: o.nlbApi,
    statsFilter: (id, measured) => o.fakes.get(id)?.stats(measured) ?? measured,
    random: () => jitter.next(),
    // Stats come from the model: the process sampler's syscalls would cost more than the rest.
    processSampler: () => ({ cpuPercent: 0, rssMb: 0 }),
  });
  const track = o.inflight.track.bind(o.inflight);
  const { clock, profile } = o;
  return {
    kind: 'inprocess',
    async start(l) {
      const delay = o.booting()
        ? 0
        : profile.startDelay +
          boot.next() * profile.startJitter +
          o.faults.extraStartDelayMs(o.type, o.version);
      // Booting takes virtual time, so it is not tracked (the clock must move on meanwhile).
      if (delay > 0) await clock.sleep(delay);
      const fake = new FakeInstance(l.id, o.type, l.version, clock.now(), profile, o.rng.fork(l.id));
      o.fakes.set(l.id, fake);
      let h: InstanceHandle;
      try {
        h = await track('instance.start', inner.start(l));
      } catch (e) {
        o.fakes.delete(l.id);
        throw e;
      }
      return {
        get id() {
          return h.id;
        },
        get trafficAddress() {
          return h.trafficAddress;
        },
        pid: h.pid,
        startedAtMs: h.startedAtMs,
        status: () => h.status(),
        stats: (reset) => h.stats(reset),
        apply: (snap) => track('instance.apply', h.apply(snap)),
        drain: (ms) => track('instance.drain', h.drain(ms)),
        stop: async (graceful, ms) => {
          await track('instance.stop', h.stop(graceful, ms));
          fake.markDown('stopped', clock.now());
        },
        onUnexpectedExit: (fn) => h.onUnexpectedExit(fn),
      };
    },
    async kill(id) {
      o.fakes.get(id)?.markDown('dead', clock.now());
      await inner.kill(id);
    },
  };
}
