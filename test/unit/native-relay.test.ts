/**
 * The native relay (native/relay/relay.c) on real loopback sockets: a "listener" accepts the
 * client, connects to an "instance" server, and hands both sockets over, as listener.ts does.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { CloseReason, Forwarding } from '../../services/nlb/dataplane/forward.js';
import {
  loadNativeRelay,
  resolveRelay,
  type NativeRelay,
} from '../../services/nlb/dataplane/native-relay.js';

const loaded = loadNativeRelay();
if (!('relay' in loaded)) throw new Error(`the native relay must be built for these tests: ${loaded.error}`);
const relay: NativeRelay = loaded.relay;

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

function listen(server: Server): Promise<number> {
  cleanup.push(() => server.close());
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}

function withTimeout<T>(p: Promise<T>, ms = 10_000, what = 'event'): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>(
      (_, reject) => (t = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)),
    ),
  ]);
}

interface Pair {
  /** The test's client (outside the NLB). */
  client: Socket;
  /** The instance's side of the connection. */
  instance: Socket;
  fwd: Forwarding;
  closed: Promise<{ reason: CloseReason; error?: string }>;
}

/**
 * client → [accepted socket | relay | upstream socket] → instance. `beforeHandOver` runs with
 * the listener's two sockets before they are handed over.
 */
async function pair(
  opts: {
    head?: Buffer[];
    idleMs?: number;
    early?: Buffer[];
    beforeHandOver?: (accepted: Socket, upstream: Socket, client: Socket) => Promise<void>;
  } = {},
): Promise<Pair> {
  const instances: Socket[] = [];
  const instanceServer = createServer({ allowHalfOpen: true }, (s) => instances.push(s));
  const instancePort = await listen(instanceServer);
  const front = createServer({ allowHalfOpen: true, pauseOnConnect: true });
  const frontPort = await listen(front);
  const accepted = once(front, 'connection') as Promise<[Socket]>;
  const client = connect({ host: '127.0.0.1', port: frontPort, allowHalfOpen: true });
  cleanup.push(() => client.destroy());
  client.on('error', () => undefined);
  const [acc] = await withTimeout(accepted, 5000, 'accept');
  acc.on('error', () => undefined);
  const upstream = connect({ host: '127.0.0.1', port: instancePort, allowHalfOpen: true });
  upstream.on('error', () => undefined);
  await withTimeout(once(upstream, 'connect'), 5000, 'connect');
  while (instances.length === 0) await new Promise((r) => setTimeout(r, 5));
  const instance = instances[0];
  cleanup.push(() => instance.destroy());
  instance.on('error', () => undefined);
  await opts.beforeHandOver?.(acc, upstream, client);
  let done!: (v: { reason: CloseReason; error?: string }) => void;
  const closed = new Promise<{ reason: CloseReason; error?: string }>((r) => (done = r));
  const fwd = relay.forward(acc, upstream, opts.early ?? [], {
    head: opts.head ?? [],
    idleTimeoutMs: opts.idleMs ?? 0,
    onClose: (reason, error) => done({ reason, error }),
  });
  if (!fwd) throw new Error('the relay refused the sockets');
  cleanup.push(() => fwd.abort());
  expect(acc.destroyed).toBe(true);
  expect(upstream.destroyed).toBe(true);
  return { client, instance, fwd, closed: withTimeout(closed, 10_000, 'relay close') };
}

/** Reads `n` bytes from `s`. */
function readBytes(s: Socket, n: number): Promise<Buffer> {
  return withTimeout(
    new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let got = 0;
      const onData = (b: Buffer) => {
        chunks.push(b);
        got += b.length;
        if (got >= n) {
          s.off('data', onData);
          resolve(Buffer.concat(chunks));
        }
      };
      s.on('data', onData);
    }),
    10_000,
    `${n} bytes`,
  );
}

function readToEnd(s: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (b: Buffer) => chunks.push(b));
  return withTimeout(
    once(s, 'end').then(() => Buffer.concat(chunks)),
    20_000,
    'end',
  );
}

describe('native relay', () => {
  it('writes the head to the instance first, the early bytes to the client, then relays both ways', async () => {
    const p = await pair({
      head: [Buffer.from('HEAD|'), Buffer.from('sniffed|')],
      early: [Buffer.from('hello|')],
    });
    const greeting = readBytes(p.client, 6);
    expect((await greeting).toString()).toBe('hello|');
    const atInstance = readBytes(p.instance, 'HEAD|sniffed|ping'.length);
    p.client.write('ping');
    expect((await atInstance).toString()).toBe('HEAD|sniffed|ping');
    const atClient = readBytes(p.client, 4);
    p.instance.write('pong');
    expect((await atClient).toString()).toBe('pong');
    // In: what the client sent (the head is ours, not the client's); out: what it received.
    await new Promise((r) => setTimeout(r, 20));
    expect(p.fwd.bytes()).toEqual({ in: 4, out: 10 });
    expect(p.fwd.closed).toBe(false);
  });

  it('half-closes: the client ends, the instance answers and ends, the pair closes as done', async () => {
    const p = await pair();
    const instanceGot = readToEnd(p.instance);
    p.client.end('request');
    expect((await instanceGot).toString()).toBe('request');
    const clientGot = readToEnd(p.client);
    p.instance.end('response after the client ended');
    expect((await clientGot).toString()).toBe('response after the client ended');
    expect(await p.closed).toEqual({ reason: 'done', error: undefined });
    expect(p.fwd.closed).toBe(true);
    expect(p.fwd.bytes()).toEqual({ in: 7, out: 31 });
    expect(relay.active).toBe(0);
  });

  it('keeps order and loses nothing with a slow reader, holding at most about one read', async () => {
    const p = await pair();
    const total = 48 * 1024 * 1024;
    const chunk = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 31 + 7) & 0xff;
    const sent = createHash('sha256');
    const got = createHash('sha256');
    let received = 0;
    let maxHeld = 0;
    // The client reads in bursts with pauses: the relay must stop reading the instance meanwhile.
    p.client.on('data', (b: Buffer) => {
      got.update(b);
      received += b.length;
      maxHeld = Math.max(maxHeld, p.fwd.buffered());
      p.client.pause();
      setTimeout(() => p.client.resume(), 1);
    });
    const clientEnded = withTimeout(once(p.client, 'end'), 60_000, 'client end');
    (async () => {
      for (let sentBytes = 0; sentBytes < total; sentBytes += chunk.length) {
        sent.update(chunk);
        if (!p.instance.write(chunk)) await once(p.instance, 'drain');
      }
      p.instance.end();
    })().catch(() => undefined);
    await clientEnded;
    expect(received).toBe(total);
    expect(got.digest('hex')).toBe(sent.digest('hex'));
    expect(maxHeld).toBeLessThanOrEqual(64 * 1024);
    p.client.end();
    expect((await p.closed).reason).toBe('done');
    expect(p.fwd.bytes().out).toBe(total);
  });

  it('forwards what Node had already read from the client before the hand-over, in order', async () => {
    const p = await pair({
      head: [Buffer.from('first|')],
      beforeHandOver: async (accepted, _upstream, client) => {
        // The listener read (sniffed) "first|"; more arrived and sits in Node's buffer.
        client.write('second|');
        accepted.resume();
        await withTimeout(once(accepted, 'readable'), 5000, 'readable');
        accepted.pause();
        await new Promise((r) => setTimeout(r, 20));
        expect(accepted.readableLength).toBeGreaterThan(0);
      },
    });
    const got = readBytes(p.instance, 'first|second|third'.length);
    p.client.write('third');
    expect((await got).toString()).toBe('first|second|third');
  });

  it('closes a pair silent for its idle timeout, and tells both peers', async () => {
    const p = await pair({ idleMs: 300 });
    const t0 = Date.now();
    const clientClosed = withTimeout(once(p.client, 'end'), 5000, 'client end');
    const instanceClosed = withTimeout(once(p.instance, 'end'), 5000, 'instance end');
    expect((await p.closed).reason).toBe('idle');
    await Promise.all([clientClosed, instanceClosed]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
  });

  it('traffic keeps an idle timeout from firing', async () => {
    const p = await pair({ idleMs: 400 });
    let closed = false;
    void p.closed.then(() => (closed = true));
    for (let i = 0; i < 8; i++) {
      const got = readBytes(p.instance, 1);
      p.client.write('x');
      await got;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(closed).toBe(false);
    p.fwd.abort();
    expect((await p.closed).reason).toBe('aborted');
  });

  it('abort ends both peers and reports the reason given', async () => {
    const p = await pair();
    const ends = Promise.all([
      withTimeout(once(p.client, 'end'), 5000, 'client end'),
      withTimeout(once(p.instance, 'end'), 5000, 'instance end'),
    ]);
    p.client.resume();
    p.instance.resume();
    p.fwd.abort('idle');
    expect((await p.closed).reason).toBe('idle');
    await ends;
    // Aborting again is harmless.
    p.fwd.abort();
  });

  it('an instance reset ends the pair as an upstream error and closes the client', async () => {
    const p = await pair();
    // The relay closes its side (a FIN, as destroy() does): the client sees the end.
    const clientClosed = withTimeout(once(p.client, 'end'), 5000, 'client end');
    p.client.resume();
    p.instance.resetAndDestroy();
    const r = await p.closed;
    expect(r.reason).toBe('upstream-error');
    expect(r.error).toBe('ECONNRESET');
    await clientClosed;
  });

  it('a client reset ends the pair as a client error', async () => {
    const p = await pair();
    p.instance.resume();
    p.client.resetAndDestroy();
    const r = await p.closed;
    expect(r.reason).toBe('client-error');
  });

  it('relays many pairs at once, each to its own instance connection', async () => {
    const pairs = await Promise.all(Array.from({ length: 40 }, () => pair()));
    await Promise.all(
      pairs.map(async (p, i) => {
        p.instance.on('data', (b: Buffer) => p.instance.write(Buffer.concat([Buffer.from('echo:'), b])));
        const got = readBytes(p.client, `echo:${i}`.length);
        p.client.write(String(i));
        expect((await got).toString()).toBe(`echo:${i}`);
      }),
    );
    for (const p of pairs) p.client.end();
    for (const p of pairs) p.instance.end();
    const reasons = await Promise.all(pairs.map((p) => p.closed.then((r) => r.reason)));
    expect(new Set(reasons)).toEqual(new Set(['done']));
  });

  it('dataplane.relay: js uses no relay, auto and native use it', () => {
    expect(resolveRelay('js').relay).toBeUndefined();
    expect(resolveRelay('auto').relay).toBe(relay);
    expect(resolveRelay('native').relay).toBe(relay);
  });
});
