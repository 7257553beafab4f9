/**
 * Bidirectional forwarding between a client and an instance (PERF-NOTES: hand-written
 * data → write(), pause on a false return, resume on `drain`, which beat stream.pipe). At most
 * one read chunk per direction sits in Node's buffers beyond the socket's high-water mark, so a
 * slow reader slows its peer instead of growing memory. Both sockets must be created with
 * `allowHalfOpen: true`: an `end` from one side ends only the other's write side.
 */
import type { Socket } from 'node:net';
import type { ReusedReadBuffer } from './read-buffer.js';

/** Why a forwarded connection ended. */
export type CloseReason = 'done' | 'idle' | 'client-error' | 'upstream-error' | 'aborted';

export interface ForwardOptions {
  /** Written to the instance before anything else (PROXY header, sniffed bytes). */
  head: Buffer[];
  /** Both directions silent this long ⇒ close (0 = never). */
  idleTimeoutMs: number;
  /** The instance socket reads into this buffer (it was connected with its `onread`). */
  reader?: ReusedReadBuffer;
  /** Called once, when both sockets have closed. */
  onClose(reason: CloseReason, error?: string): void;
}

export interface Forwarding {
  /** Destroys both sockets (e.g. shutdown grace ran out). */
  abort(reason?: CloseReason): void;
  readonly closed: boolean;
  /** Bytes so far: in = client → instance (sniffed bytes included), out = instance → client. */
  bytes(): { in: number; out: number };
  /** Bytes held in user-space buffers for slow readers (both directions). */
  buffered(): number;
}

/** Starts forwarding; `client` may be paused (sniffing) and may already have ended. */
export function forward(client: Socket, upstream: Socket, opts: ForwardOptions): Forwarding {
  let reason: CloseReason | null = null;
  let error: string | undefined;
  let open = 2;
  let closed = false;

  const abort = (r: CloseReason, e?: string) => {
    reason ??= r;
    error ??= e;
    client.destroy();
    upstream.destroy();
  };
  const onClosed = (hadError: boolean, side: 'client' | 'upstream') => {
    // A reset (or our destroy) on one side: the other cannot usefully go on.
    if (hadError) abort(side === 'client' ? 'client-error' : 'upstream-error');
    if (--open > 0) return;
    closed = true;
    client.setTimeout(0);
    opts.onClose(reason ?? 'done', error);
  };

  client.on('error', (e: NodeJS.ErrnoException) => {
    reason ??= 'client-error';
    error ??= e.code ?? e.message;
  });
  upstream.on('error', (e: NodeJS.ErrnoException) => {
    reason ??= 'upstream-error';
    error ??= e.code ?? e.message;
  });
  client.on('close', (hadError) => onClosed(hadError, 'client'));
  upstream.on('close', (hadError) => onClosed(hadError, 'upstream'));

  client.on('data', (chunk: Buffer) => {
    if (!upstream.write(chunk)) client.pause();
  });
  upstream.on('drain', () => client.resume());
  const toClient = (chunk: Buffer) => {
    if (!client.write(chunk)) upstream.pause();
  };
  if (opts.reader) for (const b of opts.reader.attach(client, toClient)) toClient(b);
  else upstream.on('data', toClient);
  client.on('drain', () => upstream.resume());

  // Half-close: each side's end ends the other's write side; the socket closes once both are done.
  const endUpstream = () => {
    if (!upstream.destroyed) upstream.end();
  };
  const endClient = () => {
    if (!client.destroyed) client.end();
  };
  if (client.readableEnded) setImmediate(endUpstream);
  else client.on('end', endUpstream);
  upstream.on('end', endClient);

  if (opts.idleTimeoutMs > 0) {
    // Node refreshes a socket's timer on its reads and on its writes, and every byte forwarded
    // is read from or written to the client: the client's timer alone sees both directions
    // (a second timer on the instance side cost a Timeout and a refresh per chunk).
    client.setTimeout(opts.idleTimeoutMs, () => abort('idle'));
  }

  let ok = true;
  for (const b of opts.head) if (b.length) ok = upstream.write(b);
  if (client.destroyed || upstream.destroyed) {
    // One side went away between connect and now; 'close' still arrives for both.
    abort(client.destroyed ? 'client-error' : 'upstream-error');
  } else if (ok) client.resume();
  // else: the client stays paused until the instance drains the head.

  return {
    abort: (r = 'aborted') => abort(r),
    get closed() {
      return closed;
    },
    bytes: () => ({ in: client.bytesRead, out: client.bytesWritten }),
    buffered: () =>
      client.writableLength + client.readableLength + upstream.writableLength + upstream.readableLength,
  };
}
