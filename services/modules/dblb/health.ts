/**
 * Periodic protocol health checks of every DBLB backend inside an instance: a backend turns
 * unhealthy after `unhealthyAfter` failed checks in a row and healthy again after
 * `healthyAfter` good ones; the balancer skips unhealthy backends.
 */
import type { Clock, TimerHandle } from '../../shared/clock.js';
import type { Logger } from '../../shared/logger.js';
import type { HealthCheckResult } from '../runtime/plugin.js';
import type { Balancer } from './balancer.js';
import type { DblbBackend, DblbConfig } from './config.js';
import { probeMysql, probePostgres } from './probes.js';

/** One protocol check of one backend. */
export function checkBackend(b: DblbBackend, config: DblbConfig): Promise<HealthCheckResult> {
  const hc = config.healthCheck;
  return b.protocol === 'postgres'
    ? probePostgres(b.address, hc.timeoutMs, hc.postgres)
    : probeMysql(b.address, hc.timeoutMs, hc.mysql);
}

interface Track {
  address: string;
  good: number;
  bad: number;
  last?: HealthCheckResult;
}

export class HealthMonitor {
  private timer: TimerHandle | null = null;
  private intervalMs = -1;
  private running = false;
  private closed = false;
  private readonly tracks = new Map<string, Track>();
  private config!: DblbConfig;

  constructor(
    private readonly clock: Clock,
    private readonly balancer: Balancer,
    private readonly logger: Logger,
  ) {}

  apply(config: DblbConfig): void {
    this.config = config;
    const names = new Set(config.backends.map((b) => b.name));
    for (const [name, t] of this.tracks) {
      const b = config.backends.find((x) => x.name === name);
      if (!names.has(name) || b?.address !== t.address) this.tracks.delete(name);
    }
    const every = config.healthCheck.intervalMs;
    if (every === 0) for (const b of config.backends) this.balancer.setHealthy(b.name, true);
    if (every === this.intervalMs || this.closed) return;
    this.timer?.cancel();
    this.timer = null;
    this.intervalMs = every;
    if (every > 0) {
      this.timer = this.clock.setInterval(() => void this.round(), every);
      void this.round();
    }
  }

  /** The last result per backend name. */
  results(): Record<string, HealthCheckResult> {
    const out: Record<string, HealthCheckResult> = {};
    for (const [name, t] of this.tracks) if (t.last) out[name] = t.last;
    return out;
  }

  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.timer = null;
  }

  /** Checks every backend once (a round is skipped while the previous one runs). */
  async round(): Promise<void> {
    if (this.running || this.closed) return;
    this.running = true;
    try {
      const config = this.config;
      await Promise.all(
        config.backends.map(async (b) => {
          const r = await checkBackend(b, config);
          if (this.closed) return;
          let t = this.tracks.get(b.name);
          if (!t || t.address !== b.address) {
            t = { address: b.address, good: 0, bad: 0 };
            this.tracks.set(b.name, t);
          }
          t.last = r;
          if (r.ok) {
            t.good++;
            t.bad = 0;
          } else {
            t.bad++;
            t.good = 0;
          }
          const view = this.balancer.backend(b.name);
          if (!view) return;
          const hc = config.healthCheck;
          if (view.healthy && t.bad >= hc.unhealthyAfter) {
            this.logger.warn(`backend ${b.name} is unhealthy: ${r.message}`, { backend: b.name });
            this.balancer.setHealthy(b.name, false);
          } else if (!view.healthy && t.good >= hc.healthyAfter) {
            this.logger.info(`backend ${b.name} is healthy again`, { backend: b.name });
            this.balancer.setHealthy(b.name, true);
          }
        }),
      );
    } finally {
      this.running = false;
    }
  }
}
