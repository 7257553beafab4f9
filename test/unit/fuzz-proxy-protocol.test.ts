/**
 * Property-based fuzzing of the PROXY protocol codec (services/nlb/dataplane/proxy-protocol.ts,
 * ip-address.ts) and the module runtime's header reader (services/modules/runtime/
 * proxy-header-reader.ts, driven here through a stand-in socket so that thousands of chunkings
 * run in milliseconds; module-proxy-header.test.ts covers it over real sockets). Replay a failure
 * with the seed the run printed: MP_FUZZ_SEED=<seed> npx vitest run
 * test/unit/fuzz-proxy-protocol.test.ts (docs/hardening.md "Fuzzing").
 */
import { EventEmitter } from 'node:events';
import { isIPv6 } from 'node:net';
import type { Socket } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeProxyHeader,
  encodeProxyV2,
  encodeProxyV2Local,
  PROXY_V1_MAX_LINE_BYTES,
  PROXY_V2_MAX_PAYLOAD_BYTES,
  type ProxyDecode,
} from '../../services/nlb/dataplane/proxy-protocol.js';
import { formatIPv6, parseIPv4, parseIPv6 } from '../../services/nlb/dataplane/ip-address.js';
import {
  readProxyHeader,
  type ProxyHeaderOutcome,
} from '../../services/modules/runtime/proxy-header-reader.js';
import { createManualClock } from '../../services/shared/clock.js';
import { fuzzParams, seedLabel, fuzzAssert } from './fuzz-support.js';

const KINDS = ['need-more', 'none', 'header', 'invalid'];
const MAX_V2_BYTES = 16 + PROXY_V2_MAX_PAYLOAD_BYTES;

const port = fc.integer({ min: 0, max: 65535 });
/** IPv6 text in every form fast-check knows (compressed, embedded IPv4, …), sometimes with a zone. */
const ipv6 = fc
  .tuple(fc.ipV6(), fc.option(fc.constantFrom('eth0', '1', 'lo'), { nil: undefined }))
  .map(([a, zone]) => (zone ? `${a}%${zone}` : a));
const address = fc.oneof(
  fc.ipV4(),
  ipv6,
  fc.ipV4().map((a) => `::ffff:${a}`),
);

const bytesOf = (a: string) => parseIPv4(a) ?? parseIPv6(a);
const isV4ish = (a: string) => {
  const b = bytesOf(a);
  return (
    b !== undefined &&
    (b.length === 4 || (b.every((x, i) => i >= 10 || x === 0) && b[10] === 0xff && b[11] === 0xff))
  );
};

/** `bytes` cut at `cuts` (any numbers; taken modulo the length). */
function split(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of [...at, bytes.length]) {
    if (c > prev) out.push(bytes.subarray(prev, c));
    prev = Math.max(prev, c);
  }
  return out;
}

/**
 * The parts of a socket readProxyHeader uses: events, pause, unshift and readableFlowing. What
 * it unshifts is what the next reader of the socket would see first.
 */
class StandInSocket extends EventEmitter {
  readableFlowing: boolean | null = null;
  unshifted: Buffer[] = [];
  pause(): this {
    this.readableFlowing = false;
    return this;
  }
  unshift(chunk: Buffer): void {
    this.unshifted.unshift(chunk);
  }
}

/** Feeds `chunks` to readProxyHeader; then closes (`close`) or lets the timeout pass. */
function readChunks(chunks: readonly Buffer[], end: 'close' | 'timeout') {
  const clock = createManualClock(0);
  const socket = new StandInSocket();
  const outcomes: ProxyHeaderOutcome[] = [];
  readProxyHeader(socket as unknown as Socket, clock, 1000, (o) => outcomes.push(o));
  const delivered: Buffer[] = [];
  for (const c of chunks) {
    if (outcomes.length > 0) break;
    delivered.push(c);
    socket.emit('data', c);
  }
  if (outcomes.length === 0) {
    if (end === 'close') socket.emit('close');
    else clock.advance(1000);
  }
  expect(outcomes).toHaveLength(1);
  // Once done, later bytes are no longer the reader's business.
  expect(socket.listenerCount('data')).toBe(0);
  return {
    outcome: outcomes[0],
    /** What the reader saw; later chunks belong to the next reader. */
    seen: Buffer.concat(delivered),
    replay: Buffer.concat(socket.unshifted),
    flowing: socket.readableFlowing,
  };
}

function checkDecode(d: ProxyDecode, buf: Buffer): void {
  expect(KINDS).toContain(d.kind);
  if (d.kind === 'header') {
    expect(d.length).toBeGreaterThanOrEqual(8);
    expect(d.length).toBeLessThanOrEqual(buf.length);
    for (const p of [d.srcPort, d.dstPort]) expect(Number.isInteger(p) && p >= 0 && p <= 0xffff).toBe(true);
  } else if (d.kind === 'invalid') {
    expect(d.reason).toMatch(/^[a-z0-9_]+$/);
  } else if (d.kind === 'need-more') {
    // A header never needs more than its largest form: the wait is bounded.
    expect(buf.length).toBeLessThan(MAX_V2_BYTES);
  }
}

/** A PROXY v1 line as haproxy writes it, with the canonical text the decoder gives back. */
const v1Arb = fc.oneof(
  fc.record({ src: fc.ipV4(), dst: fc.ipV4(), sp: port, dp: port }).map((e) => ({
    line: `PROXY TCP4 ${e.src} ${e.dst} ${e.sp} ${e.dp}\r\n`,
    family: 'IPv4' as const,
    ...e,
  })),
  fc.record({ src: fc.ipV6(), dst: fc.ipV6(), sp: port, dp: port }).map((e) => ({
    line: `PROXY TCP6 ${e.src} ${e.dst} ${e.sp} ${e.dp}\r\n`,
    family: 'IPv6' as const,
    ...e,
  })),
);

describe(`PROXY protocol properties (fast-check) ${seedLabel}`, () => {
  it('v2 round trip: any IPv4/IPv6 endpoints and ports decode to the same addresses', () => {
    fuzzAssert(
      fc.property(
        address,
        port,
        address,
        port,
        fc.uint8Array({ maxLength: 64 }),
        (src, sp, dst, dp, payload) => {
          const header = encodeProxyV2({ srcAddress: src, srcPort: sp, dstAddress: dst, dstPort: dp });
          const d = decodeProxyHeader(Buffer.concat([header, payload]));
          if (d.kind !== 'header') throw new Error(`decoded as ${JSON.stringify(d)}`);
          expect(d).toMatchObject({
            version: 2,
            command: 'PROXY',
            transport: 'STREAM',
            length: header.length,
          });
          expect([d.srcPort, d.dstPort]).toEqual([sp, dp]);
          const v4 = isV4ish(src) && isV4ish(dst);
          expect(d.family).toBe(v4 ? 'IPv4' : 'IPv6');
          // The same 16 (or 4) bytes, whatever text form came in; IPv6 comes back in RFC 5952 form.
          const same = (decoded: string, sent: string) => {
            const a = bytesOf(decoded)!;
            const b = bytesOf(sent)!;
            const as16 = (x: Uint8Array) =>
              x.length === 16 ? x : Uint8Array.from([...new Array<number>(10).fill(0), 0xff, 0xff, ...x]);
            expect(Buffer.from(v4 ? a : as16(a))).toEqual(
              Buffer.from(v4 ? b.subarray(b.length - 4) : as16(b)),
            );
            if (!v4) expect(decoded).toBe(formatIPv6(as16(a)));
          };
          same(d.srcAddress, src);
          same(d.dstAddress, dst);
        },
      ),
      fuzzParams('proxy v2 round trip', 5000),
    );
  });

  it('v2 with an unreadable address or port falls back to PROXY over UNSPEC, never throws', () => {
    const anyPort = fc.oneof(port, fc.integer(), fc.double());
    fuzzAssert(
      fc.property(
        fc.oneof(address, fc.string()),
        anyPort,
        fc.oneof(address, fc.string()),
        anyPort,
        (src, sp, dst, dp) => {
          const header = encodeProxyV2({ srcAddress: src, srcPort: sp, dstAddress: dst, dstPort: dp });
          const d = decodeProxyHeader(header);
          if (d.kind !== 'header') throw new Error(`decoded as ${JSON.stringify(d)}`);
          expect(d.length).toBe(header.length);
          const readable =
            bytesOf(src) &&
            bytesOf(dst) &&
            [sp, dp].every((p) => Number.isInteger(p) && p >= 0 && p <= 65535);
          expect(d.family === 'UNSPEC').toBe(!readable);
        },
      ),
      fuzzParams('proxy v2 fallback', 3000),
    );
  });

  it('v1 round trip: haproxy-style lines decode to their endpoints', () => {
    fuzzAssert(
      fc.property(v1Arb, fc.uint8Array({ maxLength: 32 }), (v, payload) => {
        const line = Buffer.from(v.line, 'latin1');
        expect(line.length).toBeLessThanOrEqual(PROXY_V1_MAX_LINE_BYTES);
        const d = decodeProxyHeader(Buffer.concat([line, payload]));
        if (d.kind !== 'header') throw new Error(`${v.line.trim()} decoded as ${JSON.stringify(d)}`);
        expect(d).toMatchObject({
          version: 1,
          family: v.family,
          length: line.length,
          srcPort: v.sp,
          dstPort: v.dp,
        });
        expect(Buffer.from(bytesOf(d.srcAddress)!)).toEqual(Buffer.from(bytesOf(v.src)!));
        expect(Buffer.from(bytesOf(d.dstAddress)!)).toEqual(Buffer.from(bytesOf(v.dst)!));
      }),
      fuzzParams('proxy v1 round trip', 3000),
    );
  });

  it('every strict prefix of a valid header is need-more; the whole header decides', () => {
    const headerArb = fc.oneof(
      fc
        .tuple(address, port, address, port)
        .map(([s, sp, d, dp]) => encodeProxyV2({ srcAddress: s, srcPort: sp, dstAddress: d, dstPort: dp })),
      fc.constant(encodeProxyV2Local()),
      v1Arb.map((v) => Buffer.from(v.line, 'latin1')),
    );
    fuzzAssert(
      fc.property(headerArb, fc.nat(), (header, cut) => {
        const prefix = header.subarray(0, cut % header.length);
        if (prefix.length > 0) expect(decodeProxyHeader(prefix)).toEqual({ kind: 'need-more' });
        expect(decodeProxyHeader(header).kind).toBe('header');
      }),
      fuzzParams('proxy truncation', 4000),
    );
  });

  it('arbitrary and corrupted bytes: never throws, and a decision does not change with more bytes', () => {
    const seeds = [
      encodeProxyV2({ srcAddress: '203.0.113.7', srcPort: 1, dstAddress: '10.0.0.1', dstPort: 443 }),
      encodeProxyV2({ srcAddress: '2001:db8::7', srcPort: 2, dstAddress: '::1', dstPort: 80 }),
      encodeProxyV2Local(),
      Buffer.from('PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n'),
      Buffer.from('PROXY UNKNOWN\r\n'),
    ];
    const corrupted = fc
      .tuple(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 4 }), fc.nat())
      .map(([b, edits, cut]) => {
        const out = Buffer.from(b);
        for (const [at, v] of edits) out[at % out.length] = v;
        return out.subarray(0, cut % (out.length + 1));
      });
    fuzzAssert(
      fc.property(
        fc.oneof(
          corrupted,
          fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
        ),
        fc.uint8Array({ minLength: 1, maxLength: 32 }),
        (buf, more) => {
          const d = decodeProxyHeader(buf);
          checkDecode(d, buf);
          if (d.kind !== 'need-more') expect(decodeProxyHeader(Buffer.concat([buf, more]))).toEqual(d);
        },
      ),
      fuzzParams('proxy arbitrary bytes', 6000),
    );
  });

  it("readProxyHeader: any chunking gives one outcome, the decoder's, and replays the payload intact", () => {
    const stream = fc.oneof(
      fc
        .tuple(address, port, address, port, fc.uint8Array({ maxLength: 64 }))
        .map(([s, sp, d, dp, p]) =>
          Buffer.concat([encodeProxyV2({ srcAddress: s, srcPort: sp, dstAddress: d, dstPort: dp }), p]),
        ),
      fc
        .tuple(v1Arb, fc.uint8Array({ maxLength: 64 }))
        .map(([v, p]) => Buffer.concat([Buffer.from(v.line), p])),
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
    );
    fuzzAssert(
      fc.property(
        stream,
        fc.array(fc.nat(), { maxLength: 10 }),
        fc.constantFrom('close', 'timeout'),
        (bytes, cuts, end: 'close' | 'timeout') => {
          const { outcome, seen, replay, flowing } = readChunks(split(bytes, cuts), end);
          const whole = decodeProxyHeader(bytes);
          // The reader decides on the bytes it saw, and that is what the whole stream says too.
          const atStop = decodeProxyHeader(seen);
          if (atStop.kind !== 'need-more') expect(whole).toEqual(atStop);
          expect(flowing).toBeNull();
          switch (outcome.kind) {
            case 'header':
              expect(outcome.header).toEqual(whole);
              expect(replay).toEqual(seen.subarray(outcome.header.length));
              break;
            case 'none':
              // No header, or the wait ran out: every byte seen goes to the next reader.
              expect(whole.kind === 'none' || (end === 'timeout' && whole.kind === 'need-more')).toBe(true);
              expect(replay).toEqual(seen);
              break;
            case 'invalid':
              expect(whole).toEqual({ kind: 'invalid', reason: outcome.reason });
              break;
            case 'closed':
              expect(end).toBe('close');
              expect(whole.kind).toBe('need-more');
              break;
          }
        },
      ),
      fuzzParams('readProxyHeader chunkings', 4000),
    );
  });

  it('parseIPv6 agrees with node:net on text made of IPv6 characters', () => {
    const text = fc.oneof(
      ipv6,
      fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF:.%'), maxLength: 45 }),
      fc.tuple(ipv6, fc.string({ unit: fc.constantFrom(...'0:.f1'), maxLength: 4 })).map(([a, s]) => a + s),
    );
    fuzzAssert(
      fc.property(text, (t) => {
        expect(parseIPv6(t) !== undefined, t).toBe(isIPv6(t));
      }),
      // Found by this property: a zone id with a second "%" was accepted.
      fuzzParams('parseIPv6 vs node:net', 5000, [['::%%'], ['fe80::1%eth0%1']]),
    );
  });
});
