/**
 * Thin adapters from async service functions to grpc-js handlers. They own the edge
 * concerns every RPC shares: error mapping (error-edge.ts), one log line per call, and an
 * observer hook for metrics. Service code stays `async (request, ctx) => response`.
 */
import {
  status,
  type Metadata,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
} from '@grpc/grpc-js';
import type { Error as ProtoError } from '../../../proto/gen/marchproxy/types.js';
import type { Logger } from '../logger.js';
import type { Clock } from '../clock.js';
import { ROLES, type Role, type TokenScope } from '../auth.js';
import { classifyFailure, envelopeAllowed, toProtoError, toServiceError } from './error-edge.js';

/** What a handler knows about its caller. */
export interface CallContext {
  /** Full method path, e.g. "/marchproxy.NLBService/ListModules". */
  method: string;
  metadata: Metadata;
  /** The authenticated principal, set by the auth interceptor ("anonymous" when auth is off). */
  principal: string;
  /** The principal's role ("admin" when auth is off: everyone may do everything). */
  role: Role;
  /** A module token's scope, when it has one. */
  scope?: TokenScope;
  /** Peer address as grpc-js reports it. */
  peer: string;
  /** Aborted when the client cancels or the deadline passes. */
  signal: AbortSignal;
}

/** Called once per finished RPC: the metrics hook. */
export type CallObserver = (method: string, code: status, durationMs: number) => void;

export interface HandlerDeps {
  logger: Logger;
  clock: Clock;
  observe?: CallObserver;
}

/** The principal the auth interceptor attached, carried in metadata under this key. */
export const PRINCIPAL_METADATA_KEY = 'x-mp-principal';
/** The principal's role and scope (JSON), also written only by the auth interceptor. */
export const ROLE_METADATA_KEY = 'x-mp-role';
export const SCOPE_METADATA_KEY = 'x-mp-scope';

function scopeOf(raw: unknown): TokenScope | undefined {
  if (typeof raw !== 'string') return undefined;
  try {
    return JSON.parse(raw) as TokenScope;
  } catch {
    return undefined;
  }
}

function contextOf(
  call: ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>,
  method: string,
): CallContext {
  // grpc-js emits 'cancelled' after every finished call too; create the AbortController (and
  // the DOMException its abort() builds) only for handlers that look at the signal.
  let ac: AbortController | undefined;
  let cancelled = false;
  call.on('cancelled', () => {
    cancelled = true;
    ac?.abort();
  });
  const principal = call.metadata.get(PRINCIPAL_METADATA_KEY)[0];
  const role = call.metadata.get(ROLE_METADATA_KEY)[0];
  return {
    method,
    metadata: call.metadata,
    principal: typeof principal === 'string' ? principal : 'anonymous',
    // Servers without the interceptor run without auth: every caller is an admin.
    role: ROLES.includes(role as Role) ? (role as Role) : 'admin',
    scope: scopeOf(call.metadata.get(SCOPE_METADATA_KEY)[0]),
    peer: call.getPeer(),
    get signal() {
      if (!ac) {
        ac = new AbortController();
        if (cancelled) ac.abort();
      }
      return ac.signal;
    },
  };
}

function finish(
  deps: HandlerDeps,
  method: string,
  code: status,
  startedMs: number,
  extra?: Record<string, unknown>,
) {
  const durationMs = performance.now() - startedMs;
  deps.observe?.(method, code, durationMs);
  const fields = { method, code: status[code], ms: Math.round(durationMs * 100) / 100, ...extra };
  if (code === status.OK) deps.logger.debug('rpc', fields);
  else deps.logger.info('rpc', fields);
}

/** A unary RPC whose failures are gRPC status codes. */
export function unary<Req, Res>(
  deps: HandlerDeps,
  method: string,
  fn: (request: Req, ctx: CallContext) => Promise<NoInfer<Res>> | NoInfer<Res>,
) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    const started = performance.now();
    const ctx = contextOf(call, method);
    Promise.resolve()
      .then(() => fn(call.request, ctx))
      .then(
        (res) => {
          finish(deps, method, status.OK, started);
          callback(null, res);
        },
        (err: unknown) => {
          const f = classifyFailure(err, deps.logger, method);
          finish(deps, method, f.grpcStatus, started, { error: f.message });
          callback(toServiceError(f));
        },
      );
  };
}

/** The envelope fields a response with success/error carries. */
export interface Envelope {
  success: boolean;
  message: string;
  error?: ProtoError | undefined;
}

/**
 * A unary RPC whose response has `success`/`message`/`error`: domain failures go inside the
 * response under gRPC OK (DESIGN.md §6); authentication failures and bugs stay gRPC statuses.
 * `failed` builds the rest of a failure response (e.g. empty lists) around the envelope.
 */
export function unaryEnvelope<Req, Res extends Envelope>(
  deps: HandlerDeps,
  method: string,
  fn: (request: Req, ctx: CallContext) => Promise<NoInfer<Res>> | NoInfer<Res>,
  failed: (envelope: Envelope) => NoInfer<Res>,
) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    const started = performance.now();
    const ctx = contextOf(call, method);
    Promise.resolve()
      .then(() => fn(call.request, ctx))
      .then(
        (res) => {
          finish(deps, method, status.OK, started, res.success ? undefined : { failure: res.message });
          callback(null, res);
        },
        (err: unknown) => {
          const f = classifyFailure(err, deps.logger, method);
          if (envelopeAllowed(f)) {
            finish(deps, method, status.OK, started, { failure: f.message, kind: f.domain.kind });
            callback(
              null,
              failed({
                success: false,
                message: f.message,
                error: toProtoError(f.domain, deps.clock.nowDate()),
              }),
            );
            return;
          }
          finish(deps, method, f.grpcStatus, started, { error: f.message });
          callback(toServiceError(f));
        },
      );
  };
}

/**
 * A server-streaming RPC. `fn` writes through `send` and returns when the stream is done;
 * it must stop when `ctx.signal` aborts (client cancel). Errors end the stream with a status.
 */
export function serverStream<Req, Res>(
  deps: HandlerDeps,
  method: string,
  fn: (request: Req, send: (msg: Res) => Promise<void>, ctx: CallContext) => Promise<void>,
) {
  return (call: ServerWritableStream<Req, Res>): void => {
    const started = performance.now();
    const ctx = contextOf(call, method);
    // Respect back-pressure: a slow subscriber waits on its own stream, nobody else's.
    const send = (msg: Res) =>
      new Promise<void>((resolve) => {
        if (ctx.signal.aborted) return resolve();
        if (call.write(msg)) return resolve();
        const done = () => {
          call.off('drain', done);
          ctx.signal.removeEventListener('abort', done);
          resolve();
        };
        call.on('drain', done);
        ctx.signal.addEventListener('abort', done);
      });
    Promise.resolve()
      .then(() => fn(call.request, send, ctx))
      .then(
        () => {
          finish(deps, method, ctx.signal.aborted ? status.CANCELLED : status.OK, started);
          if (!ctx.signal.aborted) call.end();
        },
        (err: unknown) => {
          const f = classifyFailure(err, deps.logger, method);
          finish(deps, method, f.grpcStatus, started, { error: f.message });
          // grpc-js sends the status from the stream's 'error' handler; destroy() would skip
          // it (a destroyed stream never runs _final), leaving the client waiting forever.
          if (!ctx.signal.aborted) call.emit('error', Object.assign(new Error(f.message), toServiceError(f)));
        },
      );
  };
}
