/**
 * ALB backend failure handling with real clients and backends: active health checks take a
 * backend out and bring it back, passive ejection after consecutive failures, a retry of an
 * idempotent request on a connection failure, 502 on a dead backend, 503 with no healthy one,
 * 504 on a slow one, and config pushed live.
 */
import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { albPlugin } from '../../services/modules/alb/plugin.js';
import { createRng } from '../../services/shared/rng.js';
import { createHttpHarness, route, sleep, waitFor } from './alb-fixture.js';

const h = createHttpHarness();
const agent = new Agent({ keepAliveTimeout: 1000 });
afterEach(() => h.closeAll());

async function get(url: string, opts: { method?: string; headers?: Record<string, string> } = {}) {
  const r = await request(url, { ...opts, dispatcher: agent, headersTimeout: 5000, bodyTimeout: 5000 });
  const text = await r.body.text();
  return { status: r.statusCode, headers: r.headers, text };
}

const backendOf = (text: string) => (JSON.parse(text) as { backend: string }).backend;

/** An address where nothing listens (a port bound a moment ago, then closed). */
async function deadAddress(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return `127.0.0.1:${port}`;
}

describe('ALB backends', () => {
  it('takes a backend out when its health check fails and brings it back when it passes', async () => {
    const [a, b] = await Promise.all([h.backend('a'), h.backend('b')]);
    const alb = await h.instance(albPlugin, {
      backends: [
        { name: 'a', address: a.address },
        { name: 'b', address: b.address },
      ],
      healthCheck: {
        enabled: true,
        intervalSeconds: 0.1,
        timeoutSeconds: 0.5,
        unhealthyThreshold: 2,
        healthyThreshold: 2,
        path: '/health',
      },
    });
    const spread = async (n: number) => {
      const seen = new Set<string>();
      for (let i = 0; i < n; i++) seen.add(backendOf((await get(`${alb.url}/`)).text));
      return [...seen].sort();
    };
    expect(await spread(6)).toEqual(['a', 'b']);
    b.setHealthy(false);
    await waitFor('b marked down', () => alb.counter('backend_down') === 1);
    expect(await spread(10)).toEqual(['a']);
    b.setHealthy(true);
    await waitFor('b back up', () => alb.counter('backend_up') === 1);
    expect(await spread(6)).toEqual(['a', 'b']);
    // Checks really ran against /health.
    expect(b.seen.filter((r) => r.url === '/health').length).toBeGreaterThanOrEqual(4);
    expect(b.seen.find((r) => r.url === '/health')?.headers['user-agent']).toBe('marchproxy-health-check');
  });

  it('retries an idempotent request on a connection failure and ejects the dead backend', async () => {
    const live = await h.backend('live');
    const dead = await deadAddress();
    const alb = await h.instance(albPlugin, {
      backends: [
        { name: 'dead', address: dead },
        { name: 'live', address: live.address },
      ],
      passiveEjection: { consecutiveFailures: 2, baseEjectionSeconds: 60 },
    });
    for (let i = 0; i < 10; i++) {
      const r = await get(`${alb.url}/`);
      expect(r.status).toBe(200);
      expect(backendOf(r.text)).toBe('live');
    }
    // Two connection failures (each retried on "live"), then "dead" is out of rotation.
    expect(alb.counter('upstream_retries')).toBe(2);
    expect(alb.counter('backend_ejections')).toBe(1);
    // A POST is not retried: with "dead" back in rotation it gets a 502.
    await alb.apply({ config: { backends: [{ name: 'dead', address: dead }] } });
    const post = await get(`${alb.url}/`, { method: 'POST' });
    expect([502, 503]).toContain(post.status);
  });

  it('answers 502 for a dead backend, 503 when none is usable and 504 for a slow one', async () => {
    const dead = await deadAddress();
    const slow = await h.backend('slow');
    const alb = await h.instance(
      albPlugin,
      {
        backends: [
          { name: 'dead', address: dead, pool: 'dead' },
          { name: 'slow', address: slow.address, pool: 'slow' },
        ],
        pools: [{ name: 'dead', passiveEjection: { consecutiveFailures: 3, baseEjectionSeconds: 60 } }],
        timeouts: { responseMs: 300 },
      },
      [
        route('dead', { pathPattern: '/dead/*', metadata: { pool: 'dead' } }),
        route('slow', { pathPattern: '/slow', metadata: { pool: 'slow' } }),
        route('empty', { pathPattern: '/empty', metadata: { pool: 'nothing-here' } }),
      ],
    );
    const bad = await get(`${alb.url}/dead/x`);
    expect(bad.status).toBe(502);
    expect(bad.text).toMatch(
      /^502 Bad Gateway: backend dead failed: ECONNREFUSED \(request id [0-9a-f-]{36}\)\n$/,
    );
    expect(bad.headers['x-request-id']).toBeTruthy();
    await get(`${alb.url}/dead/x`);
    await get(`${alb.url}/dead/x`);
    // Ejected after three failures: no backend left in the pool.
    const gone = await get(`${alb.url}/dead/x`);
    expect(gone.status).toBe(503);
    expect(gone.text).toMatch(/no healthy backend in pool dead/);
    const started = Date.now();
    const timeout = await get(`${alb.url}/slow?ms=3000`);
    expect(timeout.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(1500);
    expect((await get(`${alb.url}/empty`)).status).toBe(503);
    const s = alb.runtime.statsSnapshot();
    expect(s.failedRequests).toBe(6);
    expect(alb.counter('status_5xx')).toBe(6);
  });

  it('applies config, routes and weights live, keeping unchanged backends', async () => {
    const [a, b] = await Promise.all([h.backend('a'), h.backend('b')]);
    const alb = await h.instance(albPlugin, { backends: [{ name: 'a', address: a.address }] });
    expect(backendOf((await get(`${alb.url}/`)).text)).toBe('a');
    await alb.apply({
      config: {
        backends: [
          { name: 'a', address: a.address, weight: 0 },
          { name: 'b', address: b.address, pool: 'b' },
        ],
      },
      routes: [route('b', { pathPattern: '/b/*', metadata: { pool: 'b' } })],
    });
    expect(backendOf((await get(`${alb.url}/b/1`)).text)).toBe('b');
    // Weight 0 drains "a"; with routes present, unmatched paths are 404.
    expect((await get(`${alb.url}/other`)).status).toBe(404);
    await alb.apply({ routes: [] });
    expect((await get(`${alb.url}/`)).status).toBe(503);
    // "a" kept its connection through the changes.
    expect(a.connections()).toBe(1);
    await sleep(10);
  });

  it('answers 502 for garbage from a backend, and never falls over', async () => {
    const rng = createRng(9);
    const good =
      'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n';
    const server = createServer((sock) => {
      sock.on('error', () => undefined);
      sock.once('data', () => {
        const out = Buffer.from(good, 'latin1');
        for (let i = rng.int(0, 4); i > 0; i--) out[rng.int(0, out.length - 1)] = rng.int(0, 255);
        sock.end(rng.next() < 0.2 ? out.subarray(0, rng.int(1, out.length)) : out);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const alb = await h.instance(albPlugin, {
        backends: [{ name: 'junk', address: `127.0.0.1:${(server.address() as { port: number }).port}` }],
        passiveEjection: { consecutiveFailures: 0 },
        retries: 0,
      });
      const seen = new Set<number>();
      for (let i = 0; i < 60; i++) {
        const r = await request(`${alb.url}/`, { dispatcher: agent, headersTimeout: 5000, bodyTimeout: 5000 })
          .then(async (x) => {
            await x.body.text();
            return x.statusCode;
          })
          .catch(() => 0);
        seen.add(r);
      }
      // Clean answers pass, broken ones are 502 (or the connection is cut mid-body: 0).
      expect([...seen].every((x) => x === 0 || x === 502 || (x >= 100 && x < 600))).toBe(true);
      expect(seen.has(502)).toBe(true);
      expect(alb.runtime.status).toBe('HEALTHY');
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
