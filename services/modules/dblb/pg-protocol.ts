/**
 * PostgreSQL wire protocol pieces the DBLB needs (https://www.postgresql.org/docs/current/
 * protocol-message-formats.html): the client's first messages (SSLRequest, GSSENCRequest,
 * CancelRequest, StartupMessage), ErrorResponse, and a scanner for the backend's messages up to
 * ReadyForQuery that picks up BackendKeyData. Pure; never throws on input.
 */

export const PG_SSL_REQUEST = 80877103;
export const PG_GSSENC_REQUEST = 80877104;
export const PG_CANCEL_REQUEST = 80877102;
/** The server's MAX_STARTUP_PACKET_LENGTH. */
export const PG_MAX_STARTUP_BYTES = 10_000;
/** A CancelRequest: length, code, pid, then a key of 4 bytes (3.0) up to 256 bytes (3.2). */
const PG_MAX_CANCEL_BYTES = 12 + 256;

export type FirstMessage =
  | { kind: 'need-more'; bytes: number }
  | { kind: 'invalid'; reason: string }
  | { kind: 'ssl'; length: number }
  | { kind: 'gssenc'; length: number }
  | { kind: 'cancel'; length: number; pid: number; key: Buffer }
  | { kind: 'startup'; length: number; major: number; minor: number; params: Map<string, string> };

/** Decodes the client's first message at the start of `buf` (bounded: at most 10 000 bytes). */
export function readFirstMessage(buf: Buffer): FirstMessage {
  if (buf.length < 8) return { kind: 'need-more', bytes: 8 };
  const length = buf.readUInt32BE(0);
  if (length < 8 || length > PG_MAX_STARTUP_BYTES) return { kind: 'invalid', reason: `bad length ${length}` };
  if (buf.length < length) return { kind: 'need-more', bytes: length };
  const code = buf.readUInt32BE(4);
  if (code === PG_SSL_REQUEST)
    return length === 8 ? { kind: 'ssl', length } : { kind: 'invalid', reason: 'bad SSLRequest' };
  if (code === PG_GSSENC_REQUEST)
    return length === 8 ? { kind: 'gssenc', length } : { kind: 'invalid', reason: 'bad GSSENCRequest' };
  if (code === PG_CANCEL_REQUEST) {
    if (length < 16 || length > PG_MAX_CANCEL_BYTES) return { kind: 'invalid', reason: 'bad CancelRequest' };
    return { kind: 'cancel', length, pid: buf.readUInt32BE(8), key: Buffer.from(buf.subarray(12, length)) };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== 3) return { kind: 'invalid', reason: `unsupported frontend protocol ${major}.${minor}` };
  const params = startupParams(buf, length);
  if (!params) return { kind: 'invalid', reason: 'malformed StartupMessage' };
  return { kind: 'startup', length, major, minor, params };
}

/** Name/value C strings after the code, ending with an empty name that fills the message. */
function startupParams(buf: Buffer, length: number): Map<string, string> | null {
  const params = new Map<string, string>();
  let pos = 8;
  for (;;) {
    const keyEnd = buf.indexOf(0, pos);
    if (keyEnd < 0 || keyEnd >= length) return null;
    if (keyEnd === pos) return keyEnd + 1 === length ? params : null;
    const valueEnd = buf.indexOf(0, keyEnd + 1);
    if (valueEnd < 0 || valueEnd >= length) return null;
    const key = buf.toString('utf8', pos, keyEnd);
    if (!params.has(key)) params.set(key, buf.toString('utf8', keyEnd + 1, valueEnd));
    pos = valueEnd + 1;
  }
}

/** The routing facts of a StartupMessage; the database defaults to the user, as on the server. */
export function startupFacts(params: Map<string, string>): {
  user: string;
  database: string;
  application: string;
} {
  const user = params.get('user') ?? '';
  return {
    user,
    database: params.get('database') || user,
    application: params.get('application_name') ?? '',
  };
}

/** A StartupMessage (protocol 3.0) with these parameters. */
export function encodeStartup(params: Record<string, string>): Buffer {
  const body = Buffer.concat([
    ...Object.entries(params).flatMap(([k, v]) => [Buffer.from(`${k}\0`), Buffer.from(`${v}\0`)]),
    Buffer.from([0]),
  ]);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(8 + body.length, 0);
  head.writeUInt32BE(196608, 4);
  return Buffer.concat([head, body]);
}

/** A CancelRequest for this process id and key. */
export function encodeCancel(pid: number, key: Buffer): Buffer {
  const b = Buffer.alloc(12 + key.length);
  b.writeUInt32BE(b.length, 0);
  b.writeUInt32BE(PG_CANCEL_REQUEST, 4);
  b.writeUInt32BE(pid >>> 0, 8);
  key.copy(b, 12);
  return b;
}

/** A typed message: type byte, Int32 length (counting itself), body. */
export function encodeMessage(type: string, body: Buffer): Buffer {
  const b = Buffer.alloc(5 + body.length);
  b.write(type, 0, 'latin1');
  b.writeUInt32BE(4 + body.length, 1);
  body.copy(b, 5);
  return b;
}

/** An ErrorResponse (severity FATAL) the client library shows as an error with this SQLSTATE. */
export function errorResponse(sqlState: string, message: string, severity = 'FATAL'): Buffer {
  const field = (t: string, v: string) => Buffer.from(`${t}${v}\0`, 'utf8');
  return encodeMessage(
    'E',
    Buffer.concat([
      field('S', severity),
      field('V', severity),
      field('C', sqlState),
      field('M', message),
      Buffer.from([0]),
    ]),
  );
}

/** Fields of an ErrorResponse or NoticeResponse body, by field type. */
export function errorFields(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < body.length && body[pos] !== 0) {
    const end = body.indexOf(0, pos + 1);
    if (end < 0) break;
    out[String.fromCharCode(body[pos])] = body.toString('utf8', pos + 1, end);
    pos = end + 1;
  }
  return out;
}

/** A typed backend message split off a buffer. */
export interface PgMessage {
  type: string;
  body: Buffer;
}

/**
 * Splits typed messages off a stream, keeping partial ones; refuses a message longer than
 * `maxBytes` (a broken or hostile peer) by returning an error.
 */
export class MessageReader {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly maxBytes = 1 << 20) {}

  push(chunk: Buffer): { messages: PgMessage[]; error?: string } {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const messages: PgMessage[] = [];
    while (this.buf.length >= 5) {
      const len = this.buf.readUInt32BE(1);
      if (len < 4 || len > this.maxBytes) return { messages, error: `message of ${len} bytes` };
      if (this.buf.length < 1 + len) break;
      messages.push({ type: String.fromCharCode(this.buf[0]), body: this.buf.subarray(5, 1 + len) });
      this.buf = this.buf.subarray(1 + len);
    }
    return { messages };
  }
}

/** What the scanner learned from the backend's startup replies. */
export interface StartupOutcome {
  /** BackendKeyData: the process id and secret key a CancelRequest must carry. */
  key?: { pid: number; secret: Buffer };
  /** ReadyForQuery arrived: the session is up. */
  ready: boolean;
  /** The backend refused (ErrorResponse before ReadyForQuery). */
  error?: { code: string; message: string };
}

/**
 * Watches the backend → client stream during startup (authentication, ParameterStatus,
 * BackendKeyData, ReadyForQuery or ErrorResponse) without changing it; `done` once the session
 * is ready or refused, after which it is detached and costs nothing.
 */
export class StartupScanner {
  private readonly reader = new MessageReader(1 << 20);
  readonly outcome: StartupOutcome = { ready: false };
  done = false;

  push(chunk: Buffer): void {
    if (this.done) return;
    const { messages, error } = this.reader.push(chunk);
    for (const m of messages) {
      if (m.type === 'K' && m.body.length >= 8)
        this.outcome.key = { pid: m.body.readUInt32BE(0), secret: Buffer.from(m.body.subarray(4)) };
      else if (m.type === 'Z') {
        this.outcome.ready = true;
        this.done = true;
        return;
      } else if (m.type === 'E') {
        const f = errorFields(m.body);
        this.outcome.error = { code: f.C ?? '', message: f.M ?? '' };
        this.done = true;
        return;
      }
    }
    if (error) this.done = true;
  }
}
