/**
 * PROXY protocol (https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt): the v2 binary
 * header the NLB puts before a connection's bytes so an instance sees the client's address, and
 * a decoder for v2 and the v1 text line (for instances and tests). Pure; never throws.
 */
import { formatIPv4, formatIPv6, isIPv4Mapped, parseIPv4, parseIPv6 } from './ip-address.js';

/** The 12-byte v2 signature. */
export const PROXY_V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V2_HEADER_BYTES = 16;
/** Largest v2 address block + TLVs we accept (the spec allows 65535; nobody needs that). */
export const PROXY_V2_MAX_PAYLOAD_BYTES = 4096;
/** v1: "PROXY TCP6 <39> <39> 65535 65535\r\n" is 104 bytes; the spec caps the line at 107. */
export const PROXY_V1_MAX_LINE_BYTES = 107;

const VERSION_2 = 0x20;
const COMMAND_LOCAL = 0x0;
const COMMAND_PROXY = 0x1;
const FAMILY_UNSPEC = 0x0;
const FAMILY_INET = 0x1;
const FAMILY_INET6 = 0x2;
const FAMILY_UNIX = 0x3;
const TRANSPORT_STREAM = 0x1;
const ADDRESS_BYTES: Readonly<Record<number, number>> = {
  [FAMILY_UNSPEC]: 0,
  [FAMILY_INET]: 12,
  [FAMILY_INET6]: 36,
  [FAMILY_UNIX]: 216,
};
const UNIX_PATH_BYTES = 108;

/** The two ends of a proxied TCP connection. */
export interface ProxyEndpoints {
  srcAddress: string;
  srcPort: number;
  dstAddress: string;
  dstPort: number;
}

export type ProxyFamily = 'IPv4' | 'IPv6' | 'UNIX' | 'UNSPEC';

/** A decoded PROXY header; `length` bytes of the buffer belong to it, the payload follows. */
export interface ProxyHeader extends ProxyEndpoints {
  kind: 'header';
  length: number;
  version: 1 | 2;
  /** LOCAL: the connection is the proxy's own (a health check); the addresses are empty. */
  command: 'PROXY' | 'LOCAL';
  family: ProxyFamily;
  transport: 'STREAM' | 'DGRAM' | 'UNSPEC';
}

export type ProxyDecode =
  | { kind: 'need-more' }
  /** No PROXY header: the bytes are the payload. */
  | { kind: 'none' }
  | ProxyHeader
  | { kind: 'invalid'; reason: string };

function v2Header(command: number, family: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(V2_HEADER_BYTES);
  PROXY_V2_SIGNATURE.copy(head);
  head[12] = VERSION_2 | command;
  head[13] = (family << 4) | (family === FAMILY_UNSPEC ? 0 : TRANSPORT_STREAM);
  head.writeUInt16BE(payload.length, 14);
  return Buffer.concat([head, payload]);
}

function isPort(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffff;
}

/** An address as 4 (IPv4, including IPv4-mapped IPv6) or 16 bytes, or undefined. */
function addressBytes(address: string): Uint8Array | undefined {
  const v4 = parseIPv4(address);
  if (v4) return v4;
  const v6 = parseIPv6(address);
  if (v6 && isIPv4Mapped(v6)) return v6.subarray(12);
  return v6;
}

/** 4 bytes → the IPv4-mapped IPv6 address. */
function mapped(v4: Uint8Array): Uint8Array {
  const b = new Uint8Array(16);
  b[10] = 0xff;
  b[11] = 0xff;
  b.set(v4, 12);
  return b;
}

/**
 * The v2 header for a proxied TCP connection: IPv4 when both ends are IPv4 (or IPv4-mapped),
 * else IPv6. Addresses or ports it cannot read give PROXY over UNSPEC, which tells the receiver
 * to use the connection's own endpoints (as the spec prescribes for unknown families).
 */
export function encodeProxyV2(e: ProxyEndpoints): Buffer {
  const src = addressBytes(e.srcAddress);
  const dst = addressBytes(e.dstAddress);
  if (!src || !dst || !isPort(e.srcPort) || !isPort(e.dstPort)) {
    return v2Header(COMMAND_PROXY, FAMILY_UNSPEC, Buffer.alloc(0));
  }
  const v4 = src.length === 4 && dst.length === 4;
  const size = v4 ? 4 : 16;
  const payload = Buffer.alloc(size * 2 + 4);
  payload.set(v4 || src.length === 16 ? src : mapped(src), 0);
  payload.set(v4 || dst.length === 16 ? dst : mapped(dst), size);
  payload.writeUInt16BE(e.srcPort, size * 2);
  payload.writeUInt16BE(e.dstPort, size * 2 + 2);
  return v2Header(COMMAND_PROXY, v4 ? FAMILY_INET : FAMILY_INET6, payload);
}

/** The v2 LOCAL header: a connection the proxy makes on its own behalf (health checks). */
export function encodeProxyV2Local(): Buffer {
  return v2Header(COMMAND_LOCAL, FAMILY_UNSPEC, Buffer.alloc(0));
}

function invalid(reason: string): ProxyDecode {
  return { kind: 'invalid', reason };
}

function localHeader(length: number, version: 1 | 2, command: 'PROXY' | 'LOCAL'): ProxyHeader {
  return {
    kind: 'header',
    length,
    version,
    command,
    family: 'UNSPEC',
    transport: 'UNSPEC',
    srcAddress: '',
    srcPort: 0,
    dstAddress: '',
    dstPort: 0,
  };
}

function unixPath(bytes: Buffer): string {
  const nul = bytes.indexOf(0);
  return bytes.toString('utf8', 0, nul < 0 ? bytes.length : nul);
}

function decodeV2(buf: Buffer): ProxyDecode {
  if (buf.length < V2_HEADER_BYTES) return { kind: 'need-more' };
  const versionCommand = buf[12];
  if ((versionCommand & 0xf0) !== VERSION_2) return invalid('unsupported_version');
  const command = versionCommand & 0x0f;
  if (command !== COMMAND_LOCAL && command !== COMMAND_PROXY) return invalid('unsupported_command');
  const family = buf[13] >> 4;
  const transport = buf[13] & 0x0f;
  const addressBytesNeeded = ADDRESS_BYTES[family];
  if (addressBytesNeeded === undefined || transport > 2) return invalid('unsupported_family');
  const payloadLength = buf.readUInt16BE(14);
  if (payloadLength > PROXY_V2_MAX_PAYLOAD_BYTES) return invalid('too_long');
  if (payloadLength < addressBytesNeeded) return invalid('short_address_block');
  const length = V2_HEADER_BYTES + payloadLength;
  if (buf.length < length) return { kind: 'need-more' };
  // LOCAL (and UNSPEC) carry no usable address: the receiver keeps the connection's own.
  if (command === COMMAND_LOCAL) return localHeader(length, 2, 'LOCAL');
  if (family === FAMILY_UNSPEC) return localHeader(length, 2, 'PROXY');
  const header: ProxyHeader = {
    ...localHeader(length, 2, 'PROXY'),
    transport: transport === 1 ? 'STREAM' : transport === 2 ? 'DGRAM' : 'UNSPEC',
  };
  const a = V2_HEADER_BYTES;
  if (family === FAMILY_INET) {
    return {
      ...header,
      family: 'IPv4',
      srcAddress: formatIPv4(buf.subarray(a, a + 4)),
      dstAddress: formatIPv4(buf.subarray(a + 4, a + 8)),
      srcPort: buf.readUInt16BE(a + 8),
      dstPort: buf.readUInt16BE(a + 10),
    };
  }
  if (family === FAMILY_INET6) {
    return {
      ...header,
      family: 'IPv6',
      srcAddress: formatIPv6(buf.subarray(a, a + 16)),
      dstAddress: formatIPv6(buf.subarray(a + 16, a + 32)),
      srcPort: buf.readUInt16BE(a + 32),
      dstPort: buf.readUInt16BE(a + 34),
    };
  }
  return {
    ...header,
    family: 'UNIX',
    srcAddress: unixPath(buf.subarray(a, a + UNIX_PATH_BYTES)),
    dstAddress: unixPath(buf.subarray(a + UNIX_PATH_BYTES, a + 2 * UNIX_PATH_BYTES)),
  };
}

function v1Port(text: string): number {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text)) return -1;
  const n = Number(text);
  return n <= 0xffff ? n : -1;
}

function decodeV1(buf: Buffer): ProxyDecode {
  const lf = buf.subarray(0, PROXY_V1_MAX_LINE_BYTES).indexOf(0x0a);
  if (lf < 0) {
    return buf.length >= PROXY_V1_MAX_LINE_BYTES ? invalid('v1_line_too_long') : { kind: 'need-more' };
  }
  const end = lf + 1;
  if (buf[lf - 1] !== 0x0d) return invalid('v1_bad_line_end');
  const line = buf.toString('latin1', 0, lf - 1);
  const parts = line.split(' ');
  const protocol = parts[1];
  if (protocol === 'UNKNOWN') return localHeader(end, 1, 'PROXY');
  if ((protocol !== 'TCP4' && protocol !== 'TCP6') || parts.length !== 6) return invalid('v1_malformed');
  const [src, dst] = [parts[2], parts[3]];
  const v4 = protocol === 'TCP4';
  const srcBytes = v4 ? parseIPv4(src) : parseIPv6(src);
  const dstBytes = v4 ? parseIPv4(dst) : parseIPv6(dst);
  const srcPort = v1Port(parts[4]);
  const dstPort = v1Port(parts[5]);
  if (!srcBytes || !dstBytes || srcPort < 0 || dstPort < 0) return invalid('v1_malformed');
  return {
    kind: 'header',
    length: end,
    version: 1,
    command: 'PROXY',
    family: v4 ? 'IPv4' : 'IPv6',
    transport: 'STREAM',
    srcAddress: v4 ? formatIPv4(srcBytes) : formatIPv6(srcBytes),
    srcPort,
    dstAddress: v4 ? formatIPv4(dstBytes) : formatIPv6(dstBytes),
    dstPort,
  };
}

/** Whether `buf` starts with (a prefix of) `literal`: 'yes', 'prefix' or 'no'. */
function startsWith(buf: Buffer, literal: Buffer): 'yes' | 'prefix' | 'no' {
  const n = Math.min(buf.length, literal.length);
  for (let i = 0; i < n; i++) if (buf[i] !== literal[i]) return 'no';
  return n === literal.length ? 'yes' : 'prefix';
}

/** Decodes a PROXY v2 or v1 header at the start of `buf` (see ProxyDecode). */
export function decodeProxyHeader(buf: Buffer): ProxyDecode {
  if (buf.length === 0) return { kind: 'need-more' };
  const v2 = startsWith(buf, PROXY_V2_SIGNATURE);
  if (v2 === 'yes') return decodeV2(buf);
  if (v2 === 'prefix') return { kind: 'need-more' };
  const v1 = startsWith(buf, V1_PREFIX);
  if (v1 === 'yes') return decodeV1(buf);
  if (v1 === 'prefix') return { kind: 'need-more' };
  return { kind: 'none' };
}
