/**
 * The faults in force, as data the links, the traffic model and the providers consult: which
 * instances are partitioned or have stopped or slowed heartbeats, which versions have a raised
 * error rate or latency, which controllers' Scale calls fail, which starts are slow. Each entry
 * lasts until its end time (or for ever).
 */
import type { Clock } from '../../services/shared/clock.js';
import { NO_MODIFIERS, type Modifiers } from '../model/fake-model.js';

interface Window {
  fromMs: number;
  untilMs: number;
}
interface Scoped extends Window {
  type?: string;
  version?: string;
}

const matches = (s: Scoped, type: string, version: string) =>
  (s.type === undefined || s.type === type) && (s.version === undefined || s.version === version);

export class FaultBook {
  private readonly partitioned = new Map<string, Window>();
  private readonly silenced = new Map<string, Window>();
  private readonly slowed = new Map<string, Window & { delayMs: number }>();
  private readonly modifiers: Array<Scoped & { mod: Partial<Modifiers> }> = [];
  private readonly scaleFailures: Scoped[] = [];
  private readonly slowStarts: Array<Scoped & { delayMs: number }> = [];

  constructor(private readonly clock: Clock) {}

  private window(forMs: number | undefined): Window {
    const now = this.clock.now();
    return { fromMs: now, untilMs: forMs === undefined ? Number.POSITIVE_INFINITY : now + forMs };
  }

  private live = (w: Window | undefined): w is Window => w !== undefined && this.clock.now() < w.untilMs;

  partition(ids: readonly string[], forMs?: number): void {
    for (const id of ids) this.partitioned.set(id, this.window(forMs));
  }

  stopHeartbeats(ids: readonly string[], forMs?: number): void {
    for (const id of ids) this.silenced.set(id, this.window(forMs));
  }

  slowHeartbeats(ids: readonly string[], delayMs: number, forMs?: number): void {
    for (const id of ids) this.slowed.set(id, { ...this.window(forMs), delayMs });
  }

  modify(type: string, version: string, mod: Partial<Modifiers>, forMs?: number): void {
    this.modifiers.push({ ...this.window(forMs), type, version, mod });
  }

  failScale(type: string | undefined, version: string | undefined, forMs?: number): void {
    this.scaleFailures.push({ ...this.window(forMs), type, version });
  }

  slowStart(type: string, version: string | undefined, delayMs: number, forMs?: number): void {
    this.slowStarts.push({ ...this.window(forMs), type, version, delayMs });
  }

  /** Since when the instance is cut off from the NLB, or null. */
  partitionedSince(id: string): number | null {
    const w = this.partitioned.get(id);
    return this.live(w) ? w.fromMs : null;
  }

  heartbeatsStopped(id: string): boolean {
    return this.live(this.silenced.get(id));
  }

  heartbeatDelayMs(id: string): number {
    const w = this.slowed.get(id);
    return this.live(w) ? w.delayMs : 0;
  }

  /** The combined error-rate and latency changes for a version now. */
  modifiersFor(type: string, version: string): Modifiers {
    let out: Modifiers | null = null;
    for (const m of this.modifiers) {
      if (!this.live(m) || !matches(m, type, version)) continue;
      out ??= { ...NO_MODIFIERS };
      out.errorRateAdd += m.mod.errorRateAdd ?? 0;
      out.latencyAddMs += m.mod.latencyAddMs ?? 0;
      out.latencyFactor *= m.mod.latencyFactor ?? 1;
    }
    return out ?? NO_MODIFIERS;
  }

  scaleFails(type: string, version: string): boolean {
    return this.scaleFailures.some((s) => this.live(s) && matches(s, type, version));
  }

  extraStartDelayMs(type: string, version: string): number {
    return this.slowStarts
      .filter((s) => this.live(s) && matches(s, type, version))
      .reduce((a, s) => a + s.delayMs, 0);
  }
}
