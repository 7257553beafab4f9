/**
 * Invokes any contract RPC from JSON, like grpcurl: the request goes through the generated
 * `fromJSON` and serializer, the response comes back through the generated deserializer and
 * `toJSON`. Failures come back as CliFailure (exit-codes.ts) naming where the call went.
 */
import * as grpc from '@grpc/grpc-js';
import type { ClientConnection } from '../services/shared/grpc/client.js';
import {
  envelopeFailure,
  grpcFailure,
  isFailedEnvelope,
  isServiceError,
  usageFailure,
  type CallTarget,
} from './exit-codes.js';
import type { RequestSchema } from './request-schema.js';
import type { RpcMethod } from './rpc-registry.js';

/** What every call needs. */
export interface RpcCallOptions {
  conn: ClientConnection;
  rpc: RpcMethod;
  /** The decoded request, from `requestFromJson`. */
  request: unknown;
  /** Where the call goes, for failure messages. */
  target: CallTarget;
}

/** Checks request JSON against the contract and converts it with the generated `fromJSON`. */
export function requestFromJson(rpc: RpcMethod, json: unknown, schema: RequestSchema | undefined): unknown {
  const problems = schema
    ? schema.check(rpc.requestType, json)
    : typeof json === 'object' && json !== null && !Array.isArray(json)
      ? []
      : ['the request must be a JSON object'];
  if (problems.length > 0) throw usageFailure(`--data: ${problems.join('; ')}`);
  return rpc.request.fromJSON(json);
}

function failure(err: unknown, target: CallTarget): Error {
  if (isServiceError(err)) return grpcFailure(err, target);
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * Calls a unary RPC with a deadline `timeoutMs` from now and returns the response as protobuf
 * JSON. A response with `success: false` rejects with an envelope failure carrying it.
 */
export async function callUnary(opts: RpcCallOptions & { timeoutMs: number }): Promise<unknown> {
  const { conn, rpc, request, target } = opts;
  const client = new grpc.Client(conn.target, conn.credentials, conn.options);
  try {
    const decoded = await new Promise<unknown>((resolve, reject) => {
      client.makeUnaryRequest(
        rpc.definition.path,
        (value: unknown) => rpc.definition.requestSerialize(value),
        (bytes: Buffer) => rpc.definition.responseDeserialize(bytes),
        request,
        new grpc.Metadata(),
        { deadline: conn.deadline(opts.timeoutMs) },
        (err, response) => (err ? reject(failure(err, target)) : resolve(response)),
      );
    });
    const json = rpc.response.toJSON(decoded);
    if (isFailedEnvelope(decoded)) throw envelopeFailure(rpc.fullName, decoded, json);
    return json;
  } finally {
    client.close();
  }
}

/** Why a stream ended. */
export type StreamStop = 'server-ended' | 'max-messages' | 'duration' | 'aborted';

/** Options for a server-streaming call. Without limits it runs until the server ends it. */
export interface StreamCallOptions extends RpcCallOptions {
  /** Cancel after this many messages. */
  maxMessages?: number;
  /** Cancel after this long. */
  durationMs?: number;
  /** Cancel when this aborts (e.g. Ctrl-C). */
  signal?: AbortSignal;
  /** Receives each message as protobuf JSON, in order. */
  onMessage(json: unknown): void;
}

/**
 * Runs a server-streaming RPC (no deadline: streams are long-lived) until the server ends it
 * or a limit is reached; then it cancels the call so the server sees CANCELLED and stops.
 */
export async function callServerStream(
  opts: StreamCallOptions,
): Promise<{ messages: number; stop: StreamStop }> {
  const { conn, rpc, request, target } = opts;
  const client = new grpc.Client(conn.target, conn.credentials, conn.options);
  try {
    return await new Promise((resolve, reject) => {
      const call = client.makeServerStreamRequest(
        rpc.definition.path,
        (value: unknown) => rpc.definition.requestSerialize(value),
        (bytes: Buffer) => rpc.definition.responseDeserialize(bytes),
        request,
        new grpc.Metadata(),
      );
      let messages = 0;
      let settled = false;
      const settle = (outcome: { stop: StreamStop } | { error: Error }) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        if ('error' in outcome) reject(outcome.error);
        else resolve({ messages, stop: outcome.stop });
      };
      // Cancelling makes grpc-js emit a CANCELLED error, which `settled` swallows.
      const stopBy = (stop: StreamStop) => {
        settle({ stop });
        call.cancel();
      };
      const onAbort = () => stopBy('aborted');
      const timer =
        opts.durationMs === undefined ? undefined : setTimeout(() => stopBy('duration'), opts.durationMs);
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      if (opts.signal?.aborted) stopBy('aborted');

      call.on('data', (decoded: unknown) => {
        if (settled) return;
        messages++;
        try {
          opts.onMessage(rpc.response.toJSON(decoded));
        } catch (err) {
          settle({ error: failure(err, target) });
          call.cancel();
          return;
        }
        if (opts.maxMessages !== undefined && messages >= opts.maxMessages) stopBy('max-messages');
      });
      call.on('error', (err: unknown) => settle({ error: failure(err, target) }));
      call.on('end', () => settle({ stop: 'server-ended' }));
    });
  } finally {
    client.close();
  }
}
