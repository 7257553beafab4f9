/**
 * readIntoSharedBuffer on real loopback sockets: it must work on this Node (the ALB relies on it
 * for its p99), deliver what the socket had buffered first, keep pause()/resume() and 'end'
 * working, and reuse one buffer for every read of every socket.
 */
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isShared, readIntoSharedBuffer } from '../../services/modules/common/http/shared-read-buffer.js';

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

async function acceptedPair(): Promise<{ client: Socket; accepted: Socket }> {
  const server: Server = createServer({ pauseOnConnect: true });
  cleanup.push(() => server.close());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const got = once(server, 'connection') as Promise<[Socket]>;
  const client = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port });
  cleanup.push(() => client.destroy());
  const [accepted] = await got;
  cleanup.push(() => accepted.destroy());
  return { client, accepted };
}

function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (cond()) resolve();
      else if (Date.now() > deadline) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(tick, 5);
    };
    tick();
  });
}

describe('readIntoSharedBuffer', () => {
  it('reads every socket into the same memory and hands each chunk to the callback', async () => {
    const a = await acceptedPair();
    const b = await acceptedPair();
    const got: Array<{ from: string; text: string; shared: boolean; memory: ArrayBufferLike }> = [];
    for (const [name, p] of [
      ['a', a],
      ['b', b],
    ] as const) {
      const early = readIntoSharedBuffer(p.accepted, (c) =>
        got.push({ from: name, text: c.toString(), shared: isShared(c), memory: c.buffer }),
      );
      expect(early).toEqual([]);
      p.accepted.on('data', () => {
        throw new Error('no data events in user-buffer mode');
      });
      p.accepted.resume();
    }
    a.client.write('from a');
    await until(() => got.length === 1, 'a');
    b.client.write('from b');
    await until(() => got.length === 2, 'b');
    expect(got.map((g) => [g.from, g.text])).toEqual([
      ['a', 'from a'],
      ['b', 'from b'],
    ]);
    expect(got.every((g) => g.shared)).toBe(true);
    expect(got[0].memory).toBe(got[1].memory);
  });

  it('returns what the socket had already buffered, which is not shared memory', async () => {
    const { client, accepted } = await acceptedPair();
    client.write('already here');
    // Read and put back, as the PROXY header reader does with what follows the header.
    const putBack = new Promise<void>((resolve) =>
      accepted.once('data', (c: Buffer) => {
        accepted.pause();
        accepted.unshift(c);
        resolve();
      }),
    );
    accepted.resume();
    await putBack;
    const got: string[] = [];
    const early = readIntoSharedBuffer(accepted, (c) => got.push(c.toString()));
    expect(early?.map((b) => b.toString())).toEqual(['already here']);
    expect(early?.some(isShared)).toBe(false);
    accepted.resume();
    client.write('then this');
    await until(() => got.length === 1, 'the next read');
    expect(got).toEqual(['then this']);
  });

  it('pause() stops reading and resume() starts again; the end of stream still arrives', async () => {
    const { client, accepted } = await acceptedPair();
    const got: string[] = [];
    readIntoSharedBuffer(accepted, (c) => got.push(c.toString()));
    accepted.resume();
    client.write('one');
    await until(() => got.length === 1, 'one');
    accepted.pause();
    client.write('two');
    await new Promise((r) => setTimeout(r, 100));
    expect(got).toEqual(['one']);
    const ended = once(accepted, 'end');
    accepted.resume();
    await until(() => got.length === 2, 'two');
    client.end();
    await ended;
    expect(got).toEqual(['one', 'two']);
  });

  it('leaves a socket alone when it cannot (already set up)', async () => {
    const { accepted } = await acceptedPair();
    expect(readIntoSharedBuffer(accepted, () => undefined)).not.toBeNull();
    expect(readIntoSharedBuffer(accepted, () => undefined)).toBeNull();
  });
});
