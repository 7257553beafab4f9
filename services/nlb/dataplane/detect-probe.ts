/**
 * The vocabulary the protocol probes of detect.ts share. A probe looks at a connection's first
 * bytes and says whether they are its protocol, a valid prefix of it, or not it.
 */
import type { ProtocolName } from '../domain/types.js';
import type { DetectedFacts } from './detect.js';

/** The reasons `detect` gives for `unknown`: a small fixed set, fit for a metric label. */
export const UNKNOWN_REASONS = {
  empty: 'empty',
  incomplete: 'incomplete',
  unrecognised: 'unrecognised',
  ssh: 'SSH',
  tlsTooLarge: 'tls_client_hello_too_large',
} as const;

/** Bytes detection looks at; a longer buffer is judged on its first SCAN_CAP_BYTES as final. */
export const SCAN_CAP_BYTES = 16 * 1024;

/** One protocol's verdict on a buffer. */
export type Probe =
  | { kind: 'match'; protocol: ProtocolName; facts: DetectedFacts }
  /** A valid prefix; no match is possible before `minBytes` bytes in total. */
  | { kind: 'need-more'; minBytes: number }
  | { kind: 'no' }
  /** Recognised, but not something we route. */
  | { kind: 'reject'; reason: string };

export const NO: Probe = { kind: 'no' };

/** Needs at least `minBytes` in total (never less than one more byte than `buf` holds). */
export function needMore(buf: Buffer, minBytes: number): Probe {
  return { kind: 'need-more', minBytes: Math.max(minBytes, buf.length + 1) };
}

/** A match of `protocol` with `facts`. */
export function match(protocol: ProtocolName, facts: DetectedFacts): Probe {
  return { kind: 'match', protocol, facts };
}

/**
 * Compares `buf` from `offset` with `literal`: 'yes' when all of it is there, 'prefix' when the
 * buffer ends inside it, 'no' on the first differing byte.
 */
export function startsWithAt(buf: Buffer, offset: number, literal: Buffer): 'yes' | 'prefix' | 'no' {
  const n = Math.max(0, Math.min(literal.length, buf.length - offset));
  for (let i = 0; i < n; i++) if (buf[offset + i] !== literal[i]) return 'no';
  return n === literal.length ? 'yes' : 'prefix';
}
