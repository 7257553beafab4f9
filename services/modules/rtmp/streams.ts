/**
 * The RTMP relay's bookkeeping inside one instance (no I/O): who publishes and plays what
 * (limits per app), which origin serves an app / stream, per-stream bytes and bitrate, and a
 * byte pacer for bandwidth limits. Counters land in the instance's custom stats as
 * `rtmp_publishers`, `rtmp_players` and `stream:<app>/<stream>:<counter>`.
 */
import { globMatch, globSpecificity } from '../common/patterns.js';
import type { StatsCollector } from '../runtime/stats.js';
import type { RtmpLimits, RtmpOrigin } from './config.js';

export type Role = 'publisher' | 'player';

interface StreamEntry {
  publishers: number;
  players: number;
  bytesIn: number;
  bytesOut: number;
  /** Bytes at the last bitrate sample, and the rate then (kbit/s). */
  lastBytes: number;
  kbps: number;
}

export interface StreamLease {
  /** Media bytes: `in` from a publisher, `out` to a player. */
  count(bytes: number): void;
  release(): void;
}

const MAX_STREAMS = 100;

/** The stream name without a query string ("key?token=…" → "key"), for matching and stats. */
export const streamName = (s: string) => s.split('?')[0];

export class StreamRegistry {
  private readonly streams = new Map<string, StreamEntry>();
  private readonly perApp = new Map<string, { publishers: number; players: number }>();
  private publishers = 0;
  private players = 0;
  private lastSampleMs: number;

  constructor(
    private readonly stats: StatsCollector,
    nowMs: number,
  ) {
    this.lastSampleMs = nowMs;
  }

  /** Admits a publisher or player of `app`/`stream` within the app's limit, or says why not. */
  admit(role: Role, app: string, stream: string, limits: RtmpLimits): StreamLease | { refused: string } {
    const rule = limits.apps.find((a) => globMatch(a.app, app));
    const a = this.perApp.get(app) ?? { publishers: 0, players: 0 };
    const max = role === 'publisher' ? rule?.maxPublishers : rule?.maxPlayers;
    const now = role === 'publisher' ? a.publishers : a.players;
    if (max && now >= max) return { refused: `app ${app} has its ${max} ${role}s` };
    this.perApp.set(app, a);
    const key =
      this.streams.has(`${app}/${stream}`) || this.streams.size < MAX_STREAMS ? `${app}/${stream}` : 'other';
    let e = this.streams.get(key);
    if (!e) {
      e = { publishers: 0, players: 0, bytesIn: 0, bytesOut: 0, lastBytes: 0, kbps: 0 };
      this.streams.set(key, e);
    }
    const entry = e;
    const bump = (d: number) => {
      if (role === 'publisher') {
        a.publishers += d;
        entry.publishers += d;
        this.publishers += d;
      } else {
        a.players += d;
        entry.players += d;
        this.players += d;
      }
      this.publish(key, entry);
    };
    bump(1);
    let released = false;
    return {
      count: (bytes) => {
        if (role === 'publisher') entry.bytesIn += bytes;
        else entry.bytesOut += bytes;
      },
      release: () => {
        if (released) return;
        released = true;
        bump(-1);
      },
    };
  }

  /** Samples bitrates (call about once a second); idle streams are forgotten. */
  sample(nowMs: number): void {
    const dt = Math.max(1, nowMs - this.lastSampleMs);
    this.lastSampleMs = nowMs;
    for (const [key, e] of this.streams) {
      const total = e.bytesIn + e.bytesOut;
      e.kbps = Math.round(((total - e.lastBytes) * 8) / dt);
      e.lastBytes = total;
      this.publish(key, e);
      if (e.publishers === 0 && e.players === 0 && e.kbps === 0) {
        this.streams.delete(key);
        for (const c of ['publishers', 'players', 'bytes_in', 'bytes_out', 'kbps'])
          this.stats.custom.delete(`stream:${key}:${c}`);
      }
    }
  }

  private publish(key: string, e: StreamEntry): void {
    const c = this.stats.custom;
    c.set('rtmp_publishers', this.publishers);
    c.set('rtmp_players', this.players);
    c.set(`stream:${key}:publishers`, e.publishers);
    c.set(`stream:${key}:players`, e.players);
    c.set(`stream:${key}:bytes_in`, e.bytesIn);
    c.set(`stream:${key}:bytes_out`, e.bytesOut);
    c.set(`stream:${key}:kbps`, e.kbps);
  }

  /** Active publishers and players, and every stream's counters. */
  snapshot(): {
    publishers: number;
    players: number;
    streams: Record<string, Omit<StreamEntry, 'lastBytes'>>;
  } {
    return {
      publishers: this.publishers,
      players: this.players,
      streams: Object.fromEntries(
        [...this.streams].map(([k, { lastBytes: _l, ...rest }]) => [k, { ...rest }] as const),
      ),
    };
  }
}

/**
 * The origins for `app`/`stream`, best first: the most specific matching patterns (literal
 * characters of the app and stream patterns that matched), then the fewest sessions.
 */
export function rankOrigins(
  origins: readonly RtmpOrigin[],
  app: string,
  stream: string,
  load: ReadonlyMap<string, number>,
): RtmpOrigin[] {
  const scored = origins
    .map((o) => {
      const a = o.apps.filter((p) => globMatch(p, app));
      const s = o.streams.filter((p) => globMatch(p, stream));
      if (!a.length || !s.length) return null;
      return { o, score: Math.max(...a.map(globSpecificity)) + Math.max(...s.map(globSpecificity)) };
    })
    .filter((x): x is { o: RtmpOrigin; score: number } => x !== null);
  scored.sort((x, y) => y.score - x.score || (load.get(x.o.name) ?? 0) - (load.get(y.o.name) ?? 0));
  return scored.map((x) => x.o);
}

/** A token bucket in bytes: how long to wait before more bytes may pass (0 = now). */
export class Pacer {
  private tokens: number;
  private lastMs: number;
  private readonly bytesPerMs: number;
  private readonly capacity: number;

  constructor(kbps: number, nowMs: number, burstMs = 1_000) {
    this.bytesPerMs = (kbps * 1000) / 8 / 1000;
    this.capacity = Math.max(64 * 1024, this.bytesPerMs * burstMs);
    this.tokens = this.capacity;
    this.lastMs = nowMs;
  }

  /** Takes `bytes`; returns the delay (ms) until the bucket is out of debt. */
  take(bytes: number, nowMs: number): number {
    this.tokens = Math.min(this.capacity, this.tokens + (nowMs - this.lastMs) * this.bytesPerMs);
    this.lastMs = nowMs;
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : Math.ceil(-this.tokens / this.bytesPerMs);
  }
}
