import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import {
  GetModuleInfoRequest,
  NLBServiceClient,
  type StreamNLBMetricsRequest,
} from '../../proto/gen/marchproxy/nlb.js';
import { HealthStatus } from '../../proto/gen/marchproxy/types.js';
import {
  callUnary,
  createClientConnection,
  serverStreamCall,
  unaryCall,
} from '../../services/shared/grpc/client.js';
import { createHarness, drain, HANG, rejectionOf } from './grpc-fixture.js';

const h = createHarness();
afterEach(() => h.closeAll());

const forever: StreamNLBMetricsRequest = { intervalSeconds: 0, metricNames: [], includeModules: false };

async function timed<T>(p: Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await p;
  return { value, ms: performance.now() - started };
}

describe('unaryCall', () => {
  it('returns the typed response', async () => {
    const { target } = await h.startServer();
    const res = await unaryCall(h.nlbClient({ target }), 'getNlbStatus', { includeModules: true });
    expect(res.status).toBe(HealthStatus.HEALTH_STATUS_HEALTHY);
    expect(res.registeredModules).toBe(2);
  });

  it("applies the connection's default deadline to calls that set none", async () => {
    const { target } = await h.startServer();
    const client = h.nlbClient({ target, timeoutMs: 200 });
    const call = unaryCall(client, 'getModuleInfo', GetModuleInfoRequest.fromPartial({ instanceId: HANG }));
    const { value: err, ms } = await timed(rejectionOf(call));
    expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(ms).toBeGreaterThanOrEqual(150);
    expect(ms).toBeLessThan(3_000);
  });

  it('lets a call set its own, shorter deadline', async () => {
    const { target } = await h.startServer();
    const client = h.nlbClient({ target, timeoutMs: 20_000 });
    const call = unaryCall(client, 'getModuleInfo', GetModuleInfoRequest.fromPartial({ instanceId: HANG }), {
      timeoutMs: 100,
    });
    const { value: err, ms } = await timed(rejectionOf(call));
    expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(ms).toBeLessThan(3_000);
  });

  it('cancels when the signal aborts', async () => {
    const { target } = await h.startServer();
    const ac = new AbortController();
    const call = unaryCall(
      h.nlbClient({ target }),
      'getModuleInfo',
      GetModuleInfoRequest.fromPartial({ instanceId: HANG }),
      { signal: ac.signal },
    );
    setTimeout(() => ac.abort(), 50);
    const { value: err, ms } = await timed(rejectionOf(call));
    expect(err.code).toBe(grpc.status.CANCELLED);
    expect(ms).toBeLessThan(3_000);
  });

  it('keeps the older callUnary helper working', async () => {
    const { target } = await h.startServer();
    const conn = createClientConnection({ target });
    const client = h.trackClient(new NLBServiceClient(conn.target, conn.credentials, conn.options));
    const res = await callUnary(conn, client.getNlbStatus, client, { includeModules: false });
    expect(res.version).toBe('1.2.3');
  });
});

describe('serverStreamCall', () => {
  it('is not cut by the default unary deadline, and breaking out cancels the server side', async () => {
    const { target, streams } = await h.startServer();
    const client = h.nlbClient({ target, timeoutMs: 100 });
    const started = performance.now();
    let count = 0;
    for await (const msg of serverStreamCall(client, 'streamNlbMetrics', forever)) {
      expect(msg.metrics[0].value).toBe(count);
      count++;
      if (performance.now() - started > 400) break;
    }
    expect(count).toBeGreaterThan(3);
    expect(await streams.nextEnd()).toBe('aborted');
  });

  it('ends the loop quietly when the signal aborts, and the server sees the cancel', async () => {
    const { target, streams } = await h.startServer();
    const ac = new AbortController();
    let count = 0;
    for await (const _ of serverStreamCall(h.nlbClient({ target }), 'streamNlbMetrics', forever, {
      signal: ac.signal,
    })) {
      if (++count === 2) ac.abort();
    }
    expect(count).toBe(2);
    expect(await streams.nextEnd()).toBe('aborted');
  });

  it('yields every message of a stream the server ends', async () => {
    const { target, streams } = await h.startServer();
    const values: number[] = [];
    const request = { ...forever, metricNames: ['finite'] };
    for await (const msg of serverStreamCall(h.nlbClient({ target }), 'streamNlbMetrics', request)) {
      values.push(msg.metrics[0].value);
    }
    expect(values).toEqual([0, 1, 2]);
    expect(await streams.nextEnd()).toBe('done');
  });

  it('honours a deadline the caller sets', async () => {
    const { target } = await h.startServer();
    const stream = serverStreamCall(h.nlbClient({ target }), 'streamNlbMetrics', forever, { timeoutMs: 150 });
    const err = await rejectionOf(drain(stream));
    expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED);
  });
});
