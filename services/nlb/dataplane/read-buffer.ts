/**
 * A reused read buffer for the instance side of a connection (net's `onread`). Without it Node
 * allocates a fresh 64 KiB buffer for every read, and that external memory drives V8's
 * mark-compacts and page faults under bulk traffic (docs/bench-dataplane.md). A chunk read into
 * the buffer is written to the client at once; when that write completes synchronously (the
 * usual case on an unloaded socket) the same memory takes the next read, otherwise the write
 * still holds the chunk and the next read gets a fresh buffer. Client sockets come from
 * net.Server, which has no `onread`: their reads stay Node's own.
 */
import type { Socket } from 'node:net';

/** Node's own read size. */
const READ_BYTES = 64 * 1024;

export class ReusedReadBuffer {
  private buf: Buffer | null = null;
  private target: Socket | null = null;
  private sink: ((chunk: Buffer) => void) | null = null;
  /** Copies of what arrived before `attach` (a server-first instance's greeting). */
  private early: Buffer[] = [];

  /** The `onread` option for net.connect. */
  readonly onread = {
    buffer: (): Buffer => this.next(),
    // true: keep reading (back-pressure pauses the socket itself, see forward.ts).
    callback: (n: number, b: Buffer): boolean => {
      const chunk = b.subarray(0, n);
      if (this.sink) this.sink(chunk);
      else this.early.push(Buffer.from(chunk));
      return true;
    },
  };

  /**
   * From now on chunks go to `sink`, which writes them to `target`; returns what arrived
   * before (to write first).
   */
  attach(target: Socket, sink: (chunk: Buffer) => void): Buffer[] {
    this.target = target;
    this.sink = sink;
    const early = this.early;
    this.early = [];
    return early;
  }

  private next(): Buffer {
    // Bytes still queued on the target include (part of) the last chunk: its memory is taken.
    if (!this.buf || (this.target !== null && this.target.writableLength > 0))
      this.buf = Buffer.allocUnsafe(READ_BYTES);
    return this.buf;
  }
}
