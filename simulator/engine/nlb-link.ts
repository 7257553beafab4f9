/**
 * How fake instances (and their controllers) reach the NLB: the real NlbApi calls over real
 * gRPC, through one shared channel, with faults applied on the way (NLB down, a partitioned
 * instance, stopped or slow heartbeats) and every call tracked for virtual time.
 *
 * The channel can live on a worker thread: requests are encoded here with the generated
 * serializers and sent to the NLB as bytes from there, so that gRPC's client half runs on the
 * second core while this thread runs the NLB and the fakes.
 */
import { Worker } from 'node:worker_threads';
import * as grpc from '@grpc/grpc-js';
import { NLBServiceService } from '../../proto/gen/marchproxy/nlb.js';
import type { NlbApi } from '../../services/modules/runtime/nlb-api.js';
import type { Clock } from '../../services/shared/clock.js';
import type { Inflight } from './virtual-time.js';

type Method = Exclude<keyof NlbApi, 'target' | 'close'>;
const RPC = {
  register: NLBServiceService.registerModule,
  heartbeat: NLBServiceService.heartbeat,
  unregister: NLBServiceService.unregisterModule,
  updateRouting: NLBServiceService.updateRouting,
  updateDeployment: NLBServiceService.updateDeployment,
} as const;

/** The instance a call speaks for ('' for the controller's own calls). */
function instanceOf(method: Method, req: unknown): string {
  const r = req as { instanceId?: string; sourceInstanceId?: string; instance?: { instanceId?: string } };
  if (method === 'register') return r.instance?.instanceId ?? '';
  if (method === 'updateRouting') return r.sourceInstanceId ?? '';
  return r.instanceId ?? '';
}

export interface LinkPolicy {
  /** Why a call cannot reach the NLB now (NLB restarting, partition, heartbeats stopped), or null. */
  blocked(method: Method, instanceId: string): string | null;
  /** Virtual time to hold a call before sending it (slow heartbeats). */
  delayMs(method: Method, instanceId: string): number;
}

interface Transport {
  call(path: string, bytes: Buffer): Promise<Buffer>;
  close(): void;
}

/** The main-thread transport's channel (--thread); the worker has its own client. */
const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // The fakes' side of the channel is not under test: skip channelz's per-call bookkeeping.
  'grpc.enable_channelz': 0,
  'grpc.initial_reconnect_backoff_ms': 50,
  'grpc.max_reconnect_backoff_ms': 200,
  'grpc.max_receive_message_length': 16 * 1024 * 1024,
};
// Wall-clock deadline: generous, so that a loaded machine does not turn into simulated failures.
const CALL_TIMEOUT_MS = 30_000;
/**
 * Calls (and replies) cross between the threads in batches of at most this many: a thousand
 * heartbeats due at the same instant then flow as a pipeline — the worker sends the first
 * batch while this thread still encodes the next, and this thread serves the first requests
 * while the worker sends the rest — instead of each thread waiting for the other's whole burst.
 */
const BATCH = 64;

const failure = (code: number, details: string) =>
  Object.assign(new Error(`${code} ${grpc.status[code] ?? 'UNKNOWN'}: ${details}`), { code, details });

const same = (b: Buffer) => b;

function threadTransport(target: string): Transport {
  const client = new grpc.Client(target, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  return {
    call: (path, bytes) =>
      new Promise((resolve, reject) => {
        client.makeUnaryRequest(
          path,
          same,
          same,
          bytes,
          new grpc.Metadata(),
          { deadline: Date.now() + CALL_TIMEOUT_MS },
          (e, r) => (e ? reject(failure(e.code, e.details)) : resolve(r!)),
        );
      }),
    close: () => client.close(),
  };
}

/**
 * The worker's code (CommonJS, plain JavaScript: it must run from sources and from dist alike):
 * a lean gRPC client on node:http2. The fakes' side of the channel is not under test, and
 * grpc-js's client machinery (interceptors, resolving and load-balancing calls, filters, a
 * deadline timer per call) cost more CPU than the NLB's server side of the same call. On the
 * wire every call is what grpc-js sends: a POST of one length-prefixed message on its own
 * HTTP/2 stream, the status in the trailers; the NLB's gRPC server handles it as any other.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const http2 = require('node:http2');
// gRPC status codes used here (grpc/doc/statuscodes.md).
const UNKNOWN = 2, DEADLINE_EXCEEDED = 4, UNAVAILABLE = 14, INTERNAL = 13;
let session = null;
const connect = () => {
  const s = http2.connect('http://' + workerData.target, {
    settings: { initialWindowSize: 1 << 20 },
  });
  s.on('connect', () => s.setLocalWindowSize(16 << 20));
  // Errors reach the streams; a session that ends is replaced at the next call.
  s.on('error', () => undefined);
  const drop = () => { if (session === s) session = null; };
  s.on('close', drop);
  s.on('goaway', drop);
  session = s;
  return s;
};
let out = [];
let scheduled = false;
const flush = () => {
  scheduled = false;
  if (out.length === 0) return;
  const batch = out;
  out = [];
  parentPort.postMessage(batch, batch.flatMap((m) => (m.bytes ? [m.bytes] : [])));
};
const reply = (r) => {
  out.push(r);
  if (out.length >= workerData.batch) flush();
  else if (!scheduled) { scheduled = true; setImmediate(flush); }
};
const pending = new Map();
// One unary call: a length-prefixed message out, one back, the status in the trailers (or in
// the headers of a trailers-only response).
const call = (m) => {
  let stream;
  try {
    const s = session && !session.closed && !session.destroyed ? session : connect();
    stream = s.request({
      ':method': 'POST',
      ':path': m.path,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
  } catch (e) {
    reply({ id: m.id, code: UNAVAILABLE, details: String(e && e.message) });
    return;
  }
  const entry = { stream, at: Date.now(), done: false };
  pending.set(m.id, entry);
  const finish = (r) => {
    if (entry.done) return;
    entry.done = true;
    pending.delete(m.id);
    reply(r);
  };
  let status = null;
  let message = '';
  const chunks = [];
  const take = (h) => {
    if (h['grpc-status'] !== undefined) {
      status = Number(h['grpc-status']);
      message = String(h['grpc-message'] ?? '');
      try {
        message = decodeURIComponent(message);
      } catch {
        // Not percent-encoded after all: keep it as it came.
      }
    }
  };
  stream.on('response', take);
  stream.on('trailers', take);
  stream.on('data', (c) => chunks.push(c));
  stream.on('error', (e) => finish({ id: m.id, code: UNAVAILABLE, details: String(e && e.message) }));
  stream.on('close', () => {
    if (status === null)
      return finish({ id: m.id, code: UNAVAILABLE, details: 'stream closed without a status (code ' + stream.rstCode + ')' });
    if (status !== 0) return finish({ id: m.id, code: status, details: message });
    const body = Buffer.concat(chunks);
    if (body.length < 5 || body[0] !== 0 || body.readUInt32BE(1) !== body.length - 5)
      return finish({ id: m.id, code: INTERNAL, details: 'malformed response message (' + body.length + ' bytes)' });
    const copy = new Uint8Array(body.length - 5);
    copy.set(body.subarray(5));
    finish({ id: m.id, bytes: copy.buffer });
  });
  const frame = Buffer.allocUnsafe(5 + m.bytes.byteLength);
  frame[0] = 0;
  frame.writeUInt32BE(m.bytes.byteLength, 1);
  frame.set(new Uint8Array(m.bytes), 5);
  stream.end(frame);
};
// Deadlines are checked once a second rather than armed per call.
const sweeper = setInterval(() => {
  const limit = Date.now() - workerData.timeoutMs;
  for (const [id, e] of pending)
    if (e.at <= limit) {
      e.stream.close(http2.constants.NGHTTP2_CANCEL);
      e.done = true;
      pending.delete(id);
      reply({ id, code: DEADLINE_EXCEEDED, details: 'deadline exceeded after ' + workerData.timeoutMs + ' ms' });
    }
}, 1000);
sweeper.unref();
parentPort.on('message', (batch) => {
  if (batch === 'close') {
    clearInterval(sweeper);
    if (session) session.close();
    parentPort.close();
    return;
  }
  for (const m of batch) call(m);
});
`;

interface Reply {
  id: number;
  bytes?: ArrayBuffer;
  code?: number;
  details?: string;
}

function workerTransport(target: string): Transport {
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { target, timeoutMs: CALL_TIMEOUT_MS, batch: BATCH },
  });
  worker.unref();
  const pending = new Map<number, { resolve: (b: Buffer) => void; reject: (e: Error) => void }>();
  let seq = 0;
  let queue: Array<{ id: number; path: string; bytes: ArrayBuffer }> = [];
  let crashed: Error | null = null;
  worker.on('error', (e) => {
    crashed = e;
    for (const p of pending.values())
      p.reject(failure(grpc.status.INTERNAL, `gRPC worker failed: ${e.message}`));
    pending.clear();
  });
  worker.on('message', (batch: Reply[]) => {
    for (const m of batch) {
      const p = pending.get(m.id);
      if (!p) continue;
      pending.delete(m.id);
      if (m.bytes) p.resolve(Buffer.from(m.bytes));
      else p.reject(failure(m.code ?? grpc.status.UNKNOWN, m.details ?? 'failed'));
    }
  });
  const flush = () => {
    if (queue.length === 0) return;
    const batch = queue;
    queue = [];
    worker.postMessage(
      batch,
      batch.map((m) => m.bytes),
    );
  };
  return {
    call(path, bytes) {
      if (crashed) return Promise.reject(failure(grpc.status.INTERNAL, crashed.message));
      return new Promise((resolve, reject) => {
        const id = ++seq;
        pending.set(id, { resolve, reject });
        if (queue.length === 0) queueMicrotask(flush);
        queue.push({
          id,
          path,
          bytes: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer,
        });
        if (queue.length >= BATCH) flush();
      });
    },
    close() {
      worker.postMessage('close');
      void worker.terminate();
    },
  };
}

export interface NlbLink {
  /** An NlbApi for one instance or controller (all share the channel; close() is a no-op). */
  api(): NlbApi;
  close(): void;
}

/** Creates the shared link to the NLB at `target`. */
export function createNlbLink(o: {
  target: string;
  clock: Clock;
  inflight: Inflight;
  policy: LinkPolicy;
  /** Run the gRPC client on a worker thread (default true). */
  worker?: boolean;
}): NlbLink {
  const transport = o.worker === false ? threadTransport(o.target) : workerTransport(o.target);
  const call = async <M extends Method>(
    method: M,
    req: Parameters<NlbApi[M]>[0],
  ): Promise<Awaited<ReturnType<NlbApi[M]>>> => {
    const id = instanceOf(method, req);
    const delay = o.policy.delayMs(method, id);
    if (delay > 0) await o.clock.sleep(delay);
    const blocked = o.policy.blocked(method, id);
    if (blocked) throw failure(grpc.status.UNAVAILABLE, blocked);
    const rpc = RPC[method] as unknown as {
      path: string;
      requestSerialize: (v: unknown) => Buffer;
      responseDeserialize: (b: Buffer) => Awaited<ReturnType<NlbApi[M]>>;
    };
    const bytes = await o.inflight.track(
      `nlb.${method}`,
      transport.call(rpc.path, rpc.requestSerialize(req)),
    );
    return rpc.responseDeserialize(bytes);
  };
  const api: NlbApi = {
    target: o.target,
    register: (req) => call('register', req),
    heartbeat: (req) => call('heartbeat', req),
    unregister: (req) => call('unregister', req),
    updateRouting: (req) => call('updateRouting', req),
    updateDeployment: (req) => call('updateDeployment', req),
    close: () => undefined,
  };
  return { api: () => api, close: () => transport.close() };
}
