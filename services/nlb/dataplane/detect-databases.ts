/**
 * Database probes: PostgreSQL's first message (SSLRequest, GSSENCRequest, CancelRequest or a v3
 * StartupMessage), MongoDB's first message (a 16-byte little-endian header, then the start of an
 * OP_MSG or OP_QUERY) and Redis (a RESP array, or an inline command from a short allow-list).
 * MySQL is server-first and cannot be detected from the client's bytes.
 */
import type { DetectedFacts } from './detect.js';
import { match, NO, needMore, type Probe } from './detect-probe.js';

// PostgreSQL (https://www.postgresql.org/docs/current/protocol-message-formats.html)
const PG_SSL_REQUEST = 80877103;
const PG_GSSENC_REQUEST = 80877104;
const PG_CANCEL_REQUEST = 80877102;
/** The server's MAX_STARTUP_PACKET_LENGTH. */
const PG_MAX_STARTUP_BYTES = 10000;
/** Protocol 3.x: major 3 in the high 16 bits, any minor (3.0 = 196608, 3.2 since PostgreSQL 18). */
const PG_PROTOCOL_3_HIGH = 3;

type PgCode = 'ssl' | 'gssenc' | 'cancel' | 'startup';

/** Whether the code bytes present (offsets 4..7) can still be `code`. */
function pgCodePrefix(buf: Buffer, code: PgCode): boolean {
  const expected =
    code === 'startup'
      ? [0x00, PG_PROTOCOL_3_HIGH, 0x00] // then any minor version
      : [0x04, 0xd2, 0x16, code === 'ssl' ? 0x2f : code === 'gssenc' ? 0x30 : 0x2e];
  for (let i = 0; i < expected.length && 4 + i < buf.length; i++)
    if (buf[4 + i] !== expected[i]) return false;
  return true;
}

/** StartupMessage parameters: NUL-terminated name/value pairs ending with an empty name, filling the message. */
function pgStartupFacts(buf: Buffer, length: number): DetectedFacts | undefined {
  const params = new Map<string, string>();
  let pos = 8;
  for (;;) {
    const keyEnd = buf.indexOf(0, pos);
    if (keyEnd < 0 || keyEnd >= length) return undefined;
    if (keyEnd === pos) {
      if (keyEnd + 1 !== length) return undefined;
      break;
    }
    const valueEnd = buf.indexOf(0, keyEnd + 1);
    if (valueEnd < 0 || valueEnd >= length) return undefined;
    const key = buf.toString('utf8', pos, keyEnd);
    if (!params.has(key)) params.set(key, buf.toString('utf8', keyEnd + 1, valueEnd));
    pos = valueEnd + 1;
  }
  const facts: DetectedFacts = {};
  const user = params.get('user');
  const database = params.get('database') || user; // the server's default
  const application = params.get('application_name');
  if (user) facts.user = user;
  if (database) facts.database = database;
  if (application) facts.application = application;
  return facts;
}

/** PostgreSQL's first message: Int32 length (big-endian), Int32 code, then the body. */
export function probePostgres(buf: Buffer): Probe {
  if (buf[0] !== 0) return NO;
  if (buf.length >= 2 && buf[1] !== 0) return NO;
  if (buf.length >= 3 && buf[2] > PG_MAX_STARTUP_BYTES >> 8) return NO;
  if (buf.length < 4) return needMore(buf, 8);
  const length = buf.readUInt32BE(0);
  if (length < 8 || length > PG_MAX_STARTUP_BYTES) return NO;
  const codes: PgCode[] =
    length === 8 ? ['ssl', 'gssenc'] : length === 16 ? ['cancel', 'startup'] : ['startup'];
  const possible = codes.filter((c) => pgCodePrefix(buf, c));
  if (possible.length === 0) return NO;
  if (buf.length < length) return needMore(buf, length);
  const code = buf.readUInt32BE(4);
  if (code === PG_SSL_REQUEST) return match('POSTGRES', { sslRequest: true });
  if (code === PG_GSSENC_REQUEST) return match('POSTGRES', { gssEncRequest: true });
  if (code === PG_CANCEL_REQUEST) return match('POSTGRES', { cancelRequest: true });
  const facts = pgStartupFacts(buf, length);
  return facts ? match('POSTGRES', facts) : NO;
}

// MongoDB (https://www.mongodb.com/docs/manual/reference/mongodb-wire-protocol/)
const OP_MSG = 2013;
const OP_QUERY = 2004;
/** maxMessageSizeBytes. */
const MONGO_MAX_MESSAGE_BYTES = 48_000_000;
const MONGO_HEADER_BYTES = 16;
/** OP_MSG flagBits a client may set: checksumPresent, moreToCome, exhaustAllowed. */
const OP_MSG_FLAGS = 0x0001_0003;
/** header, flagBits, section kind, section size: where OP_MSG is decided. */
const OP_MSG_DECIDED_BYTES = MONGO_HEADER_BYTES + 4 + 1 + 4;
/** header, flags, "a.b\0", numberToSkip, numberToReturn, document size. */
const OP_QUERY_MIN_DECIDED_BYTES = MONGO_HEADER_BYTES + 4 + 4 + 8 + 4;
const MONGO_MAX_NAMESPACE_BYTES = 255;

/** Whether the bytes present from `offset` can still be the little-endian uint32 `value`. */
function le32Prefix(buf: Buffer, offset: number, value: number): boolean {
  for (let i = 0; i < 4 && offset + i < buf.length; i++) {
    if (buf[offset + i] !== (value >>> (8 * i)) % 256) return false;
  }
  return true;
}

/** OP_MSG after the header: flagBits, then a kind 0 (body document) or kind 1 (sequence) section. */
function probeOpMsg(buf: Buffer, length: number): Probe {
  if (length < MONGO_HEADER_BYTES + 4 + 1 + 5) return NO;
  const flags = [16, 17, 18, 19].map((i) => buf[i]);
  // Any flag bit outside OP_MSG_FLAGS must be zero (the server rejects unknown required bits).
  for (let i = 0; i < 4; i++) {
    if (flags[i] !== undefined && (flags[i] & ~(OP_MSG_FLAGS >>> (8 * i)) & 0xff) !== 0) return NO;
  }
  const kind = buf[20];
  if (kind !== undefined && kind !== 0 && kind !== 1) return NO;
  if (buf.length < OP_MSG_DECIDED_BYTES) return needMore(buf, OP_MSG_DECIDED_BYTES);
  const checksum = (buf[16] & 1) === 1 ? 4 : 0;
  const size = buf.readInt32LE(21);
  if (size < 5 || size > length - 21 - checksum) return NO;
  return match('MONGODB', { mongoOpcode: OP_MSG });
}

/** OP_QUERY after the header: flags, fullCollectionName (a C string "db.collection"), skip, return, query. */
function probeOpQuery(buf: Buffer, length: number): Probe {
  if (length < OP_QUERY_MIN_DECIDED_BYTES + 1) return NO;
  // flags: bit 0 and bits 8-31 are reserved.
  if ((buf[16] ?? 0) & 0x01 || (buf[17] ?? 0) || (buf[18] ?? 0) || (buf[19] ?? 0)) return NO;
  let i = 20;
  let dot = false;
  for (; i < buf.length && buf[i] !== 0; i++) {
    if (buf[i] < 0x21 || buf[i] > 0x7e || i - 20 >= MONGO_MAX_NAMESPACE_BYTES) return NO;
    if (buf[i] === 0x2e) dot = true;
  }
  if (i >= buf.length) return needMore(buf, Math.max(OP_QUERY_MIN_DECIDED_BYTES, i + 1 + 12));
  if (!dot || i === 20) return NO;
  const documentAt = i + 1 + 8;
  if (documentAt + 5 > length) return NO;
  if (buf.length < documentAt + 4) return needMore(buf, documentAt + 4);
  const size = buf.readInt32LE(documentAt);
  if (size < 5 || size > length - documentAt) return NO;
  return match('MONGODB', { mongoOpcode: OP_QUERY });
}

/** MongoDB's first message: messageLength, requestID, responseTo (0), opCode, all int32 LE. */
export function probeMongo(buf: Buffer): Probe {
  let length = -1;
  if (buf.length >= 4) {
    length = buf.readInt32LE(0);
    if (length < MONGO_HEADER_BYTES || length > MONGO_MAX_MESSAGE_BYTES) return NO;
  }
  if (!le32Prefix(buf, 8, 0)) return NO;
  const msg = le32Prefix(buf, 12, OP_MSG);
  const query = le32Prefix(buf, 12, OP_QUERY);
  if (!msg && !query) return NO;
  if (buf.length < MONGO_HEADER_BYTES) return needMore(buf, OP_MSG_DECIDED_BYTES);
  return msg ? probeOpMsg(buf, length) : probeOpQuery(buf, length);
}

// Redis (https://redis.io/docs/latest/develop/reference/protocol-spec/)
/** Inline commands people type (telnet, nc, health checks); redis-cli itself speaks RESP. */
const REDIS_INLINE_COMMANDS = [
  'PING',
  'AUTH',
  'HELLO',
  'ECHO',
  'QUIT',
  'SELECT',
  'INFO',
  'CLIENT',
  'COMMAND',
  'CONFIG',
  'DBSIZE',
  'MONITOR',
  'GET',
  'SET',
  'DEL',
  'EXISTS',
  'KEYS',
  'SCAN',
  'INCR',
  'MGET',
  'MSET',
  'TTL',
  'PUBLISH',
  'SUBSCRIBE',
  'PSUBSCRIBE',
];
const REDIS_MAX_COMMAND_CHARS = Math.max(...REDIS_INLINE_COMMANDS.map((c) => c.length));
/** "*1\r\n$": the shortest decided RESP array. */
const RESP_DECIDED_BYTES = 5;
/** Array lengths up to 7 digits (Redis's own limit for unauthenticated clients is far lower). */
const RESP_MAX_COUNT_DIGITS = 7;
const CR = 0x0d;
const LF = 0x0a;

/** A RESP array of bulk strings: "*<count>\r\n$". */
function probeResp(buf: Buffer): Probe {
  let i = 1;
  while (i < buf.length && buf[i] >= 0x30 && buf[i] <= 0x39) i++;
  const digits = i - 1;
  if (digits > RESP_MAX_COUNT_DIGITS || (digits > 0 && buf[1] === 0x30)) return NO;
  const rest = [CR, LF, 0x24 /* $ */];
  for (let k = 0; k < rest.length; k++, i++) {
    if (i >= buf.length) return needMore(buf, RESP_DECIDED_BYTES);
    if (buf[i] !== rest[k] || digits === 0) return NO;
  }
  return match('REDIS', {});
}

/** An inline command: an allow-listed name, then arguments, ending in LF (CRLF). */
function probeInline(buf: Buffer): Probe {
  let i = 0;
  while (i < buf.length && i <= REDIS_MAX_COMMAND_CHARS && buf[i] !== 0x20 && buf[i] !== CR && buf[i] !== LF)
    i++;
  const name = buf.toString('latin1', 0, i).toUpperCase();
  if (i >= buf.length) {
    return REDIS_INLINE_COMMANDS.some((c) => c.startsWith(name)) ? needMore(buf, i + 2) : NO;
  }
  if (!REDIS_INLINE_COMMANDS.includes(name)) return NO;
  // The rest of the line: printable text; CR only right before LF.
  let lastToken = i;
  for (; i < buf.length && buf[i] !== LF; i++) {
    const b = buf[i];
    if (b === CR) {
      if (i + 1 < buf.length && buf[i + 1] !== LF) return NO;
    } else if ((b < 0x20 && b !== 0x09) || b >= 0x7f) return NO;
    else if (b === 0x20) lastToken = i + 1;
  }
  if (i >= buf.length) return needMore(buf, 0);
  // "GET /path HTTP/1.1" is an HTTP request line, not a Redis GET.
  if (buf.toString('latin1', lastToken, lastToken + 5) === 'HTTP/') return NO;
  return match('REDIS', {});
}

/** Redis: RESP arrays (every client library) or inline commands. */
export function probeRedis(buf: Buffer): Probe {
  return buf[0] === 0x2a /* * */ ? probeResp(buf) : probeInline(buf);
}
