/**
 * The DBLB's pure parts: routing (routes from config, best route, least connections), admission
 * (limits, queue, rate limits) on a manual clock, the PostgreSQL and MySQL codecs, SCRAM
 * (RFC 7677's test vector) and protocol detection by listener port.
 */
import { describe, expect, it } from 'vitest';
import { Balancer } from '../../services/modules/dblb/balancer.js';
import { dblbConfigSchema } from '../../services/modules/dblb/config.js';
import { protocolFor } from '../../services/modules/dblb/handler.js';
import {
  encodeHandshakeResponse,
  errPacket,
  parseGreeting,
  parseHandshakeResponse,
  readPacket,
  type Greeting,
} from '../../services/modules/dblb/mysql-protocol.js';
import { md5Password, ScramClient } from '../../services/modules/dblb/pg-auth.js';
import {
  encodeCancel,
  encodeStartup,
  errorFields,
  errorResponse,
  MessageReader,
  readFirstMessage,
  StartupScanner,
} from '../../services/modules/dblb/pg-protocol.js';
import { chooseRoute, pickBackend, routesOf } from '../../services/modules/dblb/routing.js';
import { createManualClock } from '../../services/shared/clock.js';

const config = (c: unknown) => dblbConfigSchema.parse(c);

describe('DBLB routing', () => {
  const c = config({
    backends: [
      { name: 'o1', protocol: 'postgres', address: 'a:1', databases: ['orders*'] },
      { name: 'o2', protocol: 'postgres', address: 'a:2', databases: ['orders*'] },
      { name: 'any', protocol: 'postgres', address: 'a:3' },
      { name: 'my', protocol: 'mysql', address: 'a:4', ports: [3306] },
    ],
  });

  it('groups backends with the same patterns into one implicit route (a pool)', () => {
    expect(routesOf(c).map((r) => [r.name, r.backends])).toEqual([
      ['o1+o2', ['o1', 'o2']],
      ['any', ['any']],
      ['my', ['my']],
    ]);
  });

  it('picks the most specific route; unknown facts prefer routes that accept anything', () => {
    const routes = routesOf(c);
    expect(chooseRoute(routes, { protocol: 'postgres', database: 'orders_eu', user: 'x' })?.name).toBe(
      'o1+o2',
    );
    expect(chooseRoute(routes, { protocol: 'postgres', database: 'billing' })?.name).toBe('any');
    expect(chooseRoute(routes, { protocol: 'postgres' })?.name).toBe('any');
    expect(chooseRoute(routes, { protocol: 'mysql', port: 3306 })?.name).toBe('my');
    expect(chooseRoute(routes, { protocol: 'mysql', port: 3307 })).toBeNull();
  });

  it('least connections among healthy backends with room; reports full and down', () => {
    const b = (name: string, active: number, healthy = true, max = 0) => ({
      name,
      address: name,
      maxConnections: max,
      active,
      healthy,
    });
    expect(pickBackend([b('a', 3), b('b', 1), b('c', 2)], new Set(), 0)).toMatchObject({
      backend: { name: 'b' },
    });
    expect(pickBackend([b('a', 3), b('b', 1, false)], new Set(), 0)).toMatchObject({
      backend: { name: 'a' },
    });
    expect(pickBackend([b('a', 2, true, 2)], new Set(), 0)).toEqual({ kind: 'full' });
    expect(pickBackend([b('a', 0, false)], new Set(), 0)).toEqual({ kind: 'down' });
    expect(pickBackend([b('a', 0)], new Set(['a']), 0)).toEqual({ kind: 'down' });
  });

  it('picks the port that decides the protocol, or lets the client tell', () => {
    const routes = routesOf(c);
    expect(protocolFor(routes, 3306)).toBe('mysql');
    expect(protocolFor(routes, 5432)).toBeNull();
    expect(protocolFor(routesOf(config({ backends: [c.backends[0]] })), 1)).toBe('postgres');
  });

  it('validates routes against backends', () => {
    const r = dblbConfigSchema.safeParse({
      backends: [{ name: 'p', protocol: 'postgres', address: 'h:1' }],
      routes: [
        { name: 'x', protocol: 'mysql', backends: ['p'] },
        { name: 'y', protocol: 'postgres', backends: ['nope'] },
      ],
    });
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => i.message)).toEqual([
      'backend p speaks postgres, the route mysql',
      'no backend nope',
    ]);
  });
});

describe('DBLB admission', () => {
  const cfg = config({
    backends: [{ name: 'p', protocol: 'postgres', address: 'h:1', maxConnections: 1 }],
    routes: [{ name: 'r', protocol: 'postgres', backends: ['p'], connectionsPerSecond: 2, burst: 0 }],
    limits: { queueTimeoutMs: 1000, maxQueued: 1 },
  });

  it('queues at the limit, hands a freed slot to the first waiter, times out the rest', async () => {
    const clock = createManualClock();
    const b = new Balancer(clock, cfg);
    const route = b.allRoutes()[0];
    const first = await b.admit(route);
    expect(first.ok).toBe(true);
    const waiting = b.admit(route);
    expect(b.queued).toBe(1);
    const overflow = await b.admit(route, { retry: true }); // rate limit skipped, queue full
    expect(overflow).toMatchObject({ ok: false, reason: 'queue_full' });
    if (first.ok) first.lease.release();
    const second = await waiting;
    expect(second.ok).toBe(true);
    const third = b.admit(route, { retry: true });
    clock.advance(1000);
    expect(await third).toMatchObject({
      ok: false,
      reason: 'full',
      message: expect.stringContaining('waited 1000 ms'),
    });
  });

  it('rate-limits new connections per route', async () => {
    const clock = createManualClock();
    const b = new Balancer(
      clock,
      config({ ...cfg, backends: [{ name: 'p', protocol: 'postgres', address: 'h:1' }] }),
    );
    const route = b.allRoutes()[0];
    expect((await b.admit(route)).ok).toBe(true);
    expect((await b.admit(route)).ok).toBe(true);
    expect(await b.admit(route)).toMatchObject({ ok: false, reason: 'rate_limited' });
    clock.advance(500);
    expect((await b.admit(route)).ok).toBe(true);
  });

  it('refuses at once when the pool is down, and wakes waiters when a backend recovers', async () => {
    const clock = createManualClock();
    const b = new Balancer(clock, cfg);
    const route = b.allRoutes()[0];
    b.setHealthy('p', false);
    expect(await b.admit(route, { retry: true })).toMatchObject({ ok: false, reason: 'down' });
    b.setHealthy('p', true);
    const held = await b.admit(route, { retry: true });
    const queued = b.admit(route, { retry: true });
    b.setHealthy('p', false);
    expect(await queued).toMatchObject({ ok: false, reason: 'down' });
    if (held.ok) held.lease.release();
    b.close();
  });
});

describe('PostgreSQL codec', () => {
  it('reads SSLRequest, CancelRequest and StartupMessage, and refuses malformed ones', () => {
    expect(readFirstMessage(Buffer.from([0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f]))).toEqual({
      kind: 'ssl',
      length: 8,
    });
    const cancel = readFirstMessage(encodeCancel(42, Buffer.from([1, 2, 3, 4])));
    expect(cancel).toMatchObject({ kind: 'cancel', pid: 42, key: Buffer.from([1, 2, 3, 4]) });
    const s = readFirstMessage(encodeStartup({ user: 'app', database: 'orders', application_name: 'x' }));
    expect(s.kind === 'startup' && Object.fromEntries(s.params)).toEqual({
      user: 'app',
      database: 'orders',
      application_name: 'x',
    });
    expect(readFirstMessage(encodeStartup({ user: 'a' }).subarray(0, 10))).toMatchObject({
      kind: 'need-more',
    });
    expect(readFirstMessage(Buffer.from([0, 1, 0, 0, 0, 3, 0, 0]))).toMatchObject({ kind: 'invalid' });
    expect(readFirstMessage(Buffer.from([0, 0, 0, 8, 0, 2, 0, 0]))).toMatchObject({
      kind: 'invalid',
      reason: 'unsupported frontend protocol 2.0',
    });
  });

  it('builds an ErrorResponse clients parse', () => {
    const e = errorResponse('53300', 'sorry, too many clients already');
    expect(e[0]).toBe(0x45);
    expect(e.readUInt32BE(1)).toBe(e.length - 1);
    expect(errorFields(e.subarray(5))).toMatchObject({
      S: 'FATAL',
      C: '53300',
      M: 'sorry, too many clients already',
    });
  });

  it('the startup scanner learns the cancel key across split chunks and stops at ReadyForQuery', () => {
    const msgs = Buffer.concat([
      Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0]),
      Buffer.from([0x4b, 0, 0, 0, 12, 0, 0, 1, 0, 9, 8, 7, 6]),
      Buffer.from([0x5a, 0, 0, 0, 5, 0x49]),
    ]);
    const s = new StartupScanner();
    for (let i = 0; i < msgs.length; i += 3) s.push(msgs.subarray(i, i + 3));
    expect(s.done).toBe(true);
    expect(s.outcome).toEqual({ ready: true, key: { pid: 256, secret: Buffer.from([9, 8, 7, 6]) } });
    expect(new MessageReader(100).push(Buffer.from([0x44, 0, 0, 1, 0])).error).toBe('message of 256 bytes');
  });

  it('SCRAM-SHA-256 computes RFC 7677 proofs; MD5 matches PostgreSQL', () => {
    const c = new ScramClient('pencil', 'rOprNGfwEbeRWgbNEkqO', 'user');
    const final = c.finalResponse(
      'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
    );
    expect(Buffer.isBuffer(final) && final.subarray(5).toString()).toBe(
      'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
    );
    expect(c.verifyFinal('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=')).toBe(true);
    expect(c.verifyFinal('v=AAAA')).toBe(false);
    expect(c.finalResponse('r=other,s=AA==,i=1')).toBe('malformed SCRAM server-first message');
    // md5("md5" + md5(md5("secret" + "app") + salt)), as libpq computes it.
    expect(
      md5Password('app', 'secret', Buffer.from([1, 2, 3, 4]))
        .subarray(5, 8)
        .toString(),
    ).toBe('md5');
  });
});

describe('MySQL codec', () => {
  const greetingPayload = (() => {
    const scramble1 = Buffer.from('abcdefgh');
    const scramble2 = Buffer.from('ijklmnopqrst\0');
    const caps = 0xf7ff | (0x81bf << 16);
    const head = Buffer.alloc(4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10);
    let p = 0;
    head.writeUInt32LE(7, p);
    p += 4;
    scramble1.copy(head, p);
    p += 9;
    head.writeUInt16LE(caps & 0xffff, p);
    p += 2;
    head[p++] = 33;
    head.writeUInt16LE(2, p);
    p += 2;
    head.writeUInt16LE(caps >>> 16, p);
    p += 2;
    head[p] = 21; // auth-plugin-data length; 10 reserved bytes follow
    return Buffer.concat([
      Buffer.from([10]),
      Buffer.from('10.11.6-MariaDB\0'),
      head,
      scramble2,
      Buffer.from('mysql_native_password\0'),
    ]);
  })();

  it('parses a greeting, and a HandshakeResponse we build from it', () => {
    const g = parseGreeting(greetingPayload) as Greeting;
    expect(g).toMatchObject({
      serverVersion: '10.11.6-MariaDB',
      connectionId: 7,
      authPlugin: 'mysql_native_password',
    });
    expect(g.scramble.toString()).toBe('abcdefghijklmnopqrst');
    const resp = readPacket(encodeHandshakeResponse('app', 'pw', g, 'shop'));
    expect(resp?.seq).toBe(1);
    expect(parseHandshakeResponse(resp!.payload)).toMatchObject({
      kind: 'response',
      user: 'app',
      database: 'shop',
    });
  });

  it('an ERR packet in place of the greeting carries the code and SQLSTATE', () => {
    const pkt = readPacket(errPacket(0, 1040, '08004', 'Too many connections'))!;
    expect(pkt.seq).toBe(0);
    expect(parseGreeting(pkt.payload)).toEqual({ error: { code: 1040, message: 'Too many connections' } });
    expect(pkt.payload.subarray(3, 9).toString()).toBe('#08004');
  });

  it('recognises an SSLRequest and refuses junk', () => {
    const ssl = Buffer.alloc(32);
    ssl.writeUInt32LE(0x200 | 0x800, 0);
    expect(parseHandshakeResponse(ssl)).toMatchObject({ kind: 'ssl' });
    expect(parseHandshakeResponse(Buffer.from('junk'))).toEqual({ kind: 'invalid' });
    expect(parseGreeting(Buffer.from([9, 1, 2]))).toBeNull();
  });
});
