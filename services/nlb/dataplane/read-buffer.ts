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

/** Node's own read size: what bulk transfers read into. */
const READ_BYTES = 64 * 1024;
/**
 * The first buffer of a connection: small enough to come from Buffer's shared pool (under 4 KiB),
 * because most connections only ever read a response that fits. A fresh 64 KiB per connection was
 * external memory V8 counts towards its next full collection: at a few thousand connections/s
 * that alone forced several mark-compacts a second. A read that fills the buffer moves the
 * connection to READ_BYTES.
 */
const FIRST_READ_BYTES = 4095;

export class ReusedReadBuffer {
  private buf: Buffer | null = null;
  private size = FIRST_READ_BYTES;
  private target: Socket | null = null;
  private sink: ((chunk: Buffer) => void) | null = null;
  /** Copies of what arrived before `attach` (a server-first instance's greeting). */
  private early: Buffer[] = [];

  /** The `onread` option for net.connect. */
  readonly onread = {
    buffer: (): Buffer => this.next(),
    // true: keep reading (back-pressure pauses the socket itself, see forward.ts).
    callback: (n: number, b: Buffer): boolean => {
      // A full buffer means more is coming: read in big chunks from now on.
      if (n === b.length && this.size < READ_BYTES) {
        this.size = READ_BYTES;
        this.buf = null;
      }
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

  /** Copies of what arrived before any `attach` (kept until `dropEarly`). */
  get earlyChunks(): readonly Buffer[] {
    return this.early;
  }

  /** Forgets the early chunks (another forwarder took them). */
  dropEarly(): void {
    this.early = [];
  }

  private next(): Buffer {
    // Bytes still queued on the target include (part of) the last chunk: its memory is taken.
    if (!this.buf || (this.target !== null && this.target.writableLength > 0))
      this.buf = Buffer.allocUnsafe(this.size);
    return this.buf;
  }
}
