/**
 * Reads an optional PROXY protocol header (v2 from the NLB, or v1) at the start of an accepted
 * connection, so that every module type sees the real client address. Connections without a
 * header still work: whatever arrived first is put back with `unshift` and the socket is handed
 * on as if untouched. Bounded in time (server-first protocols such as MySQL send nothing, so the
 * wait ends after `timeoutMs`) and in size (the decoder refuses oversized headers).
 */
import type { Socket } from 'node:net';
import type { Clock } from '../../shared/clock.js';
import {
  decodeProxyHeader,
  PROXY_V2_MAX_PAYLOAD_BYTES,
  type ProxyHeader,
} from '../../nlb/dataplane/proxy-protocol.js';

/** What was found before the payload. */
export type ProxyHeaderOutcome =
  | { kind: 'header'; header: ProxyHeader }
  | { kind: 'none' }
  | { kind: 'invalid'; reason: string }
  | { kind: 'closed' };

/** The largest header we wait for: the v2 fixed part plus the payload cap. */
const MAX_HEADER_BYTES = 16 + PROXY_V2_MAX_PAYLOAD_BYTES;

/**
 * Waits for the first bytes of `socket` and decodes a PROXY header if they start with one.
 * Calls `done` exactly once, synchronously before any payload byte could be lost: the bytes
 * after the header are unshifted, and the socket is left paused-by-nobody (a `data` listener
 * added by the next owner starts the flow, as on a fresh socket).
 */
export function readProxyHeader(
  socket: Socket,
  clock: Clock,
  timeoutMs: number,
  done: (outcome: ProxyHeaderOutcome) => void,
): void {
  let buffered: Buffer | null = null;
  let finished = false;
  const finish = (outcome: ProxyHeaderOutcome, rest: Buffer | null) => {
    if (finished) return;
    finished = true;
    timer.cancel();
    socket.off('data', onData);
    socket.off('close', onClose);
    socket.pause();
    if (rest && rest.length > 0) socket.unshift(rest);
    // Back to the state of a socket nobody has read from: the next 'data' listener resumes it.
    (socket as { readableFlowing: boolean | null }).readableFlowing = null;
    done(outcome);
  };
  const onData = (chunk: Buffer) => {
    buffered = buffered ? Buffer.concat([buffered, chunk]) : chunk;
    const d = decodeProxyHeader(buffered);
    switch (d.kind) {
      case 'need-more':
        if (buffered.length > MAX_HEADER_BYTES) finish({ kind: 'invalid', reason: 'too_long' }, null);
        return;
      case 'none':
        return finish({ kind: 'none' }, buffered);
      case 'invalid':
        return finish({ kind: 'invalid', reason: d.reason }, null);
      case 'header':
        return finish({ kind: 'header', header: d }, buffered.subarray(d.length));
    }
  };
  const onClose = () => finish({ kind: 'closed' }, null);
  // Nothing (or only part of a signature) within the budget: treat what came as payload.
  const timer = clock.setTimeout(() => finish({ kind: 'none' }, buffered), timeoutMs);
  socket.on('data', onData);
  socket.once('close', onClose);
}
