/**
 * TLS ClientHello probe (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2): reassembles the handshake message
 * from its records and reads server_name (RFC 6066 §3) and ALPN (RFC 7301) without terminating
 * TLS. Every length is checked against both the bytes present and the enclosing structure, so a
 * truncated ClientHello that is consistent so far is "need more" and anything else is "no".
 */
import { match, NO, needMore, SCAN_CAP_BYTES, UNKNOWN_REASONS, type Probe } from './detect-probe.js';

const CONTENT_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 1;
const RECORD_HEADER_BYTES = 5;
const HANDSHAKE_HEADER_BYTES = 4;
const MAX_RECORD_BYTES = 16384; // 2^14, TLSPlaintext.length
/** version(2) random(32) session_id(1+0) cipher_suites(2+2) compression_methods(1+1). */
const MIN_CLIENT_HELLO_BYTES = 41;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const MAX_ALPN_PROTOCOLS = 32;

type Parsed = { status: 'ok'; sni?: string; alpn?: string[] } | { status: 'truncated' | 'invalid' };

/**
 * A bounds-checked reader over the bytes present (`buf`) inside a structure that ends at `limit`:
 * reading past `limit` makes it invalid, reading past the data makes it truncated.
 */
class Cursor {
  pos = 0;
  status: 'ok' | 'truncated' | 'invalid' = 'ok';
  constructor(
    private readonly buf: Buffer,
    private readonly limit: number,
  ) {}

  /** Start of the next `n` bytes, or -1 (status set) when they are not all there. */
  take(n: number, limit = this.limit): number {
    if (this.status !== 'ok') return -1;
    if (this.pos + n > limit) this.status = 'invalid';
    else if (this.pos + n > this.buf.length) this.status = 'truncated';
    if (this.status !== 'ok') return -1;
    const start = this.pos;
    this.pos += n;
    return start;
  }

  u8(limit?: number): number {
    const at = this.take(1, limit);
    return at < 0 ? -1 : this.buf[at];
  }

  u16(limit?: number): number {
    const at = this.take(2, limit);
    return at < 0 ? -1 : (this.buf[at] << 8) | this.buf[at + 1];
  }

  /** The next `n` bytes (only call when take succeeded). */
  slice(start: number, n: number): Buffer {
    return this.buf.subarray(start, start + n);
  }

  invalid(): void {
    if (this.status === 'ok') this.status = 'invalid';
  }
}

/** A server_name is an ASCII host name (RFC 6066 §3); anything else is ignored, not routed on. */
function hostName(bytes: Buffer): string | undefined {
  if (bytes.length === 0 || bytes.length > 255) return undefined;
  for (const b of bytes) if (b <= 0x20 || b >= 0x7f) return undefined;
  return bytes.toString('latin1').toLowerCase();
}

function parseServerName(c: Cursor, end: number): string | undefined {
  const listLen = c.u16(end);
  if (listLen >= 0 && c.pos + listLen !== end) c.invalid();
  let sni: string | undefined;
  while (c.status === 'ok' && c.pos < end) {
    const type = c.u8(end);
    const len = c.u16(end);
    const at = c.take(len, end);
    if (at >= 0 && type === 0 && sni === undefined) sni = hostName(c.slice(at, len));
  }
  return sni;
}

function parseAlpn(c: Cursor, end: number): string[] {
  const listLen = c.u16(end);
  if (listLen >= 0 && (listLen < 2 || c.pos + listLen !== end)) c.invalid();
  const protocols: string[] = [];
  while (c.status === 'ok' && c.pos < end) {
    const len = c.u8(end);
    if (len === 0) c.invalid();
    const at = c.take(len, end);
    if (at >= 0 && protocols.length < MAX_ALPN_PROTOCOLS) protocols.push(c.slice(at, len).toString('latin1'));
  }
  return protocols;
}

/** Parses a ClientHello body: all of it (`body.length === length`) or a prefix of it. */
function parseClientHello(body: Buffer, length: number): Parsed {
  const c = new Cursor(body, length);
  const version = c.u16();
  if (version >= 0 && version >> 8 !== 3) return { status: 'invalid' };
  c.take(32); // random
  const sessionIdLen = c.u8();
  if (sessionIdLen > 32) return { status: 'invalid' };
  c.take(sessionIdLen);
  const suitesLen = c.u16();
  if (suitesLen >= 0 && (suitesLen < 2 || suitesLen % 2 !== 0)) return { status: 'invalid' };
  c.take(suitesLen);
  const compressionLen = c.u8();
  if (compressionLen === 0) return { status: 'invalid' };
  c.take(compressionLen);
  if (c.status !== 'ok') return { status: c.status };
  if (c.pos === length) return { status: 'ok' }; // no extensions (TLS 1.2 and older allow that)

  const extLen = c.u16();
  if (extLen >= 0 && c.pos + extLen !== length) return { status: 'invalid' };
  let sni: string | undefined;
  let alpn: string[] | undefined;
  while (c.status === 'ok' && c.pos < length) {
    const type = c.u16();
    const len = c.u16();
    if (c.status !== 'ok') break;
    const end = c.pos + len;
    if (end > length) return { status: 'invalid' };
    if (type === EXT_SERVER_NAME && sni === undefined) sni = parseServerName(c, end);
    else if (type === EXT_ALPN && alpn === undefined) alpn = parseAlpn(c, end);
    else c.take(len);
    if (c.status === 'ok' && c.pos !== end) c.invalid();
  }
  if (c.status !== 'ok') return { status: c.status };
  return { status: 'ok', sni, alpn };
}

/** TLS record header at `off`: its fragment length, 'prefix' when cut short, or 'no'. */
function recordLength(buf: Buffer, off: number): number | 'prefix' | 'no' {
  const avail = buf.length - off;
  if (avail >= 1 && buf[off] !== CONTENT_HANDSHAKE) return 'no';
  if (avail >= 2 && buf[off + 1] !== 3) return 'no';
  if (avail >= 3 && (buf[off + 2] < 1 || buf[off + 2] > 4)) return 'no';
  if (avail < RECORD_HEADER_BYTES) return 'prefix';
  const len = (buf[off + 3] << 8) | buf[off + 4];
  return len === 0 || len > MAX_RECORD_BYTES ? 'no' : len;
}

/** A TLS ClientHello, possibly spread over several handshake records. */
export function probeTls(buf: Buffer): Probe {
  const fragments: Buffer[] = [];
  const head: number[] = []; // the handshake header: type and 24-bit length
  let handshakeBytes = 0;
  let helloLength = -1; // of the ClientHello body, once its handshake header is in
  let off = 0;
  for (;;) {
    const len = recordLength(buf, off);
    if (len === 'no') return NO;
    if (len === 'prefix') break;
    const start = off + RECORD_HEADER_BYTES;
    const fragment = buf.subarray(start, start + len);
    if (fragment.length === 0) break;
    fragments.push(fragment);
    handshakeBytes += fragment.length;
    for (let i = 0; head.length < HANDSHAKE_HEADER_BYTES && i < fragment.length; i++) head.push(fragment[i]);
    if (head[0] !== HANDSHAKE_CLIENT_HELLO) return NO;
    if (helloLength < 0 && head.length === HANDSHAKE_HEADER_BYTES) {
      helloLength = (head[1] << 16) | (head[2] << 8) | head[3];
      if (helloLength < MIN_CLIENT_HELLO_BYTES) return NO;
      const records = Math.ceil((HANDSHAKE_HEADER_BYTES + helloLength) / MAX_RECORD_BYTES);
      if (HANDSHAKE_HEADER_BYTES + helloLength + records * RECORD_HEADER_BYTES > SCAN_CAP_BYTES) {
        return { kind: 'reject', reason: UNKNOWN_REASONS.tlsTooLarge };
      }
    }
    // Stop at the end of the ClientHello: TLS 1.3 early data or a compatibility
    // ChangeCipherSpec may follow in records of other types.
    if (helloLength >= 0 && handshakeBytes >= HANDSHAKE_HEADER_BYTES + helloLength) break;
    off = start + len;
    if (off >= buf.length) break;
  }
  if (helloLength < 0)
    return needMore(buf, RECORD_HEADER_BYTES + HANDSHAKE_HEADER_BYTES + MIN_CLIENT_HELLO_BYTES);
  const handshake = fragments.length === 1 ? fragments[0] : Buffer.concat(fragments, handshakeBytes);
  const body = handshake.subarray(HANDSHAKE_HEADER_BYTES, HANDSHAKE_HEADER_BYTES + helloLength);
  const hello = parseClientHello(body, helloLength);
  if (hello.status !== 'ok') {
    return hello.status === 'invalid' ? NO : needMore(buf, buf.length + helloLength - body.length);
  }
  const facts = {
    ...(hello.sni !== undefined && { sni: hello.sni }),
    ...(hello.alpn && { alpn: hello.alpn }),
  };
  return match(hello.alpn?.includes('h2') ? 'HTTP2' : 'HTTPS', facts);
}
