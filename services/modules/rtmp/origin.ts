/**
 * The relay's side towards an origin: connect, then the client half of the RTMP handshake
 * (C0/C1 → S0/S1/S2 → C2), bounded in time as a whole. Also a health probe built on it.
 */
import type { Socket } from 'node:net';
import { connectTo } from '../../nlb/dataplane/upstream.js';
import type { HealthCheckResult } from '../runtime/plugin.js';
import { clientFinish, clientHello, HANDSHAKE_BYTES } from './handshake.js';

export type OriginConnection = { ok: true; socket: Socket; rest: Buffer } | { ok: false; reason: string };

/** Connects to `address` and completes the handshake within `timeoutMs`; `rest` is what followed S2. */
export async function connectOrigin(address: string, timeoutMs: number): Promise<OriginConnection> {
  const t0 = Date.now();
  let socket: Socket;
  try {
    socket = await connectTo(address, timeoutMs, () => undefined);
  } catch (e) {
    return { ok: false, reason: `${address}: ${(e as NodeJS.ErrnoException).code ?? String(e)}` };
  }
  socket.setNoDelay(true);
  const left = Math.max(1, timeoutMs - (Date.now() - t0));
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    const want = 1 + 2 * HANDSHAKE_BYTES;
    const done = (r: OriginConnection) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.pause();
      if (!r.ok) socket.destroy();
      resolve(r);
    };
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf[0] !== undefined && buf[0] !== 3)
        return done({ ok: false, reason: `${address} is not an RTMP server` });
      if (buf.length < want) return;
      const f = clientFinish(buf);
      if (!f.ok) return done({ ok: false, reason: f.reason });
      socket.write(f.c2);
      done({ ok: true, socket, rest: buf.subarray(want) });
    };
    const onClose = () => done({ ok: false, reason: `${address} closed during the handshake` });
    const timer = setTimeout(
      () => done({ ok: false, reason: `${address}: no handshake within ${timeoutMs} ms` }),
      left,
    );
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.on('error', () => undefined);
    socket.write(clientHello(Date.now()));
  });
}

/** Deep health check of an origin: a full RTMP handshake. */
export async function probeOrigin(address: string, timeoutMs = 1_000): Promise<HealthCheckResult> {
  const t0 = performance.now();
  const r = await connectOrigin(address, timeoutMs);
  if (!r.ok) return { ok: false, message: r.reason };
  r.socket.destroy();
  return { ok: true, message: `RTMP handshake in ${Math.round(performance.now() - t0)} ms` };
}
