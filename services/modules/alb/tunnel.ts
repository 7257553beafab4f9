/**
 * Upgraded connections (WebSocket) through the ALB: the handshake goes to the backend on a
 * connection of its own, and from then on bytes flow both ways untouched, with back-pressure,
 * until either side closes or the tunnel idles out.
 */
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Clock } from '../../shared/clock.js';

export interface TunnelOptions {
  host: string;
  port: number;
  /** The handshake request head for the backend. */
  head: string;
  /** Bytes the client sent after its request head. */
  clientHead: Buffer;
  client: Duplex;
  clock: Clock;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  /** The backend answered; `status` is from its status line (101 when upgraded). */
  onResponse(status: number): void;
  /** No connection to the backend: nothing was sent to the client yet. */
  onConnectFailed(message: string): void;
  onClosed(bytesUp: number, bytesDown: number): void;
}

export function openTunnel(o: TunnelOptions): void {
  const up = connect({ host: o.host, port: o.port, noDelay: true });
  let connected = false;
  let closed = false;
  const connectTimer = o.clock.setTimeout(() => {
    if (!connected) fail(`no connection within ${o.connectTimeoutMs} ms`);
  }, o.connectTimeoutMs);
  const fail = (message: string) => {
    if (closed) return;
    closed = true;
    connectTimer.cancel();
    up.destroy();
    o.onConnectFailed(message);
  };
  const close = () => {
    if (closed) return;
    closed = true;
    up.destroy();
    o.client.destroy();
    o.onClosed(up.bytesWritten, up.bytesRead);
  };
  up.once('error', (e: NodeJS.ErrnoException) => (connected ? close() : fail(e.code ?? e.message)));
  o.client.on('error', close);
  up.once('connect', () => {
    connected = true;
    connectTimer.cancel();
    up.write(o.head, 'latin1');
    if (o.clientHead.length > 0) up.write(o.clientHead);
    up.once('data', (first: Buffer) => {
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(first.toString('latin1', 0, Math.min(first.length, 32)));
      o.onResponse(m ? Number(m[1]) : 502);
    });
    up.pipe(o.client);
    o.client.pipe(up);
    up.setTimeout(o.idleTimeoutMs, close);
    up.once('close', close);
    o.client.once('close', close);
  });
}
