/**
 * DBLB with real PostgreSQL 15 servers and the real `pg` client (and psql): queries, a
 * transaction, a cancel, SSLRequest refused and passed through, routing two databases to two
 * servers, connection limits with a queue and a clean 53300 error, health checks that speak the
 * protocol (SCRAM), and stats per database / user.
 */
import { connect } from 'node:net';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dblbPlugin } from '../../services/modules/dblb/plugin.js';
import { createDbHarness, skipNotice, tools, waitFor, type PgServer } from './dblb-fixture.js';

const run = promisify(execFile);
const available = tools.postgres && tools.psql && tools.openssl;
if (!available) skipNotice('PostgreSQL 15 (initdb, pg_ctl, psql) or openssl', 'postgresql openssl');

const PASSWORD = 'app-secret';

describe.skipIf(!available)('DBLB with PostgreSQL and the pg client', () => {
  const h = createDbHarness();
  let orders: PgServer;
  let billing: PgServer;
  let port = 0;
  let rt: Awaited<ReturnType<typeof h.startInstance>>['rt'];
  const clients: pg.Client[] = [];

  const client = async (database: string, extra: Partial<pg.ClientConfig> = {}) => {
    const c = new pg.Client({
      host: '127.0.0.1',
      port,
      user: 'app',
      password: PASSWORD,
      database,
      connectionTimeoutMillis: 5_000,
      application_name: 'dblb-test',
      ...extra,
    });
    c.on('error', () => undefined);
    clients.push(c);
    await c.connect();
    return c;
  };

  const config = (over: Record<string, unknown> = {}) => ({
    backends: [
      { name: 'orders-db', protocol: 'postgres', address: orders.address, databases: ['orders*'] },
      { name: 'billing-db', protocol: 'postgres', address: billing.address, databases: ['billing'] },
    ],
    healthCheck: {
      intervalMs: 200,
      timeoutMs: 1_000,
      postgres: { user: 'app', password: PASSWORD, database: 'postgres' },
    },
    limits: { queueTimeoutMs: 400 },
    ...over,
  });

  beforeAll(async () => {
    [orders, billing] = await Promise.all([h.startPostgres({ tls: true }), h.startPostgres()]);
    for (const [server, db] of [
      [orders, 'orders'],
      [billing, 'billing'],
    ] as const) {
      await server.sql(`CREATE ROLE app LOGIN PASSWORD '${PASSWORD}'`);
      await server.sql(`CREATE DATABASE ${db} OWNER app`);
    }
    await orders.sql('CREATE TABLE items (id int PRIMARY KEY, name text)', 'orders');
    await orders.sql('ALTER TABLE items OWNER TO app', 'orders');
    const inst = await h.startInstance(dblbPlugin, config());
    rt = inst.rt;
    port = inst.port;
  }, 60_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    await h.closeAll();
  }, 30_000);

  it('routes two databases to two servers and runs queries', async () => {
    const a = await client('orders');
    const b = await client('billing');
    const ra = await a.query<{ db: string; port: number }>(
      'SELECT current_database() AS db, inet_server_port() AS port',
    );
    const rb = await b.query<{ db: string; port: number }>(
      'SELECT current_database() AS db, inet_server_port() AS port',
    );
    expect(ra.rows[0]).toEqual({ db: 'orders', port: orders.port });
    expect(rb.rows[0]).toEqual({ db: 'billing', port: billing.port });
    const params = await a.query('SELECT $1::int + $2::int AS sum', [40, 2]);
    expect(params.rows[0].sum).toBe(42);
    // Stats per database and user ride on the instance's counters.
    const custom = rt.statsSnapshot().custom;
    expect(Number(custom['db:postgres:orders:app:connections'])).toBeGreaterThanOrEqual(1);
    expect(Number(custom['db:postgres:billing:app:active'])).toBeGreaterThanOrEqual(1);
    await a.end();
    await b.end();
    await waitFor(
      'bytes counted at close',
      () => Number(rt.statsSnapshot().custom['db:postgres:orders:app:bytes_out']) > 0,
    );
  });

  it('runs a transaction (rollback leaves nothing, commit keeps the row)', async () => {
    const c = await client('orders');
    await c.query('BEGIN');
    await c.query("INSERT INTO items VALUES (1, 'rolled back')");
    await c.query('ROLLBACK');
    expect((await c.query('SELECT count(*)::int AS n FROM items')).rows[0].n).toBe(0);
    await c.query('BEGIN');
    await c.query("INSERT INTO items VALUES (2, 'kept')");
    await c.query('COMMIT');
    const other = await client('orders');
    expect((await other.query('SELECT name FROM items WHERE id = 2')).rows[0].name).toBe('kept');
    await c.end();
    await other.end();
  });

  it('forwards a CancelRequest to the backend that owns the session', async () => {
    const c = await client('orders');
    const started = Date.now();
    const query = new pg.Query('SELECT pg_sleep(20)');
    const failed = new Promise<{ code?: string } | null>((resolve) => {
      query.once('error', (e: { code?: string }) => resolve(e));
      query.once('end', () => resolve(null));
    });
    void c.query(query);
    await new Promise((r) => setTimeout(r, 200));
    const canceller = new pg.Client({
      host: '127.0.0.1',
      port,
      user: 'app',
      password: PASSWORD,
      database: 'orders',
    });
    // pg's own cancel: a new connection that sends a CancelRequest with the session's key.
    (canceller as unknown as { cancel(c: pg.Client, q: pg.Query): void }).cancel(c, query);
    const err = await failed;
    expect(err?.code).toBe('57014'); // query_canceled
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(Number(rt.statsSnapshot().custom.pg_cancel_forwarded)).toBeGreaterThanOrEqual(1);
    // The session survives its cancelled query.
    expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    await c.end();
  });

  it("refuses an SSLRequest with 'N': psql (sslmode=prefer) goes on in clear text, sslmode=require fails", async () => {
    const env = { ...process.env, PGPASSWORD: PASSWORD };
    const base = ['-X', '-t', '-A', '-h', '127.0.0.1', '-p', String(port), '-U', 'app', '-c'];
    const ok = await run(
      'psql',
      [...base, 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()', 'dbname=orders sslmode=prefer'],
      { env, timeout: 10_000 },
    );
    expect(ok.stdout.trim()).toBe('f');
    const required = await run('psql', [...base, 'SELECT 1', 'dbname=orders sslmode=require'], {
      env,
      timeout: 10_000,
    }).then(
      () => null,
      (e: { stderr?: string }) => e.stderr ?? '',
    );
    expect(required).toContain('server does not support SSL');
    const err = await client('orders', { ssl: { rejectUnauthorized: false } }).then(
      () => null,
      (e: Error) => e.message,
    );
    expect(err).toBe('The server does not support SSL connections');
    expect(Number(rt.statsSnapshot().custom.pg_ssl_refused)).toBeGreaterThanOrEqual(2);
  });

  it('passes TLS through to the backend when configured', async () => {
    const tls = await h.startInstance(dblbPlugin, config({ postgres: { ssl: 'passthrough' } }));
    const c = new pg.Client({
      host: '127.0.0.1',
      port: tls.port,
      user: 'app',
      password: PASSWORD,
      database: 'orders',
      ssl: { rejectUnauthorized: false },
      connectionTimeoutMillis: 5_000,
    });
    clients.push(c);
    await c.connect();
    const r = await c.query('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    expect(r.rows[0].ssl).toBe(true);
    await c.end();
  });

  it('answers an unknown database with 3D000', async () => {
    const err = (await client('nowhere').then(
      () => null,
      (e: unknown) => e,
    )) as { code?: string; message?: string } | null;
    expect(err?.code).toBe('3D000');
    expect(err?.message).toContain('no route for database "nowhere"');
  });

  it('queues at the connection limit, then refuses with 53300 after the queue timeout', async () => {
    const limited = await h.startInstance(
      dblbPlugin,
      config({
        routes: [
          {
            name: 'orders',
            protocol: 'postgres',
            databases: ['orders'],
            backends: ['orders-db'],
            maxConnections: 2,
          },
        ],
      }),
    );
    const at = (p: number) => ({ port: p });
    const a = await client('orders', at(limited.port));
    const b = await client('orders', at(limited.port));
    const t0 = Date.now();
    const err = (await client('orders', at(limited.port)).then(
      () => null,
      (e: unknown) => e,
    )) as { code?: string; message?: string } | null;
    expect(err?.code).toBe('53300');
    expect(err?.message).toMatch(
      /^sorry, too many clients already: route orders has its 2 connections in use; waited 400 ms/,
    );
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350);
    // A queued connection gets the slot a closing one frees.
    const queued = client('orders', at(limited.port));
    await new Promise((r) => setTimeout(r, 100));
    await a.end();
    const c = await queued;
    expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    await b.end();
    await c.end();
    expect(Number(limited.rt.statsSnapshot().custom.refused_full)).toBe(1);
  });

  it('health checks speak the protocol: a stopped server turns unhealthy and is refused cleanly', async () => {
    const spare = await h.startPostgres();
    await spare.sql(`CREATE ROLE app LOGIN PASSWORD '${PASSWORD}'`);
    await spare.sql('CREATE DATABASE spare OWNER app');
    const cfg = config({
      backends: [{ name: 'spare-db', protocol: 'postgres', address: spare.address, databases: ['spare'] }],
    });
    const deep = await dblbPlugin.healthChecks(dblbPlugin.configSchema.parse(cfg), true);
    expect(deep['backend:spare-db']).toMatchObject({
      ok: true,
      message: expect.stringMatching(/^SELECT 1 ok in \d+ ms$/),
    });
    const inst = await h.startInstance(dblbPlugin, cfg);
    const c = await client('spare', { port: inst.port });
    await c.end();
    await spare.stop();
    const down = await dblbPlugin.healthChecks(dblbPlugin.configSchema.parse(cfg), true);
    expect(down['backend:spare-db'].ok).toBe(false);
    const err = await waitFor('the backend to be marked down', async () => {
      const e = (await client('spare', { port: inst.port }).then(
        () => null,
        (x: unknown) => x,
      )) as { code?: string; message?: string } | null;
      return e?.message?.includes('no healthy backend') ? e : null;
    });
    expect(err.code).toBe('08006');
  });

  it('without credentials, a startup that reaches authentication is healthy', async () => {
    const noCreds = dblbPlugin.configSchema.parse({
      backends: [{ name: 'o', protocol: 'postgres', address: orders.address }],
    });
    const r = await dblbPlugin.healthChecks(noCreds, true);
    expect(r['backend:o']).toMatchObject({
      ok: true,
      message: expect.stringMatching(/^reached authentication/),
    });
  });

  it('a raw SSLRequest gets exactly one byte, N', async () => {
    const s = connect({ host: '127.0.0.1', port });
    const got = await new Promise<Buffer>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no answer')), 3_000);
      s.once('data', (b: Buffer) => {
        clearTimeout(t);
        resolve(b);
      });
      s.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]));
    });
    s.destroy();
    expect(got.toString('latin1')).toBe('N');
  });
});
