/**
 * The simulator's link to the NLB: the worker thread's lean HTTP/2 gRPC client must read
 * what a grpc-js server sends — replies, statuses in trailers-only responses with their
 * percent-encoded messages — and turn a server that goes away into UNAVAILABLE.
 */
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { NLBServiceService } from '../../proto/gen/marchproxy/nlb.js';
import { createManualClock } from '../../services/shared/clock.js';
import { createNlbLink, type NlbLink } from '../../simulator/engine/nlb-link.js';
import { createInflight } from '../../simulator/engine/virtual-time.js';

const open: Array<{ close(): void }> = [];
afterEach(() => {
  for (const o of open.splice(0)) o.close();
});

/** A grpc-js server whose Heartbeat answers by instance id; resolves with its port. */
async function server(): Promise<{ port: number; server: grpc.Server }> {
  const s = new grpc.Server();
  s.addService(NLBServiceService, {
    heartbeat: (
      call: grpc.ServerUnaryCall<{ instanceId: string }, unknown>,
      done: grpc.sendUnaryData<unknown>,
    ) => {
      const id = call.request.instanceId;
      if (id === 'refused')
        done({ code: grpc.status.PERMISSION_DENIED, details: 'no token for alb-1 (100 % sure)' });
      else
        done(null, {
          acknowledged: true,
          message: `hello ${id}`,
          shouldReload: false,
          shouldScale: false,
          instructions: { drain: 'true' },
        });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    s.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  open.push({ close: () => s.forceShutdown() });
  return { port, server: s };
}

function link(port: number): NlbLink {
  const l = createNlbLink({
    target: `127.0.0.1:${port}`,
    clock: createManualClock(0),
    inflight: createInflight(),
    policy: { blocked: () => null, delayMs: () => 0 },
  });
  open.push(l);
  return l;
}

const beat = (l: NlbLink, instanceId: string) =>
  l.api().heartbeat({ instanceId, registrationId: 'r1', status: 0, timestamp: new Date(0) });

describe('the NLB link on its worker thread', () => {
  it('carries unary calls and their replies, many at once', { timeout: 20_000 }, async () => {
    const { port } = await server();
    const l = link(port);
    const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => beat(l, `alb-${i}`)));
    expect(replies[0]).toMatchObject({
      acknowledged: true,
      message: 'hello alb-0',
      instructions: { drain: 'true' },
    });
    expect(replies.map((r) => r.message)).toEqual(Array.from({ length: 200 }, (_, i) => `hello alb-${i}`));
  });

  it(
    'reports a status from a trailers-only response with its message decoded',
    { timeout: 20_000 },
    async () => {
      const { port } = await server();
      await expect(beat(link(port), 'refused')).rejects.toMatchObject({
        code: grpc.status.PERMISSION_DENIED,
        details: 'no token for alb-1 (100 % sure)',
      });
    },
  );

  it(
    'fails with UNAVAILABLE when nothing listens, and reaches a server that comes back',
    { timeout: 20_000 },
    async () => {
      const { port, server: s } = await server();
      const l = link(port);
      expect((await beat(l, 'a')).acknowledged).toBe(true);
      s.forceShutdown();
      await expect(beat(l, 'b')).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
      // The same port again (an NLB restart): the next call connects anew.
      const again = new grpc.Server();
      again.addService(NLBServiceService, {
        heartbeat: (_c: unknown, done: grpc.sendUnaryData<unknown>) =>
          done(null, {
            acknowledged: true,
            message: 'back',
            shouldReload: false,
            shouldScale: false,
            instructions: {},
          }),
      });
      await new Promise<void>((resolve, reject) =>
        again.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e) =>
          e ? reject(e) : resolve(),
        ),
      );
      open.push({ close: () => again.forceShutdown() });
      expect((await beat(l, 'c')).message).toBe('back');
    },
  );
});
