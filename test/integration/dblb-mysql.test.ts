/**
 * DBLB with real MariaDB servers and the real `mysql2` client, through the whole stack: an NLB
 * with two MySQL listeners (the PROXY v2 header tells the instance which port the client used),
 * a DBLB controller with an in-process instance, and two MariaDB servers. Shows routing by
 * port, queries, prepared statements, a transaction, stats per database / user learned from
 * the HandshakeResponse, protocol health checks, and a connection limit that mysql2 reports as
 * ER_CON_COUNT_ERROR.
 */
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Protocol } from '../../proto/gen/marchproxy/types.js';
import { dblbPlugin } from '../../services/modules/dblb/plugin.js';
import { nlbProcessSchema, startNlb, type NlbHandle } from '../../services/nlb/main.js';
import { createDbHarness, skipNotice, tools, waitFor, type MariaServer } from './dblb-fixture.js';
import { createModuleHarness, type TestModule } from './module-fixture.js';

const available = tools.mariadb;
if (!available) skipNotice('MariaDB (mariadbd, mariadb-install-db)', 'mariadb-server');

const SETUP = [
  "CREATE USER app@'%' IDENTIFIED BY 'app-pw'",
  'CREATE DATABASE shop',
  "GRANT ALL ON shop.* TO app@'%'",
  "CREATE USER health@'%'",
  'CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40)) ENGINE=InnoDB',
];

describe.skipIf(!available)('DBLB with MariaDB and mysql2 through the NLB', () => {
  const db = createDbHarness();
  const mh = createModuleHarness();
  let m1: MariaServer;
  let m2: MariaServer;
  let nlb: NlbHandle;
  let mod: TestModule;
  let portA = 0;
  let portB = 0;
  let portLimited = 0;
  const conns: mysql.Connection[] = [];

  const connectTo = async (port: number, extra: mysql.ConnectionOptions = {}) => {
    const c = await mysql.createConnection({
      host: '127.0.0.1',
      port,
      user: 'app',
      password: 'app-pw',
      database: 'shop',
      connectTimeout: 5_000,
      ...extra,
    });
    c.on('error', () => undefined);
    conns.push(c);
    return c;
  };

  const stats = async () => {
    const ids = (await mod.rpc('getInstances', {})).instances.map((i) => i.instanceId);
    return (await mod.rpc('getStats', { instanceId: ids[0] })).stats!.customStats;
  };

  beforeAll(async () => {
    [m1, m2] = await Promise.all([db.startMariadb(SETUP), db.startMariadb(SETUP)]);
    nlb = await startNlb(
      nlbProcessSchema.parse({
        grpc: { host: '127.0.0.1', port: 0 },
        admin: { host: '127.0.0.1', port: 0 },
        dataDir: '',
        logLevel: 'silent',
        heartbeatIntervalSeconds: 1,
        seed: 3,
        listeners: ['mysql-a', 'mysql-b', 'mysql-limited'].map((name) => ({
          name,
          address: '127.0.0.1',
          port: 0,
          mode: 'mysql',
        })),
      }),
    );
    db.onClose(() => nlb.stop());
    const port = (name: string) => nlb.dataplane.addresses().find((a) => a.name === name)!.port;
    [portA, portB, portLimited] = [port('mysql-a'), port('mysql-b'), port('mysql-limited')];
    mod = await mh.startModule({ nlb: `127.0.0.1:${nlb.grpcPort}`, type: 'dblb', instances: 1 });
    const config = {
      backends: [
        { name: 'maria-1', protocol: 'mysql', address: m1.address },
        { name: 'maria-2', protocol: 'mysql', address: m2.address },
      ],
      routes: [
        { name: 'by-port-a', protocol: 'mysql', ports: [portA], backends: ['maria-1'] },
        { name: 'by-port-b', protocol: 'mysql', ports: [portB], backends: ['maria-2'] },
        {
          name: 'limited',
          protocol: 'mysql',
          ports: [portLimited],
          backends: ['maria-1'],
          maxConnections: 1,
        },
      ],
      limits: { queueTimeoutMs: 300 },
      healthCheck: { intervalMs: 500, mysql: { user: 'health' } },
    };
    const u = await mod.rpc('updateConfig', {
      config: { configType: 'module', configData: Buffer.from(JSON.stringify(config)) },
    });
    expect(u.message).toBe(u.success ? u.message : 'ok');
    const r = await mod.rpc('updateRoutes', {
      routes: [{ routeId: 'mysql', protocol: Protocol.PROTOCOL_MYSQL }],
    });
    expect(r.success).toBe(true);
    await waitFor('the DBLB instance to serve MySQL through the NLB', async () => {
      const c = await connectTo(portA, { connectTimeout: 1_000 });
      await c.end();
      return true;
    });
  }, 60_000);

  afterAll(async () => {
    await Promise.all(conns.map((c) => c.end().catch(() => undefined)));
    await mh.closeAll();
    await db.closeAll();
  }, 30_000);

  it('routes by listener port: port A reaches server 1, port B server 2', async () => {
    const a = await connectTo(portA);
    const b = await connectTo(portB);
    const [[ra]] = await a.query<mysql.RowDataPacket[]>('SELECT @@port AS port, DATABASE() AS db');
    const [[rb]] = await b.query<mysql.RowDataPacket[]>('SELECT @@port AS port, DATABASE() AS db');
    expect(ra).toEqual({ port: m1.port, db: 'shop' });
    expect(rb).toEqual({ port: m2.port, db: 'shop' });
    await a.end();
    await b.end();
  });

  it('runs queries, prepared statements and a transaction', async () => {
    const c = await connectTo(portA);
    await c.beginTransaction();
    await c.execute('INSERT INTO items VALUES (?, ?)', [1, 'rolled back']);
    await c.rollback();
    await c.beginTransaction();
    await c.execute('INSERT INTO items VALUES (?, ?)', [2, 'kept']);
    await c.commit();
    const [rows] = await c.execute<mysql.RowDataPacket[]>('SELECT id, name FROM items ORDER BY id');
    expect(rows).toEqual([{ id: 2, name: 'kept' }]);
    const [[big]] = await c.query<mysql.RowDataPacket[]>('SELECT REPEAT(?, 100000) AS s', ['x']);
    expect((big.s as string).length).toBe(100_000);
    await c.end();
  });

  it('learns user and database from the HandshakeResponse for stats', async () => {
    const c = await connectTo(portB);
    await c.query('SELECT 1');
    await c.end();
    const s = await waitFor('stats for shop/app', async () => {
      const x = await stats();
      return Number(x['db:mysql:shop:app:connections']) >= 1 && x;
    });
    expect(Number(s.mysql_by_config)).toBeGreaterThanOrEqual(1);
    expect(Number(s['db:mysql:shop:app:bytes_out'])).toBeGreaterThan(0);
  });

  it('a connection over the route limit waits, then gets ER_CON_COUNT_ERROR from mysql2', async () => {
    const holder = await connectTo(portLimited);
    const t0 = Date.now();
    const err = (await connectTo(portLimited).then(
      () => null,
      (e: unknown) => e,
    )) as { code?: string; errno?: number; sqlState?: string; message?: string } | null;
    expect(err).toMatchObject({ code: 'ER_CON_COUNT_ERROR', errno: 1040, sqlState: '08004' });
    expect(err?.message).toMatch(
      /^Too many connections: route limited has its 1 connections in use; waited 300 ms/,
    );
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    await holder.end();
    const next = await connectTo(portLimited);
    await next.query('SELECT 1');
    await next.end();
  });

  it('health checks speak MySQL: greeting, or authenticate with a user', async () => {
    const cfg = (creds?: { user: string; password?: string }) =>
      dblbPlugin.configSchema.parse({
        backends: [{ name: 'm', protocol: 'mysql', address: m1.address }],
        healthCheck: creds ? { mysql: creds } : {},
      });
    expect((await dblbPlugin.healthChecks(cfg(), true))['backend:m']).toMatchObject({
      ok: true,
      message: expect.stringMatching(/^greeting from .*MariaDB/),
    });
    expect((await dblbPlugin.healthChecks(cfg({ user: 'health' }), true))['backend:m']).toMatchObject({
      ok: true,
      message: expect.stringMatching(/^authenticated in/),
    });
    expect(
      (await dblbPlugin.healthChecks(cfg({ user: 'app', password: 'app-pw' }), true))['backend:m'].ok,
    ).toBe(true);
    const closed = dblbPlugin.configSchema.parse({
      backends: [{ name: 'gone', protocol: 'mysql', address: '127.0.0.1:1' }],
    });
    expect((await dblbPlugin.healthChecks(closed, true))['backend:gone'].ok).toBe(false);
  });
});
