/**
 * The data plane end to end through an in-process NLB: client → listener on 127.0.0.1:0 →
 * sniff → RoutingService → instance (a TCP server that reads the PROXY v2 header, introduces
 * itself and echoes). Routing by protocol, SNI, Host and port; server-first MySQL; weights;
 * live listener changes; GetNLBStatus and /metrics.
 */
import { connect } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ModuleType, Protocol } from '../../proto/gen/marchproxy/types.js';
import {
  clientHello,
  createDataplaneHarness,
  httpRequest,
  pgStartup,
  sample,
  scrape,
  type DataplaneNlb,
  type TestInstance,
} from './dataplane-fixture.js';
import { route, setWeight, waitFor } from './nlb-fixture.js';

const h = createDataplaneHarness();
afterEach(() => h.closeAll());

/** The instance id a connection reached (first word of its greeting line). */
async function reach(port: number, first: Buffer | string | null): Promise<string> {
  const c = await h.client(port);
  if (first !== null) c.write(first);
  const line = await c.line();
  c.destroy();
  return line.split(' ')[0];
}

describe('a sniffing listener', () => {
  let nlb: DataplaneNlb;
  let web: TestInstance;
  let ai: TestInstance;
  let db: TestInstance;

  beforeEach(async () => {
    nlb = await h.startNlb([
      { name: 'auto' },
      { name: 'quiet', defaultProtocol: 'mysql', sniffTimeoutMs: 150 },
      { name: 'mysql', mode: 'mysql' },
    ]);
    const { rpc } = nlb;
    web = await h.registered(rpc, 'web', { moduleType: ModuleType.MODULE_TYPE_ALB }, [
      route({ protocol: Protocol.PROTOCOL_HTTP, destinationPattern: 'shop.example.com' }),
      route({ protocol: Protocol.PROTOCOL_HTTPS, destinationPattern: '*.shop.example.com' }),
    ]);
    ai = await h.registered(rpc, 'ai', { moduleType: ModuleType.MODULE_TYPE_AILB }, [
      route({ protocol: Protocol.PROTOCOL_HTTP, destinationPattern: 'ai.example.com' }),
      route({ protocol: Protocol.PROTOCOL_HTTPS, destinationPattern: 'ai.example.com' }),
    ]);
    db = await h.registered(rpc, 'db', { moduleType: ModuleType.MODULE_TYPE_DBLB }, [
      route({ protocol: Protocol.PROTOCOL_POSTGRES }),
      route({ protocol: Protocol.PROTOCOL_MYSQL }),
    ]);
  });

  it('routes HTTP, a PostgreSQL startup and a TLS ClientHello by protocol and replays every byte', async () => {
    const port = nlb.port('auto');
    const req = httpRequest('shop.example.com', '/cart?id=1');
    const startup = pgStartup('alice', 'orders');
    const hello = await clientHello('ai.example.com', ['http/1.1']);
    expect(await reach(port, req)).toBe('web');
    expect(await reach(port, startup)).toBe('db');
    expect(await reach(port, hello)).toBe('ai');
    await waitFor('the replayed bytes', () => web.seen.length && db.seen.length && ai.seen.length);
    await waitFor('all bytes', () => web.seen[0].bytes().length === req.length);
    expect(web.seen[0].bytes().toString()).toBe(req);
    await waitFor('startup bytes', () => db.seen[0].bytes().length === startup.length);
    expect(db.seen[0].bytes().equals(startup)).toBe(true);
    await waitFor('hello bytes', () => ai.seen[0].bytes().length === hello.length);
    expect(ai.seen[0].bytes().equals(hello)).toBe(true);
  });

  it('routes by Host header and by SNI; an unrouted host is closed and counted', async () => {
    const port = nlb.port('auto');
    expect(await reach(port, httpRequest('ai.example.com'))).toBe('ai');
    expect(await reach(port, httpRequest('SHOP.example.com:8080'))).toBe('web');
    expect(await reach(port, await clientHello('eu.shop.example.com'))).toBe('web');
    expect(await reach(port, await clientHello('ai.example.com'))).toBe('ai');

    const lost = await h.client(port);
    lost.write(httpRequest('nobody.example.com'));
    await lost.closed();
    expect(lost.received().length).toBe(0);
    await h.settled(); // with workers: their reports are in
    const text = await scrape(nlb.adminUrl);
    expect(
      sample(text, 'mp_nlb_dataplane_routing_failures_total', {
        listener: 'auto',
        protocol: 'HTTP',
        reason: 'no_route',
      }),
    ).toBe(1);
  });

  it('a MySQL listener routes by port: the instance speaks first and the client gets the greeting', async () => {
    await nlb.rpc('updateRouting', {
      routes: [
        route({
          routeId: 'mysql-port',
          protocol: Protocol.PROTOCOL_MYSQL,
          destinationPort: nlb.port('mysql'),
          priority: 10,
          moduleType: 'DBLB',
        }),
      ],
    });
    const c = await h.client(nlb.port('mysql'));
    const t0 = Date.now();
    expect(await c.line()).toMatch(/^db 127\.0\.0\.1:\d+$/);
    expect(Date.now() - t0).toBeLessThan(1000);
    c.write('ping');
    expect((await c.bytes(c.received().length + 4)).toString().endsWith('ping')).toBe(true);
    // A sniffing port with defaultProtocol mysql: silence for sniffTimeoutMs ⇒ MySQL.
    const q = await h.client(nlb.port('quiet'));
    expect(await q.line()).toBe(`db 127.0.0.1:${q.socket.localPort}`);
    expect(db.seen).toHaveLength(2);
  });

  it('the PROXY v2 header carries the client address; proxy_protocol NONE gets raw bytes', async () => {
    const c = await h.client(nlb.port('auto'));
    c.write(httpRequest('shop.example.com'));
    const line = await c.line();
    expect(line).toBe(`web 127.0.0.1:${c.socket.localPort}`);
    expect(web.seen[0].proxy).toEqual({
      srcAddress: '127.0.0.1',
      srcPort: c.socket.localPort,
      dstAddress: '127.0.0.1',
      dstPort: nlb.port('auto'),
    });

    const raw = await h.registered(
      nlb.rpc,
      'raw',
      { moduleType: ModuleType.MODULE_TYPE_RTMP },
      [route({ protocol: Protocol.PROTOCOL_HTTP, destinationPattern: 'raw.example.com' })],
      { proxy: false },
    );
    const req = httpRequest('raw.example.com');
    expect(await reach(nlb.port('auto'), req)).toBe('raw');
    await waitFor('raw bytes', () => raw.seen[0]?.bytes().length === req.length);
    expect(raw.seen[0].proxy).toBeNull();
    expect(raw.seen[0].bytes().toString()).toBe(req);
  });

  it('GetNLBStatus counts routed connections and open ones; the registry sees them', async () => {
    const before = await nlb.rpc('getNlbStatus', {});
    const open = await Promise.all([1, 2, 3].map(() => h.client(nlb.port('auto'))));
    for (const c of open) c.write(httpRequest('shop.example.com'));
    await Promise.all(open.map((c) => c.line()));
    await h.settled();
    const during = await nlb.rpc('getNlbStatus', {});
    expect(during.totalRequests - before.totalRequests).toBe(3);
    expect(during.activeConnections).toBe(3);
    const listed = await nlb.rpc('listModules', {});
    expect(listed.modules.find((m) => m.instanceId === 'web')?.currentConnections).toBe(3);
    for (const c of open) c.socket.end();
    await Promise.all(open.map((c) => c.closed()));
    await waitFor(
      'connections to close',
      async () => (await nlb.rpc('getNlbStatus', {})).activeConnections === 0,
    );
  });

  it('a route re-applied while connections are open keeps counting them down as they close', async () => {
    const opRoute = route({
      routeId: 'shop-op',
      protocol: Protocol.PROTOCOL_HTTP,
      destinationPattern: 'op.shop.example.com',
      priority: 50,
      moduleType: 'ALB',
    });
    await nlb.rpc('updateRouting', { routes: [opRoute] });
    await h.settled(); // with workers: they route on the new table
    const routeConnections = async () =>
      (await nlb.rpc('getRoutingTable', {})).entries.find((e) => e.route?.routeId === 'shop-op')
        ?.currentConnections;
    const open = await Promise.all([1, 2].map(() => h.client(nlb.port('auto'))));
    for (const c of open) c.write(httpRequest('op.shop.example.com'));
    expect(await Promise.all(open.map((c) => c.line().then((l) => l.split(' ')[0])))).toEqual(['web', 'web']);
    await h.settled();
    expect(await routeConnections()).toBe(2);
    // The same route applied again (an operator re-running their apply): the count carries over…
    await nlb.rpc('updateRouting', { routes: [{ ...opRoute, priority: 60 }] });
    await h.settled();
    expect(await routeConnections()).toBe(2);
    // …and the connections opened before still count down when they close.
    for (const c of open) c.socket.end();
    await Promise.all(open.map((c) => c.closed()));
    await waitFor('the route count to reach 0', async () => {
      await h.settled();
      return (await routeConnections()) === 0;
    });
  });

  it('/metrics shows the data-plane series and the metrics store gets per-listener totals', async () => {
    const c = await h.client(nlb.port('auto'));
    c.write(httpRequest('shop.example.com'));
    await c.line();
    c.socket.end();
    await c.closed();
    const text = await waitFor('the close to be counted', async () => {
      const t = await scrape(nlb.adminUrl);
      return sample(t, 'mp_nlb_dataplane_connections_closed_total', { instance: 'web' }) === 1 && t;
    });
    const labels = {
      listener: 'auto',
      protocol: 'HTTP',
      module_type: 'ALB',
      version: '1.0',
      instance: 'web',
    };
    expect(sample(text, 'mp_nlb_dataplane_connections_accepted_total', { listener: 'auto' })).toBe(1);
    expect(sample(text, 'mp_nlb_dataplane_connections_total', labels)).toBe(1);
    expect(sample(text, 'mp_nlb_dataplane_active_connections', labels)).toBe(0);
    expect(sample(text, 'mp_nlb_dataplane_bytes_total', { instance: 'web', direction: 'in' })).toBe(
      httpRequest('shop.example.com').length,
    );
    expect(
      sample(text, 'mp_nlb_dataplane_bytes_total', { instance: 'web', direction: 'out' }),
    ).toBeGreaterThan(httpRequest('shop.example.com').length);
    expect(sample(text, 'mp_nlb_dataplane_connect_seconds_count', { listener: 'auto' })).toBe(1);
    expect(text).toContain('# TYPE mp_nlb_dataplane_detection_failures_total counter');

    await nlb.handle.dataplane.stop(0);
    // stop() writes the totals into the metrics store once more (the workers' last reports too).
    const stored = nlb.handle.nlb.metrics.latest(['dataplane_connections_total'], { listener: 'auto' });
    expect(stored.map((x) => x.point.value)).toEqual([1]);
  });
});

describe('listeners from config', () => {
  it('UpdateNLBConfig adds, retunes and removes listeners live', async () => {
    const nlb = await h.startNlb([{ name: 'one' }]);
    await h.registered(nlb.rpc, 'web', {}, [route({ protocol: Protocol.PROTOCOL_HTTP })]);
    const first = nlb.port('one');
    const body = (ls: object[]) =>
      Buffer.from(JSON.stringify({ listeners: ls.map((l) => ({ address: '127.0.0.1', port: 0, ...l })) }));
    const r = await nlb.rpc('updateNlbConfig', {
      config: { configType: 'listeners', configData: body([{ name: 'one' }, { name: 'two', mode: 'http' }]) },
    });
    expect(r).toMatchObject({ success: true, requiresRestart: false });
    await waitFor('listener two', () => nlb.handle.dataplane.addresses().some((a) => a.name === 'two'));
    expect(nlb.port('one')).toBe(first);
    expect(await reach(nlb.port('two'), httpRequest('x.example.com'))).toBe('web');

    await nlb.rpc('updateNlbConfig', {
      config: { configType: 'listeners', configData: body([{ name: 'two', mode: 'http' }]) },
    });
    await waitFor(
      'listener one to go',
      () => !nlb.handle.dataplane.addresses().some((a) => a.name === 'one'),
    );
    const refused = await new Promise<string>((resolve) => {
      const s = connect({ host: '127.0.0.1', port: first });
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      s.on('connect', () => {
        s.destroy();
        resolve('connected');
      });
    });
    expect(refused).toBe('ECONNREFUSED');
    const cfg = await nlb.rpc('getNlbConfig', { configType: 'listeners' });
    expect(Buffer.from(cfg.configs[0].configData).toString()).toContain('"two"');
  });

  it('a listener that cannot bind is reported and the others run', async () => {
    const taken = await h.instance('squatter');
    const nlb = await h.startNlb([{ name: 'ok' }]);
    const body = Buffer.from(
      JSON.stringify({
        listeners: [
          { name: 'ok', address: '127.0.0.1', port: 0 },
          { name: 'clash', address: '127.0.0.1', port: taken.port },
        ],
      }),
    );
    await nlb.rpc('updateNlbConfig', { config: { configType: 'listeners', configData: body } });
    await waitFor('the failure', () => nlb.handle.dataplane.failed().clash);
    expect(nlb.handle.dataplane.failed().clash).toMatch(/EADDRINUSE/);
    expect(nlb.handle.dataplane.addresses().map((a) => a.name)).toEqual(['ok']);
  });
});

describe('weights', () => {
  it('SET_WEIGHT 90/10 splits ~1000 connections 90/10 within a few percent', async () => {
    const nlb = await h.startNlb([{ name: 'web', mode: 'http' }]);
    await h.registered(nlb.rpc, 'v1', { version: '1.0' }, [route({ protocol: Protocol.PROTOCOL_HTTP })]);
    await h.registered(nlb.rpc, 'v2', { version: '2.0' }, []);
    await setWeight(nlb.rpc, '2.0', 10);
    await h.settled();
    const counts: Record<string, number> = {};
    const total = 1000;
    let next = 0;
    const worker = async () => {
      while (next < total) {
        next++;
        const id = await reach(nlb.port('web'), httpRequest('w.example.com'));
        counts[id] = (counts[id] ?? 0) + 1;
      }
    };
    await Promise.all(Array.from({ length: 20 }, worker));
    expect((counts.v1 ?? 0) + (counts.v2 ?? 0)).toBe(total);
    expect(counts.v2 / total).toBeGreaterThan(0.07);
    expect(counts.v2 / total).toBeLessThan(0.13);
  });
});
