/**
 * The request side of forwarding: one pass over the client's raw headers for what routing and
 * framing need, and the head sent upstream (hop-by-hop headers dropped, X-Forwarded-For /
 * -Proto / -Host and a request id added). Works on `rawHeaders`, so Node never builds the
 * `req.headers` object on the hot path.
 */
import { randomFillSync } from 'node:crypto';
import { connectionOptions } from './syntax.js';

/** What one pass over the raw headers found. */
export interface ScannedRequest {
  /** Host header ('' when absent). */
  host: string;
  chunked: boolean;
  /** Content-Length, or -1. */
  contentLength: number;
  /** Incoming X-Forwarded-For ('' when absent). */
  forwardedFor: string;
  /** Incoming X-Request-Id when it looks sane, else ''. */
  requestId: string;
  /** Extra hop-by-hop names listed in Connection (lowercase), or null. */
  connectionTokens: string[] | null;
  /** Upgrade header value ('' when absent). */
  upgrade: string;
}

/** Request headers never forwarded as they came (RFC 9110 §7.6.1, plus ones we rewrite). */
const DROP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  // Node has already answered "100 Continue" to the client.
  'expect',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-request-id',
]);

const SANE_REQUEST_ID = /^[A-Za-z0-9._:+/=-]{1,128}$/;

export function scanRequest(raw: readonly string[]): ScannedRequest {
  const r: ScannedRequest = {
    host: '',
    chunked: false,
    contentLength: -1,
    forwardedFor: '',
    requestId: '',
    connectionTokens: null,
    upgrade: '',
  };
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    // Dispatch on length first: most headers need no lowercasing at all.
    switch (name.length) {
      case 4:
        if (name.toLowerCase() === 'host') r.host = raw[i + 1];
        break;
      case 7:
        if (name.toLowerCase() === 'upgrade') r.upgrade = raw[i + 1];
        break;
      case 10:
        if (name.toLowerCase() === 'connection')
          connectionOptions(raw[i + 1].toLowerCase(), (t) => (r.connectionTokens ??= []).push(t));
        break;
      case 12:
        if (name.toLowerCase() === 'x-request-id' && SANE_REQUEST_ID.test(raw[i + 1]))
          r.requestId = raw[i + 1];
        break;
      case 14:
        if (name.toLowerCase() === 'content-length') r.contentLength = Number(raw[i + 1]);
        break;
      case 15:
        if (name.toLowerCase() === 'x-forwarded-for')
          r.forwardedFor = r.forwardedFor ? `${r.forwardedFor}, ${raw[i + 1]}` : raw[i + 1];
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') r.chunked = true;
        break;
    }
  }
  return r;
}

/** The value of a header (first occurrence, case-insensitive), or undefined. */
export function headerValue(raw: readonly string[], lowerName: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (name.length === lowerName.length && name.toLowerCase() === lowerName) return raw[i + 1];
  }
  return undefined;
}

/** Request ids are made in batches: one random fill and one formatting pass per batch. */
const UUID_BATCH = 128;
const uuidRandom = Buffer.alloc(16 * UUID_BATCH);
const uuidText = Buffer.alloc(36 * UUID_BATCH);
const HEX = Buffer.from('0123456789abcdef', 'latin1');
let uuidNext = UUID_BATCH;

function fillUuids(): void {
  randomFillSync(uuidRandom);
  for (let u = 0; u < UUID_BATCH; u++) {
    const r = u * 16;
    let o = u * 36;
    // Version 4, RFC 4122 variant: the same format as crypto.randomUUID().
    uuidRandom[r + 6] = (uuidRandom[r + 6] & 0x0f) | 0x40;
    uuidRandom[r + 8] = (uuidRandom[r + 8] & 0x3f) | 0x80;
    for (let i = 0; i < 16; i++) {
      if (i === 4 || i === 6 || i === 8 || i === 10) uuidText[o++] = 45; // '-'
      const b = uuidRandom[r + i];
      uuidText[o++] = HEX[b >> 4];
      uuidText[o++] = HEX[b & 15];
    }
  }
  uuidNext = 0;
}

/**
 * A random (version 4) UUID, as crypto.randomUUID() makes them, but as one flat string: that
 * one is built from 20 concatenations, which every response then pays to flatten.
 */
export function newRequestId(): string {
  if (uuidNext === UUID_BATCH) fillUuids();
  const o = uuidNext++ * 36;
  return uuidText.toString('latin1', o, o + 36);
}

/** A fresh request id (kept when the client sent a sane one). */
export function requestIdFor(scanned: ScannedRequest): string {
  return scanned.requestId || newRequestId();
}

/** An address as X-Forwarded-For spells it (IPv4-mapped IPv6 as plain IPv4). */
export function forwardedAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

export interface HeadOptions {
  method: string;
  /** Origin-form target (path and query). */
  target: string;
  clientAddress: string;
  proto: 'http' | 'https';
  requestId: string;
  /** Keep Connection/Upgrade (a WebSocket handshake). */
  upgrade: boolean;
  /** Other lowercase header names to drop (e.g. authorization, content-length). */
  drop?: ReadonlySet<string>;
  /** Header lines to add, each "Name: value\r\n". */
  extra?: string;
  /** How the body goes upstream: 'chunked' adds Transfer-Encoding; 'length' keeps Content-Length. */
  body: 'none' | 'length' | 'chunked';
}

/** The request head sent to a backend, ending with the empty line. */
export function buildRequestHead(raw: readonly string[], scanned: ScannedRequest, o: HeadOptions): string {
  let head = `${o.method} ${o.target} HTTP/1.1\r\n`;
  const tokens = scanned.connectionTokens;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const lower = name.toLowerCase();
    if (DROP.has(lower) || o.drop?.has(lower) || tokens?.includes(lower)) continue;
    if (lower === 'content-length' && o.body !== 'length') continue;
    head += `${name}: ${raw[i + 1]}\r\n`;
  }
  const client = forwardedAddress(o.clientAddress);
  head += `X-Forwarded-For: ${scanned.forwardedFor ? `${scanned.forwardedFor}, ${client}` : client}\r\n`;
  head += `X-Forwarded-Proto: ${o.proto}\r\n`;
  if (scanned.host) head += `X-Forwarded-Host: ${scanned.host}\r\n`;
  // HTTP/1.0 clients may omit Host; HTTP/1.1 requires one, empty when there is no authority.
  else if (!o.drop?.has('host')) head += 'Host: \r\n';
  head += `X-Request-Id: ${o.requestId}\r\n`;
  if (o.upgrade) head += `Connection: Upgrade\r\nUpgrade: ${scanned.upgrade}\r\n`;
  if (o.body === 'chunked') head += 'Transfer-Encoding: chunked\r\n';
  if (o.extra) head += o.extra;
  return `${head}\r\n`;
}

/** The origin-form target of a request URL (absolute-form "http://h/p" becomes "/p"). */
export function originForm(url: string): string {
  if (url.charCodeAt(0) === 47 /* / */ || url === '*') return url;
  const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*([^#]*)/.exec(url);
  if (!m) return '/';
  return m[1] ? (m[1].startsWith('/') ? m[1] : `/${m[1]}`) : '/';
}
