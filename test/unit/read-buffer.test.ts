import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ReusedReadBuffer } from '../../services/nlb/dataplane/read-buffer.js';

/** A stand-in for the client socket: only writableLength is read. */
function target(pending = 0) {
  return { writableLength: pending } as unknown as Socket & { writableLength: number };
}

/** What net does with onread: take a buffer, fill `data` into it, call back. */
function read(r: ReusedReadBuffer, data: Buffer): Buffer {
  const buf = r.onread.buffer();
  const n = data.copy(buf);
  r.onread.callback(n, buf);
  return buf;
}

describe('ReusedReadBuffer', () => {
  it('starts small, reuses its buffer while writes complete, and moves to 64 KiB after a full read', () => {
    const r = new ReusedReadBuffer();
    const got: Buffer[] = [];
    const t = target();
    r.attach(t, (c) => got.push(Buffer.from(c)));
    const first = read(r, Buffer.from('HTTP/1.1 200 OK\r\n\r\n'));
    expect(first.length).toBeLessThan(4096);
    // The write completed (nothing pending): the same memory takes the next read.
    expect(read(r, Buffer.from('more'))).toBe(first);
    // A read that fills the buffer: bulk is coming, read in big chunks from now on.
    read(r, Buffer.alloc(first.length, 1));
    const big = r.onread.buffer();
    expect(big.length).toBe(64 * 1024);
    expect(got.map((c) => c.length)).toEqual([19, 4, first.length]);
  });

  it('never hands out memory a pending write still holds', () => {
    const r = new ReusedReadBuffer();
    const t = target();
    const held: Buffer[] = [];
    r.attach(t, (c) => held.push(c));
    const a = read(r, Buffer.from('first'));
    t.writableLength = 5; // the client has not taken the chunk yet
    const b = r.onread.buffer();
    expect(b).not.toBe(a);
    // The next read fills the buffer it got: the chunk still queued must not change.
    b.fill(0x41);
    expect(held[0].toString()).toBe('first');
  });

  it('copies what arrives before attach and returns it in order', () => {
    const r = new ReusedReadBuffer();
    read(r, Buffer.from('greeting-1'));
    read(r, Buffer.from('greeting-2'));
    const early = r.attach(target(), () => undefined);
    expect(early.map((b) => b.toString())).toEqual(['greeting-1', 'greeting-2']);
  });
});
