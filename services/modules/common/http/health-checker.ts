/**
 * Active health checks for a backend pool, with the fields of the contract's HealthCheckConfig:
 * every `intervalMs` each backend gets an HTTP GET (or a TCP connect); `unhealthyThreshold`
 * consecutive failures take it out of rotation, `healthyThreshold` consecutive successes bring it
 * back. Checks run on the injected clock and use their own short-lived connections.
 */
import { connect } from 'node:net';
import type { Clock, TimerHandle } from '../../../shared/clock.js';
import type { Backend, BackendPool } from './backend-pool.js';

export interface HealthCheckSettings {
  enabled: boolean;
  intervalMs: number;
  timeoutMs: number;
  unhealthyThreshold: number;
  healthyThreshold: number;
  protocol: 'HTTP' | 'TCP';
  path: string;
  /** Checks this port instead of the backend's own (0 = the backend's). */
  port: number;
  /** Host header of HTTP checks ('' = the backend's host). */
  host: string;
}

/** Outcome of one probe. */
export interface ProbeResult {
  ok: boolean;
  detail: string;
}

/** One probe: an HTTP GET whose status must be 2xx or 3xx, or just a TCP connection. */
export function probe(
  clock: Clock,
  host: string,
  port: number,
  s: Pick<HealthCheckSettings, 'protocol' | 'path' | 'host' | 'timeoutMs'>,
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let head = '';
    let settled = false;
    const done = (r: ProbeResult) => {
      if (settled) return;
      settled = true;
      timer.cancel();
      socket.destroy();
      resolve(r);
    };
    const timer = clock.setTimeout(
      () => done({ ok: false, detail: `no answer within ${s.timeoutMs} ms` }),
      s.timeoutMs,
    );
    socket.on('error', (e: NodeJS.ErrnoException) => done({ ok: false, detail: e.code ?? e.message }));
    socket.on('close', () => done({ ok: false, detail: 'connection closed before a status line' }));
    socket.on('connect', () => {
      if (s.protocol === 'TCP') return done({ ok: true, detail: 'connected' });
      const hostHeader = s.host || (host.includes(':') ? `[${host}]` : host);
      socket.write(
        `GET ${s.path} HTTP/1.1\r\nHost: ${hostHeader}\r\nUser-Agent: marchproxy-health-check\r\nConnection: close\r\n\r\n`,
        'latin1',
      );
    });
    socket.on('data', (c: Buffer) => {
      head += c.toString('latin1');
      const eol = head.indexOf('\r\n');
      if (eol < 0 && head.length < 1024) return;
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      if (!m) return done({ ok: false, detail: 'not an HTTP response' });
      const status = Number(m[1]);
      done({ ok: status >= 200 && status < 400, detail: `HTTP ${status}` });
    });
  });
}

/** Runs the checks of one pool until stopped. */
export class HealthChecker {
  private timer: TimerHandle | null = null;
  private readonly streaks = new WeakMap<Backend, { ok: number; fail: number; busy: boolean }>();

  constructor(
    private readonly clock: Clock,
    private readonly pool: BackendPool,
    private settings: HealthCheckSettings,
  ) {}

  start(): void {
    this.stop();
    if (!this.settings.enabled) {
      // Without checks nothing can take a backend out (or bring it back): all count as healthy.
      for (const b of this.pool.backends) this.pool.setHealth(b, true, 'health checks disabled');
      return;
    }
    this.timer = this.clock.setInterval(() => this.round(), this.settings.intervalMs);
    this.round();
  }

  /** New settings (the pool's backends may have changed too). */
  update(settings: HealthCheckSettings): void {
    const changed = JSON.stringify(settings) !== JSON.stringify(this.settings);
    this.settings = settings;
    if (changed || !this.timer) this.start();
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  /** Probes every backend once (a backend whose last probe is still running is skipped). */
  round(): void {
    for (const b of this.pool.backends) {
      let st = this.streaks.get(b);
      if (!st) this.streaks.set(b, (st = { ok: 0, fail: 0, busy: false }));
      if (st.busy) continue;
      st.busy = true;
      const streak = st;
      void probe(this.clock, b.host, this.settings.port || b.port, this.settings).then((r) => {
        streak.busy = false;
        if (!this.timer) return;
        this.record(b, streak, r);
      });
    }
  }

  private record(b: Backend, st: { ok: number; fail: number }, r: ProbeResult): void {
    const s = this.settings;
    if (r.ok) {
      st.ok++;
      st.fail = 0;
      if (!b.healthy && st.ok >= s.healthyThreshold) this.pool.setHealth(b, true, r.detail);
    } else {
      st.fail++;
      st.ok = 0;
      if (b.healthy && st.fail >= s.unhealthyThreshold) this.pool.setHealth(b, false, r.detail);
    }
  }
}
