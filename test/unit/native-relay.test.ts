/**
 * The native relay (native/relay/relay.c) on real loopback sockets: a "listener" accepts the
 * client, connects to an "instance" server, and hands both sockets over, as listener.ts does.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, openSync, readdirSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { forward, type CloseReason, type Forwarding } from '../../services/nlb/dataplane/forward.js';
import {
  loadNativeRelay,
  NativeRelay,
  resolveRelay,
  type RelayBinding,
} from '../../services/nlb/dataplane/native-relay.js';

const loaded = loadNativeRelay();
if (!('relay' in loaded)) throw new Error(`the native relay must be built for these tests: ${loaded.error}`);
const relay: NativeRelay = loaded.relay;
/** The addon itself (for what NativeRelay never does: bad descriptors, odd ids). */
const binding = (relay as unknown as { binding: RelayBinding }).binding;
const addon = join(dirname(fileURLToPath(import.meta.url)), '../../native/relay/build/relay.node');

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
  /** How many times onClose was called (must end at exactly 1). */
  closeCalls: () => number;
}

interface Sockets {
  /** The test's client (outside the NLB). */
  client: Socket;
  /** The listener's accepted socket (paused, as listener.ts has it). */
  accepted: Socket;
  /** The listener's connection to the instance. */
  upstream: Socket;
  /** The instance's side of the connection. */
  instance: Socket;
}

/** client → [accepted socket … upstream socket] → instance, connected, nothing handed over yet. */
async function sockets(): Promise<Sockets> {
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
  cleanup.push(() => acc.destroy());
  acc.on('error', () => undefined);
  const upstream = connect({ host: '127.0.0.1', port: instancePort, allowHalfOpen: true });
  cleanup.push(() => upstream.destroy());
  upstream.on('error', () => undefined);
  await withTimeout(once(upstream, 'connect'), 5000, 'connect');
  while (instances.length === 0) await new Promise((r) => setTimeout(r, 5));
  const instance = instances[0];
  cleanup.push(() => instance.destroy());
  instance.on('error', () => undefined);
  return { client, accepted: acc, upstream, instance };
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
    beforeHandOver?: (accepted: Socket, upstream: Socket, client: Socket, instance: Socket) => Promise<void>;
  } = {},
): Promise<Pair> {
  const { client, accepted: acc, upstream, instance } = await sockets();
  await opts.beforeHandOver?.(acc, upstream, client, instance);
  let done!: (v: { reason: CloseReason; error?: string }) => void;
  let calls = 0;
  const closed = new Promise<{ reason: CloseReason; error?: string }>((r) => (done = r));
  const fwd = relay.forward(acc, upstream, opts.early ?? [], {
    head: opts.head ?? [],
    idleTimeoutMs: opts.idleMs ?? 0,
    onClose: (reason, error) => {
      calls++;
      done({ reason, error });
    },
  });
  if (!fwd) throw new Error('the relay refused the sockets');
  cleanup.push(() => fwd.abort());
  expect(acc.destroyed).toBe(true);
  expect(upstream.destroyed).toBe(true);
  return {
    client,
    instance,
    fwd,
    closed: withTimeout(closed, 10_000, 'relay close'),
    closeCalls: () => calls,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** This thread's event-loop utilisation over `ms` (≈ 1 when something keeps waking the loop). */
async function busy(ms: number): Promise<number> {
  const before = performance.eventLoopUtilization();
  await sleep(ms);
  return performance.eventLoopUtilization(before).utilization;
}

function fdOfSocket(s: Socket): number {
  return (s as unknown as { _handle: { fd: number } })._handle.fd;
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Runs a CommonJS script in a fresh node (RELAY_ADDON = the addon's path); its exit and output. */
function runNode(
  script: string,
  timeoutMs = 15_000,
): Promise<{ code: number | null; signal: string | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], {
      env: { ...process.env, RELAY_ADDON: addon },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child timed out: ${out}`));
    }, timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, out });
    });
  });
}

/** A stand-in for the addon, to test NativeRelay's own logic. */
function fakeBinding(over: Partial<RelayBinding> = {}): RelayBinding & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    setCloseHandler: () => undefined,
    start: () => 7,
    abort: (id) => {
      calls.push(`abort ${id}`);
      return false;
    },
    bytes: () => false,
    active: () => 0,
    ...over,
  };
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

  // ---- Review findings (each failed before its fix in relay.c / native-relay.ts) ----

  it('does not spin on a socket that is hung up both ways while back-pressure keeps it unread', async () => {
    // The client sends its request and ends (the relay then ends the instance's write side); the
    // instance answers more than the paused client takes, then ends. Its socket is now hung up
    // (FIN in, ours out) but must not be read until the client drains: a level-triggered
    // EPOLLHUP on a socket polled for nothing woke the loop again and again (100 % CPU).
    const p = await pair();
    p.instance.resume();
    const instanceEnded = withTimeout(once(p.instance, 'end'), 5000, 'instance end');
    p.client.end('request');
    await instanceEnded;
    p.client.pause();
    const chunk = Buffer.alloc(16 * 1024, 7);
    let sent = 0;
    const deadline = Date.now() + 8000;
    while (p.fwd.buffered() === 0) {
      if (Date.now() > deadline) throw new Error('the relay never held bytes for the slow client');
      p.instance.write(chunk);
      sent += chunk.length;
      await sleep(1);
    }
    p.instance.end();
    await withTimeout(once(p.instance, 'finish'), 5000, 'instance finish');
    await sleep(100);
    expect(p.fwd.closed).toBe(false);
    expect(await busy(300)).toBeLessThan(0.5);
    // The parked socket is read again once the client drains: everything arrives, then done.
    const got = readToEnd(p.client);
    p.client.resume();
    expect((await got).length).toBe(sent);
    expect(await p.closed).toEqual({ reason: 'done', error: undefined });
  });

  it('passes on what a side sent just before it reset, then closes with the error', async () => {
    const p = await pair();
    const atClient = readToEnd(p.client);
    p.instance.write('last words', () => p.instance.resetAndDestroy());
    expect(await p.closed).toEqual({ reason: 'upstream-error', error: 'ECONNRESET' });
    expect((await atClient).toString()).toBe('last words');
    expect(p.fwd.bytes().out).toBe(10);

    const q = await pair();
    const atInstance = readToEnd(q.instance);
    q.client.write('goodbye', () => q.client.resetAndDestroy());
    expect(await q.closed).toEqual({ reason: 'client-error', error: 'ECONNRESET' });
    expect((await atInstance).toString()).toBe('goodbye');
    expect(q.fwd.bytes().in).toBe(7);
  });

  it('a start that fails leaves nothing polled: no busy loop, no events for the next pair in its slot', async () => {
    // The socket JavaScript keeps after a failed start: an accepted client socket, paused.
    const s = await sockets();
    // epoll refuses a regular file: start fails after it has polled the first socket.
    const file = openSync(fileURLToPath(import.meta.url), 'r');
    try {
      expect(() => binding.start(fdOfSocket(s.accepted), file, undefined, undefined, 0)).toThrow(
        /cannot poll/,
      );
    } finally {
      closeSync(file);
    }
    expect(s.accepted.destroyed).toBe(false);
    // Unread bytes wait on the kept socket: nothing in the relay may wake for them.
    s.client.write('unread');
    await sleep(50);
    expect(await busy(300)).toBeLessThan(0.5);
    // The next pair takes the failed start's slot: the kept socket's reset is none of its business.
    const p = await pair();
    s.client.resetAndDestroy();
    await sleep(200);
    expect(p.fwd.closed).toBe(false);
    const got = readBytes(p.instance, 4);
    p.client.write('ping');
    expect((await got).toString()).toBe('ping');
  });

  it('a worker thread that loaded the relay exits cleanly, closing the pairs it held', async () => {
    // relay_cleanup closed libuv handles with a close callback inside the addon, which Node had
    // unloaded by the time the worker's loop ran it: a segfault on every worker exit.
    const script = `
      const { Worker } = require('node:worker_threads');
      const net = require('node:net');
      const { once } = require('node:events');
      const fs = require('node:fs');
      const code = \`
        const { parentPort, workerData } = require('node:worker_threads');
        const b = require(workerData);
        b.setCloseHandler(() => {});
        parentPort.on('message', (m) => {
          if (m === 'exit') process.exit(0);
          parentPort.postMessage(b.start(m[0], m[1], undefined, undefined, 60000));
        });
      \`;
      const listen = (s) => new Promise((r) => s.listen(0, '127.0.0.1', () => r(s.address().port)));
      async function round(selfExit) {
        const peers = [];
        const inst = net.createServer({ allowHalfOpen: true }, (s) => peers.push(s));
        const front = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
        const ip = await listen(inst), fp = await listen(front);
        const acc = once(front, 'connection');
        const client = net.connect({ port: fp, host: '127.0.0.1', allowHalfOpen: true });
        const [a] = await acc;
        const up = net.connect({ port: ip, host: '127.0.0.1', allowHalfOpen: true });
        await once(up, 'connect');
        while (!peers.length) await new Promise((r) => setTimeout(r, 5));
        const w = new Worker(code, { eval: true, workerData: process.env.RELAY_ADDON });
        w.postMessage([a._handle.fd, up._handle.fd]);
        await once(w, 'message');
        a.destroy(); up.destroy();
        const got = once(peers[0], 'data');
        client.write('ping');
        await got;
        const ends = Promise.all([once(client, 'end'), once(peers[0], 'end')]);
        client.resume(); peers[0].resume();
        if (selfExit) { w.postMessage('exit'); await once(w, 'exit'); } else await w.terminate();
        await ends;
        client.destroy(); peers[0].destroy();
        await Promise.all([new Promise((r) => inst.close(r)), new Promise((r) => front.close(r))]);
      }
      const fds = () => fs.readdirSync('/proc/self/fd').length;
      (async () => {
        await round(false);
        await new Promise((r) => setTimeout(r, 100));
        const base = fds();
        for (let i = 0; i < 4; i++) await round(i % 2 === 1);
        await new Promise((r) => setTimeout(r, 100));
        console.log('fds ' + base + ' ' + fds());
      })().catch((e) => { console.log('error ' + e.stack); process.exit(3); });
    `;
    const r = await runNode(script, 20_000);
    expect({ code: r.code, signal: r.signal }).toEqual({ code: 0, signal: null });
    const m = /fds (\d+) (\d+)/.exec(r.out);
    expect(m, r.out).not.toBeNull();
    expect(Number(m![2])).toBe(Number(m![1]));
  });

  it('bytes() never goes back after abort(), while the close is still to be reported', async () => {
    const p = await pair();
    const got = readBytes(p.instance, 10);
    p.client.write('0123456789');
    await got;
    await sleep(20);
    expect(p.fwd.bytes()).toEqual({ in: 10, out: 0 });
    p.fwd.abort();
    expect(p.fwd.bytes()).toEqual({ in: 10, out: 0 });
    expect((await p.closed).reason).toBe('aborted');
    expect(p.fwd.bytes()).toEqual({ in: 10, out: 0 });
  });

  it('forwards what Node had already read from the instance socket before the hand-over', async () => {
    const p = await pair({
      early: [Buffer.from('early|')],
      beforeHandOver: async (_accepted, upstream, _client, instance) => {
        // An upstream socket without a reader: Node keeps what it read in the socket.
        instance.write('buffered|');
        const deadline = Date.now() + 5000;
        while (upstream.readableLength === 0 && Date.now() < deadline) await sleep(5);
        expect(upstream.readableLength).toBe(9);
      },
    });
    expect((await readBytes(p.client, 15)).toString()).toBe('early|buffered|');
    await sleep(20);
    expect(p.fwd.bytes().out).toBe(15);
  });

  it('when start throws, both sockets are left as they were, with every byte read put back in order', async () => {
    const fake = fakeBinding({
      start: () => {
        throw new Error('EMFILE');
      },
    });
    const s = await sockets();
    // The listener sniffed "first|"; "second|" arrived meanwhile and sits in Node's buffer.
    s.client.write('first|second|');
    s.accepted.resume();
    await withTimeout(once(s.accepted, 'readable'), 5000, 'readable');
    s.accepted.pause();
    await sleep(20);
    const first = s.accepted.read(6) as Buffer;
    expect(first.toString()).toBe('first|');
    expect(s.accepted.readableLength).toBe(7);
    // The instance greeted; Node's upstream socket holds it.
    s.instance.write('greeting|');
    while (s.upstream.readableLength === 0) await sleep(5);
    const closes: CloseReason[] = [];
    const fwd = new NativeRelay(fake).forward(s.accepted, s.upstream, [], {
      head: [first],
      idleTimeoutMs: 0,
      onClose: (r) => closes.push(r),
    });
    expect(fwd).toBeNull();
    expect(s.accepted.destroyed || s.upstream.destroyed).toBe(false);
    expect(s.accepted.readableLength).toBe(7);
    expect(s.upstream.readableLength).toBe(9);
    // JavaScript forwards them instead, losing and reordering nothing.
    const js = forward(s.accepted, s.upstream, {
      head: [first],
      idleTimeoutMs: 0,
      onClose: (r) => closes.push(r),
    });
    const atInstance = readBytes(s.instance, 'first|second|third'.length);
    const atClient = readBytes(s.client, 'greeting|'.length);
    s.client.write('third');
    expect((await atInstance).toString()).toBe('first|second|third');
    expect((await atClient).toString()).toBe('greeting|');
    js.abort();
    expect(fake.calls).toEqual([]);
  });

  it('abort() of a forwarding already closed does not reach the relay (its id may be reused)', () => {
    let onClose: Parameters<RelayBinding['setCloseHandler']>[0] = () => undefined;
    const fake = fakeBinding({ setCloseHandler: (fn) => (onClose = fn) });
    const nr = new NativeRelay(fake);
    const fakeSocket = () =>
      ({
        _handle: { fd: 3 },
        destroyed: false,
        readableLength: 0,
        bytesRead: 5,
        bytesWritten: 0,
        destroy() {},
      }) as unknown as Socket;
    const closes: CloseReason[] = [];
    const fwd = nr.forward(fakeSocket(), fakeSocket(), [], {
      head: [],
      idleTimeoutMs: 0,
      onClose: (r) => closes.push(r),
    });
    expect(fwd).not.toBeNull();
    onClose(7, 0, undefined, 3, 4);
    expect(closes).toEqual(['done']);
    expect(fwd!.closed).toBe(true);
    expect(fwd!.bytes()).toEqual({ in: 8, out: 4 });
    fwd!.abort();
    expect(fake.calls).toEqual([]);
  });

  it('ids name a pair exactly: fractional, negative or out-of-range ids name none', async () => {
    const s = await sockets();
    const id = binding.start(fdOfSocket(s.accepted), fdOfSocket(s.upstream), undefined, undefined, 0);
    s.accepted.destroy();
    s.upstream.destroy();
    const out = new Float64Array(3);
    for (const bad of [id + 0.5, id - 0.5, -id, id + 2 ** 53, Number.NaN, Infinity])
      expect([bad, binding.abort(bad), binding.bytes(bad, out)]).toEqual([bad, false, false]);
    expect(binding.bytes(id, out)).toBe(true);
    expect(binding.abort(id)).toBe(true);
    expect(binding.abort(id)).toBe(false);
  });

  it('a close handler that throws reaches uncaughtException, and the other closes are still reported', async () => {
    const script = `
      const net = require('node:net');
      const { once } = require('node:events');
      const b = require(process.env.RELAY_ADDON);
      const seen = [], reported = [];
      b.setCloseHandler(() => {});
      process.on('uncaughtException', (e) => seen.push(e.message));
      const listen = (s) => new Promise((r) => s.listen(0, '127.0.0.1', () => r(s.address().port)));
      async function start() {
        const peers = [];
        const inst = net.createServer((s) => peers.push(s));
        const front = net.createServer({ pauseOnConnect: true });
        const ip = await listen(inst), fp = await listen(front);
        const acc = once(front, 'connection');
        const client = net.connect(fp, '127.0.0.1');
        const [a] = await acc;
        const up = net.connect(ip, '127.0.0.1');
        await once(up, 'connect');
        const id = b.start(a._handle.fd, up._handle.fd, undefined, undefined, 0);
        a.destroy(); up.destroy(); inst.close(); front.close();
        return { id, client };
      }
      (async () => {
        const ps = [await start(), await start(), await start()];
        let later;
        b.setCloseHandler((id) => {
          reported.push(id);
          if (id === ps[0].id) { later = start(); throw new Error('boom'); }
        });
        for (const p of ps) p.client.resetAndDestroy();
        await new Promise((r) => setTimeout(r, 200));
        const p4 = await later;
        b.abort(p4.id);
        await new Promise((r) => setTimeout(r, 50));
        console.log(JSON.stringify({ reported: reported.length, seen, active: b.active() }));
        process.exit(0);
      })();
    `;
    const r = await runNode(script);
    expect(r.code, r.out).toBe(0);
    expect(JSON.parse(r.out.trim().split('\n').pop()!)).toEqual({ reported: 4, seen: ['boom'], active: 0 });
  });

  it('stress: pairs opening, echoing, half-closing, aborting, resetting and idling at once leave nothing behind', async () => {
    await sleep(50);
    const fds0 = openFds();
    const active0 = relay.active;
    const fates = ['done', 'abort', 'client-reset', 'instance-reset', 'idle', 'slow', 'abort-busy'] as const;
    const expected: Record<(typeof fates)[number], CloseReason> = {
      done: 'done',
      abort: 'aborted',
      'client-reset': 'client-error',
      'instance-reset': 'upstream-error',
      idle: 'idle',
      slow: 'done',
      'abort-busy': 'aborted',
    };
    const t0 = Date.now();
    let n = 0;
    const all: Pair[] = [];
    while (Date.now() - t0 < 3000 && n < 280) {
      const kinds = Array.from({ length: 28 }, (_, k) => fates[(n + k) % fates.length]);
      const batch = await Promise.all(kinds.map((f) => pair({ idleMs: f === 'idle' ? 150 : 0 })));
      all.push(...batch);
      await Promise.all(
        batch.map(async (p, k) => {
          const fate = kinds[k];
          p.instance.on('data', (b: Buffer) => p.instance.write(b));
          const echoed = readBytes(p.client, 5);
          p.client.write('hello');
          expect((await echoed).toString()).toBe('hello');
          if (fate === 'done') {
            const end = readToEnd(p.client);
            p.client.end();
            await withTimeout(once(p.instance, 'end'), 5000, 'instance end');
            p.instance.end();
            await end;
          } else if (fate === 'abort') p.fwd.abort();
          else if (fate === 'client-reset') p.client.resetAndDestroy();
          else if (fate === 'instance-reset') p.instance.resetAndDestroy();
          else if (fate === 'slow' || fate === 'abort-busy') {
            p.instance.removeAllListeners('data');
            p.instance.resume();
            const big = Buffer.alloc(2 * 1024 * 1024, k);
            if (fate === 'abort-busy') {
              p.client.pause();
              p.instance.write(big);
              await sleep(20);
              p.fwd.abort();
            } else {
              const got = readToEnd(p.client);
              p.instance.end(big);
              await withTimeout(
                once(p.instance, 'end').catch(() => undefined),
                100,
              ).catch(() => undefined);
              p.client.end();
              expect((await got).length).toBe(big.length);
            }
          }
          expect((await p.closed).reason).toBe(expected[fate]);
        }),
      );
      n += batch.length;
    }
    expect(n).toBeGreaterThanOrEqual(56);
    await sleep(50);
    for (const p of all) expect(p.closeCalls()).toBe(1);
    expect(relay.active).toBe(active0);
    for (const f of cleanup.splice(0)) f();
    const deadline = Date.now() + 3000;
    while (openFds() > fds0 && Date.now() < deadline) await sleep(20);
    expect(openFds()).toBeLessThanOrEqual(fds0);
  });

  it('dataplane.relay: js uses no relay, auto and native use it', () => {
    expect(resolveRelay('js').relay).toBeUndefined();
    expect(resolveRelay('auto').relay).toBe(relay);
    expect(resolveRelay('native').relay).toBe(relay);
  });
});
