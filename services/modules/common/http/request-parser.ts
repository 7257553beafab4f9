/**
 * A strict HTTP/1.x request-head parser for the ALB's own server (http1-server.ts). Strict on
 * purpose: whatever two parsers could read differently (bare CR or LF, obs-fold, spaces before
 * the colon, Content-Length with Transfer-Encoding, a transfer coding other than chunked,
 * conflicting lengths, a missing or repeated Host) is refused with a 4xx, so a request cannot
 * mean one thing here and another to the backend. Pure.
 */
import type { ScannedRequest } from './request-head.js';
import {
  CONN_CLOSE,
  CONN_KEEP_ALIVE,
  CONN_UPGRADE,
  connectionOptions,
  CONTROL_CHARS,
  TOKEN,
  trimmedSlice,
} from './syntax.js';

export interface ParsedRequestHead {
  method: string;
  target: string;
  http10: boolean;
  /** Flat [name, value, …] as sent (values trimmed). */
  rawHeaders: string[];
  scanned: ScannedRequest;
  /** Whether the client wants the connection kept after this request. */
  keepAlive: boolean;
  expectContinue: boolean;
  /** A protocol upgrade (Connection: upgrade with an Upgrade header). */
  upgrade: boolean;
}

export type RequestHeadResult =
  { ok: true; head: ParsedRequestHead } | { ok: false; status: 400 | 405 | 501 | 505; reason: string };

/** Visible ASCII and obs-text: no spaces or controls in a request target. */
const TARGET = /^[\x21-\x7e\x80-\xff]+$/;
const SANE_REQUEST_ID = /^[A-Za-z0-9._:+/=-]{1,128}$/;
const MAX_HEADERS = 256;

const fail = (status: 400 | 405 | 501 | 505, reason: string): RequestHeadResult => ({
  ok: false,
  status,
  reason,
});

/** Parses a request head (without the final CRLFCRLF; leading empty lines already skipped). */
export function parseRequestHead(text: string): RequestHeadResult {
  // Walked with indexOf rather than split into lines: the line strings were most of what a
  // request allocated.
  let eol = text.indexOf('\r\n');
  if (eol < 0) eol = text.length;
  const sp1 = text.indexOf(' ');
  const sp2 = sp1 < 0 || sp1 > eol ? -1 : text.indexOf(' ', sp1 + 1);
  if (sp1 <= 0 || sp2 < 0 || sp2 > eol) return fail(400, 'malformed request line');
  const sp3 = text.indexOf(' ', sp2 + 1);
  if (sp3 >= 0 && sp3 < eol) return fail(400, 'malformed request line');
  const method = text.slice(0, sp1);
  const target = text.slice(sp1 + 1, sp2);
  const version = text.slice(sp2 + 1, eol);
  if (!TOKEN.test(method)) return fail(400, 'malformed method');
  if (!TARGET.test(target)) return fail(400, 'malformed request target');
  let http10: boolean;
  if (version === 'HTTP/1.1') http10 = false;
  else if (version === 'HTTP/1.0') http10 = true;
  else
    return /^HTTP\/\d\.\d$/.test(version)
      ? fail(505, 'HTTP version not supported')
      : fail(400, 'malformed request line');

  const scanned: ScannedRequest = {
    host: '',
    chunked: false,
    contentLength: -1,
    forwardedFor: '',
    requestId: '',
    connectionTokens: null,
    upgrade: '',
  };
  const rawHeaders: string[] = [];
  let hosts = 0;
  let transferEncoding = false;
  /** CONN_* bits of every Connection field. */
  let connection = 0;
  let expectContinue = false;
  for (let at = eol + 2; at <= text.length; at = eol + 2) {
    if (rawHeaders.length >= 2 * MAX_HEADERS) return fail(400, 'too many header fields');
    eol = text.indexOf('\r\n', at);
    if (eol < 0) eol = text.length;
    const colon = text.indexOf(':', at);
    if (colon <= at || colon > eol) return fail(400, 'malformed header line');
    const name = text.slice(at, colon);
    if (!TOKEN.test(name)) return fail(400, 'malformed header name');
    const value = trimmedSlice(text, colon + 1, eol);
    if (CONTROL_CHARS.test(value)) return fail(400, 'invalid character in a header value');
    rawHeaders.push(name, value);
    // Dispatch on length first: most headers need no lowercasing at all.
    switch (name.length) {
      case 4:
        if (name.toLowerCase() === 'host') {
          hosts++;
          scanned.host = value;
        }
        break;
      case 6:
        if (name.toLowerCase() === 'expect' && value.toLowerCase() === '100-continue') expectContinue = true;
        break;
      case 7:
        if (name.toLowerCase() === 'upgrade') scanned.upgrade = value;
        break;
      case 10:
        if (name.toLowerCase() === 'connection')
          connection |= connectionOptions(value.toLowerCase(), (t) =>
            (scanned.connectionTokens ??= []).push(t),
          );
        break;
      case 12:
        if (name.toLowerCase() === 'x-request-id' && SANE_REQUEST_ID.test(value)) scanned.requestId = value;
        break;
      case 14:
        if (name.toLowerCase() === 'content-length') {
          if (!/^[0-9]{1,15}$/.test(value)) return fail(400, 'malformed Content-Length');
          const n = Number(value);
          if (scanned.contentLength >= 0 && scanned.contentLength !== n)
            return fail(400, 'conflicting Content-Length');
          scanned.contentLength = n;
        }
        break;
      case 15:
        if (name.toLowerCase() === 'x-forwarded-for')
          scanned.forwardedFor = scanned.forwardedFor ? `${scanned.forwardedFor}, ${value}` : value;
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') {
          if (transferEncoding || value.toLowerCase() !== 'chunked')
            return fail(501, 'only the chunked transfer coding is supported');
          transferEncoding = true;
        }
        break;
    }
  }
  if (transferEncoding) {
    if (scanned.contentLength >= 0) return fail(400, 'Content-Length together with Transfer-Encoding');
    if (http10) return fail(400, 'Transfer-Encoding in an HTTP/1.0 request');
    scanned.chunked = true;
  }
  if (hosts > 1 || (hosts === 0 && !http10))
    return fail(400, hosts ? 'more than one Host header' : 'missing Host header');
  if (method === 'CONNECT') return fail(405, 'CONNECT is not supported by a reverse proxy');
  return {
    ok: true,
    head: {
      method,
      target,
      http10,
      rawHeaders,
      scanned,
      keepAlive: !(connection & CONN_CLOSE) && (!http10 || (connection & CONN_KEEP_ALIVE) !== 0),
      expectContinue,
      upgrade: (connection & CONN_UPGRADE) !== 0 && scanned.upgrade !== '',
    },
  };
}
