/**
 * How fake instances (and their controllers) reach the NLB: the real NlbApi calls over real
 * gRPC, through one shared channel, with faults applied on the way (NLB down, a partitioned
 * instance, stopped or slow heartbeats) and every call tracked for virtual time.
 *
 * The channel can live on a worker thread: requests are encoded here with the generated
 * serializers and sent to the NLB as bytes from there, so that gRPC's client half runs on the
 * second core while this thread runs the NLB and the fakes.
 */
import { createRequire } from 'node:module';
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

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 50,
  'grpc.max_reconnect_backoff_ms': 200,
  'grpc.max_receive_message_length': 16 * 1024 * 1024,
};
// Wall-clock deadline: generous, so that a loaded machine does not turn into simulated failures.
const CALL_TIMEOUT_MS = 30_000;

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

/** The worker's code (CommonJS, plain JavaScript: it must run from sources and from dist alike). */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const grpc = require(workerData.grpcPath);
const client = new grpc.Client(workerData.target, grpc.credentials.createInsecure(), workerData.options);
const same = (b) => b;
let out = [];
let scheduled = false;
const flush = () => {
  scheduled = false;
  const batch = out;
  out = [];
  parentPort.postMessage(batch, batch.flatMap((m) => (m.bytes ? [m.bytes] : [])));
};
parentPort.on('message', (batch) => {
  if (batch === 'close') {
    client.close();
    parentPort.close();
    return;
  }
  for (const m of batch) {
    client.makeUnaryRequest(m.path, same, same, Buffer.from(m.bytes), new grpc.Metadata(),
      { deadline: Date.now() + workerData.timeoutMs }, (e, r) => {
        if (e) out.push({ id: m.id, code: e.code, details: e.details });
        else out.push({ id: m.id, bytes: r.buffer.slice(r.byteOffset, r.byteOffset + r.byteLength) });
        if (!scheduled) { scheduled = true; setImmediate(flush); }
      });
  }
});
`;

interface Reply {
  id: number;
  bytes?: ArrayBuffer;
  code?: number;
  details?: string;
}

function workerTransport(target: string): Transport {
  const grpcPath = createRequire(import.meta.url).resolve('@grpc/grpc-js');
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { target, grpcPath, options: CHANNEL_OPTIONS, timeoutMs: CALL_TIMEOUT_MS },
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
