/**
 * Pieces for the ALB and AILB tests: module instances run by the real instance runtime
 * (ModuleInstanceRuntime, so the PROXY header path is the production one) with a stub NLB,
 * real HTTP backends on 127.0.0.1:0 that say who they are and what they saw, raw clients with
 * bounded reads, and a harness that closes everything it started.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { RouteSpec } from '../../services/nlb/domain/types.js';
import { ModuleInstanceRuntime, type InstanceSnapshot } from '../../services/modules/runtime/instance.js';
import type { NlbApi } from '../../services/modules/runtime/nlb-api.js';
import type { ModuleTypePlugin } from '../../services/modules/runtime/plugin.js';
import type { RateLimitSpec } from '../../services/modules/runtime/token-bucket.js';
import { createSystemClock } from '../../services/shared/clock.js';
import { silentLogger, type Logger } from '../../services/shared/logger.js';

/** An NLB that accepts every registration and heartbeat (the tests talk to instances directly). */
export function stubNlb(): NlbApi {
  return {
    target: 'stub-nlb:0',
    register: () => Promise.resolve({ success: true, message: 'registered', registrationId: 'reg-1' }),
    heartbeat: () =>
      Promise.resolve({
        acknowledged: true,
        message: 'ok',
        shouldReload: false,
        shouldScale: false,
        instructions: {},
      }),
    unregister: () => Promise.resolve({ success: true, message: 'ok', activeConnectionsDrained: 0 }),
    updateRouting: () =>
      Promise.resolve({ success: true, message: 'ok', routesUpdated: 0, validationErrors: [] }),
    updateDeployment: () => Promise.reject(new Error('not used')),
    close() {},
  };
}

/** A route; fields not given match anything. */
export function route(id: string, over: Partial<RouteSpec> = {}): RouteSpec {
  return {
    routeId: id,
    protocol: null,
    sourcePattern: '',
    destinationPattern: '',
    sourcePort: 0,
    destinationPort: 0,
    headers: {},
    pathPattern: '',
    priority: 0,
    metadata: {},
    ...over,
  };
}

/** A rate limit; every window off unless given. */
export function limit(id: string, over: Partial<RateLimitSpec> = {}): RateLimitSpec {
  return {
    limitId: id,
    target: '*',
    requestsPerSecond: 0,
    requestsPerMinute: 0,
    requestsPerHour: 0,
    burstSize: 0,
    enabled: true,
    metadata: {},
    ...over,
  };
}

/** What a backend saw of one request. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  remotePort: number;
  body: string;
}

export interface TestBackend {
  name: string;
  address: string;
  port: number;
  seen: SeenRequest[];
  /** TCP connections the backend accepted (keep-alive reuse shows as few). */
  connections(): number;
  /** Makes /health answer 503 (false) or 200 (true). */
  setHealthy(ok: boolean): void;
  close(): Promise<void>;
}

/**
 * An HTTP backend: answers JSON {backend, method, url, headers, body}; /health follows
 * setHealthy; /slow?ms=N waits; /stream sends chunks 100 ms apart; /ws accepts a WebSocket
 * handshake and echoes frames back raw.
 */
export async function startBackend(name: string, port = 0): Promise<TestBackend> {
  const seen: SeenRequest[] = [];
  let connections = 0;
  let healthy = true;
  const sockets = new Set<Socket | Duplex>();
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const body = Buffer.concat(chunks).toString();
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        remotePort: req.socket.remotePort ?? 0,
        body,
      });
      if (url.pathname === '/health') {
        res.writeHead(healthy ? 200 : 503).end(healthy ? 'ok' : 'down');
        return;
      }
      if (url.pathname === '/stream') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        let i = 0;
        const t = setInterval(() => {
          res.write(`chunk ${i}\n`);
          if (++i === 3) {
            clearInterval(t);
            res.end();
          }
        }, 100);
        res.on('close', () => clearInterval(t));
        return;
      }
      const reply = () => {
        const text = JSON.stringify({
          backend: name,
          method: req.method,
          url: req.url,
          headers: req.headers,
          body,
        });
        res
          .writeHead(Number(url.searchParams.get('status') ?? 200), {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(text),
            'set-cookie': ['a=1', 'b=2'],
          })
          .end(text);
      };
      const ms = Number(url.searchParams.get('ms') ?? 0);
      if (url.pathname === '/slow' && ms > 0) setTimeout(reply, ms);
      else reply();
    });
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', (s: Socket) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    seen.push({
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      remotePort: 0,
      body: '',
    });
    const key = String(req.headers['sec-websocket-key'] ?? '');
    const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nX-Backend: ${name}\r\n\r\n`,
    );
    let pending = head;
    const onBytes = (d: Buffer) => {
      pending = Buffer.concat([pending, d]);
      for (;;) {
        const f = decodeFrame(pending);
        if (!f) return;
        pending = pending.subarray(f.length);
        socket.write(
          encodeFrame(f.opcode, f.opcode === 1 ? Buffer.from(`${name}: ${f.payload.toString()}`) : f.payload),
        );
        if (f.opcode === 8) socket.end();
      }
    };
    if (head.length) onBytes(Buffer.alloc(0));
    socket.on('data', onBytes);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const bound = (server.address() as { port: number }).port;
  return {
    name,
    port: bound,
    address: `127.0.0.1:${bound}`,
    seen,
    connections: () => connections,
    setHealthy: (ok) => (healthy = ok),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** One client WebSocket frame (masked, payload < 64 KiB), or null when incomplete. */
function decodeFrame(b: Buffer): { opcode: number; payload: Buffer; length: number } | null {
  if (b.length < 2) return null;
  const opcode = b[0] & 0x0f;
  let len = b[1] & 0x7f;
  let at = 2;
  if (len === 126) {
    if (b.length < 4) return null;
    len = b.readUInt16BE(2);
    at = 4;
  }
  const masked = (b[1] & 0x80) !== 0;
  const mask = masked ? b.subarray(at, at + 4) : null;
  if (masked) at += 4;
  if (b.length < at + len) return null;
  const payload = Buffer.from(b.subarray(at, at + len));
  if (mask) for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i % 4];
  return { opcode, payload, length: at + len };
}

/** A server WebSocket frame (unmasked, FIN set). */
function encodeFrame(opcode: number, payload: Buffer): Buffer {
  const head =
    payload.length < 126
      ? Buffer.from([0x80 | opcode, payload.length])
      : Buffer.from([0x80 | opcode, 126, payload.length >> 8, payload.length & 0xff]);
  return Buffer.concat([head, payload]);
}

export interface TestInstance {
  runtime: ModuleInstanceRuntime;
  address: string;
  port: number;
  url: string;
  snapshot: InstanceSnapshot;
  /** Pushes a new snapshot (as the controller would). */
  apply(over: Partial<InstanceSnapshot>): Promise<void>;
  /** Custom counters of the instance's stats, as numbers. */
  counter(name: string): number;
}

/** Starts and stops instances and backends; `closeAll()` in afterEach. */
export function createHttpHarness() {
  const instances: ModuleInstanceRuntime[] = [];
  const backends: TestBackend[] = [];
  const sockets: Socket[] = [];
  return {
    async backend(name: string, port = 0): Promise<TestBackend> {
      const b = await startBackend(name, port);
      backends.push(b);
      return b;
    },
    /** A module instance of `plugin` on 127.0.0.1:0, run by the real instance runtime. */
    async instance(
      plugin: ModuleTypePlugin,
      config: unknown,
      routes: RouteSpec[] = [],
      rateLimits: RateLimitSpec[] = [],
      o: { maxConnections?: number; logger?: Logger; nlb?: NlbApi } = {},
    ): Promise<TestInstance> {
      const snapshot: InstanceSnapshot = {
        routes,
        rateLimits,
        config: plugin.configSchema.parse(config),
        maxConnections: o.maxConnections ?? 0,
      };
      const runtime = new ModuleInstanceRuntime({
        id: `${plugin.type.toLowerCase()}-test-${instances.length + 1}`,
        plugin,
        version: '1.0',
        clock: createSystemClock(),
        logger: o.logger ?? silentLogger(),
        nlb: o.nlb ?? stubNlb(),
        controllerAddress: '127.0.0.1:1',
        host: '127.0.0.1',
        heartbeatIntervalMs: 60_000,
        snapshot,
        proxyHeaderTimeoutMs: 200,
      });
      instances.push(runtime);
      await runtime.start();
      const port = Number(runtime.trafficAddress.split(':').pop());
      const inst: TestInstance = {
        runtime,
        address: runtime.trafficAddress,
        port,
        url: `http://${runtime.trafficAddress}`,
        snapshot,
        apply: async (over) => {
          inst.snapshot = {
            ...inst.snapshot,
            ...over,
            config: over.config === undefined ? inst.snapshot.config : plugin.configSchema.parse(over.config),
          };
          await runtime.apply(inst.snapshot);
        },
        counter: (name) => Number(runtime.statsSnapshot().custom[name] ?? 0),
      };
      return inst;
    },
    /** A raw TCP connection (closed by closeAll). */
    async raw(port: number): Promise<Socket> {
      const s = connect({ host: '127.0.0.1', port });
      sockets.push(s);
      s.on('error', () => undefined);
      await new Promise<void>((resolve, reject) => {
        s.once('connect', resolve);
        s.once('error', reject);
      });
      return s;
    },
    async closeAll(): Promise<void> {
      for (const s of sockets.splice(0)) s.destroy();
      await Promise.all(instances.splice(0).map((i) => i.stop(false, 0).catch(() => undefined)));
      await Promise.all(backends.splice(0).map((b) => b.close()));
    },
  };
}

/**
 * Reads from `s` until `until(text)` holds, the socket closes, or `timeoutMs` passes; returns
 * the text, whether it closed, and how long it took.
 */
export function readUntil(
  s: Socket,
  until: (text: string) => boolean,
  timeoutMs: number,
): Promise<{ text: string; closed: boolean; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    let text = '';
    let closed = false;
    const finish = () => {
      clearTimeout(t);
      s.off('data', onData);
      s.off('close', onClose);
      // Bytes that come before the next read wait in the socket.
      s.pause();
      resolve({ text, closed, ms: Date.now() - started });
    };
    const onData = (d: Buffer) => {
      text += d.toString('latin1');
      if (until(text)) finish();
    };
    const onClose = () => {
      closed = true;
      finish();
    };
    const t = setTimeout(finish, timeoutMs);
    s.on('data', onData);
    s.on('close', onClose);
    s.resume();
    if (s.destroyed) onClose();
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `probe` until truthy; fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | false | undefined> | T | false | undefined,
  timeoutMs = 5000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}
