/**
 * MySQL / MariaDB client/server protocol pieces the DBLB needs
 * (https://dev.mysql.com/doc/dev/mysql-server/latest/PAGE_PROTOCOL.html): packet framing, the
 * server's greeting (HandshakeV10), the client's HandshakeResponse41 (user, database) or
 * SSLRequest, ERR packets, and a HandshakeResponse for health checks. Pure; never throws on input.
 */
import { createHash } from 'node:crypto';

export const CLIENT_LONG_PASSWORD = 0x1;
export const CLIENT_CONNECT_WITH_DB = 0x8;
export const CLIENT_PROTOCOL_41 = 0x200;
export const CLIENT_SSL = 0x800;
export const CLIENT_SECURE_CONNECTION = 0x8000;
export const CLIENT_PLUGIN_AUTH = 0x80000;
export const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 0x200000;

/** ER_CON_COUNT_ERROR: "Too many connections" (SQLSTATE 08004). */
export const ER_CON_COUNT_ERROR = 1040;
/** ER_BAD_DB_ERROR: unknown database (no route serves it). */
export const ER_BAD_DB_ERROR = 1049;
/** ER_ACCESS_DENIED_ERROR. */
export const ER_ACCESS_DENIED_ERROR = 1045;
/** CR_CONN_HOST_ERROR-like server error for "backend unavailable": ER_SERVER_SHUTDOWN. */
export const ER_SERVER_SHUTDOWN = 1053;

/** The largest packet payload: 2^24 - 1. */
export const MAX_PAYLOAD = 0xffffff;

/** A packet: 3-byte little-endian payload length, sequence id, payload. */
export function encodePacket(seq: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUIntLE(payload.length, 0, 3);
  h[3] = seq & 0xff;
  return Buffer.concat([h, payload]);
}

/** The first packet at the start of `buf`, or null until it is complete. */
export function readPacket(buf: Buffer): { seq: number; payload: Buffer; length: number } | null {
  if (buf.length < 4) return null;
  const len = buf.readUIntLE(0, 3);
  if (buf.length < 4 + len) return null;
  return { seq: buf[3], payload: buf.subarray(4, 4 + len), length: 4 + len };
}

/**
 * An ERR packet. Before the handshake (sequence 0, in place of the greeting) the client has not
 * negotiated CLIENT_PROTOCOL_41 yet, but libraries accept the "#" SQLSTATE marker anyway.
 */
export function errPacket(seq: number, code: number, sqlState: string, message: string): Buffer {
  const head = Buffer.alloc(3);
  head[0] = 0xff;
  head.writeUInt16LE(code, 1);
  return encodePacket(
    seq,
    Buffer.concat([
      head,
      Buffer.from(`#${sqlState.padEnd(5, '0').slice(0, 5)}`, 'latin1'),
      Buffer.from(message),
    ]),
  );
}

export interface Greeting {
  protocolVersion: number;
  serverVersion: string;
  connectionId: number;
  capabilities: number;
  /** The 20-byte scramble for mysql_native_password. */
  scramble: Buffer;
  authPlugin: string;
}

/** Decodes the server's first packet: a HandshakeV10 greeting, an ERR packet, or null when malformed. */
export function parseGreeting(
  payload: Buffer,
): Greeting | { error: { code: number; message: string } } | null {
  if (payload.length === 0) return null;
  if (payload[0] === 0xff) return { error: parseErr(payload) };
  if (payload[0] !== 10) return null;
  const vEnd = payload.indexOf(0, 1);
  if (vEnd < 0 || payload.length < vEnd + 1 + 4 + 8 + 1 + 2) return null;
  let p = vEnd + 1;
  const connectionId = payload.readUInt32LE(p);
  p += 4;
  const part1 = payload.subarray(p, p + 8);
  p += 9;
  let capabilities = payload.readUInt16LE(p);
  p += 2;
  let part2: Buffer = Buffer.alloc(0);
  let authPlugin = '';
  if (payload.length >= p + 1 + 2 + 2 + 1 + 10) {
    p += 1 + 2; // charset, status
    capabilities |= payload.readUInt16LE(p) << 16;
    p += 2;
    const authLen = payload[p];
    p += 1 + 10;
    if (capabilities & CLIENT_SECURE_CONNECTION) {
      const n = Math.max(13, authLen - 8);
      part2 = payload.subarray(p, Math.min(payload.length, p + n));
      p += n;
      if (part2.length && part2[part2.length - 1] === 0) part2 = part2.subarray(0, part2.length - 1);
    }
    if (capabilities & CLIENT_PLUGIN_AUTH && p < payload.length) {
      const e = payload.indexOf(0, p);
      authPlugin = payload.toString('latin1', p, e < 0 ? payload.length : e);
    }
  }
  return {
    protocolVersion: 10,
    serverVersion: payload.toString('latin1', 1, vEnd),
    connectionId,
    capabilities: capabilities >>> 0,
    scramble: Buffer.concat([part1, part2]),
    authPlugin,
  };
}

/** An ERR packet's code and message. */
export function parseErr(payload: Buffer): { code: number; message: string } {
  if (payload.length < 3) return { code: 0, message: '' };
  const code = payload.readUInt16LE(1);
  const rest = payload.subarray(3);
  const message = rest[0] === 0x23 ? rest.toString('utf8', 6) : rest.toString('utf8');
  return { code, message };
}

/** What the client's first packet says. */
export type ClientHello =
  | { kind: 'response'; user: string; database: string; capabilities: number }
  | { kind: 'ssl'; capabilities: number }
  | { kind: 'invalid' };

/** Decodes a HandshakeResponse41 (user, database) or an SSLRequest. */
export function parseHandshakeResponse(payload: Buffer): ClientHello {
  if (payload.length < 32) return { kind: 'invalid' };
  const caps = payload.readUInt32LE(0);
  if (!(caps & CLIENT_PROTOCOL_41)) return { kind: 'invalid' };
  if (payload.length === 32)
    return caps & CLIENT_SSL ? { kind: 'ssl', capabilities: caps } : { kind: 'invalid' };
  let p = 32;
  const uEnd = payload.indexOf(0, p);
  if (uEnd < 0) return { kind: 'invalid' };
  const user = payload.toString('utf8', p, uEnd);
  p = uEnd + 1;
  if (caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) {
    const n = readLenenc(payload, p);
    if (!n) return { kind: 'invalid' };
    p = n.next + n.value;
  } else if (caps & CLIENT_SECURE_CONNECTION) {
    if (p >= payload.length) return { kind: 'invalid' };
    p += 1 + payload[p];
  } else {
    const e = payload.indexOf(0, p);
    if (e < 0) return { kind: 'invalid' };
    p = e + 1;
  }
  let database = '';
  if (caps & CLIENT_CONNECT_WITH_DB && p < payload.length) {
    const e = payload.indexOf(0, p);
    database = payload.toString('utf8', p, e < 0 ? payload.length : e);
  }
  return { kind: 'response', user, database, capabilities: caps };
}

function readLenenc(b: Buffer, p: number): { value: number; next: number } | null {
  if (p >= b.length) return null;
  const first = b[p];
  if (first < 0xfb) return { value: first, next: p + 1 };
  if (first === 0xfc && p + 3 <= b.length) return { value: b.readUInt16LE(p + 1), next: p + 3 };
  if (first === 0xfd && p + 4 <= b.length) return { value: b.readUIntLE(p + 1, 3), next: p + 4 };
  return null; // 8-byte lengths are never needed for auth data
}

/** mysql_native_password: SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))); empty for no password. */
export function nativePasswordToken(password: string, scramble: Buffer): Buffer {
  if (!password) return Buffer.alloc(0);
  const sha1 = (b: Buffer) => createHash('sha1').update(b).digest();
  const p1 = sha1(Buffer.from(password, 'utf8'));
  const p2 = sha1(Buffer.concat([scramble.subarray(0, 20), sha1(p1)]));
  for (let i = 0; i < p1.length; i++) p1[i] ^= p2[i];
  return p1;
}

/** A HandshakeResponse41 for `user` with mysql_native_password (health checks). */
export function encodeHandshakeResponse(
  user: string,
  password: string,
  greeting: Greeting,
  database = '',
): Buffer {
  const caps =
    CLIENT_LONG_PASSWORD |
    CLIENT_PROTOCOL_41 |
    CLIENT_SECURE_CONNECTION |
    CLIENT_PLUGIN_AUTH |
    (database ? CLIENT_CONNECT_WITH_DB : 0);
  const fixed = Buffer.alloc(32);
  fixed.writeUInt32LE(caps, 0);
  fixed.writeUInt32LE(MAX_PAYLOAD, 4);
  fixed[8] = 33; // utf8_general_ci
  const token = nativePasswordToken(password, greeting.scramble);
  return encodePacket(
    1,
    Buffer.concat([
      fixed,
      Buffer.from(`${user}\0`, 'utf8'),
      Buffer.from([token.length]),
      token,
      database ? Buffer.from(`${database}\0`, 'utf8') : Buffer.alloc(0),
      Buffer.from('mysql_native_password\0', 'latin1'),
    ]),
  );
}

/** COM_QUIT. */
export const COM_QUIT = encodePacket(0, Buffer.from([0x01]));
