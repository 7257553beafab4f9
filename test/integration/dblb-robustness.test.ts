/**
 * The DBLB under garbage: random bytes, truncated and oversized startup packets, a second
 * SSLRequest and floods close the connection within a bounded time with a protocol error where
 * the protocol has one, and never take the instance down. Also protocol detection when both
 * protocols are configured (a client byte ⇒ PostgreSQL, silence ⇒ MySQL). Backends are small
 * fakes that speak just enough of each protocol, so this file needs no database server.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dblbPlugin } from '../../services/modules/dblb/plugin.js';
import { encodeStartup, errorFields } from '../../services/modules/dblb/pg-protocol.js';
import { createRng } from '../../services/shared/rng.js';
import { createDbHarness } from './dblb-fixture.js';

/** Sockets the fakes accepted, destroyed in afterAll so that closing the servers never waits. */
const fakeSockets = new Set<Socket>();
const track = (s: Socket) => {
  fakeSockets.add(s);
  s.once('close', () => fakeSockets.delete(s));
};

/** A fake PostgreSQL: AuthenticationOk, BackendKeyData, ReadyForQuery, then echoes nothing. */
async function fakePostgres(): Promise<{ server: Server; address: string; seen: Buffer[] }> {
  const seen: Buffer[] = [];
  const server = createServer((s) => {
    track(s);
    s.on('error', () => undefined);
    s.once('data', (b: Buffer) => {
      seen.push(b);
      const auth = Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0]);
      const key = Buffer.from([0x4b, 0, 0, 0, 12, 0, 0, 0, 42, 1, 2, 3, 4]);
      const ready = Buffer.from([0x5a, 0, 0, 0, 5, 0x49]);
      s.write(Buffer.concat([auth, key, ready]));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, address: `127.0.0.1:${(server.address() as { port: number }).port}`, seen };
}

/** A fake MySQL server: sends a greeting at once. */
async function fakeMysql(): Promise<{ server: Server; address: string }> {
  const server = createServer((s) => {
    track(s);
    s.on('error', () => undefined);
    const payload = Buffer.concat([Buffer.from([10]), Buffer.from('10.11.0-fake\0'), Buffer.alloc(40)]);
    const head = Buffer.from([payload.length, 0, 0, 0]);
    s.write(Buffer.concat([head, payload]));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, address: `127.0.0.1:${(server.address() as { port: number }).port}` };
}

interface Outcome {
  bytes: Buffer;
  closedAfterMs: number;
}

/** Connects, writes `send` (maybe in pieces), and waits for the server to close (bounded). */
function exchange(port: number, send: Buffer[], timeoutMs = 3_000, gapMs = 0): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const s: Socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`still open after ${timeoutMs} ms; got ${Buffer.concat(chunks).toString('latin1')}`));
    }, timeoutMs);
    s.on('data', (b: Buffer) => chunks.push(b));
    s.on('error', () => undefined);
    s.once('close', () => {
      clearTimeout(t);
      resolve({ bytes: Buffer.concat(chunks), closedAfterMs: Date.now() - t0 });
    });
    s.once('connect', () => {
      void (async () => {
        for (const b of send) {
          if (s.destroyed) return;
          s.write(b);
          if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
        }
      })();
    });
  });
}

/** The SQLSTATE of an ErrorResponse at the start of `b`, or ''. */
const sqlStateOf = (b: Buffer) => (b[0] === 0x45 && b.length > 5 ? (errorFields(b.subarray(5)).C ?? '') : '');

describe('DBLB robustness', () => {
  const h = createDbHarness();
  const servers: Server[] = [];
  let pgPort = 0;
  let bothPort = 0;
  let pgBackend: Awaited<ReturnType<typeof fakePostgres>>;
  let rt: Awaited<ReturnType<typeof h.startInstance>>['rt'];

  beforeAll(async () => {
    pgBackend = await fakePostgres();
    const my = await fakeMysql();
    servers.push(pgBackend.server, my.server);
    const pgOnly = await h.startInstance(dblbPlugin, {
      backends: [{ name: 'pg', protocol: 'postgres', address: pgBackend.address }],
      postgres: { startupTimeoutMs: 300 },
      healthCheck: { intervalMs: 0 },
    });
    pgPort = pgOnly.port;
    rt = pgOnly.rt;
    const both = await h.startInstance(dblbPlugin, {
      backends: [
        { name: 'pg', protocol: 'postgres', address: pgBackend.address },
        { name: 'my', protocol: 'mysql', address: my.address },
      ],
      mysql: { silenceMs: 100 },
      healthCheck: { intervalMs: 0 },
    });
    bothPort = both.port;
  });

  afterAll(async () => {
    await h.closeAll();
    for (const s of fakeSockets) s.destroy();
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  });

  const works = async () => {
    const o = await new Promise<Buffer>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: pgPort });
      const t = setTimeout(() => reject(new Error('no ReadyForQuery')), 3_000);
      let got = Buffer.alloc(0);
      s.on('error', () => undefined);
      s.on('data', (b: Buffer) => {
        got = Buffer.concat([got, b]);
        if (got.includes(Buffer.from([0x5a, 0, 0, 0, 5]))) {
          clearTimeout(t);
          s.destroy();
          resolve(got);
        }
      });
      s.write(encodeStartup({ user: 'u', database: 'd' }));
    });
    expect(o[0]).toBe(0x52);
  };

  it('a well-formed startup reaches the (fake) backend unchanged', async () => {
    await works();
    expect(pgBackend.seen.at(-1)).toEqual(encodeStartup({ user: 'u', database: 'd' }));
  });

  it('garbage, oversized and malformed packets get 08P01 and are closed at once', async () => {
    const cases: Array<[string, Buffer]> = [
      ['HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
      ['oversized length', Buffer.from([0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0])],
      ['length below 8', Buffer.from([0, 0, 0, 4, 0, 3, 0, 0])],
      ['protocol 2.0', Buffer.from([0, 0, 0, 8, 0, 2, 0, 0])],
      ['bad SSLRequest length', Buffer.from([0, 0, 0, 12, 0x04, 0xd2, 0x16, 0x2f, 0, 0, 0, 0])],
      [
        'unterminated parameters',
        Buffer.concat([Buffer.from([0, 0, 0, 14, 0, 3, 0, 0]), Buffer.from('user\0x')]),
      ],
      [
        'second SSLRequest',
        Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f, 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]),
      ],
    ];
    for (const [what, bytes] of cases) {
      const o = await exchange(pgPort, [bytes]);
      const body = what === 'second SSLRequest' ? o.bytes.subarray(1) : o.bytes;
      expect(sqlStateOf(body), what).toBe('08P01');
      expect(o.closedAfterMs, what).toBeLessThan(1_000);
    }
  });

  it('a truncated startup is closed after the startup timeout', async () => {
    const o = await exchange(pgPort, [encodeStartup({ user: 'u', database: 'd' }).subarray(0, 11)]);
    expect(sqlStateOf(o.bytes)).toBe('08P01');
    expect(o.closedAfterMs).toBeGreaterThanOrEqual(250);
    expect(o.closedAfterMs).toBeLessThan(2_000);
    const silent = await exchange(pgPort, []);
    expect(silent.closedAfterMs).toBeLessThan(2_000);
    expect(Number(rt.statsSnapshot().custom.pg_startup_timeout)).toBeGreaterThanOrEqual(2);
  });

  it('a byte-at-a-time slow client cannot hold a connection past the timeout', async () => {
    const bytes = [...encodeStartup({ user: 'u', database: 'd' })].map((b) => Buffer.from([b]));
    const o = await exchange(pgPort, bytes, 3_000, 40);
    expect(o.closedAfterMs).toBeLessThan(1_500);
  });

  it('random garbage (seeded fuzz) always ends in a bounded time; the instance keeps serving', async () => {
    const rng = createRng(1234);
    const runs = Array.from({ length: 60 }, () => {
      const n = 1 + Math.floor(rng.next() * 3000);
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = Math.floor(rng.next() * 256);
      // Half start like a startup packet, so parsing goes deeper.
      if (rng.next() < 0.5 && n >= 8) b.writeUInt32BE(0x00030000, 4);
      if (rng.next() < 0.5 && n >= 8) b.writeUInt32BE(Math.min(n, 10_000), 0);
      return b;
    });
    const outcomes = await Promise.all(runs.map((b) => exchange(pgPort, [b], 3_000)));
    for (const o of outcomes) expect(o.closedAfterMs).toBeLessThan(2_000);
    await works();
  });

  it('a flood of bytes is closed without buffering it', async () => {
    const flood = Array.from({ length: 64 }, () => Buffer.alloc(64 * 1024, 0x41));
    const o = await exchange(pgPort, flood, 5_000);
    expect(o.closedAfterMs).toBeLessThan(3_000);
    await works();
  });

  it('with both protocols configured: a client byte means PostgreSQL, silence means MySQL', async () => {
    const pgO = await new Promise<Buffer>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: bothPort });
      const t = setTimeout(() => reject(new Error('no answer')), 3_000);
      s.on('error', () => undefined);
      s.once('data', (b: Buffer) => {
        clearTimeout(t);
        s.destroy();
        resolve(b);
      });
      s.write(encodeStartup({ user: 'u', database: 'd' }));
    });
    expect(pgO[0]).toBe(0x52);
    const t0 = Date.now();
    const myO = await new Promise<Buffer>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: bothPort });
      const t = setTimeout(() => reject(new Error('no greeting')), 5_000);
      s.on('error', () => undefined);
      s.once('data', (b: Buffer) => {
        clearTimeout(t);
        s.destroy();
        resolve(b);
      });
    });
    expect(myO[4]).toBe(10); // HandshakeV10
    expect(myO.toString('latin1')).toContain('10.11.0-fake');
    // PROXY-header wait for a direct connection (no NLB) plus the silence window, bounded.
    expect(Date.now() - t0).toBeLessThan(3_000);
  });
});
