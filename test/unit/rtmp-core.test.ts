/**
 * The RTMP relay's pure parts: AMF0, the chunk decoder / encoder (compressed headers, extended
 * timestamps, chunk size changes, Abort, limits), the handshake, commands, per-app limits,
 * origin ranking and the bandwidth pacer.
 */
import { describe, expect, it } from 'vitest';
import { decodeAmf0, encodeAmf0 } from '../../services/modules/rtmp/amf0.js';
import { ChunkDecoder, ChunkEncoder, control, type RtmpMessage } from '../../services/modules/rtmp/chunk.js';
import { connectResult, parseCommand } from '../../services/modules/rtmp/commands.js';
import { rtmpLimitsSchema } from '../../services/modules/rtmp/config.js';
import { clientFinish, clientHello, serverReply } from '../../services/modules/rtmp/handshake.js';
import { Pacer, rankOrigins, StreamRegistry } from '../../services/modules/rtmp/streams.js';
import { StatsCollector } from '../../services/modules/runtime/stats.js';

describe('AMF0', () => {
  it('round-trips the values RTMP commands carry', () => {
    const values = [
      'connect',
      1,
      { app: 'live', tcUrl: 'rtmp://h/live', fpad: false, n: null },
      [1, 'two'],
      undefined,
    ];
    expect(decodeAmf0(encodeAmf0(...values))).toEqual(values);
  });

  it('returns null for malformed input instead of throwing', () => {
    expect(decodeAmf0(Buffer.from([0x02, 0x00, 0x10, 0x41]))).toBeNull(); // string longer than the buffer
    expect(decodeAmf0(Buffer.from([0x0d]))).toBeNull(); // unsupported marker
    const deep = Buffer.concat([
      ...Array.from({ length: 40 }, () => Buffer.from([0x0a, 0, 0, 0, 1])),
      Buffer.from([5]),
    ]);
    expect(decodeAmf0(deep)).toBeNull(); // nesting past the depth limit
  });
});

describe('chunk stream', () => {
  const msg = (typeId: number, size: number, timestamp = 0, streamId = 1): RtmpMessage => ({
    typeId,
    streamId,
    timestamp,
    payload: Buffer.alloc(size, typeId),
  });

  it('decodes what the encoder produced, fed one byte at a time, across chunk size changes', () => {
    const enc = new ChunkEncoder();
    const dec = new ChunkDecoder(1 << 20);
    const a = msg(9, 1000, 40);
    const resize = control.setChunkSize(300);
    const parts = [enc.encode(a), enc.encode(resize)];
    enc.chunkSize = 300;
    const b = msg(8, 700, 0x1000000); // extended timestamp
    parts.push(enc.encode(b));
    const all = Buffer.concat(parts);
    const out: RtmpMessage[] = [];
    for (let i = 0; i < all.length; i++) {
      const r = dec.push(all.subarray(i, i + 1));
      expect(r.error).toBeUndefined();
      out.push(...r.messages);
    }
    expect(out.map((m) => [m.typeId, m.timestamp, m.payload.length])).toEqual([
      [9, 40, 1000],
      [1, 0, 4],
      [8, 0x1000000, 700],
    ]);
  });

  it('follows type 1, 2 and 3 headers (deltas, reused length and type)', () => {
    // csid 4: type 0 (ts 100, len 2, type 8, stream 1), type 2 (delta 20), type 3 (delta again).
    const bytes = Buffer.from([
      0x04, 0, 0, 100, 0, 0, 2, 8, 1, 0, 0, 0, 0xaa, 0xbb, 0x84, 0, 0, 20, 0xcc, 0xdd, 0xc4, 0xee, 0xff, 0x44,
      0, 0, 5, 0, 0, 1, 9, 0x11,
    ]);
    const r = new ChunkDecoder(1024).push(bytes);
    expect(r.error).toBeUndefined();
    expect(r.messages.map((m) => [m.typeId, m.timestamp, m.streamId, m.payload.toString('hex')])).toEqual([
      [8, 100, 1, 'aabb'],
      [8, 120, 1, 'ccdd'],
      [8, 140, 1, 'eeff'],
      [9, 145, 1, '11'],
    ]);
  });

  it('refuses oversized messages, bad chunk sizes and headers that reference nothing', () => {
    expect(new ChunkDecoder(1000).push(Buffer.from([0x03, 0, 0, 0, 0, 0x10, 0, 20, 0, 0, 0, 0])).error).toBe(
      'message of 4096 bytes',
    );
    expect(new ChunkDecoder(1000).push(new ChunkEncoder().encode(control.setChunkSize(0))).error).toBe(
      'chunk size 0',
    );
    expect(new ChunkDecoder(1000).push(Buffer.from([0x43, 0, 0, 0, 0, 0, 1, 8])).error).toMatch(
      /starts with a type 1/,
    );
  });

  it('Abort drops a half-received message', () => {
    const enc = new ChunkEncoder();
    const big = enc.encode(msg(9, 300)); // 3 chunks at 128
    const abort = enc.encode({ typeId: 2, streamId: 0, timestamp: 0, payload: Buffer.from([0, 0, 0, 6]) });
    const dec = new ChunkDecoder(4096);
    expect(dec.push(big.subarray(0, 12 + 128)).messages).toEqual([]);
    expect(dec.push(abort).messages.map((m) => m.typeId)).toEqual([2]);
    expect(dec.push(enc.encode(msg(9, 10))).messages.map((m) => m.payload.length)).toEqual([10]);
  });
});

describe('handshake and commands', () => {
  it('answers C0/C1 with S0/S1/S2 (S2 echoes C1) and refuses other versions', () => {
    const c0c1 = clientHello(1234);
    const r = serverReply(c0c1, 99);
    expect(r.ok && r.reply.length).toBe(1 + 2 * 1536);
    expect(r.ok && r.reply.subarray(1 + 1536).equals(c0c1.subarray(1))).toBe(true);
    expect(serverReply(Buffer.concat([Buffer.from([6]), c0c1.subarray(1)]), 0)).toEqual({
      ok: false,
      reason: 'RTMP version 6 (want 3)',
    });
    expect(r.ok && clientFinish(r.reply).ok).toBe(true);
  });

  it('parses commands and builds the connect answer', () => {
    const m = connectResult(1, 0);
    expect(parseCommand(m)).toMatchObject({ name: '_result', txn: 1 });
    expect(parseCommand({ ...m, typeId: 9 })).toBeNull();
  });
});

describe('streams, origins and pacing', () => {
  it('limits publishers and players per app and counts streams', () => {
    const stats = new StatsCollector(0);
    const reg = new StreamRegistry(stats, 0);
    const limits = rtmpLimitsSchema.parse({ apps: [{ app: 'live', maxPublishers: 1, maxPlayers: 2 }] });
    const p1 = reg.admit('publisher', 'live', 'a', limits);
    expect('refused' in p1).toBe(false);
    expect(reg.admit('publisher', 'live', 'b', limits)).toEqual({ refused: 'app live has its 1 publishers' });
    expect('refused' in reg.admit('publisher', 'vod', 'b', limits)).toBe(false);
    if (!('refused' in p1)) {
      p1.count(125_000);
      reg.sample(1000);
      expect(stats.custom.get('stream:live/a:kbps')).toBe(1000);
      p1.release();
    }
    expect('refused' in reg.admit('publisher', 'live', 'c', limits)).toBe(false);
    expect(reg.snapshot().publishers).toBe(2);
  });

  it('ranks origins by pattern specificity, then load', () => {
    const origins = [
      { name: 'any-1', address: 'a:1', apps: ['*'], streams: ['*'] },
      { name: 'any-2', address: 'a:2', apps: ['*'], streams: ['*'] },
      { name: 'events', address: 'a:3', apps: ['live'], streams: ['event-*'] },
    ];
    const load = new Map([['any-1', 3]]);
    expect(rankOrigins(origins, 'live', 'event-1', load).map((o) => o.name)).toEqual([
      'events',
      'any-2',
      'any-1',
    ]);
    expect(rankOrigins(origins, 'vod', 'x', load).map((o) => o.name)).toEqual(['any-2', 'any-1']);
  });

  it('the pacer lets a burst through, then asks for the time the bytes need at the rate', () => {
    const p = new Pacer(80, 0); // 80 kbit/s = 10 bytes/ms; burst max(64 KiB, 1 s)
    expect(p.take(64 * 1024, 0)).toBe(0);
    expect(p.take(1000, 0)).toBe(100);
    expect(p.take(0, 200)).toBe(0);
  });
});
