/**
 * Property-based fuzzing of the protocol detector (services/nlb/dataplane/detect*.ts) with
 * fast-check, beside the seeded mutation fuzzer in detect-fuzz.test.ts. Replay a failure with
 * the seed the run printed: MP_FUZZ_SEED=<seed> npx vitest run test/unit/fuzz-detect.test.ts
 * (docs/hardening.md "Fuzzing").
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  detect,
  SCAN_CAP_BYTES,
  UNKNOWN_REASONS,
  type DetectedFacts,
  type Detection,
} from '../../services/nlb/dataplane/detect.js';
import { PROTOCOLS } from '../../services/nlb/domain/types.js';
import { corpus } from './detect-corpus.js';
import { fuzzParams, seedLabel, fuzzAssert } from './fuzz-support.js';

const REASONS = new Set<string>(Object.values(UNKNOWN_REASONS));

/** The answer for bytes that are all there is: a decision, or the final verdict. */
function oneShot(bytes: Buffer): Detection {
  const d = detect(bytes);
  return d.kind === 'need-more' ? detect(bytes, { final: true }) : d;
}

/**
 * The listener's sniff loop (services/nlb/dataplane/sniff.ts) over `chunks`: detect whenever at
 * least `minBytes` are buffered, stop at the first decision, else judge the whole as final.
 */
function incremental(chunks: readonly Buffer[]): Detection {
  let buf = Buffer.alloc(0);
  let needBytes = 1;
  for (const chunk of chunks) {
    buf = Buffer.concat([buf, chunk]);
    if (buf.length < needBytes) continue;
    const d = detect(buf);
    if (d.kind !== 'need-more') return d;
    // "No match can come before minBytes": skipping the calls in between must not change the verdict.
    needBytes = d.minBytes ?? buf.length + 1;
  }
  return detect(buf, { final: true });
}

/** `bytes` cut at `cuts` (any numbers; taken modulo the length). */
function split(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => (bytes.length ? c % (bytes.length + 1) : 0)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of [...at, bytes.length]) {
    out.push(bytes.subarray(prev, c)); // empty chunks too: a zero-length read must be harmless
    prev = Math.max(prev, c);
  }
  return out;
}

function checkShape(d: Detection, length: number): void {
  if (d.kind === 'match') {
    expect(PROTOCOLS).toContain(d.protocol);
  } else if (d.kind === 'unknown') {
    expect(REASONS).toContain(d.reason);
  } else {
    expect(d.kind).toBe('need-more');
    if (d.minBytes !== undefined) {
      expect(d.minBytes).toBeGreaterThan(length);
      // Never asks for more than the scan cap: the sniff budget always ends the wait.
      expect(d.minBytes).toBeLessThanOrEqual(SCAN_CAP_BYTES);
    }
  }
}

/** Random bytes whose first byte is often one a probe looks for. */
const bytesArb = fc
  .tuple(
    fc.constantFrom(0x00, 0x03, 0x16, 0x2a, 0x47, 0x50, 0x53, 0x70, 0x67, 0x0d, 0x3c, 0xdd, 0xff),
    fc.uint8Array({ maxLength: 300 }),
    fc.boolean(),
  )
  .map(([first, rest, biased]) => {
    const b = Buffer.from(rest);
    if (biased && b.length > 0) b[0] = first;
    return b;
  });

const cutsArb = fc.array(fc.nat(), { maxLength: 12 });
const packets = corpus.filter((p) => p.bytes.length > 0);
const packetArb = fc.constantFrom(...packets);

// ---- generated client requests with known facts ----

const TOKEN = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_';
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'PROPFIND', 'MKCOL', 'LOCK'];
const visible = (min: number, max: number) =>
  fc
    .array(fc.integer({ min: 0x21, max: 0x7e }), { minLength: min, maxLength: max })
    .map((cs) => String.fromCharCode(...cs));
const printable = (max: number) =>
  fc.array(fc.integer({ min: 0x20, max: 0x7e }), { maxLength: max }).map((cs) => String.fromCharCode(...cs));
const token = (min: number, max: number) =>
  fc.array(fc.constantFrom(...TOKEN), { minLength: min, maxLength: max }).map((cs) => cs.join(''));

interface Generated {
  bytes: Buffer;
  protocol: string;
  facts: DetectedFacts;
}

const httpArb: fc.Arbitrary<Generated> = fc
  .record({
    method: fc.constantFrom(...METHODS),
    path: visible(0, 60).map((p) => `/${p}`),
    minor: fc.constantFrom(0, 1),
    eol: fc.constantFrom('\r\n', '\n'),
    headers: fc.array(
      fc.tuple(fc.oneof(token(1, 20), fc.constantFrom('Host', 'host', 'HOST')), printable(80)),
      { maxLength: 8 },
    ),
  })
  .map(({ method, path, minor, eol, headers }) => {
    const head = [`${method} ${path} HTTP/1.${minor}`, ...headers.map(([k, v]) => `${k}:${v}`), '', ''];
    const host = headers.find(([k]) => k.toLowerCase() === 'host')?.[1].trim();
    return {
      bytes: Buffer.from(head.join(eol), 'latin1'),
      protocol: 'HTTP',
      facts: { method, path, httpVersion: `1.${minor}`, ...(host !== undefined && { host }) },
    };
  });

const respArb: fc.Arbitrary<Generated> = fc
  .array(fc.uint8Array({ maxLength: 40 }), { minLength: 1, maxLength: 9 })
  .map((args) => ({
    bytes: Buffer.concat([
      Buffer.from(`*${args.length}\r\n`),
      ...args.flatMap((a) => [Buffer.from(`$${a.length}\r\n`), Buffer.from(a), Buffer.from('\r\n')]),
    ]),
    protocol: 'REDIS',
    facts: {},
  }));

const pgValue = fc.string({ unit: 'grapheme', maxLength: 30 }).filter((s) => !s.includes('\0'));
const postgresArb: fc.Arbitrary<Generated> = fc
  .record({
    user: fc.option(pgValue, { nil: undefined }),
    database: fc.option(pgValue, { nil: undefined }),
    application: fc.option(pgValue, { nil: undefined }),
    minor: fc.constantFrom(0, 2),
  })
  .map(({ user, database, application, minor }) => {
    const params: [string, string][] = [];
    if (user !== undefined) params.push(['user', user]);
    if (database !== undefined) params.push(['database', database]);
    if (application !== undefined) params.push(['application_name', application]);
    const body = Buffer.concat([
      ...params.flatMap(([k, v]) => [Buffer.from(`${k}\0${v}\0`)]),
      Buffer.from([0]),
    ]);
    const head = Buffer.alloc(8);
    head.writeUInt32BE(8 + body.length, 0);
    head.writeUInt32BE((3 << 16) | minor, 4);
    const db = database || user;
    return {
      bytes: Buffer.concat([head, body]),
      protocol: 'POSTGRES',
      facts: {
        ...(user ? { user } : {}),
        ...(db ? { database: db } : {}),
        ...(application ? { application } : {}),
      },
    };
  });

/**
 * Streams that stay a valid prefix for as long as the client keeps sending: an HTTP head whose
 * headers never end, a huge PostgreSQL length, an RTMP C1, a TLS record longer than the cap.
 */
const endlessArb = fc.oneof(
  fc.tuple(fc.constantFrom(...METHODS), printable(40)).map(([m, v]) => ({
    head: Buffer.from(`${m} / HTTP/1.1\r\nHost: a\r\nX-Long: `, 'latin1'),
    filler: Buffer.from(v.length ? v : 'x', 'latin1'),
  })),
  fc.uint8Array({ minLength: 1, maxLength: 40 }).map((b) => ({
    head: Buffer.from([0x00, 0x00, 0x27, 0x10, 0x00, 0x03, 0x00, 0x00]), // length 10000, v3.0
    filler: Buffer.from(b.map((x) => x || 1)),
  })),
  fc.uint8Array({ minLength: 1, maxLength: 40 }).map((b) => ({
    head: Buffer.from([0x03]),
    filler: Buffer.from(b),
  })),
  fc.uint8Array({ minLength: 1, maxLength: 40 }).map((b) => ({
    // Records of 16384 bytes: a ClientHello of 0x00ffff bytes outgrows the cap.
    head: Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00, 0xff, 0xff, 0x03, 0x03]),
    filler: Buffer.from(b),
  })),
  // A Redis inline command whose arguments go on: printable ASCII, no line end.
  fc.array(fc.integer({ min: 0x20, max: 0x7e }), { minLength: 1, maxLength: 40 }).map((cs) => ({
    head: Buffer.from('PING '),
    filler: Buffer.from(cs),
  })),
);

describe(`detect properties (fast-check) ${seedLabel}`, () => {
  it('arbitrary bytes: never throws, answers a known shape, and final never waits', () => {
    fuzzAssert(
      fc.property(bytesArb, (bytes) => {
        const d = detect(bytes);
        const f = detect(bytes, { final: true });
        checkShape(d, bytes.length);
        checkShape(f, bytes.length);
        expect(f.kind).not.toBe('need-more');
        if (d.kind !== 'need-more') expect(f).toEqual(d);
      }),
      fuzzParams('detect arbitrary bytes', 6000),
    );
  });

  it('the verdict does not depend on how the bytes are split into reads', () => {
    const prefixOrMore = fc.oneof(
      // A corpus packet cut anywhere, or followed by noise.
      fc
        .tuple(packetArb, fc.nat(), fc.uint8Array({ maxLength: 64 }), fc.boolean())
        .map(([p, cut, tail, whole]) =>
          whole ? Buffer.concat([p.bytes, tail]) : p.bytes.subarray(0, cut % (p.bytes.length + 1)),
        ),
      bytesArb,
    );
    fuzzAssert(
      fc.property(prefixOrMore, cutsArb, cutsArb, (bytes, cutsA, cutsB) => {
        const expected = oneShot(bytes);
        expect(incremental(split(bytes, cutsA))).toEqual(expected);
        expect(incremental(split(bytes, cutsB))).toEqual(expected);
      }),
      fuzzParams('detect chunk splits', 3000),
    );
  });

  it('corpus packets split into arbitrary reads are detected as their protocol', () => {
    fuzzAssert(
      fc.property(packetArb, cutsArb, fc.uint8Array({ maxLength: 32 }), (p, cuts, tail) => {
        const d = incremental(split(Buffer.concat([p.bytes, tail]), cuts));
        if (p.expect.kind === 'match') expect(d).toEqual(p.expect);
        else if (p.expect.kind === 'unknown') expect(d).toEqual(p.expect);
        else expect(incremental(split(p.bytes, cuts))).toEqual(p.finalExpect);
      }),
      fuzzParams('detect corpus splits', 3000),
    );
  });

  it('generated HTTP/1.x, Redis and PostgreSQL first messages are detected with their facts', () => {
    fuzzAssert(
      fc.property(fc.oneof(httpArb, respArb, postgresArb), cutsArb, (g, cuts) => {
        const expected = { kind: 'match', protocol: g.protocol, facts: g.facts };
        expect(detect(g.bytes)).toEqual(expected);
        expect(incremental(split(g.bytes, cuts))).toEqual(expected);
        // A strict prefix is undecided or already this verdict: nothing else claims it early.
        const cut = cuts.length ? cuts[0] % g.bytes.length : g.bytes.length - 1;
        const early = detect(g.bytes.subarray(0, cut));
        if (early.kind !== 'need-more') expect(early).toEqual(expected);
      }),
      fuzzParams('detect generated requests', 4000),
    );
  });

  it('"need more" never lasts past the scan cap, however long a valid prefix goes on', () => {
    fuzzAssert(
      fc.property(endlessArb, fc.integer({ min: 0, max: 64 }), ({ head, filler }, extra) => {
        const reps = Math.ceil((SCAN_CAP_BYTES + extra - head.length) / filler.length);
        const bytes = Buffer.concat([head, ...new Array<Buffer>(Math.max(0, reps)).fill(filler)]);
        expect(bytes.length).toBeGreaterThanOrEqual(SCAN_CAP_BYTES);
        const atCap = detect(bytes);
        expect(atCap.kind).not.toBe('need-more');
        expect(detect(bytes.subarray(0, SCAN_CAP_BYTES))).toEqual(atCap);
        // Just below the cap it may still wait, but never for more than the cap.
        const below = detect(bytes.subarray(0, SCAN_CAP_BYTES - 1));
        checkShape(below, SCAN_CAP_BYTES - 1);
      }),
      fuzzParams('detect scan cap', 400),
    );
  });
});
