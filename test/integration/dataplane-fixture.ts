/**
 * Pieces for the data-plane tests: an in-process NLB with client listeners on 127.0.0.1:0,
 * "instances" that are plain TCP servers on 127.0.0.1:0 (they read the PROXY v2 header, then
 * introduce themselves with one line and echo), raw clients with bounded reads, and sample first
 * bytes (HTTP, PostgreSQL startup, a real TLS ClientHello). Everything is closed by closeAll().
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { DeepPartial } from '../../proto/gen/marchproxy/nlb.js';
import { ProxyProtocolMode, type ModuleInstance, type Route } from '../../proto/gen/marchproxy/types.js';
import { decodeProxyHeader } from '../../services/nlb/dataplane/proxy-protocol.js';
import { nlbProcessSchema, startNlb, type NlbHandle } from '../../services/nlb/main.js';
import { createNlbHarness, instance, register, rpcOf, type FakeModule, type Rpc } from './nlb-fixture.js';

export interface ProxyInfo {
  srcAddress: string;
  srcPort: number;
  dstAddress: string;
  dstPort: number;
}

/** What an instance saw on one connection. */
export interface SeenConnection {
  proxy: ProxyInfo | null;
  /** Bytes after the PROXY header (the replayed sniffed bytes and what followed). */
  bytes: () => Buffer;
  socket: Socket;
}

export interface TestInstance {
  id: string;
  trafficAddress: string;
  port: number;
  seen: SeenConnection[];
  /** Bytes a 'source' instance has handed to write() so far. */
  written(): number;
  /** Connections open now. */
  open(): number;
  /** Stops accepting and resets every open connection (a crash). */
  kill(): Promise<void>;
  close(): Promise<void>;
}

export interface InstanceOptions {
  /** Whether the NLB sends a PROXY v2 header (default true). */
  proxy?: boolean;
  /**
   * 'identify': a line "<id> <client addr>:<port>\n" first, then echo, and "bye\n" after the
   * client's end; 'sink': read and say nothing; 'source': send `sourceBytes` (with back-pressure).
   */
  mode?: 'identify' | 'sink' | 'source';
  sourceBytes?: number;
}

/** A TCP server standing in for a module instance's traffic listener. */
export async function startInstance(id: string, opts: InstanceOptions = {}): Promise<TestInstance> {
  const expectProxy = opts.proxy ?? true;
  const seen: SeenConnection[] = [];
  const sockets = new Set<Socket>();
  let written = 0;
  const server: Server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    const chunks: Buffer[] = [];
    const conn: SeenConnection = { proxy: null, bytes: () => Buffer.concat(chunks), socket: s };
    let header = !expectProxy;
    let pending = Buffer.alloc(0);
    const started = () => {
      seen.push(conn);
      if (opts.mode === 'sink') return;
      if (opts.mode === 'source') {
        void pump(s, opts.sourceBytes ?? 0, (n) => (written += n));
        return;
      }
      const who = conn.proxy ? `${conn.proxy.srcAddress}:${conn.proxy.srcPort}` : '-';
      s.write(`${id} ${who}\n`);
    };
    if (header) started();
    s.on('data', (chunk: Buffer) => {
      if (!header) {
        pending = Buffer.concat([pending, chunk]);
        const d = decodeProxyHeader(pending);
        if (d.kind === 'need-more') return;
        if (d.kind !== 'header') {
          s.destroy();
          return;
        }
        conn.proxy = {
          srcAddress: d.srcAddress,
          srcPort: d.srcPort,
          dstAddress: d.dstAddress,
          dstPort: d.dstPort,
        };
        header = true;
        chunk = pending.subarray(d.length);
        started();
      }
      chunks.push(chunk);
      if (!opts.mode || opts.mode === 'identify') s.write(chunk);
    });
    s.on('end', () => (!opts.mode || opts.mode === 'identify' ? s.end('bye\n') : s.end()));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const closeServer = () => new Promise<void>((r) => server.close(() => r()));
  let closed: Promise<void> | undefined;
  return {
    id,
    port,
    trafficAddress: `127.0.0.1:${port}`,
    seen,
    written: () => written,
    open: () => sockets.size,
    kill: () => {
      closed ??= (() => {
        const done = closeServer();
        for (const s of sockets) s.resetAndDestroy();
        return done;
      })();
      return closed;
    },
    close: () => {
      closed ??= (() => {
        const done = closeServer();
        for (const s of sockets) s.destroy();
        return done;
      })();
      return closed;
    },
  };
}

/** Writes `total` bytes in 64 KiB chunks, waiting for 'drain' whenever write() says so. */
async function pump(s: Socket, total: number, count: (n: number) => void): Promise<void> {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let left = total;
  while (left > 0 && !s.destroyed) {
    const b = left >= chunk.length ? chunk : chunk.subarray(0, left);
    left -= b.length;
    count(b.length);
    if (!s.write(b))
      await new Promise<void>((r) => {
        const go = () => {
          s.off('drain', go);
          s.off('close', go);
          r();
        };
        s.on('drain', go);
        s.on('close', go);
      });
  }
  if (!s.destroyed) s.end();
}

/** A raw client socket with bounded reads. */
export interface RawClient {
  socket: Socket;
  received(): Buffer;
  write(b: Buffer | string): void;
  /** Resolves with the first line the server sent (without the newline). */
  line(timeoutMs?: number): Promise<string>;
  /** Resolves once `n` bytes have arrived in total. */
  bytes(n: number, timeoutMs?: number): Promise<Buffer>;
  /** Resolves with how long (ms) after connecting the server ended or reset the connection. */
  closed(timeoutMs?: number): Promise<number>;
  destroy(): void;
}

/** Connects to 127.0.0.1:port. */
/** A client of 127.0.0.1:`port`; `from` picks its source address (another 127.x address). */
export function rawClient(port: number, from?: string): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true, localAddress: from });
    const chunks: Buffer[] = [];
    let size = 0;
    let closedAt = 0;
    const waiters = new Set<() => void>();
    const wake = () => waiters.forEach((w) => w());
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      wake();
    });
    socket.on('error', () => undefined);
    // The server is done when it ends its side (the client socket is allowHalfOpen) or resets.
    const done = () => {
      closedAt ||= Date.now();
      wake();
    };
    socket.on('end', done);
    socket.on('close', done);
    const received = () => Buffer.concat(chunks, size);
    const until = <T>(what: string, probe: () => T | undefined, timeoutMs: number): Promise<T> =>
      new Promise((res, rej) => {
        const check = () => {
          const v = probe();
          if (v !== undefined) {
            clearTimeout(timer);
            waiters.delete(check);
            res(v);
          } else if (closedAt) {
            clearTimeout(timer);
            waiters.delete(check);
            rej(
              new Error(
                `connection closed while waiting for ${what}; got ${JSON.stringify(received().toString('latin1').slice(0, 200))}`,
              ),
            );
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          rej(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    socket.once('connect', () =>
      resolve({
        socket,
        received,
        write: (b) => void socket.write(b),
        line: (timeoutMs = 5000) =>
          until(
            'a line',
            () => {
              const s = received().toString('latin1');
              const i = s.indexOf('\n');
              return i >= 0 ? s.slice(0, i) : undefined;
            },
            timeoutMs,
          ),
        bytes: (n, timeoutMs = 5000) =>
          until(`${n} bytes`, () => (size >= n ? received() : undefined), timeoutMs),
        closed: (timeoutMs = 5000) =>
          new Promise((res, rej) => {
            const check = () => {
              if (!closedAt) return;
              clearTimeout(timer);
              waiters.delete(check);
              res(closedAt - t0);
            };
            const timer = setTimeout(() => {
              waiters.delete(check);
              rej(new Error(`the server did not close the connection within ${timeoutMs} ms`));
            }, timeoutMs);
            waiters.add(check);
            check();
          }),
        destroy: () => socket.destroy(),
      }),
    );
    socket.once('error', reject);
  });
}

// ---- first bytes ---------------------------------------------------------------------------

export const httpRequest = (host: string, path = '/') =>
  `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: dataplane-test\r\n\r\n`;

/** A PostgreSQL StartupMessage (protocol 3.0). */
export function pgStartup(user: string, database: string): Buffer {
  const body = Buffer.from(`user\0${user}\0database\0${database}\0\0`, 'latin1');
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt32BE(196608, 4);
  return Buffer.concat([head, body]);
}

/** A real ClientHello from node:tls for `servername` (captured on a throwaway TCP server). */
export async function clientHello(servername: string, alpn?: string[]): Promise<Buffer> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const got = new Promise<Buffer>((resolve) =>
      server.once('connection', (s) => {
        s.once('data', (b: Buffer) => {
          resolve(b);
          s.destroy();
        });
      }),
    );
    const t = tlsConnect({
      host: '127.0.0.1',
      port: (server.address() as { port: number }).port,
      servername,
      ALPNProtocols: alpn,
      rejectUnauthorized: false,
    });
    t.on('error', () => undefined);
    const hello = await got;
    t.destroy();
    return hello;
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
}

// ---- the NLB -------------------------------------------------------------------------------

export interface ListenerSpec {
  name: string;
  mode?: string;
  defaultProtocol?: string;
  sniffBytes?: number;
  sniffTimeoutMs?: number;
  maxConnections?: number;
  maxConnectionsPerClient?: number;
  idleTimeoutMs?: number;
}

export interface DataplaneNlb {
  handle: NlbHandle;
  rpc: Rpc;
  adminUrl: string;
  /** Bound port of a listener. */
  port(name: string): number;
}

const DEFAULT_WORKERS = Number(process.env.MP_TEST_DATAPLANE_WORKERS ?? 1);
/**
 * Who forwards connected pairs: the native relay unless MP_TEST_DATAPLANE_RELAY says otherwise
 * ('native' fails at start when it is not built, so that these tests cannot pass on the
 * JavaScript path by accident). Tests that cover both call `useRelay`.
 */
type RelayMode = 'auto' | 'native' | 'js';
const DEFAULT_RELAY = (process.env.MP_TEST_DATAPLANE_RELAY ?? 'native') as RelayMode;

/** Starts NLBs, fake controllers, instances and clients for one test; closeAll() in afterEach. */
export function createDataplaneHarness() {
  const base = createNlbHarness();
  const nlbs: NlbHandle[] = [];
  const instances: TestInstance[] = [];
  const clients: RawClient[] = [];
  let controller: FakeModule | undefined;
  let relay = DEFAULT_RELAY;
  const h = {
    base,
    /** The relay NLBs started from now on use (until closeAll). */
    useRelay(mode: RelayMode): void {
      relay = mode;
    },
    async startNlb(
      listeners: ListenerSpec[],
      dataplane: {
        connectTimeoutMs?: number;
        connectRetries?: number;
        drainGraceMs?: number;
        workers?: number;
        relay?: RelayMode;
        /** The workers' entry script (a test of workers that cannot start). */
        workerEntry?: { path: string; execArgv: string[] };
      } = {},
    ): Promise<DataplaneNlb> {
      const { workerEntry, ...dp } = dataplane;
      const config = nlbProcessSchema.parse({
        grpc: { host: '127.0.0.1', port: 0 },
        admin: { host: '127.0.0.1', port: 0 },
        dataDir: '',
        logLevel: 'silent',
        seed: 7,
        listeners: listeners.map((l) => ({ address: '127.0.0.1', port: 0, ...l })),
        // One process unless a test asks for workers; MP_TEST_DATAPLANE_WORKERS=2 runs every
        // data-plane test through two worker processes.
        dataplane: { drainGraceMs: 2000, workers: DEFAULT_WORKERS, relay, ...dp },
      });
      const handle = await startNlb(config, workerEntry ? { dataplaneWorkerEntry: workerEntry } : {});
      nlbs.push(handle);
      const client = base.client(`127.0.0.1:${handle.grpcPort}`);
      return {
        handle,
        rpc: rpcOf(client),
        adminUrl: `http://127.0.0.1:${handle.adminPort}`,
        port: (name) => {
          const l = handle.dataplane.addresses().find((a) => a.name === name);
          if (!l) throw new Error(`no listener ${name}: ${JSON.stringify(handle.dataplane.failed())}`);
          return l.port;
        },
      };
    },
    async instance(id: string, opts: InstanceOptions = {}): Promise<TestInstance> {
      const i = await startInstance(id, opts);
      instances.push(i);
      return i;
    },
    /** Starts an instance and registers it (HEALTHY) with its traffic address and initial routes. */
    async registered(
      rpc: Rpc,
      id: string,
      over: DeepPartial<ModuleInstance>,
      routes: DeepPartial<Route>[],
      opts: InstanceOptions = {},
    ): Promise<TestInstance & { registrationId: string }> {
      const i = await h.instance(id, opts);
      controller ??= await base.fakeModule();
      const registrationId = await register(
        rpc,
        instance(id, controller.address, {
          trafficAddress: i.trafficAddress,
          proxyProtocol:
            opts.proxy === false
              ? ProxyProtocolMode.PROXY_PROTOCOL_MODE_NONE
              : ProxyProtocolMode.PROXY_PROTOCOL_MODE_V2,
          ...over,
        }),
        routes,
      );
      await h.settled();
      return Object.assign(i, { registrationId });
    },
    /**
     * With workers: waits until they route on the NLB's current state and their reports so far
     * are in (counters, registry counts, /metrics). Immediate in one process.
     */
    async settled(): Promise<void> {
      for (const n of nlbs) {
        await n.dataplane.synced();
        await n.dataplane.flush();
      }
    },
    async client(port: number, from?: string): Promise<RawClient> {
      const c = await rawClient(port, from);
      clients.push(c);
      return c;
    },
    async closeAll(): Promise<void> {
      for (const c of clients.splice(0)) c.destroy();
      await Promise.all(nlbs.splice(0).map((n) => n.stop()));
      await Promise.all(instances.splice(0).map((i) => i.close()));
      controller = undefined;
      relay = DEFAULT_RELAY;
      await base.closeAll();
    },
  };
  return h;
}

/** The text of /metrics. */
export async function scrape(adminUrl: string): Promise<string> {
  const r = await fetch(`${adminUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
  return r.text();
}

/** The value of one Prometheus sample whose labels include `labels` (summed over matches). */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
