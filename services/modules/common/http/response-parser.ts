/**
 * An incremental HTTP/1.x response parser for the upstream side of the proxies: status line,
 * headers (hop-by-hop ones dropped on the way, since the response is re-framed towards the
 * client), and body framing (Content-Length, chunked, until close, none). It reports body bytes
 * without copying (chunked data is unwrapped) and says whether the connection can be reused.
 * Pure: no sockets, no timers.
 */
import {
  CONN_CLOSE,
  CONN_KEEP_ALIVE,
  CONN_UPGRADE,
  connectionOptions,
  CONTROL_CHARS,
  headText,
  TOKEN,
  trimmedSlice,
} from './syntax.js';

/** A response head as the proxies forward it. */
export interface ResponseHead {
  status: number;
  statusText: string;
  /** End-to-end headers, flat [name, value, name, value…], names as the backend spelt them. */
  headers: string[];
  /** Content-Length when the body is length-delimited, else -1. */
  contentLength: number;
  framing: 'none' | 'length' | 'chunked' | 'close';
}

export interface ResponseSink {
  onHead(head: ResponseHead): void;
  /** A slice of body; valid only during the call unless copied. */
  onBody(chunk: Buffer): void;
  onComplete(): void;
}

/** Headers a proxy must not forward (RFC 9110 §7.6.1), plus framing it redoes itself. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

const enum State {
  Head,
  Body,
  ChunkSize,
  ChunkData,
  ChunkDataEnd,
  Trailers,
  Done,
  Failed,
}

const isDigit = (c: number) => c >= 48 && c <= 57;
const MAX_CHUNK_LINE = 1024;

export class ResponseParser {
  private state = State.Head;
  private pending: Buffer | null = null;
  private remaining = 0;
  private headRequest = false;
  private keepAlive = true;
  /** Bytes seen after the response ended (a misbehaving backend): the connection is not reused. */
  private trailingGarbage = false;
  /** Whether any byte of a response (including 1xx) arrived. */
  started = false;

  constructor(
    private readonly sink: ResponseSink,
    private readonly maxHeadBytes: number,
  ) {}

  /** Prepares for the response to the next request (`head`: the request was HEAD). */
  reset(headRequest: boolean): void {
    this.state = State.Head;
    this.pending = null;
    this.remaining = 0;
    this.headRequest = headRequest;
    this.keepAlive = true;
    this.trailingGarbage = false;
    this.started = false;
  }

  get complete(): boolean {
    return this.state === State.Done;
  }

  /** Whether the connection may carry another request once the response is complete. */
  get reusable(): boolean {
    return this.state === State.Done && this.keepAlive && !this.trailingGarbage;
  }

  /** Feeds bytes; returns an error message (the response is unusable) or null. */
  execute(chunk: Buffer): string | null {
    if (chunk.length > 0) this.started = true;
    const buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = null;
    let at = 0;
    while (at < buf.length) {
      switch (this.state) {
        case State.Head: {
          const text = headText(buf, at);
          if (text === null) {
            if (buf.length - at > this.maxHeadBytes) return this.fail('response head too large');
            this.pending = buf.subarray(at);
            return null;
          }
          if (text.length > this.maxHeadBytes) return this.fail('response head too large');
          const end = at + text.length;
          const err = this.head(text, buf.length - end - 4);
          if (err) return this.fail(err);
          at = end + 4;
          if ((this.state as State) === State.Done) return null;
          break;
        }
        case State.Body: {
          const n = this.remaining < 0 ? buf.length - at : Math.min(this.remaining, buf.length - at);
          this.sink.onBody(at === 0 && n === buf.length ? buf : buf.subarray(at, at + n));
          at += n;
          if (this.remaining >= 0) {
            this.remaining -= n;
            if (this.remaining === 0) return this.done(buf.length - at);
          }
          break;
        }
        case State.ChunkSize: {
          const lf = buf.indexOf(10, at);
          if (lf < 0) {
            if (buf.length - at > MAX_CHUNK_LINE) return this.fail('chunk size line too long');
            this.pending = buf.subarray(at);
            return null;
          }
          const line = buf.toString('latin1', at, lf > at && buf[lf - 1] === 13 ? lf - 1 : lf);
          const semi = line.indexOf(';');
          const hex = (semi < 0 ? line : line.slice(0, semi)).trim();
          if (!/^[0-9a-fA-F]{1,13}$/.test(hex)) return this.fail('bad chunk size');
          this.remaining = parseInt(hex, 16);
          this.state = this.remaining === 0 ? State.Trailers : State.ChunkData;
          at = lf + 1;
          break;
        }
        case State.ChunkData: {
          const n = Math.min(this.remaining, buf.length - at);
          this.sink.onBody(buf.subarray(at, at + n));
          at += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = State.ChunkDataEnd;
          break;
        }
        case State.ChunkDataEnd: {
          // Expect CRLF (a bare LF is tolerated).
          if (buf[at] === 13) {
            if (at + 1 >= buf.length) {
              this.pending = buf.subarray(at);
              return null;
            }
            if (buf[at + 1] !== 10) return this.fail('bad chunk end');
            at += 2;
          } else if (buf[at] === 10) at += 1;
          else return this.fail('bad chunk end');
          this.state = State.ChunkSize;
          break;
        }
        case State.Trailers: {
          const lf = buf.indexOf(10, at);
          if (lf < 0) {
            if (buf.length - at > this.maxHeadBytes) return this.fail('trailers too large');
            this.pending = buf.subarray(at);
            return null;
          }
          const empty = lf === at || (lf === at + 1 && buf[at] === 13);
          at = lf + 1;
          if (empty) return this.done(buf.length - at);
          break;
        }
        case State.Done:
          return null;
        case State.Failed:
          return 'parser failed earlier';
      }
    }
    return null;
  }

  /** The backend closed the connection: completes a close-delimited body, else an error. */
  finish(): string | null {
    if (this.state === State.Done) return null;
    if (this.state === State.Body && this.remaining < 0) {
      this.keepAlive = false;
      return this.done(0);
    }
    return this.fail(this.started ? 'backend closed the connection mid-response' : 'no response');
  }

  private fail(message: string): string {
    this.state = State.Failed;
    return message;
  }

  /**
   * Ends the response. Bytes after it (`extraBytes`, a misbehaving backend) make the connection
   * unusable; the sink learns that through `reusable` and may start the next exchange at once.
   */
  private done(extraBytes: number): null {
    this.state = State.Done;
    if (extraBytes > 0) this.trailingGarbage = true;
    this.sink.onComplete();
    return null;
  }

  /**
   * Parses one head (status line + headers, without the final CRLFCRLF). Walks the text with
   * indexOf rather than splitting it into lines: this runs once per response, and the line
   * strings were most of what a response allocated.
   */
  private head(text: string, bytesAfter: number): string | null {
    let eol = text.indexOf('\r\n');
    if (eol < 0) eol = text.length;
    // "HTTP/1.x NNN[ reason]", checked by hand.
    const c9 = text.charCodeAt(9);
    if (
      eol < 12 ||
      !text.startsWith('HTTP/1.') ||
      (text[7] !== '0' && text[7] !== '1') ||
      text[8] !== ' ' ||
      c9 < 49 ||
      c9 > 57 ||
      !isDigit(text.charCodeAt(10)) ||
      !isDigit(text.charCodeAt(11)) ||
      (eol > 12 && text[12] !== ' ')
    )
      return `bad status line "${text.slice(0, Math.min(eol, 40))}"`;
    const http10 = text[7] === '0';
    const status = (c9 - 48) * 100 + (text.charCodeAt(10) - 48) * 10 + (text.charCodeAt(11) - 48);
    const statusText = eol > 13 ? text.slice(13, eol) : '';
    if (CONTROL_CHARS.test(statusText)) return 'bad status line';
    const headers: string[] = [];
    let contentLength = -1;
    let chunked = false;
    let transferEncoding = false;
    let connectionTokens: string[] | null = null;
    /** CONN_* bits of every Connection field: `close` anywhere wins. */
    let connection = 0;
    for (let at = eol + 2; at <= text.length; at = eol + 2) {
      eol = text.indexOf('\r\n', at);
      if (eol < 0) eol = text.length;
      const colon = text.indexOf(':', at);
      if (colon <= at || colon > eol) return 'bad header line';
      const name = text.slice(at, colon);
      const value = trimmedSlice(text, colon + 1, eol);
      // Validated here, once: the proxies send these fields on to clients as they are.
      if (!TOKEN.test(name) || CONTROL_CHARS.test(value))
        return `bad header ${JSON.stringify(name.slice(0, 40))}`;
      // Only names as long as a special one are lowercased and compared.
      switch (name.length) {
        case 14:
          if (name.toLowerCase() === 'content-length') {
            if (!/^[0-9]{1,15}$/.test(value)) return 'bad content-length';
            const n = Number(value);
            if (contentLength >= 0 && contentLength !== n) return 'conflicting content-length';
            contentLength = n;
            continue;
          }
          break;
        case 17:
          if (name.toLowerCase() === 'transfer-encoding') {
            transferEncoding = true;
            chunked = /(?:^|,)\s*chunked\s*$/i.test(value);
            continue;
          }
          break;
        case 10: {
          const lower = name.toLowerCase();
          if (lower === 'connection') {
            // `upgrade` is a hop-by-hop token to drop here (101 never comes through this parser).
            connection |= connectionOptions(value.toLowerCase(), (t) => (connectionTokens ??= []).push(t));
            if (connection & CONN_UPGRADE) (connectionTokens ??= []).push('upgrade');
            continue;
          }
          if (lower === 'keep-alive') continue;
          break;
        }
        case 2:
        case 7:
        case 16:
          if (HOP_BY_HOP.has(name.toLowerCase())) continue;
          break;
      }
      headers.push(name, value);
    }
    if (status >= 100 && status < 200) {
      // Interim responses (100 Continue, 103 Early Hints) are not forwarded; the final one follows.
      // 101 is only valid for upgrades, which do not come through this parser.
      return status === 101 ? 'unexpected 101 Switching Protocols' : null;
    }
    if (connectionTokens) {
      const drop = new Set(connectionTokens);
      for (let i = headers.length - 2; i >= 0; i -= 2) {
        if (drop.has(headers[i].toLowerCase())) headers.splice(i, 2);
      }
    }
    this.keepAlive = !(connection & CONN_CLOSE) && (!http10 || (connection & CONN_KEEP_ALIVE) !== 0);
    let framing: ResponseHead['framing'];
    if (this.headRequest || status === 204 || status === 304) framing = 'none';
    else if (transferEncoding) {
      framing = chunked ? 'chunked' : 'close';
      // Transfer-Encoding with Content-Length is a smuggling vector: honour TE, never reuse.
      if (contentLength >= 0) this.keepAlive = false;
      contentLength = -1;
    } else if (contentLength >= 0) framing = contentLength === 0 ? 'none' : 'length';
    else framing = 'close';
    if (framing === 'close') this.keepAlive = false;
    // Forward Content-Length (HEAD, 304 and 0-length bodies keep the backend's value).
    if (contentLength >= 0) headers.push('Content-Length', String(contentLength));
    this.sink.onHead({ status, statusText, headers, contentLength, framing });
    if (framing === 'none') this.done(bytesAfter);
    else if (framing === 'length') {
      this.state = State.Body;
      this.remaining = contentLength;
    } else if (framing === 'chunked') this.state = State.ChunkSize;
    else {
      this.state = State.Body;
      this.remaining = -1;
    }
    return null;
  }
}
