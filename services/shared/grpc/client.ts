/**
 * Client-side gRPC factory: channel credentials (plaintext, TLS, mutual TLS from files),
 * a bearer token on every call, keepalive, message size limits and per-call deadlines, plus
 * promise and async-iterator helpers over the generated clients.
 */
import * as grpc from '@grpc/grpc-js';
import { ModuleServiceClient } from '../../../proto/gen/marchproxy/module.js';
import { NLBServiceClient } from '../../../proto/gen/marchproxy/nlb.js';
import { readPemFile } from './pem.js';

export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_CALL_TIMEOUT_MS = 10_000;

export interface ClientTlsOptions {
  /** PEM file of the CA that signed the server certificate; system roots when omitted. */
  caFile?: string;
  /** PEM certificate and key files for mutual TLS. */
  certFile?: string;
  keyFile?: string;
  /** Expected server name when it differs from the target host (e.g. "localhost"). */
  serverName?: string;
}

export interface ClientConnectionOptions {
  /** host:port (also [v6]:port, or any grpc-js target such as xds:///name). */
  target: string;
  /** Bearer token sent as `authorization: Bearer <token>`. */
  token?: string;
  /** TLS settings; plaintext when omitted or false. */
  tls?: ClientTlsOptions | false;
  /** Deadline for unary calls that set none (default 10 s); streams are not limited. */
  timeoutMs?: number;
  maxMessageBytes?: number;
  /** Extra grpc-js channel options. */
  channelOptions?: grpc.ChannelOptions;
}

export interface ClientConnection {
  readonly target: string;
  readonly credentials: grpc.ChannelCredentials;
  /** Channel options, including the interceptor that adds the token. */
  readonly options: grpc.ClientOptions;
  /** A deadline `timeoutMs` from now (default 10 s). */
  deadline(timeoutMs?: number): Date;
}

/** Channel credentials for the given TLS settings. */
export function channelCredentials(tls: ClientTlsOptions | false | undefined): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  if ((tls.certFile && !tls.keyFile) || (!tls.certFile && tls.keyFile)) {
    throw new Error('mutual TLS needs both a client certificate and its key (--cert and --key)');
  }
  return grpc.credentials.createSsl(
    tls.caFile ? readPemFile(tls.caFile, 'CA') : null,
    tls.keyFile ? readPemFile(tls.keyFile, 'client key') : null,
    tls.certFile ? readPemFile(tls.certFile, 'client certificate') : null,
  );
}

/** An interceptor that adds `authorization: Bearer <token>` to every call. */
export function bearerTokenInterceptor(token: string): grpc.Interceptor {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

/**
 * An interceptor that gives every unary call without a deadline one `timeoutMs` from its start,
 * so that a hung server cannot hang a caller. Streams are left alone: they are meant to last.
 */
export function defaultDeadlineInterceptor(timeoutMs: number): grpc.Interceptor {
  return (options, nextCall) => {
    const streaming = options.method_definition.requestStream || options.method_definition.responseStream;
    const withDeadline =
      streaming || options.deadline !== undefined
        ? options
        : { ...options, deadline: Date.now() + timeoutMs };
    return new grpc.InterceptingCall(nextCall(withDeadline));
  };
}

/** Resolves everything a generated client needs to reach `target`. */
export function createClientConnection(opts: ClientConnectionOptions): ClientConnection {
  const maxBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const options: grpc.ClientOptions = {
    'grpc.max_receive_message_length': maxBytes,
    'grpc.max_send_message_length': maxBytes,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 0,
    ...(opts.tls && opts.tls.serverName ? { 'grpc.ssl_target_name_override': opts.tls.serverName } : {}),
    ...opts.channelOptions,
    interceptors: [
      ...(opts.token ? [bearerTokenInterceptor(opts.token)] : []),
      defaultDeadlineInterceptor(opts.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS),
    ],
  };
  const defaultTimeout = opts.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  return {
    target: opts.target,
    credentials: channelCredentials(opts.tls),
    options,
    deadline: (ms) => new Date(Date.now() + (ms ?? defaultTimeout)),
  };
}

/** A generated NLBService client. Close it with `.close()`. */
export function createNlbClient(conn: ClientConnection): NLBServiceClient {
  return new NLBServiceClient(conn.target, conn.credentials, conn.options);
}

/** A generated ModuleService client. Close it with `.close()`. */
export function createModuleClient(conn: ClientConnection): ModuleServiceClient {
  return new ModuleServiceClient(conn.target, conn.credentials, conn.options);
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (error: grpc.ServiceError | null, response: Res) => void,
) => grpc.ClientUnaryCall;

/** Calls a generated client's unary method as a promise, with the connection's deadline. */
export function callUnary<Req, Res>(
  conn: ClientConnection,
  method: UnaryMethod<Req, Res>,
  thisArg: grpc.Client,
  request: Req,
  timeoutMs?: number,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(thisArg, request, new grpc.Metadata(), { deadline: conn.deadline(timeoutMs) }, (err, res) =>
      err ? reject(err) : resolve(res),
    );
  });
}

/** Per-call settings for `unaryCall` and `serverStreamCall`. */
export interface CallSettings {
  /** Deadline from now; for unary calls the connection's default applies when omitted. */
  timeoutMs?: number;
  /** Absolute deadline; wins over timeoutMs. */
  deadline?: Date;
  /** Cancels the call (the promise rejects with CANCELLED; a stream just ends). */
  signal?: AbortSignal;
  metadata?: grpc.Metadata;
}

type UnaryParts<F> = F extends (
  request: infer Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (error: grpc.ServiceError | null, response: infer Res) => void,
) => grpc.ClientUnaryCall
  ? [Req, Res]
  : never;

type StreamParts<F> = F extends (
  request: infer Req,
  metadata?: grpc.Metadata,
  options?: Partial<grpc.CallOptions>,
) => grpc.ClientReadableStream<infer Res>
  ? [Req, Res]
  : never;

/** Names of a generated client's unary methods, e.g. "getNlbStatus". */
export type UnaryMethodName<C> = {
  [K in keyof C]-?: [UnaryParts<C[K]>] extends [never] ? never : K;
}[keyof C];
/** Names of a generated client's server-streaming methods, e.g. "streamNlbMetrics". */
export type StreamMethodName<C> = {
  [K in keyof C]-?: [StreamParts<C[K]>] extends [never] ? never : K;
}[keyof C];
export type UnaryRequest<C, K extends keyof C> = UnaryParts<C[K]>[0];
export type UnaryResponse<C, K extends keyof C> = UnaryParts<C[K]>[1];
export type StreamRequest<C, K extends keyof C> = StreamParts<C[K]>[0];
export type StreamResponse<C, K extends keyof C> = StreamParts<C[K]>[1];

function callOptions(settings: CallSettings): Partial<grpc.CallOptions> {
  if (settings.deadline) return { deadline: settings.deadline };
  if (settings.timeoutMs !== undefined) return { deadline: new Date(Date.now() + settings.timeoutMs) };
  return {};
}

/**
 * Calls a unary method of a generated client by name and returns a promise of the response,
 * typed from the client: `await unaryCall(nlb, 'getNlbStatus', { includeModules: true })`.
 * Failures reject with the grpc-js ServiceError (its `code` is the gRPC status).
 */
export function unaryCall<C extends grpc.Client, K extends UnaryMethodName<C>>(
  client: C,
  method: K,
  request: UnaryRequest<C, K>,
  settings: CallSettings = {},
): Promise<UnaryResponse<C, K>> {
  type Fn = (
    request: UnaryRequest<C, K>,
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
    callback: (error: grpc.ServiceError | null, response: UnaryResponse<C, K>) => void,
  ) => grpc.ClientUnaryCall;
  const fn = client[method] as Fn;
  return new Promise((resolve, reject) => {
    const { signal } = settings;
    const call = fn.call(
      client,
      request,
      settings.metadata ?? new grpc.Metadata(),
      callOptions(settings),
      (err, res) => {
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(res);
      },
    );
    const onAbort = () => call.cancel();
    if (signal?.aborted) call.cancel();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Opens a server stream of a generated client by name as an async iterable. Breaking out of
 * the loop, or aborting `settings.signal`, cancels the call on the server; a failure status
 * is thrown from the loop as the grpc-js ServiceError.
 */
export async function* serverStreamCall<C extends grpc.Client, K extends StreamMethodName<C>>(
  client: C,
  method: K,
  request: StreamRequest<C, K>,
  settings: CallSettings = {},
): AsyncGenerator<StreamResponse<C, K>, void, undefined> {
  type Fn = (
    request: StreamRequest<C, K>,
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
  ) => grpc.ClientReadableStream<StreamResponse<C, K>>;
  const { signal } = settings;
  if (signal?.aborted) return;
  const fn = client[method] as Fn;
  const call = fn.call(client, request, settings.metadata ?? new grpc.Metadata(), callOptions(settings));
  const onAbort = () => call.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const message of call) yield message as StreamResponse<C, K>;
  } catch (err) {
    // Cancelling is how the caller said "enough": end the loop instead of failing it.
    if (signal?.aborted && (err as Partial<grpc.ServiceError>).code === grpc.status.CANCELLED) return;
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    call.cancel();
  }
}
