/**
 * ALB routing and forwarding with real clients (undici) against real local backends: host
 * (exact, wildcard), path (exact, prefix, pattern), headers, priorities, weights, forwarded
 * headers and request ids, keep-alive reuse towards backends, streaming, and bodies.
 */
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { albPlugin } from '../../services/modules/alb/plugin.js';
import { createHttpHarness, route } from './alb-fixture.js';

const h = createHttpHarness();
const agent = new Agent({ keepAliveTimeout: 1000, connections: 8 });
afterEach(() => h.closeAll());

async function get(url: string, headers: Record<string, string> = {}) {
  const r = await request(url, { headers, dispatcher: agent, headersTimeout: 5000, bodyTimeout: 5000 });
  const text = await r.body.text();
  return { status: r.statusCode, headers: r.headers, text, json: () => JSON.parse(text) };
}

describe('ALB routing', () => {
  it('routes by host (exact and wildcard), path (exact, prefix, pattern), headers and priority', async () => {
    const [api, web, wild, admin, beta, users] = await Promise.all(
      ['api', 'web', 'wild', 'admin', 'beta', 'users'].map((n) => h.backend(n)),
    );
    const alb = await h.instance(
      albPlugin,
      {
        backends: [api, web, wild, admin, beta, users].map((b) => ({
          name: b.name,
          address: b.address,
          pool: b.name,
        })),
        defaultPool: 'web',
      },
      [
        route('api', {
          destinationPattern: 'api.example.com',
          pathPattern: '/v1/*',
          metadata: { pool: 'api' },
        }),
        route('wild', { destinationPattern: '*.example.com', metadata: { pool: 'wild' } }),
        route('admin-exact', {
          destinationPattern: 'api.example.com',
          pathPattern: '/admin',
          metadata: { pool: 'admin' },
        }),
        route('users', { pathPattern: '/users/*/posts', metadata: { pool: 'users' } }),
        route('beta', {
          destinationPattern: 'api.example.com',
          pathPattern: '/v1/*',
          headers: { 'x-beta': 'on' },
          priority: 10,
          metadata: { pool: 'beta' },
        }),
        route('web', { destinationPattern: 'www.example.org' }),
      ],
    );
    const who = async (host: string, path: string, headers: Record<string, string> = {}) =>
      (await get(`${alb.url}${path}`, { host, ...headers })).json().backend as string;
    expect(await who('api.example.com', '/v1/things')).toBe('api');
    expect(await who('api.example.com:8080', '/v1')).toBe('api');
    expect(await who('API.Example.COM', '/v1/x?q=1')).toBe('api');
    expect(await who('shop.example.com', '/v1/things')).toBe('wild');
    expect(await who('api.example.com', '/admin')).toBe('admin');
    expect(await who('api.example.com', '/admin/x')).toBe('wild');
    expect(await who('any.host', '/users/42/posts')).toBe('users');
    expect(await who('api.example.com', '/v1/things', { 'x-beta': 'on' })).toBe('beta');
    expect(await who('api.example.com', '/v1/things', { 'x-beta': 'off' })).toBe('api');
    expect(await who('www.example.org', '/')).toBe('web');
    // Dot segments are resolved before matching: this is /admin, not /v1/…
    expect(await who('api.example.com', '/v1/../admin')).toBe('admin');
    const none = await get(`${alb.url}/`, { host: 'nowhere.test' });
    expect(none.status).toBe(404);
    expect(none.text).toMatch(/no route/);
    expect(none.headers['x-request-id']).toBeTruthy();
    expect(alb.counter('no_route')).toBe(1);
  });

  it('adds X-Forwarded-For/-Proto/-Host and a request id, keeps a sane incoming one', async () => {
    const b = await h.backend('b');
    const alb = await h.instance(albPlugin, { backends: [{ name: 'b', address: b.address }] });
    const r = await get(`${alb.url}/x`, {
      host: 'shop.test',
      'x-forwarded-for': '203.0.113.9',
      connection: 'keep-alive',
    });
    expect(r.status).toBe(200);
    const seen = r.json().headers;
    expect(seen['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen['x-forwarded-host']).toBe('shop.test');
    expect(seen['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.headers['x-request-id']).toBe(seen['x-request-id']);
    // Repeated response headers survive.
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    const kept = await get(`${alb.url}/x`, { 'x-request-id': 'abc-123' });
    expect(kept.json().headers['x-request-id']).toBe('abc-123');
    expect(kept.headers['x-request-id']).toBe('abc-123');
  });

  it('spreads by weight (round robin) and reuses backend connections', async () => {
    const [a, b] = await Promise.all([h.backend('a'), h.backend('b')]);
    const alb = await h.instance(albPlugin, {
      backends: [
        { name: 'a', address: a.address, weight: 3 },
        { name: 'b', address: b.address, weight: 1 },
      ],
    });
    const counts: Record<string, number> = { a: 0, b: 0 };
    for (let i = 0; i < 40; i++) counts[(await get(`${alb.url}/`)).json().backend as string]++;
    expect(counts).toEqual({ a: 30, b: 10 });
    // Sequential requests: one kept-alive connection per backend.
    expect(a.connections()).toBe(1);
    expect(b.connections()).toBe(1);
    expect(alb.counter('status_2xx')).toBe(40);
    const s = alb.runtime.statsSnapshot();
    expect(s.totalRequests).toBe(40);
    expect(s.p99LatencyMs).toBeGreaterThan(0);
  });

  it('balances by least outstanding requests', async () => {
    const [a, b] = await Promise.all([h.backend('a'), h.backend('b')]);
    const alb = await h.instance(albPlugin, {
      balancing: 'least_request',
      backends: [
        { name: 'a', address: a.address },
        { name: 'b', address: b.address },
      ],
    });
    // A slow request occupies one backend; quick ones go to the other meanwhile.
    const slow = get(`${alb.url}/slow?ms=600`);
    await new Promise((r) => setTimeout(r, 50));
    const busy = a.seen.length ? 'a' : 'b';
    const quick = [];
    for (let i = 0; i < 5; i++) quick.push((await get(`${alb.url}/`)).json().backend);
    expect(quick.every((x) => x !== busy)).toBe(true);
    expect((await slow).status).toBe(200);
  });

  it('streams request and response bodies both ways', async () => {
    const b = await h.backend('b');
    const alb = await h.instance(albPlugin, { backends: [{ name: 'b', address: b.address }] });
    const big = 'x'.repeat(300_000);
    const post = await request(`${alb.url}/echo`, { method: 'POST', body: big, dispatcher: agent });
    expect((JSON.parse(await post.body.text()) as { body: string }).body.length).toBe(big.length);
    // A chunked request body (no length known up front).
    const chunked = await request(`${alb.url}/echo`, {
      method: 'POST',
      body: Readable.from(['a'.repeat(1000), 'b'.repeat(1000)]),
      dispatcher: agent,
    });
    expect((JSON.parse(await chunked.body.text()) as { body: string }).body).toBe(
      'a'.repeat(1000) + 'b'.repeat(1000),
    );
    expect(b.seen.at(-1)?.headers['transfer-encoding']).toBe('chunked');
    // A chunked response arrives incrementally.
    const started = Date.now();
    const r = await request(`${alb.url}/stream`, { dispatcher: agent });
    const times: number[] = [];
    for await (const _ of r.body) times.push(Date.now() - started);
    expect(times.length).toBeGreaterThanOrEqual(2);
    expect(times[0]).toBeLessThan(150);
    expect(alb.counter('request_body_bytes')).toBe(big.length + 2000);
    const head = await request(`${alb.url}/`, { method: 'HEAD', dispatcher: agent });
    expect(head.statusCode).toBe(200);
    await head.body.text();
  });
});
