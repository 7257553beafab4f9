/**
 * Seeded fuzzing of the data-plane codecs: random buffers and mutations (bit flips, truncations,
 * splices, inserted/deleted ranges, hostile length fields) of the first-packet corpus and of
 * PROXY headers. Set DETECT_FUZZ_SEED to replay a run; the seed is printed.
 */
import { describe, expect, it } from 'vitest';
import {
  detect,
  SCAN_CAP_BYTES,
  UNKNOWN_REASONS,
  type Detection,
} from '../../services/nlb/dataplane/detect.js';
import {
  decodeProxyHeader,
  encodeProxyV2,
  encodeProxyV2Local,
} from '../../services/nlb/dataplane/proxy-protocol.js';
import { PROTOCOLS } from '../../services/nlb/domain/types.js';
import { createRng, type Rng } from '../../services/shared/rng.js';
import { corpus } from './detect-corpus.js';

const SEED = process.env.DETECT_FUZZ_SEED ?? 'detect-fuzz-v1';
const RANDOM_CASES = 4_000;
const MUTATION_CASES = 12_000;
const PROXY_CASES = 8_000;

const REASONS = new Set<string>(Object.values(UNKNOWN_REASONS));
const INTERESTING_FIRST_BYTES = [0x00, 0x03, 0x16, 0x2a, 0x47, 0x50, 0x53, 0x0d, 0xdd, 0xfe, 0x70, 0x67];
const INTERESTING_U32 = [
  0, 1, 5, 8, 16, 25, 0x7f, 0xff, 0x100, 0x2710, 0x4000, 48_000_000, 0x7fffffff, 0xffffffff,
];

function randomBytes(rng: Rng, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = rng.int(0, 255);
  return b;
}

function randomBuffer(rng: Rng): Buffer {
  const n = rng.chance(0.9) ? rng.int(0, 64) : rng.int(65, 4096);
  const b = randomBytes(rng, n);
  if (n > 0 && rng.chance(0.5)) b[0] = rng.pick(INTERESTING_FIRST_BYTES);
  return b;
}

/** One random mutation of `b`. */
function mutate(rng: Rng, b: Buffer, other: Buffer): Buffer {
  const at = (max = b.length) => rng.int(0, max);
  switch (rng.int(0, 6)) {
    case 0: {
      const out = Buffer.from(b);
      for (let i = rng.int(1, 8); i > 0 && out.length > 0; i--) out[at(out.length - 1)] ^= 1 << rng.int(0, 7);
      return out;
    }
    case 1:
      return b.subarray(0, at());
    case 2:
      return Buffer.concat([b.subarray(0, at()), other.subarray(rng.int(0, other.length))]);
    case 3: {
      const i = at();
      return Buffer.concat([b.subarray(0, i), randomBytes(rng, rng.int(1, 32)), b.subarray(i)]);
    }
    case 4: {
      const i = at();
      return Buffer.concat([b.subarray(0, i), b.subarray(Math.min(b.length, i + rng.int(1, 32)))]);
    }
    case 5: {
      if (b.length < 4) return b;
      const out = Buffer.from(b);
      const v = rng.chance(0.5) ? rng.pick(INTERESTING_U32) : rng.int(0, 0xffffffff);
      const i = at(out.length - 4);
      if (rng.chance(0.5)) out.writeUInt32LE(v >>> 0, i);
      else out.writeUInt32BE(v >>> 0, i);
      return out;
    }
    default: {
      const i = at();
      const j = Math.min(b.length, i + rng.int(1, 64));
      return Buffer.concat([b.subarray(0, j), b.subarray(i, j), b.subarray(j)]);
    }
  }
}

function checkShape(d: Detection, buf: Buffer): void {
  if (d.kind === 'match') {
    expect(PROTOCOLS).toContain(d.protocol);
    expect(typeof d.facts).toBe('object');
  } else if (d.kind === 'unknown') {
    expect(REASONS, d.reason).toContain(d.reason);
  } else {
    expect(d.kind).toBe('need-more');
    if (d.minBytes !== undefined) expect(d.minBytes).toBeGreaterThan(buf.length);
  }
}

/** The properties every buffer has; returns how many detect calls it made. */
function checkDetect(rng: Rng, buf: Buffer): number {
  const a = detect(buf);
  const f = detect(buf, { final: true });
  checkShape(a, buf);
  checkShape(f, buf);
  expect(f.kind).not.toBe('need-more');
  if (a.kind !== 'need-more') expect(f).toEqual(a);
  // A decision depends only on the bytes before it: more bytes do not change it.
  if (a.kind !== 'need-more' && buf.length < SCAN_CAP_BYTES) {
    expect(detect(Buffer.concat([buf, randomBytes(rng, rng.int(1, 64))]))).toEqual(a);
  }
  // A valid prefix has valid prefixes.
  if (a.kind === 'need-more' && buf.length > 0) {
    expect(detect(buf.subarray(0, rng.int(0, buf.length - 1))).kind).toBe('need-more');
  }
  return 4;
}

function checkProxy(rng: Rng, buf: Buffer): void {
  const d = decodeProxyHeader(buf);
  expect(['need-more', 'none', 'header', 'invalid']).toContain(d.kind);
  if (d.kind === 'header') {
    expect(d.length).toBeGreaterThanOrEqual(8);
    expect(d.length).toBeLessThanOrEqual(buf.length);
    for (const port of [d.srcPort, d.dstPort]) expect(port >= 0 && port <= 0xffff).toBe(true);
  }
  if (d.kind === 'need-more') expect(buf.length).toBeLessThan(16 + 4096);
  if (d.kind !== 'need-more') {
    expect(decodeProxyHeader(Buffer.concat([buf, randomBytes(rng, rng.int(1, 32))]))).toEqual(d);
  }
}

describe(`detect and decodeProxyHeader fuzz (seed ${SEED})`, () => {
  console.log(`detect fuzz seed: ${SEED} (set DETECT_FUZZ_SEED to replay)`);

  it(`random buffers: ${RANDOM_CASES} cases`, () => {
    const rng = createRng(SEED).fork('random');
    let calls = 0;
    for (let i = 0; i < RANDOM_CASES; i++) calls += checkDetect(rng, randomBuffer(rng));
    expect(calls).toBe(RANDOM_CASES * 4);
  });

  it(`mutated corpus packets: ${MUTATION_CASES} cases`, () => {
    const rng = createRng(SEED).fork('mutations');
    const packets = corpus.map((p) => p.bytes).filter((b) => b.length > 0);
    const kinds = new Map<string, number>();
    for (let i = 0; i < MUTATION_CASES; i++) {
      let buf = rng.pick(packets);
      for (let m = rng.int(1, 3); m > 0; m--) buf = mutate(rng, buf, rng.pick(packets));
      checkDetect(rng, buf);
      const d = detect(buf);
      const key = d.kind === 'match' ? d.protocol : d.kind;
      kinds.set(key, (kinds.get(key) ?? 0) + 1);
    }
    // The mutations reach every kind of answer, so the properties above were exercised on each.
    for (const k of [
      'need-more',
      'unknown',
      'HTTP',
      'HTTPS',
      'HTTP2',
      'POSTGRES',
      'MONGODB',
      'REDIS',
      'RTMP',
    ]) {
      expect(kinds.get(k) ?? 0, k).toBeGreaterThan(0);
    }
  });

  it('buffers far larger than the scan cap are judged on their first bytes', () => {
    const rng = createRng(SEED).fork('large');
    for (let i = 0; i < 20; i++) {
      const buf = Buffer.concat([rng.pick(corpus).bytes, randomBytes(rng, SCAN_CAP_BYTES * 4)]);
      const d = detect(buf);
      expect(d.kind).not.toBe('need-more');
      expect(detect(buf.subarray(0, SCAN_CAP_BYTES))).toEqual(d);
    }
  });

  it(`PROXY headers, random and mutated: ${PROXY_CASES} cases`, () => {
    const rng = createRng(SEED).fork('proxy');
    const seeds = [
      encodeProxyV2({ srcAddress: '203.0.113.7', srcPort: 51234, dstAddress: '10.0.0.1', dstPort: 443 }),
      encodeProxyV2({ srcAddress: '2001:db8::7', srcPort: 1, dstAddress: 'fe80::1%eth0', dstPort: 65535 }),
      encodeProxyV2Local(),
      Buffer.from('PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n'),
      Buffer.from('PROXY TCP6 2001:db8::1 ::1 1 2\r\n'),
      Buffer.from('PROXY UNKNOWN\r\n'),
    ];
    let cases = 0;
    for (let i = 0; i < PROXY_CASES; i++) {
      let buf = rng.chance(0.2) ? randomBuffer(rng) : rng.pick(seeds);
      for (let m = rng.int(0, 3); m > 0; m--) buf = mutate(rng, buf, rng.pick(seeds));
      checkProxy(rng, buf);
      cases++;
    }
    expect(cases).toBe(PROXY_CASES);
  });
});
