/**
 * The log line of a limit hit, rate-limited per limit: the first hit is logged at once, then at
 * most one line per `everyMs` carrying `unlogged` (the hits since the last line), so that a flood
 * of refusals (a client opening connections in a loop) cannot flood the log. Callers count
 * every hit in their metrics; this only decides which hits get a line.
 */
import type { Logger } from './logger.js';

/** Log lines about one limit's hits are at least this far apart. */
export const LIMIT_LOG_EVERY_MS = 10_000;

export class LimitLog {
  private readonly last = new Map<string, { atMs: number; quiet: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly now: () => number,
    private readonly everyMs = LIMIT_LOG_EVERY_MS,
  ) {}

  hit(limit: string, fields: Record<string, unknown> = {}): void {
    const now = this.now();
    const last = this.last.get(limit);
    if (last && now - last.atMs < this.everyMs) {
      last.quiet++;
      return;
    }
    const line: Record<string, unknown> = { limit, ...fields };
    if (last?.quiet) line.unlogged = last.quiet;
    this.logger.warn('limit reached', line);
    this.last.set(limit, { atMs: now, quiet: 0 });
  }
}
