/**
 * HTTP probes: the HTTP/2 connection preface (RFC 9113 §3.4) and an HTTP/1.x request head
 * (RFC 9112 §3): `METHOD SP request-target SP HTTP/1.x CRLF`, then header lines up to an empty
 * line. A bare LF ends a line too, as RFC 9112 §2.2 lets a recipient accept.
 */
import type { DetectedFacts } from './detect.js';
import { match, NO, needMore, startsWithAt, type Probe } from './detect-probe.js';

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** The methods we recognise (RFC 9110 §9 plus PATCH and the common WebDAV ones). */
const METHODS = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
  'PATCH',
  'PROPFIND',
  'PROPPATCH',
  'MKCOL',
  'COPY',
  'MOVE',
  'LOCK',
  'UNLOCK',
].map((m) => ({ name: m, literal: Buffer.from(`${m} `, 'latin1') }));
const VERSION_PREFIX = Buffer.from('HTTP/1.', 'latin1');
/** "GET / HTTP/1.1\n\n": the shortest complete request head. */
const MIN_REQUEST_BYTES = 16;
const LF = 0x0a;
const CR = 0x0d;

/** The HTTP/2 client connection preface ("prior knowledge" h2c). */
export function probeHttp2Preface(buf: Buffer): Probe {
  const s = startsWithAt(buf, 0, H2_PREFACE);
  if (s === 'no') return NO;
  return s === 'yes' ? match('HTTP2', { httpVersion: '2.0' }) : needMore(buf, H2_PREFACE.length);
}

/** Host of an absolute-form target ("http://user@host:port/path"), which outranks Host (RFC 9112 §3.2.2). */
function absoluteFormHost(target: string): string | undefined {
  const m = /^https?:\/\/([^/?#]*)/i.exec(target);
  if (!m) return undefined;
  const authority = m[1].slice(m[1].lastIndexOf('@') + 1);
  return authority || undefined;
}

/** The value of a "Host:" header line, or undefined for any other line. */
function hostHeader(line: Buffer): string | undefined {
  if (line.length < 5 || line[4] !== 0x3a /* : */) return undefined;
  if (line.subarray(0, 4).toString('latin1').toLowerCase() !== 'host') return undefined;
  return line.subarray(5).toString('latin1').trim();
}

/**
 * An HTTP/1.x request head. Matches once the head is complete, or on `final` once the request
 * line is (the Host header may then be missing: the head outgrew the sniff budget).
 */
export function probeHttp1(buf: Buffer, final: boolean): Probe {
  let method: string | undefined;
  let prefix = false;
  for (const m of METHODS) {
    const s = startsWithAt(buf, 0, m.literal);
    if (s === 'yes') method = m.name;
    else if (s === 'prefix') prefix = true;
  }
  if (method === undefined) return prefix ? needMore(buf, MIN_REQUEST_BYTES) : NO;

  // request-target: visible characters up to the next space.
  const targetStart = method.length + 1;
  let i = targetStart;
  while (i < buf.length && buf[i] !== 0x20) {
    if (buf[i] < 0x21 || buf[i] === 0x7f) return NO;
    i++;
  }
  if (i >= buf.length) return needMore(buf, MIN_REQUEST_BYTES);
  if (i === targetStart) return NO;
  const target = buf.subarray(targetStart, i).toString('latin1');

  // HTTP-version and the end of the request line.
  const v = i + 1;
  const version = startsWithAt(buf, v, VERSION_PREFIX);
  if (version === 'no') return NO;
  const minor = buf[v + VERSION_PREFIX.length];
  if (version === 'prefix' || minor === undefined) return needMore(buf, MIN_REQUEST_BYTES);
  if (minor !== 0x30 && minor !== 0x31) return NO;
  let eol = v + VERSION_PREFIX.length + 1;
  if (buf[eol] === CR) eol++;
  if (eol >= buf.length) return needMore(buf, MIN_REQUEST_BYTES);
  if (buf[eol] !== LF) return NO;

  const facts: DetectedFacts = { method, httpVersion: `1.${minor - 0x30}` };
  if (method === 'CONNECT') facts.host = target;
  else {
    facts.path = target;
    const host = absoluteFormHost(target);
    if (host !== undefined) facts.host = host;
  }

  // Header lines up to the empty line; only Host matters for routing.
  let pos = eol + 1;
  let hostSeen = facts.host !== undefined;
  for (;;) {
    const nl = buf.indexOf(LF, pos);
    if (nl < 0) return final ? match('HTTP', facts) : needMore(buf, 0);
    const end = nl > pos && buf[nl - 1] === CR ? nl - 1 : nl;
    if (end === pos) return match('HTTP', facts);
    if (!hostSeen) {
      const host = hostHeader(buf.subarray(pos, end));
      if (host !== undefined) {
        facts.host = host;
        hostSeen = true;
      }
    }
    pos = nl + 1;
  }
}
