/**
 * ALB limits: the module's rate limits (per client address, per route, per client on a route)
 * answer 429 with Retry-After; malformed HTTP (bad request line, oversized headers, a
 * slowloris trickle, conflicting framing) gets a 4xx or a closed connection within a bounded
 * time, and the instance keeps serving.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { albPlugin } from '../../services/modules/alb/plugin.js';
import { createRng } from '../../services/shared/rng.js';
import { createHttpHarness, limit, readUntil, route } from './alb-fixture.js';

const h = createHttpHarness();
const agent = new Agent({ keepAliveTimeout: 1000 });
afterEach(() => h.closeAll());

async function get(url: string, headers: Record<string, string> = {}) {
  const r = await request(url, { headers, dispatcher: agent, headersTimeout: 5000, bodyTimeout: 5000 });
  const text = await r.body.text();
  return { status: r.statusCode, headers: r.headers, text };
}

describe('ALB rate limits', () => {
  it('limits each client address and answers 429 with Retry-After', async () => {
    const b = await h.backend('b');
    const alb = await h.instance(
      albPlugin,
      { backends: [{ name: 'b', address: b.address }] },
      [],
      [limit('per-client', { requestsPerMinute: 3 })],
    );
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await get(`${alb.url}/`)).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    const r = await get(`${alb.url}/`);
    expect(r.status).toBe(429);
    expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(r.headers['retry-after'])).toBeLessThanOrEqual(20);
    expect(r.text).toMatch(/rate limit per-client exceeded/);
    expect(alb.counter('rate_limited')).toBe(3);
    expect(alb.counter('status_4xx')).toBe(3);
    // Refused requests never reached the backend.
    expect(b.seen.length).toBe(3);
  });

  it('limits a route as a whole, and a client on one route (metadata.route)', async () => {
    const b = await h.backend('b');
    const alb = await h.instance(
      albPlugin,
      { backends: [{ name: 'b', address: b.address }] },
      [route('api', { pathPattern: '/api/*' }), route('web', { pathPattern: '/*' })],
      [
        limit('api-total', { target: 'route:api', requestsPerSecond: 1, burstSize: 1 }),
        limit('web-per-client', { metadata: { route: 'web' }, requestsPerMinute: 1 }),
      ],
    );
    expect((await get(`${alb.url}/api/1`)).status).toBe(200);
    expect((await get(`${alb.url}/api/2`)).status).toBe(200);
    expect((await get(`${alb.url}/api/3`)).status).toBe(429);
    expect((await get(`${alb.url}/page`)).status).toBe(200);
    const r = await get(`${alb.url}/page`);
    expect(r.status).toBe(429);
    expect(r.text).toMatch(/web-per-client/);
  });
});

describe('ALB and malformed HTTP', () => {
  const config = (address: string) => ({
    backends: [{ name: 'b', address }],
    timeouts: { clientHeadersMs: 500, clientRequestMs: 1000 },
  });

  it('answers a bad request line with 400 and closes', async () => {
    const b = await h.backend('b');
    const alb = await h.instance(albPlugin, config(b.address));
    const s = await h.raw(alb.port);
    s.write('THIS IS NOT HTTP\r\n\r\n');
    const r = await readUntil(s, () => false, 2000);
    expect(r.text).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(r.closed).toBe(true);
    expect(r.ms).toBeLessThan(1500);
  });

  it('answers oversized headers with 431 and closes', async () => {
    const b = await h.backend('b');
    const alb = await h.instance(albPlugin, config(b.address));
    const s = await h.raw(alb.port);
    s.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`);
    const r = await readUntil(s, () => false, 2000);
    expect(r.text).toMatch(/^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    expect(r.closed).toBe(true);
  });

  it('cuts a slowloris trickle off within the header timeout', async () => {
    const b = await h.backend('b');
    const alb = await h.instance(albPlugin, config(b.address));
    const s = await h.raw(alb.port);
    s.write('GET / HTTP/1.1\r\nHost: x\r\n');
    const t = setInterval(() => s.writable && s.write('X-a: b\r\n'), 100);
    const r = await readUntil(s, () => false, 4000);
    clearInterval(t);
    expect(r.closed).toBe(true);
    expect(r.text === '' || /^HTTP\/1\.1 408 /.test(r.text)).toBe(true);
    expect(r.ms).toBeLessThan(2500);
    expect(b.seen.length).toBe(0);
  });

  it('refuses conflicting framing and bad header bytes, and keeps serving', async () => {
    const b = await h.backend('b');
    const alb = await h.instance(albPlugin, config(b.address));
    const bad = [
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: x\r\n Folded: header\r\n\r\n',
      'GET / HTTP/9.9\r\nHost: x\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n',
    ];
    for (const text of bad) {
      const s = await h.raw(alb.port);
      s.write(text);
      const r = await readUntil(s, () => false, 2000);
      expect(r.closed, JSON.stringify(text)).toBe(true);
      // A 4xx, or 505 for a well-formed but unsupported version; then the connection closes.
      expect(r.text === '' || /^HTTP\/1\.1 (4\d\d|505) /.test(r.text), r.text).toBe(true);
    }
    expect(b.seen.length).toBe(0);
    // Half a request, then the client vanishes.
    const s = await h.raw(alb.port);
    s.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc');
    s.destroy();
    expect((await get(`${alb.url}/`)).status).toBe(200);
    expect(alb.counter('http_client_errors')).toBeGreaterThanOrEqual(bad.length);
  });

  it('survives a fuzz of mangled requests and keeps serving', async () => {
    const b = await h.backend('b');
    const alb = await h.instance(albPlugin, config(b.address));
    const rng = createRng(42);
    const valid = [
      'GET /a HTTP/1.1\r\nHost: x\r\n\r\n',
      'POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello',
      'POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
      'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
    ];
    const mangle = (text: string): Buffer => {
      const bytes = Buffer.from(text, 'latin1');
      const out = Buffer.from(bytes);
      const edits = rng.int(1, 6);
      for (let i = 0; i < edits; i++) out[rng.int(0, out.length - 1)] = rng.int(0, 255);
      return rng.next() < 0.3 ? out.subarray(0, rng.int(1, out.length)) : out;
    };
    await Promise.all(
      Array.from({ length: 120 }, async (_, i) => {
        const s = await h.raw(alb.port);
        s.write(mangle(valid[i % valid.length]));
        if (i % 3 === 0) s.end();
        await readUntil(s, () => false, 2500);
        s.destroy();
      }),
    );
    const r = await get(`${alb.url}/after-fuzz`);
    expect(r.status).toBe(200);
  });
});
