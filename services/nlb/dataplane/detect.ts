/**
 * Protocol detection from a connection's first bytes (docs/dataplane.md, DESIGN.md §2). Pure:
 * no I/O, never throws, bounded work (at most SCAN_CAP_BYTES are looked at, every scan is linear).
 *
 * Each protocol has a probe that answers "match", "need more" (the bytes are a valid prefix of
 * it), "no" or "reject" (recognised but not routable, e.g. SSH). The probes' structures are
 * disjoint once they decide, so a prefix of one protocol never matches another; `detect` takes
 * the first match, else waits while any probe still needs more, else reports why it gave up.
 */
import type { ProtocolName } from '../domain/types.js';
import { probeHttp1, probeHttp2Preface } from './detect-http.js';
import { probeMongo, probePostgres, probeRedis } from './detect-databases.js';
import {
  match,
  NO,
  needMore,
  SCAN_CAP_BYTES,
  startsWithAt,
  UNKNOWN_REASONS,
  type Probe,
} from './detect-probe.js';
import { probeTls } from './detect-tls.js';

export { SCAN_CAP_BYTES, UNKNOWN_REASONS } from './detect-probe.js';

/** Routing facts read from the first bytes; only what the protocol carries is set. */
export interface DetectedFacts {
  /** TLS ClientHello server_name (lower case). */
  sni?: string;
  /** TLS ClientHello ALPN protocols, in the client's order. */
  alpn?: string[];
  /** HTTP/1.x request line: method, request target as sent, version ("1.0", "1.1"; "2.0" for the h2 preface). */
  method?: string;
  path?: string;
  httpVersion?: string;
  /** HTTP/1.x Host header as sent (or the authority of an absolute-form / CONNECT target). */
  host?: string;
  /** PostgreSQL StartupMessage (database defaults to the user, as the server does). */
  database?: string;
  user?: string;
  application?: string;
  sslRequest?: boolean;
  gssEncRequest?: boolean;
  /** PostgreSQL CancelRequest: the connection only cancels a query on another one. */
  cancelRequest?: boolean;
  mongoOpcode?: number;
  rtmpVersion?: number;
}

/** What the first bytes say. */
export type Detection =
  /**
   * A valid prefix of something recognisable. No match can come before `minBytes` bytes are
   * buffered (an `unknown` may: a later byte can rule the prefix out).
   */
  | { kind: 'need-more'; minBytes?: number }
  /** Nothing we route (or garbage); `reason` is one of UNKNOWN_REASONS. */
  | { kind: 'unknown'; reason: string }
  | { kind: 'match'; protocol: ProtocolName; facts: DetectedFacts };

export interface DetectOptions {
  /** No more bytes will come (the client went quiet, closed, or the sniff budget is spent). */
  final?: boolean;
}

const SSH_BANNER = Buffer.from('SSH-', 'latin1');
const RTMP_VERSION = 3;
const RTMP_C0_C1_BYTES = 1 + 1536;

/** SSH clients send their banner first; we do not route SSH, and it must not look like anything else. */
function probeSsh(buf: Buffer): Probe {
  const s = startsWithAt(buf, 0, SSH_BANNER);
  if (s === 'no') return NO;
  return s === 'yes' ? { kind: 'reject', reason: UNKNOWN_REASONS.ssh } : needMore(buf, SSH_BANNER.length);
}

/** RTMP C0 (version 3) and C1 (1536 bytes of time, zero/version and random): only C0 is checkable. */
function probeRtmp(buf: Buffer): Probe {
  if (buf[0] !== RTMP_VERSION) return NO;
  if (buf.length < RTMP_C0_C1_BYTES) return needMore(buf, RTMP_C0_C1_BYTES);
  return match('RTMP', { rtmpVersion: RTMP_VERSION });
}

// Order only matters for readability: decided structures never overlap.
const PROBES: readonly ((buf: Buffer, final: boolean) => Probe)[] = [
  probeTls,
  probeHttp2Preface,
  probeHttp1,
  probePostgres,
  probeMongo,
  probeRedis,
  probeRtmp,
  probeSsh,
];

/** Detects the protocol of a connection from its first bytes (see docs/dataplane.md). */
export function detect(buf: Buffer, opts: DetectOptions = {}): Detection {
  const final = opts.final === true || buf.length >= SCAN_CAP_BYTES;
  const view = buf.length > SCAN_CAP_BYTES ? buf.subarray(0, SCAN_CAP_BYTES) : buf;
  if (view.length === 0) {
    return final ? { kind: 'unknown', reason: UNKNOWN_REASONS.empty } : { kind: 'need-more', minBytes: 1 };
  }
  let minBytes = Infinity;
  let reject: string | undefined;
  for (const probe of PROBES) {
    const p = probe(view, final);
    if (p.kind === 'match') return { kind: 'match', protocol: p.protocol, facts: p.facts };
    if (p.kind === 'need-more') minBytes = Math.min(minBytes, p.minBytes);
    else if (p.kind === 'reject') reject ??= p.reason;
  }
  if (minBytes !== Infinity) {
    return final ? { kind: 'unknown', reason: UNKNOWN_REASONS.incomplete } : { kind: 'need-more', minBytes };
  }
  return { kind: 'unknown', reason: reject ?? UNKNOWN_REASONS.unrecognised };
}
