/**
 * Draining an HTTP instance (Scale down, Drain, UnregisterModule graceful): idle keep-alive
 * connections close at once and a request in progress finishes with "Connection: close", so the
 * drain ends when the slowest request does, not at the drain timeout (which a pooled client's
 * keep-alive connection would otherwise hold open to the end). And an instance's limit hits are
 * counted and logged, one line per limit per 10 s.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ailbPlugin } from '../../services/modules/ailb/plugin.js';
import { albPlugin } from '../../services/modules/alb/plugin.js';
import { memoryLogger } from '../../services/shared/logger.js';
import { createHttpHarness, readUntil } from './alb-fixture.js';

const h = createHttpHarness();
afterEach(() => h.closeAll());

/** Far longer than the test may take: a drain that waits for it fails the test by its timeout. */
const DRAIN_TIMEOUT_MS = 60_000;

const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: app.example.com\r\n\r\n`;
/** A whole response: a Content-Length body, or a chunked one up to its last chunk. */
const complete = (text: string) => {
  const head = text.indexOf('\r\n\r\n');
  if (head < 0) return false;
  const fields = text.slice(0, head);
  if (/transfer-encoding: *chunked/i.test(fields)) return text.endsWith('\r\n0\r\n\r\n');
  const len = Number(/content-length: *(\d+)/i.exec(fields)?.[1] ?? -1);
  return len >= 0 && text.length >= head + 4 + len;
};

describe('HTTP instances drain by ending keep-alive, not by waiting it out', () => {
  it('ALB: an idle keep-alive connection closes at once; a busy one after its response, with Connection: close', async () => {
    const b = await h.backend('b');
    const alb = await h.instance(albPlugin, { backends: [{ name: 'b', address: b.address }] });

    const idle = await h.raw(alb.port);
    idle.write(get('/first'));
    const first = await readUntil(idle, complete, 5000);
    expect(first.text).toMatch(/^HTTP\/1\.1 200/);
    expect(first.text.toLowerCase()).not.toContain('connection: close');

    const busy = await h.raw(alb.port);
    busy.write(get('/slow?ms=500'));
    await new Promise((r) => setTimeout(r, 100)); // the request has reached the backend

    const idleClosed = readUntil(idle, () => false, 5000);
    const busyDone = readUntil(busy, () => false, 5000);
    const remaining = await alb.runtime.drain(DRAIN_TIMEOUT_MS);
    expect(remaining).toBe(0);
    expect((await idleClosed).closed).toBe(true);
    const slow = await busyDone;
    expect(slow.closed).toBe(true);
    expect(slow.text).toMatch(/^HTTP\/1\.1 200/);
    expect(slow.text.toLowerCase()).toContain('connection: close');
    expect(complete(slow.text)).toBe(true);
  }, 15_000);

  it('AILB: the same through its node:http frontend', async () => {
    const ailb = await h.instance(ailbPlugin, {});
    const idle = await h.raw(ailb.port);
    idle.write(get('/v1/models'));
    const first = await readUntil(idle, complete, 5000);
    expect(first.text).toMatch(/^HTTP\/1\.1 200/);

    const idleClosed = readUntil(idle, () => false, 5000);
    expect(await ailb.runtime.drain(DRAIN_TIMEOUT_MS)).toBe(0);
    expect((await idleClosed).closed).toBe(true);
  }, 15_000);
});

describe('instance limits are counted and logged, the log rate-limited', () => {
  it('connections over max_connections: every refusal counted, one "limit reached" line', async () => {
    const logger = memoryLogger();
    const b = await h.backend('b');
    const alb = await h.instance(albPlugin, { backends: [{ name: 'b', address: b.address }] }, [], [], {
      maxConnections: 1,
      logger,
    });
    const held = await h.raw(alb.port);
    held.write(get('/held'));
    await readUntil(held, complete, 5000);
    for (let i = 0; i < 3; i++) {
      const extra = await h.raw(alb.port);
      expect((await readUntil(extra, () => false, 5000)).closed).toBe(true);
    }
    expect(alb.counter('refused_max_connections')).toBe(3);
    expect(logger.lines.filter((l) => l.msg === 'limit reached').map((l) => l.fields)).toEqual([
      { limit: 'refused_max_connections', instance: alb.runtime.id },
    ]);
  });
});
