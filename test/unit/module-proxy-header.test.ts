/**
 * The instance runtime's PROXY header reader over real loopback sockets: v2 and v1 headers
 * (whole, split, or with the payload in the same packet), no header (the bytes are replayed to
 * the next reader), silence (handed on after the timeout), and invalid or oversized headers.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeProxyV2, encodeProxyV2Local } from '../../services/nlb/dataplane/proxy-protocol.js';
import {
  readProxyHeader,
  type ProxyHeaderOutcome,
} from '../../services/modules/runtime/proxy-header-reader.js';
import { createSystemClock } from '../../services/shared/clock.js';

const servers: Server[] = [];
const clients: Socket[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
});

/** Accepts one connection, reads its PROXY header, then collects what a new 'data' reader sees. */
async function exchange(send: (c: Socket) => void, timeoutMs = 300, settleMs = 150) {
  let resolveOutcome!: (o: { outcome: ProxyHeaderOutcome; payload: () => string; ms: number }) => void;
  const result = new Promise<{ outcome: ProxyHeaderOutcome; payload: () => string; ms: number }>(
    (r) => (resolveOutcome = r),
  );
  const server = createServer((s) => {
    s.on('error', () => undefined);
    const started = Date.now();
    readProxyHeader(s, createSystemClock(), timeoutMs, (outcome) => {
      let payload = '';
      // A later reader, as the handler would be.
      if (outcome.kind === 'header' || outcome.kind === 'none')
        s.on('data', (d: Buffer) => (payload += d.toString('latin1')));
      resolveOutcome({ outcome, payload: () => payload, ms: Date.now() - started });
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const c = connect({ port: (server.address() as { port: number }).port, host: '127.0.0.1' });
  c.on('error', () => undefined);
  clients.push(c);
  await new Promise<void>((r) => c.once('connect', r));
  send(c);
  const r = await result;
  await new Promise((res) => setTimeout(res, settleMs));
  return r;
}

const v2 = encodeProxyV2({
  srcAddress: '198.51.100.7',
  srcPort: 40000,
  dstAddress: '192.0.2.1',
  dstPort: 80,
});

describe('readProxyHeader', () => {
  it('reads a v2 header sent with the payload and replays the payload', async () => {
    const r = await exchange((c) => c.write(Buffer.concat([v2, Buffer.from('GET / HTTP/1.1\r\n\r\n')])));
    expect(r.outcome).toMatchObject({
      kind: 'header',
      header: { srcAddress: '198.51.100.7', srcPort: 40000, dstPort: 80 },
    });
    expect(r.payload()).toBe('GET / HTTP/1.1\r\n\r\n');
  });

  it('reads a v2 header that arrives in pieces, and IPv6 and v1 headers', async () => {
    const split = await exchange((c) => {
      c.write(v2.subarray(0, 5));
      setTimeout(() => c.write(v2.subarray(5, 20)), 20);
      setTimeout(() => c.write(Buffer.concat([v2.subarray(20), Buffer.from('hello')])), 40);
    });
    expect(split.outcome).toMatchObject({ kind: 'header', header: { srcAddress: '198.51.100.7' } });
    expect(split.payload()).toBe('hello');
    const six = await exchange((c) =>
      c.write(
        encodeProxyV2({ srcAddress: '2001:db8::5', srcPort: 1, dstAddress: '2001:db8::1', dstPort: 443 }),
      ),
    );
    expect(six.outcome).toMatchObject({
      kind: 'header',
      header: { family: 'IPv6', srcAddress: '2001:db8::5' },
    });
    const v1 = await exchange((c) => c.write('PROXY TCP4 203.0.113.9 192.0.2.1 5555 80\r\nping'));
    expect(v1.outcome).toMatchObject({
      kind: 'header',
      header: { version: 1, srcAddress: '203.0.113.9', srcPort: 5555 },
    });
    expect(v1.payload()).toBe('ping');
    const local = await exchange((c) => c.write(encodeProxyV2Local()));
    expect(local.outcome).toMatchObject({ kind: 'header', header: { command: 'LOCAL', family: 'UNSPEC' } });
  });

  it('hands on a connection without a header, bytes intact', async () => {
    const r = await exchange((c) => c.write('GET /plain HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect(r.outcome).toEqual({ kind: 'none' });
    expect(r.payload()).toBe('GET /plain HTTP/1.1\r\nHost: x\r\n\r\n');
  });

  it('hands on a silent connection after the timeout (server-first protocols)', async () => {
    const r = await exchange(() => undefined, 200, 0);
    expect(r.outcome).toEqual({ kind: 'none' });
    expect(r.ms).toBeGreaterThanOrEqual(150);
    expect(r.ms).toBeLessThan(1000);
  });

  it('refuses invalid and oversized headers', async () => {
    const bad = Buffer.from(v2);
    bad[12] = 0x31; // version 3
    expect((await exchange((c) => c.write(bad))).outcome).toMatchObject({ kind: 'invalid' });
    const long = Buffer.from(v2.subarray(0, 16));
    long.writeUInt16BE(60_000, 14);
    expect((await exchange((c) => c.write(long))).outcome).toEqual({ kind: 'invalid', reason: 'too_long' });
    expect((await exchange((c) => c.write('PROXY TCP4 nonsense\r\n'))).outcome).toMatchObject({
      kind: 'invalid',
    });
  });
});
