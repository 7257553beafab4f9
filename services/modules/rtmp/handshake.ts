/**
 * The RTMP handshake (Adobe RTMP spec §5.2), version 3, in its plain form: C0/C1 → S0/S1/S2 →
 * C2 with the server side for clients and the client side for origins. S1 carries a zero
 * version, which tells digest-aware clients (ffmpeg, OBS, librtmp) not to expect the Flash
 * digest scheme; S2 echoes C1.
 */
import { randomBytes } from 'node:crypto';

export const RTMP_VERSION = 3;
export const HANDSHAKE_BYTES = 1536;

/** Server side: what to answer to C0 + C1, or why not. */
export function serverReply(
  c0c1: Buffer,
  nowMs: number,
): { ok: true; reply: Buffer } | { ok: false; reason: string } {
  if (c0c1.length < 1 + HANDSHAKE_BYTES) return { ok: false, reason: 'short C0/C1' };
  if (c0c1[0] !== RTMP_VERSION) return { ok: false, reason: `RTMP version ${c0c1[0]} (want 3)` };
  const s1 = randomBytes(HANDSHAKE_BYTES);
  s1.writeUInt32BE(nowMs >>> 0, 0);
  s1.writeUInt32BE(0, 4);
  const s2 = Buffer.from(c0c1.subarray(1, 1 + HANDSHAKE_BYTES));
  return { ok: true, reply: Buffer.concat([Buffer.from([RTMP_VERSION]), s1, s2]) };
}

/** Client side: C0 + C1. */
export function clientHello(nowMs: number): Buffer {
  const c1 = randomBytes(HANDSHAKE_BYTES);
  c1.writeUInt32BE(nowMs >>> 0, 0);
  c1.writeUInt32BE(0, 4);
  return Buffer.concat([Buffer.from([RTMP_VERSION]), c1]);
}

/** Client side: C2 for the server's S0 + S1 + S2, or why the server's answer is wrong. */
export function clientFinish(s0s1s2: Buffer): { ok: true; c2: Buffer } | { ok: false; reason: string } {
  if (s0s1s2.length < 1 + 2 * HANDSHAKE_BYTES) return { ok: false, reason: 'short S0/S1/S2' };
  if (s0s1s2[0] !== RTMP_VERSION) return { ok: false, reason: `origin answered RTMP version ${s0s1s2[0]}` };
  return { ok: true, c2: Buffer.from(s0s1s2.subarray(1, 1 + HANDSHAKE_BYTES)) };
}
