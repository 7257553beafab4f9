/**
 * Reads of accepted sockets into one buffer shared by the whole process. Node gives every read
 * of a socket its own 64 KiB ArrayBuffer (shrunk to what was read); at tens of thousands of
 * requests a second those buffers are most of what each young-generation collection sweeps, and
 * the pauses are the ALB's p99 (docs/alb-ailb.md "Hot-path pass"). `net.connect` takes an
 * `onread` option that reads into a buffer of ours; `net.Server` has none for the sockets it
 * accepts. This installs the same mechanism on an accepted socket: the handle's
 * `useUserBuffer` and the socket's kBuffer / kBufferCb / kBufferGen fields that net.Socket's
 * constructor sets from `onread`, found by their symbols' descriptions (feature-detected: where
 * they are missing, or for TLS sockets, nothing changes and the caller keeps its 'data'
 * listener; test/unit/shared-read-buffer.test.ts fails if a Node upgrade changes them).
 *
 * One buffer serves every socket because each read is handed to its callback synchronously,
 * before libuv reads anything else: a chunk is valid only during the call. Whoever keeps bytes
 * past it must copy them (`isShared`). pause() / resume() still stop and start reading (net.Socket
 * handles them for user buffers); end of stream and errors arrive as usual.
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';

const SHARED_BYTES = 64 * 1024;
let shared: Buffer | null = null;

interface Internals {
  kBuffer: symbol;
  kBufferCb: symbol;
  kBufferGen: symbol;
}
let internals: Internals | null | undefined;

function findInternals(socket: Socket): Internals | null {
  if (internals !== undefined) return internals;
  const bySymbol = new Map<string | undefined, symbol>();
  for (const s of Object.getOwnPropertySymbols(socket)) bySymbol.set(s.description, s);
  const kBuffer = bySymbol.get('kBuffer');
  const kBufferCb = bySymbol.get('kBufferCb');
  const kBufferGen = bySymbol.get('kBufferGen');
  internals = kBuffer && kBufferCb && kBufferGen ? { kBuffer, kBufferCb, kBufferGen } : null;
  return internals;
}

/** Whether `b` is (a view of) the shared read buffer: copy it before keeping it. */
export function isShared(b: Buffer): boolean {
  return shared !== null && b.buffer === shared.buffer;
}

/**
 * From now on `socket`'s reads go into the shared buffer and to `onChunk` (valid only during the
 * call) instead of 'data' events. Returns what the socket had already buffered (e.g. bytes
 * unshifted after a PROXY header: process them first), or null when the socket cannot read this
 * way (TLS, already set up, or a Node without these internals): then nothing has changed.
 */
export function readIntoSharedBuffer(socket: Socket, onChunk: (chunk: Buffer) => void): Buffer[] | null {
  if (socket instanceof TLSSocket || socket.destroyed) return null;
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: unknown } | null })._handle;
  if (!handle || typeof handle.useUserBuffer !== 'function') return null;
  const k = findInternals(socket);
  if (!k) return null;
  const fields = socket as unknown as Record<symbol, unknown>;
  if (fields[k.kBuffer] !== null || fields[k.kBufferCb] !== null) return null;
  shared ??= Buffer.allocUnsafeSlow(SHARED_BYTES);
  const early: Buffer[] = [];
  while (socket.readableLength > 0) {
    const b = socket.read() as Buffer | null;
    if (!b) break;
    early.push(b);
  }
  const buf = shared;
  fields[k.kBuffer] = buf;
  fields[k.kBufferCb] = (n: number): boolean => {
    onChunk(buf.subarray(0, n));
    return true; // pause() stops reading; nothing to decide here
  };
  (handle.useUserBuffer as (b: Buffer) => void).call(handle, buf);
  return early;
}
