/**
 * The server interceptor that enforces auth.ts on every call, unary or streaming, before any
 * handler runs. It is also the only writer of the principal metadata the handlers read.
 */
import * as grpc from '@grpc/grpc-js';
import { ANONYMOUS, type Authenticator, type AuthResult } from '../auth.js';
import type { Logger } from '../logger.js';
import { PRINCIPAL_METADATA_KEY, ROLE_METADATA_KEY, SCOPE_METADATA_KEY } from './handlers.js';

const AUTHORIZATION = 'authorization';

function check(auth: Authenticator | undefined, metadata: grpc.Metadata, method: string): AuthResult {
  if (!auth) return { ok: true, principal: ANONYMOUS, role: 'admin' };
  const values = metadata.get(AUTHORIZATION);
  if (values.length > 1) {
    return { ok: false, kind: 'unauthenticated', message: 'send exactly one authorization header' };
  }
  const value = values[0];
  return auth.authenticate(typeof value === 'string' ? value : undefined, method);
}

/**
 * A grpc-js server interceptor: refuses calls with UNAUTHENTICATED or PERMISSION_DENIED, and
 * otherwise replaces any client-supplied principal with the authenticated one. With no
 * authenticator every call is "anonymous", but a spoofed principal is still removed.
 */
export function createAuthInterceptor(
  auth: Authenticator | undefined,
  logger: Logger,
): grpc.ServerInterceptor {
  return (methodDescriptor, call) => {
    const method = methodDescriptor.path;
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        const result = check(auth, metadata, method);
        // Handlers never see the caller's credentials, so they cannot log or forward them.
        metadata.remove(AUTHORIZATION);
        if (!result.ok) {
          const code =
            result.kind === 'unauthenticated' ? grpc.status.UNAUTHENTICATED : grpc.status.PERMISSION_DENIED;
          logger.info('rpc', {
            method,
            code: grpc.status[code],
            peer: call.getPeer(),
            error: result.message,
          });
          call.sendStatus({ code, details: result.message, metadata: new grpc.Metadata() });
          return;
        }
        // set() replaces every value, so a principal the caller sent cannot survive.
        metadata.set(PRINCIPAL_METADATA_KEY, result.principal);
        metadata.set(ROLE_METADATA_KEY, result.role);
        metadata.remove(SCOPE_METADATA_KEY);
        if (result.scope) metadata.set(SCOPE_METADATA_KEY, JSON.stringify(result.scope));
        next(metadata);
      })
      .build();
    const responder = new grpc.ResponderBuilder().withStart((next) => next(listener)).build();
    return new grpc.ServerInterceptingCall(call, responder);
  };
}
