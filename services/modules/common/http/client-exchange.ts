/**
 * One request of the ALB's HTTP/1.1 server (http1-server.ts) and the response to it: the parsed
 * head, the body as a Readable (only when there is one), and a response writer that sends the
 * head with the first body bytes in one write and frames bodies of unknown length (chunked for
 * HTTP/1.1 clients, close-delimited for HTTP/1.0 ones).
 */
import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import { Readable } from 'node:stream';
import type { ClientConnection } from './frontend.js';
import type { ParsedRequestHead } from './request-parser.js';

/** What an exchange needs of its connection. */
export interface ExchangeConnection {
  readonly socket: Socket;
  /** The exchange being answered now (null between requests). */
  readonly current: ClientExchange | null;
  /** No further requests: the response says "Connection: close". */
  readonly closing: boolean;
  exchangeDone(ex: ClientExchange): void;
  sendContinue(): void;
  resumeBody(): void;
  destroy(): void;
}

/** Bodies up to this size go out in one write with the head. */
const SMALL_BODY_BYTES = 16 * 1024;

function noop(): void {}

/** The request body, read from the connection as the handler consumes it. */
export class RequestBody extends Readable {
  constructor(
    private readonly conn: ExchangeConnection,
    /** "Expect: 100-continue": the client waits for a go-ahead before sending the body. */
    private expectContinue: boolean,
  ) {
    super();
    // Destroyed with a reason when the client cuts the body short; whoever reads it also sees
    // 'close'. Without a listener that reason would be an uncaught exception.
    this.on('error', noop);
  }

  override _read(): void {
    if (this.expectContinue) {
      // Only once someone reads the body: a request refused first never solicits it.
      this.expectContinue = false;
      this.conn.sendContinue();
    }
    this.conn.resumeBody();
  }
}

/** What the server tells the handler of a request about its client (set `ex.listener`). */
export interface ClientListener {
  /** The client went away before the response ended (called once). */
  clientClosed(): void;
  /** A write that returned false has drained. */
  clientDrained(): void;
}

/** One request and its response on a client connection. */
export class ClientExchange {
  headersSent = false;
  finished = false;
  listener: ClientListener | null = null;
  keepAlive: boolean;
  private chunked = false;
  private noBody = false;
  private pendingHead: string | null = null;

  constructor(
    private readonly conn: ExchangeConnection,
    readonly head: ParsedRequestHead,
    readonly info: ClientConnection,
    readonly body: Readable | null,
  ) {
    this.keepAlive = head.keepAlive;
  }

  get method(): string {
    return this.head.method;
  }

  get target(): string {
    return this.head.target;
  }

  get rawHeaders(): string[] {
    return this.head.rawHeaders;
  }

  /** Whether the client is still there to answer. */
  get open(): boolean {
    return !this.finished && this.conn.current === this && !this.conn.socket.destroyed;
  }

  /**
   * Starts the response. `headers` are end-to-end fields (flat pairs), already valid (the
   * response parser checks what comes from backends); `contentLength` is -1 when unknown
   * (chunked to HTTP/1.1 clients, close-delimited to HTTP/1.0 ones).
   *
   * The head waits for the first body bytes so that both go out in one write. `flushLater`
   * sends it at the end of this tick at the latest; a caller that calls `flushHead()` itself
   * before returning to the event loop (the proxy does, after each upstream read) passes false
   * and saves the tick.
   */
  writeHead(
    status: number,
    statusText: string,
    headers: readonly string[],
    contentLength: number,
    flushLater = true,
  ): void {
    if (this.headersSent) throw new Error('response head already sent');
    let text = `HTTP/1.1 ${status} ${statusText || STATUS_CODES[status] || ''}\r\n`;
    for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
    this.noBody = this.head.method === 'HEAD' || status === 204 || status === 304 || status < 200;
    if (!this.noBody && contentLength < 0) {
      if (this.head.http10) this.keepAlive = false;
      else {
        this.chunked = true;
        text += 'Transfer-Encoding: chunked\r\n';
      }
    }
    if (!this.keepAlive || this.conn.closing) text += 'Connection: close\r\n';
    else if (this.head.http10) text += 'Connection: keep-alive\r\n';
    text += '\r\n';
    this.headersSent = true;
    this.pendingHead = text;
    if (flushLater) process.nextTick(flushHeadLater, this);
  }

  /** Writes body bytes; returns false when the client is slow (wait for the listener's drain). */
  write(chunk: Buffer): boolean {
    if (!this.open) return true;
    if (this.noBody || chunk.length === 0) {
      this.flushHead();
      return true;
    }
    const s = this.conn.socket;
    const head = this.pendingHead;
    this.pendingHead = null;
    const framed = this.chunked ? `${chunk.length.toString(16)}\r\n` : '';
    if (chunk.length <= SMALL_BODY_BYTES) {
      // One string, one write(2): cheaper than a writev of head and body for small responses.
      const text = (head ?? '') + framed + chunk.toString('latin1') + (this.chunked ? '\r\n' : '');
      return s.write(text, 'latin1');
    }
    s.cork();
    if (head !== null || framed) s.write((head ?? '') + framed, 'latin1');
    let ok = s.write(chunk);
    if (this.chunked) ok = s.write('\r\n', 'latin1');
    s.uncork();
    return ok;
  }

  /** Ends the response (with a last chunk of body, if given). */
  end(chunk?: Buffer): void {
    if (this.finished) return;
    if (chunk) this.write(chunk);
    if (this.open) {
      const head = this.pendingHead;
      this.pendingHead = null;
      const last = this.chunked && !this.noBody ? '0\r\n\r\n' : '';
      if (head !== null || last) this.conn.socket.write((head ?? '') + last, 'latin1');
    }
    this.finished = true;
    this.conn.exchangeDone(this);
  }

  /** A complete short response of the server's own (errors). */
  respond(status: number, headers: readonly string[], body: string): void {
    const bytes = Buffer.from(body);
    this.writeHead(status, '', [...headers, 'Content-Length', String(bytes.length)], bytes.length);
    this.end(bytes);
  }

  /** Gives up on the response: the client connection is closed. */
  destroy(): void {
    this.finished = true;
    this.conn.destroy();
  }

  /** Sends the head if no body bytes took it along yet. */
  flushHead(): void {
    const head = this.pendingHead;
    if (head === null) return;
    this.pendingHead = null;
    if (this.open) this.conn.socket.write(head, 'latin1');
  }
}

function flushHeadLater(ex: ClientExchange): void {
  ex.flushHead();
}
