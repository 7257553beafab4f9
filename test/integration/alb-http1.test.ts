/**
 * The ALB's own HTTP/1.1 server, over raw sockets: pipelined requests answered in order,
 * HTTP/1.0 and Connection: close, 100-continue, half-closed clients, bodies sent slowly,
 * HEAD, chunked responses re-framed for HTTP/1.0 clients, and the keep-alive idle timeout.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { albPlugin } from '../../services/modules/alb/plugin.js';
import { createHttpHarness, readUntil, sleep } from './alb-fixture.js';

const h = createHttpHarness();
afterEach(() => h.closeAll());

async function alb() {
  const b = await h.backend('b');
  const inst = await h.instance(albPlugin, {
    backends: [{ name: 'b', address: b.address }],
    timeouts: { clientKeepAliveMs: 400, clientHeadersMs: 2000 },
  });
  return { b, inst };
}

/** Status lines of the responses in `text`, in order. */
const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3}) [A-Z]/g)].map((m) => Number(m[1]));

describe('ALB HTTP/1.1 server', () => {
  it('answers pipelined requests in order on one connection', async () => {
    const { b, inst } = await alb();
    const s = await h.raw(inst.port);
    s.write(['/one', '/two', '/three'].map((p) => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`).join(''));
    const r = await readUntil(s, (t) => (t.match(/"backend":"b"/g) ?? []).length === 3, 3000);
    expect(statuses(r.text)).toEqual([200, 200, 200]);
    expect([...r.text.matchAll(/"url":"([^"]+)"/g)].map((m) => m[1])).toEqual(['/one', '/two', '/three']);
    expect(b.seen.map((x) => x.url)).toEqual(['/one', '/two', '/three']);
    expect(r.closed).toBe(false);
  });

  it('closes after HTTP/1.0 and Connection: close, and keeps HTTP/1.0 keep-alive open', async () => {
    const { inst } = await alb();
    const a = await h.raw(inst.port);
    a.write('GET /a HTTP/1.0\r\n\r\n');
    const ra = await readUntil(a, () => false, 2000);
    expect(ra.closed).toBe(true);
    expect(ra.text).toMatch(/^HTTP\/1\.1 200 /);
    expect(ra.text).toMatch(/\r\nConnection: close\r\n/);
    const b = await h.raw(inst.port);
    b.write('GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect((await readUntil(b, () => false, 2000)).closed).toBe(true);
    const c = await h.raw(inst.port);
    c.write('GET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    const rc = await readUntil(c, (t) => t.includes('"backend"'), 2000);
    expect(rc.text).toMatch(/\r\nConnection: keep-alive\r\n/);
    expect(rc.closed).toBe(false);
  });

  it('sends 100 Continue, takes a body sent slowly, then serves the next request', async () => {
    const { b, inst } = await alb();
    const s = await h.raw(inst.port);
    s.write('POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n');
    expect((await readUntil(s, (t) => t.includes('\r\n\r\n'), 2000)).text).toBe(
      'HTTP/1.1 100 Continue\r\n\r\n',
    );
    for (const piece of ['01', '234', '56789']) {
      s.write(piece);
      await sleep(30);
    }
    const r = await readUntil(s, (t) => t.includes('"backend"'), 2000);
    expect(r.text).toMatch(/^HTTP\/1\.1 200 /);
    expect(b.seen[0].body).toBe('0123456789');
    // A chunked body, then another request right behind it.
    s.write(
      'POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n',
    );
    const r2 = await readUntil(s, (t) => (t.match(/"backend"/g) ?? []).length === 2, 2000);
    expect(statuses(r2.text)).toEqual([200, 200]);
    expect(b.seen.slice(1).map((x) => [x.url, x.body])).toEqual([
      ['/c', 'abc'],
      ['/after', ''],
    ]);
  });

  it('still answers a client that half-closes after its request', async () => {
    const { inst } = await alb();
    const s = await h.raw(inst.port);
    s.end('GET /half HTTP/1.1\r\nHost: x\r\n\r\n');
    const r = await readUntil(s, () => false, 2000);
    expect(r.text).toMatch(/^HTTP\/1\.1 200 /);
    expect(r.text).toMatch(/"url":"\/half"/);
    expect(r.closed).toBe(true);
  });

  it('answers HEAD without a body and re-frames a chunked response for HTTP/1.0', async () => {
    const { inst } = await alb();
    const s = await h.raw(inst.port);
    s.write('HEAD /x HTTP/1.1\r\nHost: x\r\n\r\nGET /y HTTP/1.1\r\nHost: x\r\n\r\n');
    const r = await readUntil(s, (t) => t.includes('"url":"/y"'), 2000);
    const [headResponse, getResponse] = r.text.split('HTTP/1.1 200').filter(Boolean);
    // The head only; the GET's response follows right after it.
    expect(headResponse.endsWith('\r\n\r\n')).toBe(true);
    expect(headResponse).not.toMatch(/"backend"/);
    expect(getResponse).toMatch(/"url":"\/y"/);
    // The backend's /stream is chunked: HTTP/1.1 gets chunks, HTTP/1.0 a body ended by close.
    const c11 = await h.raw(inst.port);
    c11.write('GET /stream HTTP/1.1\r\nHost: x\r\n\r\n');
    expect((await readUntil(c11, (t) => t.endsWith('0\r\n\r\n'), 2000)).text).toMatch(
      /Transfer-Encoding: chunked/,
    );
    const c10 = await h.raw(inst.port);
    c10.write('GET /stream HTTP/1.0\r\n\r\n');
    const r10 = await readUntil(c10, () => false, 2000);
    expect(r10.closed).toBe(true);
    expect(r10.text).not.toMatch(/Transfer-Encoding/);
    expect(r10.text.endsWith('chunk 0\nchunk 1\nchunk 2\n')).toBe(true);
  });

  it('closes idle keep-alive connections after the keep-alive timeout', async () => {
    const { inst } = await alb();
    const s = await h.raw(inst.port);
    s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const r = await readUntil(s, () => false, 3000);
    expect(statuses(r.text)).toEqual([200]);
    expect(r.closed).toBe(true);
    expect(r.ms).toBeGreaterThanOrEqual(300);
    expect(r.ms).toBeLessThan(1500);
    expect(inst.counter('http_idle_closed')).toBe(1);
  });
});
