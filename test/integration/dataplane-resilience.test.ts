/**
 * The data plane under trouble, end to end through an in-process NLB: a killed instance
 * (retries and outlier ejection), graceful drain, back-pressure towards a slow reader,
 * garbage / truncated / silent clients, idle timeout, half-close, connection limits and a
 * graceful stop. Every wait is bounded; nothing here may crash the process.
 */
import { connect } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ModuleType, Protocol } from '../../proto/gen/marchproxy/types.js';
import {
  clientHello,
  createDataplaneHarness,
  httpRequest,
  sample,
  scrape,
  type DataplaneNlb,
} from './dataplane-fixture.js';
import { route, sleep, waitFor } from './nlb-fixture.js';

const h = createDataplaneHarness();
afterEach(() => h.closeAll());

const HTTP_ROUTE = route({ protocol: Protocol.PROTOCOL_HTTP });

/** Opens a connection through `port` and returns the client and the instance id it reached. */
async function open(port: number, host = 'app.example.com') {
  const c = await h.client(port);
  c.write(httpRequest(host));
  const id = (await c.line()).split(' ')[0];
  return { c, id };
}

/**
 * Whether the port refuses connections within `withinMs` (workers stop accepting one message
 * after stop(); in one process it is immediate).
 */
async function refusedSoon(port: number, withinMs = 1000): Promise<string> {
  const deadline = Date.now() + withinMs;
  let last = await refusedOrConnected(port);
  while (last !== 'ECONNREFUSED' && Date.now() < deadline) {
    await sleep(10);
    last = await refusedOrConnected(port);
  }
  return last;
}

function refusedOrConnected(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
  });
}

describe('instance failures', () => {
  it('a killed instance is ejected after 5 failed connects; no new connection fails', async () => {
    const nlb = await h.startNlb([{ name: 'web', mode: 'http' }]);
    const a = await h.registered(nlb.rpc, 'a', {}, [HTTP_ROUTE]);
    await h.registered(nlb.rpc, 'b', {}, []);
    await h.registered(nlb.rpc, 'c', {}, []);
    const port = nlb.port('web');
    const before = await Promise.all(Array.from({ length: 6 }, () => open(port)));
    const inFlight = before.filter((x) => x.id === 'a');
    expect(inFlight.length).toBeGreaterThan(0);

    await a.kill();
    // Connections that were open on the killed instance end (reset); nothing else does.
    await Promise.all(inFlight.map((x) => x.c.closed()));

    const reached: string[] = [];
    for (let i = 0; i < 40; i++) {
      const x = await open(port);
      reached.push(x.id);
      x.c.destroy();
    }
    expect(reached).toHaveLength(40);
    expect(reached.filter((id) => id === 'a')).toEqual([]);
    await h.settled();
    expect(nlb.handle.dataplane.outlier.ejected('a', Date.now())).toBe(true);
    for (const x of before.filter((y) => y.id !== 'a')) {
      x.c.write('still here');
      await x.c.bytes(x.c.received().length + 10);
    }
    const text = await scrape(nlb.adminUrl);
    const failures = sample(text, 'mp_nlb_dataplane_connect_failures_total', { instance: 'a' });
    // Workers learn of the ejection one message after the fifth failure: a few more may try.
    if (nlb.handle.dataplane.workers === 1) expect(failures).toBe(5);
    else expect(failures).toBeGreaterThanOrEqual(5);
    expect(sample(text, 'mp_nlb_dataplane_ejections_total', { instance: 'a' })).toBe(1);
    expect(sample(text, 'mp_nlb_dataplane_ejected_instances', { module_type: 'ALB' })).toBe(1);
    expect(sample(text, 'mp_nlb_dataplane_routing_failures_total')).toBe(0);
  });

  it('graceful UnregisterModule: open connections finish while new ones go elsewhere', async () => {
    const nlb = await h.startNlb([{ name: 'web', mode: 'http' }]);
    const a = await h.registered(nlb.rpc, 'a', {}, [HTTP_ROUTE]);
    await h.registered(nlb.rpc, 'b', {}, []);
    const port = nlb.port('web');
    const held: Array<Awaited<ReturnType<typeof open>>> = [];
    for (let i = 0; i < 20 && !held.some((x) => x.id === 'a'); i++) held.push(await open(port));
    const onA = held.find((x) => x.id === 'a');
    expect(onA).toBeDefined();
    await h.settled();
    const r = await nlb.rpc('unregisterModule', {
      instanceId: 'a',
      registrationId: a.registrationId,
      graceful: true,
      drainTimeoutSeconds: 30,
    });
    expect(r.success).toBe(true);
    expect(r.activeConnectionsDrained).toBe(1);
    await h.settled();

    for (let i = 0; i < 20; i++) {
      const x = await open(port);
      expect(x.id).toBe('b');
      x.c.destroy();
    }
    onA!.c.write('last words');
    await onA!.c.bytes(onA!.c.received().length + 10);
    expect((await nlb.rpc('listModules', {})).modules.map((m) => m.instanceId)).toContain('a');
    onA!.c.socket.end();
    await onA!.c.closed();
    expect(onA!.c.received().toString().endsWith('last wordsbye\n')).toBe(true);
    await waitFor('the drained instance to leave', async () => {
      nlb.handle.nlb.tick();
      return !(await nlb.rpc('listModules', {})).modules.some((m) => m.instanceId === 'a');
    });
  });

  it('with every instance down, the client is closed and the failure counted', async () => {
    const nlb = await h.startNlb([{ name: 'web', mode: 'http' }], { connectTimeoutMs: 500 });
    const a = await h.registered(nlb.rpc, 'a', {}, [HTTP_ROUTE]);
    await a.kill();
    const c = await h.client(nlb.port('web'));
    c.write(httpRequest('x.example.com'));
    await c.closed();
    await h.settled();
    const text = await scrape(nlb.adminUrl);
    expect(sample(text, 'mp_nlb_dataplane_routing_failures_total', { reason: 'connect_failed' })).toBe(1);
    expect(
      sample(text, 'mp_nlb_dataplane_connect_failures_total', { instance: 'a', reason: 'ECONNREFUSED' }),
    ).toBe(1);
  });
});

/** What the relay does (forwarding, hostile clients, drain) runs on both relays. */
describe.each(['native', 'js'] as const)('%s relay', (relay) => {
  beforeEach(() => h.useRelay(relay));

  describe('forwarding', () => {
    it('GetNLBStatus and /metrics say which relay forwards', async () => {
      const nlb = await h.startNlb([{ name: 'web', mode: 'http' }]);
      const st = await nlb.rpc('getNlbStatus', {});
      expect(st.details['dataplane.relay']).toBe(relay);
      expect(st.details['dataplane.workers']).toBe(String(nlb.handle.dataplane.workers));
      const text = await scrape(nlb.adminUrl);
      expect(sample(text, 'mp_nlb_dataplane_info', { relay })).toBe(1);
    });

    it('back-pressure: 64 MiB to a slow reader keeps the NLB’s buffers bounded', async () => {
      const total = 64 * 1024 * 1024;
      const nlb = await h.startNlb([{ name: 'bulk', mode: 'http' }]);
      const src = await h.registered(nlb.rpc, 'src', {}, [HTTP_ROUTE], {
        mode: 'source',
        sourceBytes: total,
      });
      const c = await h.client(nlb.port('bulk'));
      c.socket.pause();
      c.write(httpRequest('bulk.example.com'));
      let maxBuffered = 0;
      const poll = setInterval(() => {
        maxBuffered = Math.max(maxBuffered, nlb.handle.dataplane.bufferedBytes());
      }, 5);
      try {
        // The client reads nothing for a second: the instance must be held back.
        await sleep(1000);
        const writtenWhilePaused = src.written();
        expect(writtenWhilePaused).toBeLessThan(total / 2);
        // Then it reads slowly for a while (5 ms on, 20 ms off), then at full speed.
        const slowUntil = Date.now() + 1500;
        while (c.received().length < total && Date.now() < slowUntil) {
          c.socket.resume();
          await sleep(5);
          c.socket.pause();
          await sleep(20);
        }
        c.socket.resume();
        const slowly = c.received().length;
        await c.bytes(total, 20_000);
        console.error(
          `back-pressure: ${(writtenWhilePaused / 2 ** 20).toFixed(1)} MiB written by the instance while the client was paused, ${(slowly / 2 ** 20).toFixed(1)} MiB read slowly; max NLB buffered ${(maxBuffered / 1024).toFixed(0)} KiB`,
        );
      } finally {
        clearInterval(poll);
      }
      expect(c.received().length).toBe(total);
      expect(maxBuffered).toBeLessThan(1024 * 1024);
      await c.closed();
      c.socket.end();
      await waitFor('the bytes to be counted', async () => {
        const text = await scrape(nlb.adminUrl);
        return sample(text, 'mp_nlb_dataplane_bytes_total', { instance: 'src', direction: 'out' }) === total;
      });
    });

    it('half-close: the client’s end reaches the instance, which can still answer', async () => {
      const nlb = await h.startNlb([{ name: 'web', mode: 'http' }]);
      await h.registered(nlb.rpc, 'a', {}, [HTTP_ROUTE]);
      const c = await h.client(nlb.port('web'));
      const localPort = c.socket.localPort;
      const req = httpRequest('a.example.com');
      c.write(req);
      c.socket.end();
      await c.closed();
      expect(c.received().toString()).toBe(`a 127.0.0.1:${localPort}\n${req}bye\n`);
    });

    it('an idle connection is closed after idleTimeoutMs', async () => {
      const nlb = await h.startNlb([{ name: 'web', mode: 'http', idleTimeoutMs: 300 }]);
      await h.registered(nlb.rpc, 'a', {}, [HTTP_ROUTE]);
      const { c } = await open(nlb.port('web'));
      const t0 = Date.now();
      await c.closed(3000);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
      await h.settled();
      const text = await scrape(nlb.adminUrl);
      expect(sample(text, 'mp_nlb_dataplane_connections_closed_total', { reason: 'idle' })).toBe(1);
    });

    it('maxConnections closes connections beyond the limit at accept', async () => {
      const nlb = await h.startNlb([{ name: 'web', mode: 'http', maxConnections: 2 }]);
      await h.registered(nlb.rpc, 'a', {}, [HTTP_ROUTE]);
      await open(nlb.port('web'));
      await open(nlb.port('web'));
      const third = await h.client(nlb.port('web'));
      await third.closed();
      await h.settled();
      const text = await scrape(nlb.adminUrl);
      expect(sample(text, 'mp_nlb_dataplane_connections_rejected_total', { reason: 'max_connections' })).toBe(
        1,
      );
    });
    it('maxConnectionsPerClient caps one client address, not the others; hits are counted', async () => {
      const nlb = await h.startNlb([{ name: 'web', mode: 'http', maxConnectionsPerClient: 2 }]);
      await h.registered(nlb.rpc, 'a', {}, [HTTP_ROUTE]);
      const port = nlb.port('web');
      const first = await open(port);
      await open(port);
      const third = await h.client(port);
      await third.closed();
      expect(third.received().length).toBe(0);
      // Another address (still loopback) has its own allowance.
      const other = await h.client(port, '127.0.0.2');
      other.write(httpRequest('app.example.com'));
      expect((await other.line()).split(' ')[0]).toBe('a');
      // A closed connection frees its slot.
      first.c.socket.end();
      await first.c.closed();
      await waitFor('the closed connection to be forgotten', async () => {
        await h.settled();
        return nlb.handle.dataplane.addresses()[0].active === 2;
      });
      await open(port);
      await h.settled();
      const text = await scrape(nlb.adminUrl);
      expect(
        sample(text, 'mp_nlb_dataplane_connections_rejected_total', { reason: 'max_connections_per_client' }),
      ).toBe(1);
      expect(sample(text, 'mp_nlb_limit_hits_total', { limit: 'client_connections' })).toBe(1);
    });
  });

  describe('hostile and broken clients', () => {
    let nlb: DataplaneNlb;

    const sniffTimeoutMs = 300;

    async function startSniffing() {
      nlb = await h.startNlb([{ name: 'auto', sniffTimeoutMs, sniffBytes: 1024 }]);
      await h.registered(nlb.rpc, 'web', { moduleType: ModuleType.MODULE_TYPE_ALB }, [HTTP_ROUTE]);
      return nlb.port('auto');
    }

    it('garbage, truncated, oversized and silent clients are closed within the sniff budget', async () => {
      const port = await startSniffing();
      const hello = await clientHello('x.example.com');
      const cases: Array<[string, Buffer | string | null, boolean]> = [
        ['garbage', Buffer.from([0x00, 0xff, 0x13, 0x37, 0x42, 0x99, 0x00, 0x01]), false],
        ['truncated ClientHello', hello.subarray(0, 20), false],
        ['truncated then end', hello.subarray(0, 20), true],
        ['endless request line', `GET /${'a'.repeat(2000)}`, false],
        ['silent', null, false],
        ['silent then end', null, true],
      ];
      for (const [what, bytes, end] of cases) {
        const c = await h.client(port);
        const t0 = Date.now();
        if (bytes !== null) c.write(bytes);
        if (end) c.socket.end();
        await c.closed(sniffTimeoutMs + 2000).catch((e: Error) => {
          throw new Error(`${what}: ${e.message}`);
        });
        expect(Date.now() - t0, what).toBeLessThan(sniffTimeoutMs + 500);
        expect(c.received().length, what).toBe(0);
      }
      await h.settled();
      const text = await scrape(nlb.adminUrl);
      expect(sample(text, 'mp_nlb_dataplane_detection_failures_total', { listener: 'auto' })).toBe(
        cases.length,
      );
      expect(sample(text, 'mp_nlb_dataplane_detection_failures_total', { reason: 'timeout_no_data' })).toBe(
        1,
      );
      expect(
        sample(text, 'mp_nlb_dataplane_detection_failures_total', { reason: 'sniff_bytes_exceeded' }),
      ).toBe(1);
      // And the listener still serves.
      expect((await open(port)).id).toBe('web');
    });

    it('resets during sniffing and during forwarding never crash the NLB', async () => {
      const port = await startSniffing();
      for (let i = 0; i < 20; i++) {
        const c = await h.client(port);
        c.write(i % 2 ? 'GET / HT' : Buffer.from([0x16, 0x03, 0x01]));
        c.socket.resetAndDestroy();
      }
      for (let i = 0; i < 20; i++) {
        const { c } = await open(port);
        c.write(Buffer.alloc(100_000, 1));
        c.socket.resetAndDestroy();
      }
      await waitFor('connections to close', () => nlb.handle.dataplane.addresses()[0].active === 0);
      expect((await open(port)).id).toBe('web');
      await h.settled();
      expect((await nlb.rpc('getNlbStatus', {})).activeConnections).toBe(1);
    });
  });

  describe('shutdown', () => {
    it('stops accepting at once and lets open connections finish', async () => {
      const nlb = await h.startNlb([{ name: 'web', mode: 'http' }], { drainGraceMs: 5000 });
      await h.registered(nlb.rpc, 'a', {}, [HTTP_ROUTE]);
      const port = nlb.port('web');
      const { c } = await open(port);
      const t0 = Date.now();
      const stopped = nlb.handle.dataplane.stop();
      expect(await refusedSoon(port)).toBe('ECONNREFUSED');
      c.write('more');
      await c.bytes(c.received().length + 4);
      c.socket.end();
      await stopped;
      expect(Date.now() - t0).toBeLessThan(2000);
      expect(c.received().toString().endsWith('morebye\n')).toBe(true);
    });

    it('closes what is still open when the grace runs out', async () => {
      const nlb = await h.startNlb([{ name: 'web', mode: 'http' }], { drainGraceMs: 300 });
      await h.registered(nlb.rpc, 'a', {}, [HTTP_ROUTE]);
      const { c } = await open(nlb.port('web'));
      const t0 = Date.now();
      await nlb.handle.stop();
      expect(Date.now() - t0).toBeLessThan(2500);
      await c.closed(1000);
    });
  });
});
