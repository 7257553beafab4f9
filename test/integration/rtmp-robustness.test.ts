/**
 * The RTMP relay under garbage: a wrong version byte, truncated handshakes, silence, broken
 * chunk streams, oversized messages, a preamble that never publishes, too many preamble
 * messages and seeded random bytes all close the connection within a bounded time, and the
 * instance keeps serving. No origin is needed: nothing here gets that far.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeAmf0 } from '../../services/modules/rtmp/amf0.js';
import {
  ChunkDecoder,
  ChunkEncoder,
  MSG_COMMAND_AMF0,
  type RtmpMessage,
} from '../../services/modules/rtmp/chunk.js';
import { parseCommand } from '../../services/modules/rtmp/commands.js';
import { clientHello, HANDSHAKE_BYTES } from '../../services/modules/rtmp/handshake.js';
import { rtmpPlugin } from '../../services/modules/rtmp/plugin.js';
import { createRng } from '../../services/shared/rng.js';
import { createDbHarness } from './dblb-fixture.js';
import { rawConnect } from './rtmp-fixture.js';

const HANDSHAKE_TIMEOUT_MS = 300;
const PREAMBLE_TIMEOUT_MS = 500;
/** The runtime waits this long for a PROXY header on a direct connection that sends nothing. */
const PROXY_WAIT_MS = 1_000;

const cmd = (...values: Parameters<typeof encodeAmf0>): RtmpMessage => ({
  typeId: MSG_COMMAND_AMF0,
  streamId: 0,
  timestamp: 0,
  payload: encodeAmf0(...values),
});

describe('RTMP relay robustness', () => {
  const h = createDbHarness();
  let port = 0;
  let rt: Awaited<ReturnType<typeof h.startInstance>>['rt'];

  beforeAll(async () => {
    const inst = await h.startInstance(rtmpPlugin, {
      origins: [{ name: 'nowhere', address: '127.0.0.1:1' }],
      limits: {
        handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
        preambleTimeoutMs: PREAMBLE_TIMEOUT_MS,
        maxMessageBytes: 64 * 1024,
      },
    });
    port = inst.port;
    rt = inst.rt;
  });

  afterAll(() => h.closeAll());

  /** Connects and completes the handshake; returns the client. */
  const handshaken = async () => {
    const c = await rawConnect(port);
    c.write(clientHello(Date.now()));
    const s = await c.until(1 + 2 * HANDSHAKE_BYTES);
    expect(s[0]).toBe(3);
    c.write(Buffer.from(s.subarray(1, 1 + HANDSHAKE_BYTES)));
    return c;
  };

  it('a wrong version byte or an HTTP request is closed at once', async () => {
    for (const first of [Buffer.from('GET / HTTP/1.1\r\n\r\n'), Buffer.from([6, 1, 2, 3])]) {
      const c = await rawConnect(port);
      c.write(first);
      expect(await c.closed()).toBeLessThan(500);
      expect(c.received().length).toBe(0);
    }
  });

  it('a truncated handshake, or silence, is closed after the handshake timeout', async () => {
    const partial = await rawConnect(port);
    partial.write(clientHello(Date.now()).subarray(0, 700));
    const t = await partial.closed();
    expect(t).toBeGreaterThanOrEqual(HANDSHAKE_TIMEOUT_MS - 50);
    expect(t).toBeLessThan(HANDSHAKE_TIMEOUT_MS + 700);
    const noC2 = await rawConnect(port);
    noC2.write(clientHello(Date.now()));
    await noC2.until(1 + 2 * HANDSHAKE_BYTES);
    expect(await noC2.closed()).toBeLessThan(HANDSHAKE_TIMEOUT_MS + 700);
    const silent = await rawConnect(port);
    expect(await silent.closed(5_000)).toBeLessThan(PROXY_WAIT_MS + HANDSHAKE_TIMEOUT_MS + 700);
  });

  it('broken chunk streams are closed at once', async () => {
    const enc = new ChunkEncoder();
    const bad: Array<[string, Buffer]> = [
      ['type 1 header on a new chunk stream', Buffer.from([0x43, 0, 0, 0, 0, 0, 10, 20])],
      // Type 0 header on csid 3: length 0xfffff0 (over the 64 KiB limit), AMF0 command.
      ['oversized message', Buffer.from([0x03, 0, 0, 0, 0xff, 0xff, 0xf0, 20, 0, 0, 0, 0])],
      ['chunk size 0', enc.encode({ typeId: 1, streamId: 0, timestamp: 0, payload: Buffer.alloc(4) })],
    ];
    for (const [what, bytes] of bad) {
      const c = await handshaken();
      c.write(bytes);
      expect(await c.closed(), what).toBeLessThan(500);
    }
  });

  it('a connect that is never followed by publish or play is closed after the preamble timeout', async () => {
    const c = await handshaken();
    const enc = new ChunkEncoder();
    c.write(enc.encode(cmd('connect', 1, { app: 'live', tcUrl: `rtmp://127.0.0.1:${port}/live` })));
    // The relay answers connect itself (the origin is only reached at publish / play).
    const dec = new ChunkDecoder(1 << 20);
    const answer = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no connect _result')), 2_000);
      c.socket.on('data', (b: Buffer) => {
        for (const m of dec.push(b).messages) {
          const x = parseCommand(m);
          if (x?.name === '_result') {
            clearTimeout(t);
            resolve(JSON.stringify(x.args[0]));
          }
        }
      });
      dec.push(c.received().subarray(1 + 2 * HANDSHAKE_BYTES));
    });
    expect(answer).toContain('NetConnection.Connect.Success');
    expect(await c.closed(3_000)).toBeLessThan(HANDSHAKE_TIMEOUT_MS + PREAMBLE_TIMEOUT_MS + 1_000);
  });

  it('too many preamble messages are refused', async () => {
    const c = await handshaken();
    const enc = new ChunkEncoder();
    const many = Buffer.concat(Array.from({ length: 400 }, (_, i) => enc.encode(cmd('noise', i + 2, null))));
    c.write(many);
    expect(await c.closed()).toBeLessThan(1_000);
  });

  it('publish towards an origin that is down gets an error status, then the connection closes', async () => {
    const c = await handshaken();
    const enc = new ChunkEncoder();
    c.write(enc.encode(cmd('connect', 1, { app: 'live' })));
    c.write(enc.encode(cmd('createStream', 2, null)));
    c.write(enc.encode({ ...cmd('publish', 3, null, 'key', 'live'), streamId: 1 }));
    await c.closed(5_000);
    expect(c.received().toString('latin1')).toContain('NetStream.Publish.Rejected');
    expect(Number(rt.statsSnapshot().custom.rtmp_refused_origin_down)).toBeGreaterThanOrEqual(1);
  });

  it('seeded random bytes before or after the handshake always end in a bounded time', async () => {
    const rng = createRng(99);
    const junk = () => {
      const n = 1 + Math.floor(rng.next() * 4000);
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = Math.floor(rng.next() * 256);
      return b;
    };
    const before = Array.from({ length: 20 }, async () => {
      const c = await rawConnect(port);
      const b = junk();
      if (rng.next() < 0.5) b[0] = 3; // get past the version check sometimes
      c.write(b);
      return c.closed(5_000);
    });
    const after = Array.from({ length: 20 }, async () => {
      const c = await handshaken();
      c.write(junk());
      return c.closed(5_000);
    });
    for (const t of await Promise.all([...before, ...after]))
      expect(t).toBeLessThan(PROXY_WAIT_MS + HANDSHAKE_TIMEOUT_MS + PREAMBLE_TIMEOUT_MS + 1_000);
    // Still serving: a clean handshake works.
    const ok = await handshaken();
    ok.socket.destroy();
    expect(rt.status).toBe('HEALTHY');
  });
});
