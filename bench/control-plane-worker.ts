/**
 * A load-generator process of the control-plane benchmark. It owns a slice of the fake
 * instances, registers them and sends their heartbeats with `inflight` calls outstanding on
 * one gRPC channel, and reports counts and a latency histogram over IPC.
 * One Node client process tops out near 7k unary calls/s, so the parent runs several.
 */
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { NLBServiceClient } from '../proto/gen/marchproxy/nlb.js';
import { HealthStatus } from '../proto/gen/marchproxy/types.js';
import { createClientConnection } from '../services/shared/grpc/client.js';
import {
  Histogram,
  instanceId,
  moduleStats,
  newCounters,
  registerRequest,
  type FakeCounters,
  type FromWorker,
  type PhaseResult,
  type ToWorker,
} from './control-plane-shared.js';

type Init = Extract<ToWorker, { type: 'init' }>;
type Done = (err: grpc.ServiceError | null, acknowledged: boolean, refusal?: string) => void;

const send = (m: FromWorker) => process.send?.(m);

let init: Init | undefined;
let client: NLBServiceClient | undefined;
let registrationIds: string[] = [];
let ids: string[] = [];
let counters: FakeCounters[] = [];
const since = new Date();
/** Stops the running phase (hb-stop). */
let stopPhase: (() => void) | undefined;

/**
 * Issues calls `0..total-1` with at most `inflight` outstanding, as fast as answers come back
 * or, with `ratePerSecond`, paced to that rate, until `total` is reached, `durationMs` passes
 * or the phase is stopped; resolves when the last answer is in.
 */
function runPhase(
  total: number,
  durationMs: number,
  ratePerSecond: number,
  issue: (k: number, done: Done) => void,
): Promise<PhaseResult> {
  const { inflight } = init!;
  const hist = new Histogram();
  const result: PhaseResult = {
    answered: 0,
    acknowledged: 0,
    refused: 0,
    errors: 0,
    errorSamples: [],
    elapsedMs: 0,
    histogram: [],
  };
  return new Promise((resolve) => {
    let next = 0;
    let outstanding = 0;
    let stopped = false;
    let finished = false;
    const t0 = performance.now();
    const timer = durationMs > 0 ? setTimeout(() => (stopped = true), durationMs) : undefined;
    let pacer: NodeJS.Timeout | undefined;
    stopPhase = () => (stopped = true);
    const sample = (msg: string) => {
      if (result.errorSamples.length < 5) result.errorSamples.push(msg);
    };
    const over = () => stopped || next >= total;
    const finish = () => {
      if (finished || outstanding > 0) return;
      finished = true;
      clearTimeout(timer);
      clearInterval(pacer);
      stopPhase = undefined;
      result.elapsedMs = performance.now() - t0;
      result.histogram = hist.counts;
      resolve(result);
    };
    const launch = () => {
      const k = next++;
      outstanding++;
      const started = performance.now();
      issue(k, (err, acknowledged, refusal) => {
        outstanding--;
        hist.record(performance.now() - started);
        if (err) {
          result.errors++;
          sample(`${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`);
        } else {
          result.answered++;
          if (acknowledged) result.acknowledged++;
          else {
            result.refused++;
            sample(`refused: ${refusal ?? ''}`);
          }
        }
        if (over()) finish();
        else if (!ratePerSecond) launch();
      });
    };
    if (ratePerSecond > 0) {
      pacer = setInterval(() => {
        if (over()) return finish();
        const due = Math.floor(((performance.now() - t0) / 1000) * ratePerSecond) - next;
        for (let i = 0; i < due && outstanding < inflight && !over(); i++) launch();
      }, 5);
    } else {
      for (let i = 0; i < inflight && !over(); i++) launch();
    }
    if (total === 0) finish();
  });
}

function register(): Promise<PhaseResult> {
  const { first, count, timeoutMs } = init!;
  registrationIds = new Array<string>(count).fill('');
  return runPhase(count, 0, 0, (k, done) => {
    client!.registerModule(
      registerRequest(first + k),
      new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
      (err, res) => {
        if (!err && res.success) registrationIds[k] = res.registrationId;
        done(err, !err && res.success, res?.message);
      },
    );
  });
}

function heartbeats(durationMs: number, passes: number, ratePerSecond: number): Promise<PhaseResult> {
  const { count, timeoutMs } = init!;
  const total = passes > 0 ? passes * count : Infinity;
  return runPhase(total, durationMs, ratePerSecond, (k, done) => {
    const i = k % count;
    client!.heartbeat(
      {
        instanceId: ids[i],
        registrationId: registrationIds[i],
        status: HealthStatus.HEALTH_STATUS_HEALTHY,
        currentStats: moduleStats(ids[i], counters[i], since),
        timestamp: new Date(),
      },
      new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
      (err, res) => done(err, !err && res.acknowledged, res?.message),
    );
  });
}

async function handle(m: ToWorker): Promise<void> {
  switch (m.type) {
    case 'init': {
      init = m;
      ids = Array.from({ length: m.count }, (_, k) => instanceId(m.first + k));
      counters = ids.map(() => newCounters());
      // The load generator, not the NLB, is the scarce resource here: call the generated
      // client directly with an explicit deadline and without per-call interceptors.
      const conn = createClientConnection({ target: m.target, timeoutMs: m.timeoutMs });
      client = new NLBServiceClient(conn.target, conn.credentials, { ...conn.options, interceptors: [] });
      await new Promise<void>((resolve, reject) =>
        client!.waitForReady(Date.now() + m.timeoutMs, (err) => (err ? reject(err) : resolve())),
      );
      send({ type: 'ready' });
      return;
    }
    case 'register':
      send({ type: 'registered', result: await register() });
      return;
    case 'hb-start':
      send({ type: 'hb-done', result: await heartbeats(m.durationMs, m.passes, m.ratePerSecond) });
      return;
    case 'hb-stop':
      stopPhase?.();
      return;
    case 'exit':
      client?.close();
      process.exit(0);
  }
}

process.on('message', (m: ToWorker) => {
  handle(m).catch((e: unknown) => {
    send({ type: 'failed', message: e instanceof Error ? e.message : String(e) });
    process.exit(1);
  });
});
// The parent went away (killed, Ctrl-C): do not linger.
process.on('disconnect', () => process.exit(0));
process.on('SIGINT', () => undefined);
