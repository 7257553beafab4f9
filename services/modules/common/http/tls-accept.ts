/**
 * Optional TLS termination for the HTTP modules' listeners: a connection whose first byte is a
 * TLS handshake (0x16) is wrapped in a server TLSSocket; anything else is served as plain HTTP
 * on the same port. The handshake is bounded in time; failures are counted and closed.
 */
import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { HandlerContext } from '../../runtime/plugin.js';

/** Calls `ready` with the socket to speak HTTP on (the TLS one after a handshake). */
export function acceptMaybeTls(
  ctx: HandlerContext,
  socket: Socket,
  tls: SecureContext | null,
  handshakeTimeoutMs: number,
  ready: (socket: Socket, proto: 'http' | 'https') => void,
): void {
  if (!tls) {
    ready(socket, 'http');
    return;
  }
  // A client that never sends a byte is not kept waiting for forever.
  const silent = ctx.clock.setTimeout(() => socket.destroy(), handshakeTimeoutMs);
  socket.once('close', () => silent.cancel());
  socket.once('data', (first: Buffer) => {
    silent.cancel();
    socket.pause();
    socket.unshift(first);
    // Back to a socket nobody has read from: the next 'data' listener starts the flow.
    (socket as { readableFlowing: boolean | null }).readableFlowing = null;
    if (first[0] !== 0x16) {
      ready(socket, 'http');
      return;
    }
    // Wrapped after the unshift: TLSSocket feeds itself what the socket has buffered.
    const secure = new TLSSocket(socket, { isServer: true, secureContext: tls, ALPNProtocols: ['http/1.1'] });
    const timer = ctx.clock.setTimeout(() => {
      ctx.stats.count('tls_handshake_timeout');
      secure.destroy();
    }, handshakeTimeoutMs);
    secure.once('secure', () => {
      timer.cancel();
      ready(secure, 'https');
    });
    secure.on('error', () => {
      timer.cancel();
      ctx.stats.count('tls_errors');
      secure.destroy();
      socket.destroy();
    });
    secure.once('close', () => {
      timer.cancel();
      socket.destroy();
    });
  });
}
