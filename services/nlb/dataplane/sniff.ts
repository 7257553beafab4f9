/**
 * Sniffing (docs/dataplane.md "Listener behaviour" step 1): read a connection's first bytes,
 * within a byte and time budget, until the detector decides. Socket timeouts use real timers:
 * they bound real I/O.
 */
import type { Socket } from 'node:net';
import type { ProtocolName } from '../domain/types.js';
import { detect, UNKNOWN_REASONS, type DetectedFacts, type Detection } from './detect.js';
import type { ListenerConfig } from './listener.js';

/** Protocols a client speaks first and whose first bytes carry routing facts (host, path, …). */
const FACT_PROTOCOLS: ReadonlySet<string> = new Set([
  'HTTP',
  'HTTPS',
  'HTTP2',
  'GRPC',
  'WEBSOCKET',
  'POSTGRES',
]);

/** Detector reasons that only say "ran out of bytes": the listener says why it stopped reading. */
const INCONCLUSIVE: ReadonlySet<string> = new Set([UNKNOWN_REASONS.incomplete, UNKNOWN_REASONS.empty]);

/** The protocol and facts to route by, and the bytes to replay; or why the connection is closed. */
export type Sniffed =
  { ok: true; protocol: ProtocolName; facts: DetectedFacts; bytes: Buffer } | { ok: false; reason: string };

/**
 * Reads (the socket is paused on accept) until the detector decides, `sniffBytes` are read or
 * `sniffTimeoutMs` passes; leaves the socket paused with every byte kept for replay.
 */
export function sniff(client: Socket, cfg: ListenerConfig): Promise<Sniffed> {
  const fixed = cfg.mode === 'sniff' ? null : (cfg.mode.toUpperCase() as ProtocolName);
  if (fixed && !FACT_PROTOCOLS.has(fixed))
    return Promise.resolve({ ok: true, protocol: fixed, facts: {}, bytes: Buffer.alloc(0) });
  const fallback =
    fixed ?? (cfg.defaultProtocol === 'none' ? null : (cfg.defaultProtocol.toUpperCase() as ProtocolName));
  return new Promise<Sniffed>((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const buffered = () => (chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
    const settle = (r: Sniffed) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.pause();
      client.off('data', onData);
      client.off('end', onEnd);
      client.off('close', onClose);
      resolve(r);
    };
    const orDefault = (bytes: Buffer, reason: string): Sniffed =>
      fallback ? { ok: true, protocol: fallback, facts: {}, bytes } : { ok: false, reason };
    let needBytes = 1;
    const decide = (final: boolean, finalReason: string) => {
      const bytes = buffered();
      let d: Detection;
      try {
        d = detect(bytes, { final });
      } catch {
        d = { kind: 'unknown', reason: 'detector_error' };
      }
      if (d.kind === 'match') settle({ ok: true, protocol: fixed ?? d.protocol, facts: d.facts, bytes });
      else if (d.kind === 'unknown' && !(final && INCONCLUSIVE.has(d.reason)))
        settle(orDefault(bytes, reasonLabel(d.reason)));
      else if (final) settle(orDefault(bytes, finalReason));
      else needBytes = d.kind === 'need-more' && d.minBytes ? d.minBytes : size + 1;
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= cfg.sniffBytes) decide(true, 'sniff_bytes_exceeded');
      else if (size >= needBytes) decide(false, '');
    };
    const onEnd = () => {
      if (size === 0) settle({ ok: false, reason: 'client_closed' });
      else decide(true, 'truncated');
    };
    const onClose = () => settle({ ok: false, reason: 'client_closed' });
    const timer = setTimeout(() => {
      if (size === 0) settle(orDefault(Buffer.alloc(0), 'timeout_no_data'));
      else decide(true, 'timeout');
    }, cfg.sniffTimeoutMs);
    client.on('data', onData);
    client.on('end', onEnd);
    client.on('close', onClose);
    client.resume();
  });
}

/** A detector reason as a low-cardinality metric label. */
function reasonLabel(reason: string): string {
  const r = reason
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_|_$/g, '');
  return r.slice(0, 40) || 'unknown';
}
