/**
 * Shared pieces for the gRPC integration tests: a tiny NLBService built with the real handler
 * wrappers, well-known tokens, and a harness that starts servers and clients on loopback and
 * closes every one of them afterwards.
 */
import * as grpc from '@grpc/grpc-js';
import {
  GetModuleInfoResponse,
  GetNLBStatusResponse,
  NLBServiceService,
  StreamNLBMetricsResponse,
  UpdateNLBConfigResponse,
  type NLBServiceClient,
  type NLBServiceServer,
} from '../../proto/gen/marchproxy/nlb.js';
import { HealthStatus } from '../../proto/gen/marchproxy/types.js';
import type { AuthConfig } from '../../services/shared/auth.js';
import { createSystemClock } from '../../services/shared/clock.js';
import { DomainError, ERROR_KINDS, type ErrorKind } from '../../services/shared/errors.js';
import {
  createClientConnection,
  createNlbClient,
  type ClientConnectionOptions,
} from '../../services/shared/grpc/client.js';
import { serverStream, unary, unaryEnvelope, type HandlerDeps } from '../../services/shared/grpc/handlers.js';
import {
  createGrpcServer,
  type GrpcServer,
  type GrpcServerOptions,
} from '../../services/shared/grpc/server.js';
import { silentLogger } from '../../services/shared/logger.js';

export const TOKENS = {
  admin: 'adm-0f3c9a7e5b1d4c2a',
  module: 'mod-8e2b6d4f0a9c7e1b',
  read: 'rd-5a1c3e7b9d2f4a6c',
} as const;

export const AUTH_CONFIG: AuthConfig = {
  enabled: true,
  tokens: [
    { name: 'ops', role: 'admin', token: TOKENS.admin },
    { name: 'alb-1', role: 'module', token: TOKENS.module },
    { name: 'viewer', role: 'read', token: TOKENS.read },
  ],
};

/** Instance ids GetModuleInfo understands besides the error kinds. */
export const CRASH = 'crash';
export const HANG = 'hang';
export const INTERNAL_SECRET = 'db password is hunter2';

export type StreamEnd = 'aborted' | 'done';

export interface StreamEvents {
  /** Resolves with how the next StreamNLBMetrics handler to finish ended (in finishing order). */
  nextEnd(): Promise<StreamEnd>;
}

function createStreamEvents(): StreamEvents & { record(how: StreamEnd): void } {
  const ended: StreamEnd[] = [];
  const waiters: Array<(how: StreamEnd) => void> = [];
  return {
    record(how) {
      const waiter = waiters.shift();
      if (waiter) waiter(how);
      else ended.push(how);
    },
    nextEnd() {
      const how = ended.shift();
      return how ? Promise.resolve(how) : new Promise((resolve) => waiters.push(resolve));
    },
  };
}

/**
 * An NLBService with four real RPCs: GetNLBStatus echoes what the handler saw (principal,
 * whether credentials reached it); GetModuleInfo throws the DomainError kind named by the
 * instance id; UpdateNLBConfig does the same inside the envelope; StreamNLBMetrics sends a
 * snapshot every few ms (three then done when metric_names has "finite"). Everything else
 * answers UNIMPLEMENTED.
 */
export function testNlbService(deps: HandlerDeps): {
  impl: Partial<NLBServiceServer>;
  streams: StreamEvents;
} {
  const streams = createStreamEvents();
  const fail = (kind: string): never => {
    if (ERROR_KINDS.includes(kind as ErrorKind)) {
      throw new DomainError(kind as ErrorKind, `instance ${kind} failed: try again with a real id`, {
        field: 'instance_id',
      });
    }
    throw new Error(INTERNAL_SECRET);
  };
  const impl: Partial<NLBServiceServer> = {
    getNlbStatus: unary(deps, NLBServiceService.getNlbStatus.path, (_req, ctx) =>
      GetNLBStatusResponse.fromPartial({
        status: HealthStatus.HEALTH_STATUS_HEALTHY,
        version: '1.2.3',
        registeredModules: 2,
        details: {
          principal: ctx.principal,
          authorizationSeen: String(ctx.metadata.get('authorization').length),
        },
      }),
    ),
    getModuleInfo: unary(deps, NLBServiceService.getModuleInfo.path, async (req, ctx) => {
      if (req.instanceId === HANG) {
        await deps.clock.sleep(60_000, ctx.signal).catch(() => undefined);
        return GetModuleInfoResponse.fromPartial({});
      }
      if (req.instanceId === 'ok' || req.instanceId.startsWith('big:')) {
        return GetModuleInfoResponse.fromPartial({ details: { size: String(req.instanceId.length) } });
      }
      return fail(req.instanceId);
    }),
    updateNlbConfig: unaryEnvelope(
      deps,
      NLBServiceService.updateNlbConfig.path,
      (req) => {
        const kind = req.config?.configType ?? '';
        if (kind === 'ok') return UpdateNLBConfigResponse.fromPartial({ success: true, message: 'applied' });
        return fail(kind);
      },
      (envelope) => UpdateNLBConfigResponse.fromPartial(envelope),
    ),
    streamNlbMetrics: serverStream(deps, NLBServiceService.streamNlbMetrics.path, async (req, send, ctx) => {
      const finite = req.metricNames.includes('finite');
      for (let i = 0; !ctx.signal.aborted && (!finite || i < 3); i++) {
        await send(
          StreamNLBMetricsResponse.fromPartial({
            metrics: [{ name: 'seq', value: i, labels: { principal: ctx.principal } }],
          }),
        );
        await deps.clock.sleep(10, ctx.signal).catch(() => undefined);
      }
      streams.record(ctx.signal.aborted ? 'aborted' : 'done');
    }),
  };
  return { impl, streams };
}

export interface StartedServer {
  grpcServer: GrpcServer;
  port: number;
  target: string;
  streams: StreamEvents;
}

/** Starts servers and clients for one test file and closes them all in `closeAll()`. */
export function createHarness() {
  const servers: GrpcServer[] = [];
  const clients: grpc.Client[] = [];
  return {
    /** A server with the test NLBService on 127.0.0.1, port 0. */
    async startServer(
      opts: Partial<GrpcServerOptions> = {},
      deps?: Partial<HandlerDeps>,
    ): Promise<StartedServer> {
      const logger = opts.logger ?? silentLogger();
      const grpcServer = createGrpcServer({ ...opts, logger });
      servers.push(grpcServer);
      const { impl, streams } = testNlbService({ logger, clock: createSystemClock(), ...deps });
      grpcServer.addService(NLBServiceService, impl as NLBServiceServer, 'marchproxy.NLBService');
      const { port } = await grpcServer.start('127.0.0.1', 0);
      return { grpcServer, port, target: `127.0.0.1:${port}`, streams };
    },
    /** Keeps track of a server started by the test itself. */
    track(server: GrpcServer): GrpcServer {
      servers.push(server);
      return server;
    },
    /** An NLBService client; closed by closeAll(). */
    nlbClient(opts: ClientConnectionOptions): NLBServiceClient {
      const client = createNlbClient(createClientConnection({ timeoutMs: 5_000, ...opts }));
      clients.push(client);
      return client;
    },
    /** Keeps track of a client made by the test itself. */
    trackClient<C extends grpc.Client>(client: C): C {
      clients.push(client);
      return client;
    },
    async closeAll(): Promise<void> {
      for (const c of clients.splice(0)) c.close();
      await Promise.all(servers.splice(0).map((s) => s.stop(1_000)));
    },
  };
}

/** The rejection of `p` (fails the test when `p` resolves). */
export async function rejectionOf(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as grpc.ServiceError;
  }
  throw new Error('expected the call to fail, but it succeeded');
}

/** Reads a stream to its end, discarding messages; rejects with the stream's failure. */
export async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of stream) {
    // discard
  }
}
