/**
 * The one edge where domain errors become wire errors: a gRPC status for RPCs without
 * `success`/`error` fields, or a `marchproxy.Error` inside responses that have them.
 */
import { randomUUID } from 'node:crypto';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { StatusCode, type Error as ProtoError } from '../../../proto/gen/marchproxy/types.js';
import { isDomainError, type DomainError, type ErrorKind } from '../errors.js';
import type { Logger } from '../logger.js';

/** gRPC status code for each domain error kind. */
export const GRPC_STATUS_BY_KIND: Readonly<Record<ErrorKind, status>> = {
  invalid_argument: status.INVALID_ARGUMENT,
  not_found: status.NOT_FOUND,
  already_exists: status.ALREADY_EXISTS,
  failed_precondition: status.FAILED_PRECONDITION,
  permission_denied: status.PERMISSION_DENIED,
  unauthenticated: status.UNAUTHENTICATED,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
  unavailable: status.UNAVAILABLE,
  deadline_exceeded: status.DEADLINE_EXCEEDED,
  internal: status.INTERNAL,
};

/** marchproxy.StatusCode for each domain error kind (the contract has fewer codes than gRPC). */
export const STATUS_CODE_BY_KIND: Readonly<Record<ErrorKind, StatusCode>> = {
  invalid_argument: StatusCode.STATUS_CODE_INVALID_ARGUMENT,
  not_found: StatusCode.STATUS_CODE_NOT_FOUND,
  already_exists: StatusCode.STATUS_CODE_ALREADY_EXISTS,
  failed_precondition: StatusCode.STATUS_CODE_INVALID_ARGUMENT,
  permission_denied: StatusCode.STATUS_CODE_PERMISSION_DENIED,
  unauthenticated: StatusCode.STATUS_CODE_PERMISSION_DENIED,
  resource_exhausted: StatusCode.STATUS_CODE_RESOURCE_EXHAUSTED,
  unavailable: StatusCode.STATUS_CODE_UNAVAILABLE,
  deadline_exceeded: StatusCode.STATUS_CODE_UNAVAILABLE,
  internal: StatusCode.STATUS_CODE_ERROR,
};

/** Kinds that are never reported inside a response envelope: they are always a gRPC status. */
const ALWAYS_STATUS: ReadonlySet<ErrorKind> = new Set(['unauthenticated', 'permission_denied']);

export interface WireFailure {
  /** The gRPC status to send when the failure is not reported in an envelope. */
  grpcStatus: status;
  /** The message a client may see. */
  message: string;
  /** Present when the failure is a domain error (so it may go into an envelope). */
  domain?: DomainError;
}

/**
 * Classifies anything a handler threw. Unexpected errors are logged with their cause and
 * replaced by an opaque INTERNAL message carrying a reference the operator can grep for.
 */
export function classifyFailure(err: unknown, logger: Logger, method: string): WireFailure {
  if (isDomainError(err)) {
    return { grpcStatus: GRPC_STATUS_BY_KIND[err.kind], message: err.message, domain: err };
  }
  const ref = randomUUID().slice(0, 8);
  logger.error('unexpected error in RPC handler', {
    method,
    ref,
    err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err),
  });
  return {
    grpcStatus: status.INTERNAL,
    message: `internal error (ref ${ref}); the server log has the details`,
  };
}

/** A ServiceError for grpc-js callbacks, with domain details in trailing metadata. */
export function toServiceError(f: WireFailure): Partial<ServiceError> {
  const metadata = new Metadata();
  if (f.domain) {
    for (const [k, v] of Object.entries(f.domain.details)) {
      const key = `mp-${k.toLowerCase().replace(/[^a-z0-9-]/g, '-')}`;
      metadata.set(key, v.replace(/[^\x20-\x7e]/g, ' '));
    }
  }
  return { code: f.grpcStatus, details: f.message, metadata };
}

/** The `marchproxy.Error` for a domain failure. */
export function toProtoError(e: DomainError, now: Date): ProtoError {
  return {
    code: STATUS_CODE_BY_KIND[e.kind],
    message: e.message,
    details: { ...e.details, kind: e.kind },
    occurredAt: now,
  };
}

/** Whether this failure may be reported inside a success/error envelope under gRPC OK. */
export function envelopeAllowed(f: WireFailure): f is WireFailure & { domain: DomainError } {
  return f.domain !== undefined && !ALWAYS_STATUS.has(f.domain.kind);
}
