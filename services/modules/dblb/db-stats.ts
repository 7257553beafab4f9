/**
 * DBLB statistics per protocol / database / user (connections, active, refused, bytes), kept
 * in the instance's custom counters (they ride on heartbeats and GetStats) under
 * `db:<protocol>:<database>:<user>:<counter>`. Distinct keys are capped so that clients
 * cannot grow the heartbeat without bound; the rest is counted under `db:other`.
 */
import type { StatsCollector } from '../runtime/stats.js';

export interface DbKey {
  protocol: string;
  database: string;
  user: string;
}

export interface DbCounters {
  connections: number;
  active: number;
  refused: number;
  bytesIn: number;
  bytesOut: number;
}

const MAX_KEYS = 200;

export class DbStats {
  private readonly byKey = new Map<string, DbCounters>();

  constructor(private readonly stats: StatsCollector) {}

  private keyOf(k: DbKey): string {
    const clean = (s: string) => (s || '-').replace(/[:\s]/g, '_').slice(0, 64);
    const key = `db:${k.protocol}:${clean(k.database)}:${clean(k.user)}`;
    return this.byKey.has(key) || this.byKey.size < MAX_KEYS ? key : 'db:other';
  }

  private entry(key: string): DbCounters {
    let e = this.byKey.get(key);
    if (!e) {
      e = { connections: 0, active: 0, refused: 0, bytesIn: 0, bytesOut: 0 };
      this.byKey.set(key, e);
    }
    return e;
  }

  private publish(key: string, e: DbCounters): void {
    const c = this.stats.custom;
    c.set(`${key}:connections`, e.connections);
    c.set(`${key}:active`, e.active);
    c.set(`${key}:refused`, e.refused);
    c.set(`${key}:bytes_in`, e.bytesIn);
    c.set(`${key}:bytes_out`, e.bytesOut);
  }

  /** A session opened for this database and user; returns the function that closes it. */
  opened(k: DbKey): (bytesIn: number, bytesOut: number) => void {
    const key = this.keyOf(k);
    const e = this.entry(key);
    e.connections++;
    e.active++;
    this.publish(key, e);
    let done = false;
    return (bytesIn, bytesOut) => {
      if (done) return;
      done = true;
      e.active = Math.max(0, e.active - 1);
      e.bytesIn += bytesIn;
      e.bytesOut += bytesOut;
      this.publish(key, e);
    };
  }

  /** A connection for this database and user was refused (limit, route, health). */
  refused(k: DbKey): void {
    const key = this.keyOf(k);
    const e = this.entry(key);
    e.refused++;
    this.publish(key, e);
  }

  /** A copy of every counter, keyed `<protocol>:<database>:<user>`. */
  snapshot(): Record<string, DbCounters> {
    return Object.fromEntries([...this.byKey].map(([k, v]) => [k.slice(3), { ...v }]));
  }
}
