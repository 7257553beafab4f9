import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../services/shared/clock.js';
import type { ModuleController } from '../../services/modules/runtime/controller.js';
import { ModuleMetricsSampler, STAT_SERIES } from '../../services/modules/runtime/module-metrics.js';
import type { StatsSnapshot } from '../../services/modules/runtime/stats.js';

const stats = (requests: number): StatsSnapshot => ({
  totalRequests: requests,
  successfulRequests: requests,
  failedRequests: 0,
  activeConnections: 1,
  totalConnections: requests,
  avgLatencyMs: 1,
  p50LatencyMs: 1,
  p95LatencyMs: 2,
  p99LatencyMs: 3,
  bytesReceived: 10,
  bytesSent: 20,
  cpuUsagePercent: 5,
  memoryUsageMb: 60,
  sinceMs: 0,
  custom: {},
});

/** A controller with just what the sampler reads: the managed instances and their stats. */
function fakeController(ids: string[]) {
  const instances = new Map(
    ids.map((id) => [id, { handle: { id, stats: () => Promise.resolve(stats(7)) } }]),
  );
  return { instances, controller: { instances, limitHits: new Map() } as unknown as ModuleController };
}

describe('ModuleMetricsSampler', () => {
  it("drops a retired instance's series at the next sample and keeps the others", async () => {
    const clock = createManualClock();
    const { instances, controller } = fakeController(['alb-1', 'alb-2']);
    const sampler = new ModuleMetricsSampler(controller, clock);
    await sampler.sample();
    // Ten series per instance, plus the module aggregate and the instance count.
    expect(sampler.store.seriesCount).toBe(2 * STAT_SERIES.length + STAT_SERIES.length + 1);

    instances.delete('alb-2');
    clock.advance(5000);
    await sampler.sample();
    expect(sampler.store.seriesCount).toBe(STAT_SERIES.length + STAT_SERIES.length + 1);
    const now = clock.now();
    expect(sampler.store.query(['requests_total'], { instance: 'alb-2' }, 0, now)).toEqual([]);
    expect(sampler.store.query(['requests_total'], { instance: 'alb-1' }, 0, now)[0].points).toHaveLength(2);
  });

  it('does not grow with instances that come and go', async () => {
    const clock = createManualClock();
    const { instances, controller } = fakeController(['alb-1']);
    const sampler = new ModuleMetricsSampler(controller, clock);
    for (let i = 2; i < 50; i++) {
      const id = `alb-${i}`;
      instances.set(id, { handle: { id, stats: () => Promise.resolve(stats(i)) } });
      await sampler.sample();
      instances.delete(id);
      clock.advance(5000);
    }
    await sampler.sample();
    expect(sampler.store.seriesCount).toBe(2 * STAT_SERIES.length + 1);
  });
});
