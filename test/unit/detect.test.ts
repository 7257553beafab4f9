import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  detect,
  SCAN_CAP_BYTES,
  UNKNOWN_REASONS,
  type DetectedFacts,
  type Detection,
} from '../../services/nlb/dataplane/detect.js';
import { createRng } from '../../services/shared/rng.js';
import { corpus, packet, type CorpusPacket } from './detect-corpus.js';

/** What detect() says for the packet when it is complete; need-more compares by kind. */
function expectDetection(actual: Detection, expected: Detection): void {
  if (expected.kind === 'need-more') expect(actual.kind).toBe('need-more');
  else expect(actual).toEqual(expected);
}

/** Every prefix's answer, index = prefix length. */
function prefixAnswers(bytes: Buffer, final = false): Detection[] {
  const out: Detection[] = [];
  for (let k = 0; k <= bytes.length; k++) out.push(detect(bytes.subarray(0, k), { final }));
  return out;
}

/** Facts `partial` only holds values `full` has too. */
function isSubset(partial: DetectedFacts, full: DetectedFacts): boolean {
  return Object.entries(partial).every(
    ([k, v]) => JSON.stringify(full[k as keyof DetectedFacts]) === JSON.stringify(v),
  );
}

const decided = corpus.filter((p) => p.expect.kind !== 'need-more');

describe('detect: the first-packet corpus', () => {
  it('lists every .bin file in index.json, with real captures for most clients', () => {
    const files = readdirSync(new URL('../fixtures/first-packets/', import.meta.url)).filter((f) =>
      f.endsWith('.bin'),
    );
    expect(corpus.map((p) => p.file).sort()).toEqual(files.sort());
    expect(corpus.filter((p) => p.origin === 'captured').length).toBeGreaterThanOrEqual(18);
  });

  it.each(corpus.map((p) => [p.file, p] as const))('%s', (_file, p: CorpusPacket) => {
    expectDetection(detect(p.bytes), p.expect);
    expectDetection(detect(p.bytes, { final: true }), p.finalExpect ?? p.expect);
  });
});

describe('detect: every prefix of every corpus packet', () => {
  it.each(decided.map((p) => [p.file, p] as const))(
    '%s: need-more until decided, then the final answer, never anything else',
    (_file, p: CorpusPacket) => {
      const answers = prefixAnswers(p.bytes);
      const decidedAt = answers.findIndex((a) => a.kind !== 'need-more');
      expect(decidedAt).toBeGreaterThan(0);
      for (let k = 0; k < decidedAt; k++) expect(answers[k].kind, `prefix ${k}`).toBe('need-more');
      for (let k = decidedAt; k <= p.bytes.length; k++) expect(answers[k], `prefix ${k}`).toEqual(p.expect);
      // minBytes never promises a match later than it comes.
      for (let k = 0; k < decidedAt; k++) {
        const a = answers[k];
        if (a.kind === 'need-more' && a.minBytes !== undefined) {
          expect(a.minBytes, `prefix ${k}`).toBeGreaterThan(k);
          expect(a.minBytes, `prefix ${k}`).toBeLessThanOrEqual(decidedAt);
        }
      }
    },
  );

  it.each(decided.map((p) => [p.file, p] as const))(
    '%s: with final, a prefix is unknown or the same protocol with a subset of the facts',
    (_file, p: CorpusPacket) => {
      const full = p.expect;
      for (const [k, a] of prefixAnswers(p.bytes, true).entries()) {
        expect(a.kind, `prefix ${k}`).not.toBe('need-more');
        if (a.kind === 'match') {
          expect(full.kind).toBe('match');
          if (full.kind !== 'match') continue;
          expect(a.protocol, `prefix ${k}`).toBe(full.protocol);
          expect(isSubset(a.facts, full.facts), `prefix ${k}: ${JSON.stringify(a.facts)}`).toBe(true);
        }
      }
    },
  );

  it('answers the same however the bytes arrive (seeded random chunking, as the listener reads)', () => {
    const rng = createRng('detect-chunks');
    for (const p of decided) {
      for (let run = 0; run < 20; run++) {
        let got = 0;
        let answer: Detection = { kind: 'need-more' };
        while (answer.kind === 'need-more' && got < p.bytes.length) {
          got = Math.min(p.bytes.length, got + rng.int(1, Math.max(1, Math.ceil(p.bytes.length / 3))));
          answer = detect(p.bytes.subarray(0, got));
        }
        expect(answer, `${p.file} run ${run}`).toEqual(p.expect);
      }
    }
  });
});

describe('detect: protocols that must not be confused', () => {
  const never = (files: string[], protocols: string[]) => {
    for (const file of files) {
      const { bytes } = packet(file);
      for (const final of [false, true]) {
        for (const [k, a] of prefixAnswers(bytes, final).entries()) {
          if (a.kind === 'match')
            expect(protocols, `${file} prefix ${k} final=${final}`).not.toContain(a.protocol);
        }
      }
    }
  };

  it('RTMP, MongoDB, TLS and inline Redis never come out as MySQL (or another protocol)', () => {
    never(['ffmpeg-rtmp-publish.bin'], ['MYSQL', 'MONGODB', 'POSTGRES', 'REDIS', 'HTTP', 'HTTPS', 'HTTP2']);
    never(['pymongo-ismaster.bin', 'hand-mongodb-op-msg-hello.bin'], ['MYSQL', 'RTMP', 'POSTGRES', 'REDIS']);
    never(
      ['curl-https-h2.bin', 'openssl-sni.bin', 'openssl-fragmented.bin'],
      ['MYSQL', 'MONGODB', 'RTMP', 'HTTP'],
    );
    never(['hand-redis-inline-ping.bin', 'hand-redis-inline-get.bin'], ['MYSQL', 'HTTP', 'MONGODB']);
  });

  it('the HTTP/2 preface and SSH never come out as PostgreSQL', () => {
    never(['curl-h2-prior-knowledge.bin', 'ssh-banner.bin'], ['POSTGRES', 'HTTP', 'REDIS', 'MONGODB']);
    expect(detect(Buffer.from('SSH-1.99-OpenSSH_3.9\r\n'))).toEqual({ kind: 'unknown', reason: 'SSH' });
  });

  it('MySQL is never detected: its client is silent', () => {
    const silent = packet('mariadb-silent.bin').bytes;
    expect(silent.length).toBe(0);
    expect(detect(silent)).toEqual({ kind: 'need-more', minBytes: 1 });
    expect(detect(silent, { final: true })).toEqual({ kind: 'unknown', reason: UNKNOWN_REASONS.empty });
  });

  it('0x03 followed by too few bytes waits for the whole C1 (or says unknown on final)', () => {
    const short = Buffer.concat([Buffer.from([3]), Buffer.alloc(600, 0x41)]);
    expect(detect(short)).toEqual({ kind: 'need-more', minBytes: 1537 });
    expect(detect(short, { final: true })).toEqual({ kind: 'unknown', reason: 'incomplete' });
    expect(detect(Buffer.from([3]))).toMatchObject({ kind: 'need-more' });
  });

  it('a MongoDB message whose length starts with 0x03 is MongoDB, not a waiting RTMP', () => {
    const hello = packet('hand-mongodb-op-msg-hello.bin').bytes;
    const doc = hello.subarray(21);
    const pad = Buffer.alloc(259 - hello.length, 0); // grow the document to a 259-byte message (0x103)
    const grown = Buffer.concat([doc.subarray(0, doc.length - 1), pad, Buffer.from([0])]);
    grown.writeInt32LE(grown.length, 0);
    const msg = Buffer.concat([hello.subarray(0, 21), grown]);
    msg.writeInt32LE(msg.length, 0);
    expect(msg.length).toBe(259);
    expect(msg[0]).toBe(3);
    expect(detect(msg)).toEqual({ kind: 'match', protocol: 'MONGODB', facts: { mongoOpcode: 2013 } });
    expect(detect(msg.subarray(0, 25))).toEqual({
      kind: 'match',
      protocol: 'MONGODB',
      facts: { mongoOpcode: 2013 },
    });
    expect(detect(msg.subarray(0, 24)).kind).toBe('need-more');
  });

  it('lower-case "get / HTTP/1.1" is neither HTTP nor a Redis GET', () => {
    expect(detect(Buffer.from('get / HTTP/1.1\r\nHost: x\r\n\r\n'))).toEqual({
      kind: 'unknown',
      reason: 'unrecognised',
    });
    expect(detect(Buffer.from('GET key-without-version\r\n'))).toMatchObject({ protocol: 'REDIS' });
  });
});

describe('detect: edge cases', () => {
  it('empty is need-more, and unknown when final', () => {
    expect(detect(Buffer.alloc(0))).toEqual({ kind: 'need-more', minBytes: 1 });
    expect(detect(Buffer.alloc(0), { final: true })).toEqual({ kind: 'unknown', reason: 'empty' });
  });

  it.each([
    ['text', Buffer.from('Hi there, this is not a protocol\r\n')],
    ['SMTP', Buffer.from('EHLO mail.example.com\r\n')],
    ['binary', Buffer.from('deadbeefcafebabe00112233445566778899aabbccddeeff', 'hex')],
    ['TLS alert record', Buffer.from('15030300020228ffffffffffffffffff', 'hex')],
    ['HTTP/2.0 request line', Buffer.from('GET / HTTP/2.0\r\n\r\n')],
    ['RESP array of zero', Buffer.from('*0\r\n')],
    ['inline command not on the list', Buffer.from('FLUSHALL\r\n')],
  ])('garbage (%s) is unknown', (_name, bytes) => {
    expect(detect(bytes)).toEqual({ kind: 'unknown', reason: 'unrecognised' });
  });

  it('final turns need-more into unknown', () => {
    expect(detect(Buffer.from('PIN'))).toMatchObject({ kind: 'need-more' });
    expect(detect(Buffer.from('PIN'), { final: true })).toEqual({ kind: 'unknown', reason: 'incomplete' });
    const tls = packet('curl-https-h2.bin').bytes.subarray(0, 100);
    expect(detect(tls, { final: true })).toEqual({ kind: 'unknown', reason: 'incomplete' });
  });

  it('HTTP: bare LF line ends, absolute-form targets and the first Host header', () => {
    expect(detect(Buffer.from('GET / HTTP/1.1\n\n'))).toEqual({
      kind: 'match',
      protocol: 'HTTP',
      facts: { method: 'GET', path: '/', httpVersion: '1.1' },
    });
    expect(detect(Buffer.from('GET http://u@Example.com:8080/x?y HTTP/1.1\r\nHost: other\r\n\r\n'))).toEqual({
      kind: 'match',
      protocol: 'HTTP',
      facts: {
        method: 'GET',
        path: 'http://u@Example.com:8080/x?y',
        host: 'Example.com:8080',
        httpVersion: '1.1',
      },
    });
    expect(detect(Buffer.from('OPTIONS * HTTP/1.1\r\nhOsT:\t a.example \r\nHost: b\r\n\r\n'))).toEqual({
      kind: 'match',
      protocol: 'HTTP',
      facts: { method: 'OPTIONS', path: '*', host: 'a.example', httpVersion: '1.1' },
    });
  });

  it('HTTP: a head that outgrows the sniff budget matches on final with what was read', () => {
    const head = Buffer.from('GET /big HTTP/1.1\r\nHost: big.example.com\r\nX-Pad: ');
    expect(detect(head).kind).toBe('need-more');
    expect(detect(head, { final: true })).toEqual({
      kind: 'match',
      protocol: 'HTTP',
      facts: { method: 'GET', path: '/big', host: 'big.example.com', httpVersion: '1.1' },
    });
    const huge = Buffer.concat([head, Buffer.alloc(SCAN_CAP_BYTES, 0x61)]);
    expect(detect(huge)).toMatchObject({ kind: 'match', protocol: 'HTTP' });
  });

  it('TLS: early data after the ClientHello is not looked at', () => {
    const hello = packet('curl-https-h2.bin').bytes;
    const earlyData = Buffer.from('170303000401020304', 'hex');
    expect(detect(Buffer.concat([hello, earlyData]))).toEqual(packet('curl-https-h2.bin').expect);
  });

  it('TLS: an inconsistent length is unknown, a ClientHello too large to sniff is unknown with its reason', () => {
    const hello = Buffer.from(packet('openssl-sni.bin').bytes);
    const broken = Buffer.from(hello);
    broken[5 + 4 + 2 + 32] = 33; // session_id length > 32
    expect(detect(broken)).toEqual({ kind: 'unknown', reason: 'unrecognised' });
    const big = Buffer.from('160301400001003ffc0303', 'hex');
    expect(detect(big)).toEqual({ kind: 'unknown', reason: UNKNOWN_REASONS.tlsTooLarge });
    expect(detect(Buffer.from('1603010005', 'hex')).kind).toBe('need-more');
    // A record that is not a ClientHello (long enough not to be a MongoDB header prefix either).
    expect(detect(Buffer.from('160301000502ffffffffffffffffffff', 'hex'))).toEqual({
      kind: 'unknown',
      reason: 'unrecognised',
    });
  });

  it('PostgreSQL: protocol 3.2, and length bounds', () => {
    const startup = Buffer.from(packet('psql-startup.bin').bytes);
    startup.writeUInt32BE(196610, 4);
    expect(detect(startup)).toMatchObject({
      protocol: 'POSTGRES',
      facts: { user: 'alice', database: 'orders' },
    });
    const tooLong = Buffer.from('0000271100030000', 'hex'); // 10001 bytes
    expect(detect(tooLong)).toEqual({ kind: 'unknown', reason: 'unrecognised' });
    const noTerminator = Buffer.from('0000000d0003000075736572', 'hex');
    expect(detect(Buffer.concat([noTerminator, Buffer.from('x')]))).toEqual({
      kind: 'unknown',
      reason: 'unrecognised',
    });
    expect(detect(Buffer.from('00000008', 'hex'))).toEqual({ kind: 'need-more', minBytes: 8 });
    expect(detect(Buffer.from('0000000804d21631', 'hex'))).toEqual({
      kind: 'unknown',
      reason: 'unrecognised',
    });
  });

  it('MongoDB: responseTo must be 0, the opcode 2013 or 2004, the length sane', () => {
    const hello = packet('hand-mongodb-op-msg-hello.bin').bytes;
    const reply = Buffer.from(hello);
    reply.writeInt32LE(7, 8);
    expect(detect(reply)).toEqual({ kind: 'unknown', reason: 'unrecognised' });
    const compressed = Buffer.from(hello);
    compressed.writeInt32LE(2012, 12);
    expect(detect(compressed)).toEqual({ kind: 'unknown', reason: 'unrecognised' });
    const huge = Buffer.from(hello);
    huge.writeInt32LE(48_000_001, 0);
    expect(detect(huge)).toEqual({ kind: 'unknown', reason: 'unrecognised' });
    const badFlags = Buffer.from(hello);
    badFlags.writeUInt32LE(4, 16);
    expect(detect(badFlags)).toEqual({ kind: 'unknown', reason: 'unrecognised' });
  });

  it('Redis: RESP needs "*<count>\\r\\n$", inline commands a whole line', () => {
    expect(detect(Buffer.from('*2\r\n$')).kind).toBe('match');
    expect(detect(Buffer.from('*2\r\n')).kind).toBe('need-more');
    expect(detect(Buffer.from('*2\r\n+')).kind).toBe('unknown');
    expect(detect(Buffer.from('*12345678\r\n$')).kind).toBe('unknown');
    expect(detect(Buffer.from('ping')).kind).toBe('need-more');
    expect(detect(Buffer.from('ping\n'))).toEqual({ kind: 'match', protocol: 'REDIS', facts: {} });
    expect(detect(Buffer.from('AUTH secret\r\n'))).toEqual({ kind: 'match', protocol: 'REDIS', facts: {} });
    expect(detect(Buffer.from('PING \x01\r\n')).kind).toBe('unknown');
  });

  it('looks at no more than SCAN_CAP_BYTES: a long undecided buffer is judged as final', () => {
    const rtmpish = Buffer.concat([Buffer.from([3]), Buffer.alloc(1 << 20)]);
    expect(detect(rtmpish)).toEqual({ kind: 'match', protocol: 'RTMP', facts: { rtmpVersion: 3 } });
    const inline = Buffer.concat([Buffer.from('PING '), Buffer.alloc(SCAN_CAP_BYTES, 0x61)]);
    expect(detect(inline)).toEqual({ kind: 'unknown', reason: 'incomplete' });
  });
});
