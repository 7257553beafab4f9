/**
 * The data plane served by two worker processes (docs/dataplane.md "Workers"): both workers
 * accept on the shared socket and route with the primary's state; connection counts, least
 * connections, /metrics and GetNLBStatus are right in aggregate; a killed worker's connections
 * are closed out and it is replaced; a stop drains the workers and they exit. (The other
 * data-plane tests run through workers too with MP_TEST_DATAPLANE_WORKERS=2.)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ModuleType, Protocol } from '../../proto/gen/marchproxy/types.js';
import {
  createDataplaneHarness,
  httpRequest,
  sample,
  scrape,
  type DataplaneNlb,
} from './dataplane-fixture.js';
import { route, waitFor } from './nlb-fixture.js';

const h = createDataplaneHarness();
afterEach(() => h.closeAll());

const HTTP_ROUTE = route({ protocol: Protocol.PROTOCOL_HTTP });

async function open(port: number) {
  const c = await h.client(port);
  c.write(httpRequest('app.example.com'));
  const id = (await c.line()).split(' ')[0];
  return { c, id };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function currentConnections(nlb: DataplaneNlb): Promise<Record<string, number>> {
  const listed = await nlb.rpc('listModules', {});
  return Object.fromEntries(listed.modules.map((m) => [m.instanceId, m.currentConnections]));
}

describe('two data-plane workers', () => {
  it('both workers accept on the shared socket and route with the primary’s state', async () => {
    const nlb = await h.startNlb([{ name: 'web', mode: 'http' }], { workers: 2 });
    expect(nlb.handle.dataplane.workers).toBe(2);
    const workers = nlb.handle.dataplane.workerStatus();
    expect(workers).toHaveLength(2);
    expect(workers.every((w) => w.pid !== process.pid && alive(w.pid))).toBe(true);
    await h.registered(nlb.rpc, 'a', {}, [HTTP_ROUTE]);
    const port = nlb.port('web');

    let next = 0;
    const reached: string[] = [];
    const client = async () => {
      while (next++ < 200) {
        const { c, id } = await open(port);
        reached.push(id);
        c.destroy();
      }
    };
    await Promise.all(Array.from({ length: 20 }, client));
    expect(reached).toHaveLength(200);
    expect(new Set(reached)).toEqual(new Set(['a']));
    await h.settled();
    const accepted = nlb.handle.dataplane.workerStatus().map((w) => w.accepted);
    expect(accepted.reduce((x, y) => x + y, 0)).toBe(200);
    expect(Math.min(...accepted)).toBeGreaterThan(0);
    const text = await scrape(nlb.adminUrl);
    expect(sample(text, 'mp_nlb_dataplane_connections_accepted_total', { listener: 'web' })).toBe(200);
    expect(sample(text, 'mp_nlb_dataplane_connections_total', { instance: 'a' })).toBe(200);

    // An instance and route registered later reach the workers.
    await h.registered(nlb.rpc, 'b', { moduleType: ModuleType.MODULE_TYPE_AILB }, [
      route({ protocol: Protocol.PROTOCOL_HTTP, destinationPattern: 'b.example.com' }),
    ]);
    const c = await h.client(port);
    c.write(httpRequest('b.example.com'));
    expect((await c.line()).split(' ')[0]).toBe('b');
  });

  it('counts open connections over both workers; least connections sees all of them', async () => {
    const nlb = await h.startNlb([{ name: 'web', mode: 'http' }], { workers: 2 });
    await h.registered(nlb.rpc, 'a', {}, [HTTP_ROUTE]);
    await h.registered(nlb.rpc, 'b', {}, []);
    const port = nlb.port('web');
    const held: Array<Awaited<ReturnType<typeof open>>> = [];
    for (let i = 0; i < 10; i++) {
      held.push(await open(port));
      // Each new connection is routed with every earlier one counted, whichever worker has it.
      await h.settled();
    }
    const by = (id: string) => held.filter((x) => x.id === id).length;
    expect([by('a'), by('b')]).toEqual([5, 5]);
    expect(await currentConnections(nlb)).toEqual({ a: 5, b: 5 });
    expect((await nlb.rpc('getNlbStatus', {})).activeConnections).toBe(10);
    expect(nlb.handle.dataplane.addresses()[0].active).toBe(10);
    const text = await scrape(nlb.adminUrl);
    expect(sample(text, 'mp_nlb_dataplane_active_connections', { instance: 'a' })).toBe(5);

    for (const x of held) x.c.socket.end();
    await Promise.all(held.map((x) => x.c.closed()));
    await waitFor('the counts to reach 0', async () => {
      await h.settled();
      const n = await currentConnections(nlb);
      return n.a === 0 && n.b === 0;
    });
    expect(sample(await scrape(nlb.adminUrl), 'mp_nlb_dataplane_active_connections', { instance: 'a' })).toBe(
      0,
    );
  });

  it('max_connections holds over all workers', async () => {
    const nlb = await h.startNlb([{ name: 'web', mode: 'http', maxConnections: 4 }], { workers: 2 });
    await h.registered(nlb.rpc, 'a', {}, [HTTP_ROUTE]);
    const port = nlb.port('web');
    for (let i = 0; i < 4; i++) {
      await open(port);
      await h.settled();
    }
    for (let i = 0; i < 4; i++) {
      const extra = await h.client(port);
      await extra.closed();
    }
    await h.settled();
    const text = await scrape(nlb.adminUrl);
    expect(sample(text, 'mp_nlb_dataplane_connections_rejected_total', { reason: 'max_connections' })).toBe(
      4,
    );
    expect(sample(text, 'mp_nlb_dataplane_connections_total', { instance: 'a' })).toBe(4);
  });

  it('maxConnectionsPerClient holds over all workers', async () => {
    const nlb = await h.startNlb([{ name: 'web', mode: 'http', maxConnectionsPerClient: 3 }], { workers: 2 });
    await h.registered(nlb.rpc, 'a', {}, [HTTP_ROUTE]);
    const port = nlb.port('web');
    for (let i = 0; i < 3; i++) {
      await open(port);
      await h.settled();
    }
    for (let i = 0; i < 4; i++) {
      const extra = await h.client(port);
      await extra.closed();
    }
    // Another client address is not affected by the first one's connections.
    const other = await h.client(port, '127.0.0.3');
    other.write(httpRequest('app.example.com'));
    expect((await other.line()).split(' ')[0]).toBe('a');
    await h.settled();
    const text = await scrape(nlb.adminUrl);
    expect(
      sample(text, 'mp_nlb_dataplane_connections_rejected_total', { reason: 'max_connections_per_client' }),
    ).toBe(4);
    expect(sample(text, 'mp_nlb_dataplane_connections_total', { instance: 'a' })).toBe(4);
  });

  it('per-client counts of a removed listener do not outlive it (re-added under the same name)', async () => {
    const nlb = await h.startNlb([{ name: 'web', mode: 'http', maxConnectionsPerClient: 1 }], { workers: 2 });
    await h.registered(nlb.rpc, 'a', {}, [HTTP_ROUTE]);
    const held = await open(nlb.port('web'));
    await h.settled();
    const listeners = (ls: object[]) => ({
      config: {
        configType: 'listeners',
        configData: Buffer.from(
          JSON.stringify({ listeners: ls.map((l) => ({ address: '127.0.0.1', port: 0, ...l })) }),
        ),
      },
    });
    await nlb.rpc('updateNlbConfig', listeners([]));
    await waitFor('the listener to start draining', () => nlb.handle.dataplane.addresses().length === 0);
    held.c.socket.end(); // its connection ends while the listener drains
    await held.c.closed();
    await h.settled();
    await nlb.rpc('updateNlbConfig', listeners([{ name: 'web', mode: 'http', maxConnectionsPerClient: 1 }]));
    await waitFor('the listener to be back', () => nlb.handle.dataplane.addresses().length === 1);
    // One at a time, so never over the limit; they land on both workers.
    for (let i = 0; i < 8; i++) {
      const { c, id } = await open(nlb.port('web'));
      expect(id).toBe('a');
      c.socket.end();
      await c.closed();
      await h.settled();
    }
    const text = await scrape(nlb.adminUrl);
    expect(
      sample(text, 'mp_nlb_dataplane_connections_rejected_total', { reason: 'max_connections_per_client' }),
    ).toBe(0);
  });

  it('a killed worker’s connections are closed out and counted down; a replacement takes over', async () => {
    const nlb = await h.startNlb([{ name: 'web', mode: 'http' }], { workers: 2 });
    await h.registered(nlb.rpc, 'a', {}, [HTTP_ROUTE]);
    const port = nlb.port('web');
    const held: Array<Awaited<ReturnType<typeof open>>> = [];
    for (let i = 0; i < 40 && held.length < 8; i++) held.push(await open(port));
    await h.settled();
    const before = nlb.handle.dataplane.workerStatus();
    const victim = before.find((w) => w.active > 0)!;
    expect(victim).toBeDefined();
    expect((await currentConnections(nlb)).a).toBe(held.length);

    process.kill(victim.pid, 'SIGKILL');
    // Its clients see their connections end; the others' stay up.
    await waitFor('the killed worker’s connections to end', async () => {
      await h.settled();
      return (await currentConnections(nlb)).a === held.length - victim.active;
    });
    const text = await scrape(nlb.adminUrl);
    expect(sample(text, 'mp_nlb_dataplane_active_connections', { instance: 'a' })).toBe(
      held.length - victim.active,
    );
    expect(sample(text, 'mp_nlb_dataplane_connections_closed_total', { reason: 'aborted' })).toBe(
      victim.active,
    );

    // New connections are served meanwhile, and the replacement shares the socket.
    expect((await open(port)).id).toBe('a');
    await waitFor(
      'a replacement worker',
      () => {
        const now = nlb.handle.dataplane.workerStatus();
        return now.length === 2 && now.every((w) => w.pid !== victim.pid && alive(w.pid));
      },
      15_000,
    );
    // Kill the other original: the replacement alone serves the listener.
    const survivor = before.find((w) => w.pid !== victim.pid)!;
    process.kill(survivor.pid, 'SIGKILL');
    await waitFor(
      'the survivor to be gone',
      () => !nlb.handle.dataplane.workerStatus().some((w) => w.pid === survivor.pid),
    );
    for (let i = 0; i < 5; i++) expect((await open(port)).id).toBe('a');
  });

  it('a stop drains every worker, refuses new connections, and the workers exit', async () => {
    const nlb = await h.startNlb([{ name: 'web', mode: 'http' }], { workers: 2, drainGraceMs: 5000 });
    await h.registered(nlb.rpc, 'a', {}, [HTTP_ROUTE]);
    const port = nlb.port('web');
    const held = await Promise.all(Array.from({ length: 6 }, () => open(port)));
    const pids = nlb.handle.dataplane.workerStatus().map((w) => w.pid);
    const t0 = Date.now();
    const stopped = nlb.handle.dataplane.stop();
    await waitFor(
      'new connections to be refused',
      () =>
        new Promise<boolean>((resolve) => {
          const s = connect({ host: '127.0.0.1', port });
          s.on('error', () => resolve(true));
          s.on('connect', () => {
            s.destroy();
            resolve(false);
          });
        }),
    );
    // Open connections still work while the workers drain.
    for (const x of held) {
      x.c.write('more');
      await x.c.bytes(x.c.received().length + 4);
      x.c.socket.end();
    }
    await stopped;
    expect(Date.now() - t0).toBeLessThan(4000);
    for (const x of held) expect(x.c.received().toString().endsWith('morebye\n')).toBe(true);
    await waitFor('the workers to exit', () => pids.every((pid) => !alive(pid)));
    const stored = nlb.handle.nlb.metrics.latest(['dataplane_connections_total'], { listener: 'web' });
    expect(stored.map((x) => x.point.value)).toEqual([6]);
  });
  it('workers that cannot start leave the listeners served by the NLB’s own process', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mp-worker-'));
    const entry = join(dir, 'broken-worker.mjs');
    writeFileSync(entry, 'process.exit(3);\n');
    try {
      const nlb = await h.startNlb([{ name: 'web', mode: 'http' }], {
        workers: 2,
        workerEntry: { path: entry, execArgv: [] },
      });
      expect(nlb.handle.dataplane.failed()).toEqual({});
      expect(nlb.handle.dataplane.workers).toBe(1);
      expect(nlb.handle.dataplane.workerStatus()).toEqual([]);
      await h.registered(nlb.rpc, 'a', {}, [HTTP_ROUTE]);
      for (let i = 0; i < 3; i++) {
        const { c, id } = await open(nlb.port('web'));
        expect(id).toBe('a');
        c.socket.end();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
