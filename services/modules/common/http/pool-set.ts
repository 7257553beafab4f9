/**
 * The backend pools of one handler, kept in step with its config: pools are updated in place
 * (unchanged backends keep their connections and health), health checkers follow, and one
 * timer sweeps every pool's timeouts and idle connections — only while there are connections,
 * so an idle instance (or a thousand simulated ones) runs no timers.
 */
import type { Clock, TimerHandle } from '../../../shared/clock.js';
import type { Logger } from '../../../shared/logger.js';
import type { StatsCollector } from '../../runtime/stats.js';
import {
  BackendPool,
  type Balancing,
  type BackendEvent,
  type BackendSpec,
  type ConnectionSettings,
  type EjectionPolicy,
} from './backend-pool.js';
import { HealthChecker, type HealthCheckSettings } from './health-checker.js';

export interface PoolSpec {
  name: string;
  balancing: Balancing;
  ejection: EjectionPolicy;
  healthCheck: HealthCheckSettings;
  backends: BackendSpec[];
}

/** How often deadlines and idle connections are checked. */
export const SWEEP_INTERVAL_MS = 100;

export class PoolSet {
  private readonly pools = new Map<string, { pool: BackendPool; checker: HealthChecker }>();
  private sweeper: TimerHandle | null = null;
  private readonly wake = () => {
    if (this.sweeper) return;
    // Coarse time in the pools is stale after a quiet spell: refresh it before any deadline is set.
    this.sweep();
    this.sweeper = this.clock.setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
  };

  constructor(
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly stats: StatsCollector,
  ) {}

  get(name: string): BackendPool | undefined {
    return this.pools.get(name)?.pool;
  }

  all(): BackendPool[] {
    return [...this.pools.values()].map((p) => p.pool);
  }

  /** Brings the pools to `specs`; pools no longer named are closed. */
  update(specs: readonly PoolSpec[], settings: ConnectionSettings): void {
    const now = this.clock.now();
    const keep = new Set(specs.map((s) => s.name));
    for (const [name, p] of this.pools) {
      if (keep.has(name)) continue;
      p.checker.stop();
      p.pool.close();
      this.pools.delete(name);
    }
    for (const s of specs) {
      let p = this.pools.get(s.name);
      if (!p) {
        const pool: BackendPool = new BackendPool(
          s.name,
          s.balancing,
          s.ejection,
          (e) => this.onEvent(pool, e),
          this.wake,
        );
        p = { pool, checker: new HealthChecker(this.clock, pool, s.healthCheck) };
        this.pools.set(s.name, p);
      }
      p.pool.balancing = s.balancing;
      p.pool.ejection = s.ejection;
      p.pool.update(s.backends, settings, now);
      p.checker.update(s.healthCheck);
    }
  }

  private onEvent(pool: BackendPool, e: BackendEvent): void {
    const where = { pool: pool.name, backend: e.backend };
    if (e.kind === 'ejected') {
      this.stats.count('backend_ejections');
      this.logger.warn(`backend ${e.backend} ejected for ${e.forMs} ms after consecutive failures`, where);
    } else {
      this.stats.count(e.kind === 'healthy' ? 'backend_up' : 'backend_down');
      this.logger.warn(`backend ${e.backend} is ${e.kind} (${e.reason})`, where);
    }
  }

  private sweep(): void {
    const now = this.clock.now();
    let open = 0;
    for (const p of this.pools.values()) open += p.pool.sweep(now);
    if (open === 0 && this.sweeper) {
      this.sweeper.cancel();
      this.sweeper = null;
    }
  }

  close(): void {
    this.sweeper?.cancel();
    this.sweeper = null;
    for (const p of this.pools.values()) {
      p.checker.stop();
      p.pool.close();
    }
    this.pools.clear();
  }
}
