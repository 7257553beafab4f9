/**
 * A strict incremental decoder for chunked request bodies (RFC 9112 §7.1): hex sizes with
 * optional extensions, CRLF line ends only, trailers read and dropped. Reports data slices
 * without copying and where the body ended, so the bytes after it (a pipelined request) stay.
 */

const enum State {
  Size,
  Data,
  DataEnd,
  Trailer,
  Done,
}

const MAX_LINE = 4096;

export class ChunkedDecoder {
  private state = State.Size;
  private remaining = 0;
  /** Part of a size or trailer line not yet terminated. */
  private line = '';

  constructor(private readonly onData: (chunk: Buffer) => void) {}

  get done(): boolean {
    return this.state === State.Done;
  }

  /**
   * Decodes from `buf`; returns how many bytes belonged to the body (the rest, if the body
   * ended, is the next request), or an error message.
   */
  execute(buf: Buffer): number | string {
    let at = 0;
    while (at < buf.length && this.state !== State.Done) {
      switch (this.state) {
        case State.Data: {
          const n = Math.min(this.remaining, buf.length - at);
          this.onData(at === 0 && n === buf.length ? buf : buf.subarray(at, at + n));
          at += n;
          this.remaining -= n;
          if (this.remaining === 0) {
            this.state = State.DataEnd;
            this.line = '';
          }
          break;
        }
        case State.Size:
        case State.Trailer:
        case State.DataEnd: {
          const lf = buf.indexOf(10, at);
          const end = lf < 0 ? buf.length : lf;
          this.line += buf.toString('latin1', at, end);
          if (this.line.length > MAX_LINE) return 'chunk line too long';
          if (lf < 0) return buf.length;
          at = lf + 1;
          const line = this.line;
          this.line = '';
          if (!line.endsWith('\r')) return 'bare LF in chunked body';
          const text = line.slice(0, -1);
          if (text.includes('\r')) return 'bare CR in chunked body';
          if (this.state === State.DataEnd) {
            if (text !== '') return 'missing CRLF after chunk data';
            this.state = State.Size;
          } else if (this.state === State.Size) {
            const semi = text.indexOf(';');
            const hex = semi < 0 ? text : text.slice(0, semi);
            if (!/^[0-9a-fA-F]{1,13}$/.test(hex)) return 'malformed chunk size';
            this.remaining = parseInt(hex, 16);
            this.state = this.remaining === 0 ? State.Trailer : State.Data;
          } else if (text === '') this.state = State.Done;
          break;
        }
      }
    }
    return at;
  }
}
