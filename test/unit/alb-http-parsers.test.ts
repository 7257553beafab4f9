/**
 * The HTTP/1.x parsers of the ALB and AILB: the strict request-head parser, the upstream
 * response parser (framing, hop-by-hop headers, reuse) and the chunked body decoder, fed whole
 * and byte by byte.
 */
import { describe, expect, it } from 'vitest';
import { ChunkedDecoder } from '../../services/modules/common/http/chunked.js';
import { parseRequestHead } from '../../services/modules/common/http/request-parser.js';
import { newRequestId } from '../../services/modules/common/http/request-head.js';
import { ResponseParser, type ResponseHead } from '../../services/modules/common/http/response-parser.js';
import { headText } from '../../services/modules/common/http/syntax.js';

const head = (lines: string[]) => lines.join('\r\n');

describe('parseRequestHead', () => {
  it('reads the request line, headers and what routing and framing need', () => {
    const r = parseRequestHead(
      head([
        'POST /api/x?y=1 HTTP/1.1',
        'Host: shop.example.com',
        'Content-Length: 12',
        'X-Forwarded-For: 10.0.0.1',
        'X-Request-Id: abc-123',
        'Connection: keep-alive, X-Secret',
        'X-Secret: s',
      ]),
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.head).toMatchObject({
      method: 'POST',
      target: '/api/x?y=1',
      http10: false,
      keepAlive: true,
      upgrade: false,
      expectContinue: false,
      scanned: {
        host: 'shop.example.com',
        contentLength: 12,
        chunked: false,
        forwardedFor: '10.0.0.1',
        requestId: 'abc-123',
        connectionTokens: ['x-secret'],
      },
    });
    expect(r.head.rawHeaders.slice(0, 4)).toEqual(['Host', 'shop.example.com', 'Content-Length', '12']);
  });

  it('knows keep-alive defaults, upgrades and 100-continue', () => {
    const ok = (lines: string[]) => {
      const r = parseRequestHead(head(lines));
      if (!r.ok) throw new Error(r.reason);
      return r.head;
    };
    expect(ok(['GET / HTTP/1.0']).keepAlive).toBe(false);
    expect(ok(['GET / HTTP/1.1', 'Host: \t a.example \t']).scanned.host).toBe('a.example');
    expect(ok(['GET / HTTP/1.0', 'Connection: keep-alive']).keepAlive).toBe(true);
    expect(ok(['GET / HTTP/1.1', 'Host: a', 'Connection: close']).keepAlive).toBe(false);
    expect(ok(['GET /ws HTTP/1.1', 'Host: a', 'Connection: Upgrade', 'Upgrade: websocket']).upgrade).toBe(
      true,
    );
    expect(ok(['GET /ws HTTP/1.1', 'Host: a', 'Upgrade: websocket']).upgrade).toBe(false);
    expect(
      ok(['PUT / HTTP/1.1', 'Host: a', 'Expect: 100-continue', 'Content-Length: 1']).expectContinue,
    ).toBe(true);
    expect(ok(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked']).scanned.chunked).toBe(true);
  });

  it('refuses whatever two parsers could read differently', () => {
    const cases: Array<[string[], number, RegExp]> = [
      [['GARBAGE'], 400, /request line/],
      [['GET  / HTTP/1.1', 'Host: a'], 400, /request line/],
      [['GET / HTTP/1.1 extra', 'Host: a'], 400, /request line/],
      [['G(T / HTTP/1.1', 'Host: a'], 400, /method/],
      [['GET /a\x01b HTTP/1.1', 'Host: a'], 400, /target/],
      [['GET / HTTP/2.0', 'Host: a'], 505, /version/],
      [['GET / HTTX/1.1', 'Host: a'], 400, /request line/],
      [['GET / HTTP/1.1', 'Host : a'], 400, /header name/],
      [['GET / HTTP/1.1', ' Folded: a'], 400, /header name/],
      [['GET / HTTP/1.1', 'NoColon'], 400, /header line/],
      [['GET / HTTP/1.1', 'Host: a', 'X: a\x00b'], 400, /invalid character/],
      [['GET / HTTP/1.1', 'Host: a', 'X: a\nb'], 400, /invalid character/],
      // Only space and tab are optional whitespace: a bare CR at the end is not trimmed away.
      [['GET / HTTP/1.1', 'Host: a', 'X: a\r'], 400, /invalid character/],
      [['GET / HTTP/1.1', 'Host: a', 'X: \x0ba'], 400, /invalid character/],
      [
        ['POST / HTTP/1.1', 'Host: a', 'Content-Length: 5', 'Transfer-Encoding: chunked'],
        400,
        /Content-Length together/,
      ],
      [['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: gzip, chunked'], 501, /chunked/],
      [
        ['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'],
        501,
        /chunked/,
      ],
      [['POST / HTTP/1.0', 'Transfer-Encoding: chunked'], 400, /HTTP\/1\.0/],
      [['POST / HTTP/1.1', 'Host: a', 'Content-Length: 5', 'Content-Length: 6'], 400, /conflicting/],
      [['POST / HTTP/1.1', 'Host: a', 'Content-Length: -1'], 400, /Content-Length/],
      [['POST / HTTP/1.1', 'Host: a', 'Content-Length: 1 2'], 400, /Content-Length/],
      [['GET / HTTP/1.1'], 400, /missing Host/],
      [['GET / HTTP/1.1', 'Host: a', 'Host: b'], 400, /more than one Host/],
      [['CONNECT a:443 HTTP/1.1', 'Host: a:443'], 405, /CONNECT/],
    ];
    for (const [lines, status, reason] of cases) {
      const r = parseRequestHead(head(lines));
      expect(r.ok, JSON.stringify(lines)).toBe(false);
      if (r.ok) continue;
      expect(r.status, JSON.stringify(lines)).toBe(status);
      expect(r.reason).toMatch(reason);
    }
    // Repeated identical lengths are one length.
    expect(
      parseRequestHead(head(['POST / HTTP/1.1', 'Host: a', 'Content-Length: 5', 'Content-Length: 5'])).ok,
    ).toBe(true);
  });
});

/** Runs a parser over `input` split into `pieces`; returns what it reported. */
function parse(input: string | Buffer, headRequest = false, pieces: 'whole' | 'bytes' = 'whole') {
  const events: { head: ResponseHead | null; body: string; complete: boolean; error: string | null } = {
    head: null,
    body: '',
    complete: false,
    error: null,
  };
  const p = new ResponseParser(
    {
      onHead: (h) => (events.head = h),
      onBody: (c) => (events.body += c.toString('latin1')),
      onComplete: () => (events.complete = true),
    },
    1024,
  );
  p.reset(headRequest);
  const buf = Buffer.isBuffer(input) ? input : Buffer.from(input, 'latin1');
  const chunks = pieces === 'whole' ? [buf] : [...buf].map((b) => Buffer.from([b]));
  for (const c of chunks) {
    const err = p.execute(c);
    if (err) {
      events.error = err;
      break;
    }
  }
  return Object.assign(events, { parser: p });
}

describe('ResponseParser', () => {
  const cl =
    'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nhello';
  const chunked =
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n';

  it('reads length-delimited and chunked bodies, whole or a byte at a time', () => {
    for (const pieces of ['whole', 'bytes'] as const) {
      const a = parse(cl, false, pieces);
      expect(a.error).toBeNull();
      expect(a.head).toEqual({
        status: 200,
        statusText: 'OK',
        headers: ['Content-Type', 'text/plain', 'Content-Length', '5'],
        contentLength: 5,
        framing: 'length',
      });
      expect(a.body).toBe('hello');
      expect(a.complete).toBe(true);
      expect(a.parser.reusable).toBe(true);
      const b = parse(chunked, false, pieces);
      expect(b.error).toBeNull();
      expect(b.head?.framing).toBe('chunked');
      expect(b.head?.headers).toEqual([]);
      expect(b.body).toBe('hello world');
      expect(b.complete).toBe(true);
      expect(b.parser.reusable).toBe(true);
    }
  });

  it('close in any Connection value wins over keep-alive, whatever the order', () => {
    for (const conn of ['close, keep-alive', 'keep-alive, close', 'Close']) {
      const r = parse(`HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: ${conn}\r\n\r\nok`);
      expect(r.complete).toBe(true);
      expect(r.parser.reusable).toBe(false);
    }
    const twoFields = parse(
      'HTTP/1.1 200 OK\r\nConnection: close\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok',
    );
    expect(twoFields.parser.reusable).toBe(false);
    // HTTP/1.0 keeps a connection only when asked; other tokens name fields to drop.
    expect(parse('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok').parser.reusable).toBe(false);
    const ka10 = parse(
      'HTTP/1.0 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nContent-Length: 2\r\n\r\nok',
    );
    expect(ka10.parser.reusable).toBe(true);
    expect(ka10.head?.headers).toEqual(['Content-Length', '2']);
  });

  it('has no body for HEAD, 204 and 304, and skips interim 1xx responses', () => {
    const h = parse('HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n', true);
    expect(h.head).toMatchObject({
      framing: 'none',
      contentLength: 1234,
      headers: ['Content-Length', '1234'],
    });
    expect(h.complete).toBe(true);
    expect(parse('HTTP/1.1 204 No Content\r\n\r\n').complete).toBe(true);
    expect(parse('HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n').head?.framing).toBe('none');
    const interim = parse(
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok',
    );
    expect(interim.head?.status).toBe(201);
    expect(interim.body).toBe('ok');
    expect(parse('HTTP/1.1 101 Switching Protocols\r\n\r\n').error).toMatch(/101/);
  });

  it('ends a body without a length at close, and never reuses that connection', () => {
    const r = parse('HTTP/1.0 200 OK\r\n\r\npartial body');
    expect(r.head?.framing).toBe('close');
    expect(r.complete).toBe(false);
    expect(r.parser.finish()).toBeNull();
    expect(r.complete).toBe(true);
    expect(r.body).toBe('partial body');
    expect(r.parser.reusable).toBe(false);
    // A length-delimited body cut short is an error.
    const cut = parse('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
    expect(cut.parser.finish()).toMatch(/mid-response/);
  });

  it('does not reuse a connection after Connection: close, TE with CL, or extra bytes', () => {
    expect(parse('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok').parser.reusable).toBe(
      false,
    );
    const both = parse(
      'HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
    );
    expect(both.body).toBe('ok');
    expect(both.head?.headers).toEqual([]);
    expect(both.parser.reusable).toBe(false);
    expect(parse('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA').parser.reusable).toBe(false);
    expect(parse('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok').parser.reusable).toBe(false);
    expect(
      parse('HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok').parser.reusable,
    ).toBe(true);
  });

  it('drops hop-by-hop headers and the ones Connection names', () => {
    const r = parse(
      'HTTP/1.1 200 OK\r\nConnection: X-Hop, close\r\nX-Hop: 1\r\nUpgrade: h2c\r\nTE: trailers\r\nProxy-Connection: x\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n',
    );
    expect(r.head?.headers).toEqual(['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Content-Length', '0']);
  });

  it('refuses malformed responses', () => {
    const bad = [
      'HTTP/2 200 OK\r\n\r\n',
      'HTTP/1.1 20 OK\r\n\r\n',
      'HTTP/1.1 200OK\r\n\r\n',
      'HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n',
      'HTTP/1.1 200 OK\r\n Folded: x\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(2000)}\r\n\r\n`,
    ];
    for (const b of bad) expect(parse(b).error, JSON.stringify(b.slice(0, 40))).not.toBeNull();
  });
});

describe('ChunkedDecoder', () => {
  it('decodes, reports where the body ended, and tolerates any split', () => {
    const body = '4\r\nWiki\r\n6;x=y\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nTrailer: 1\r\n\r\nNEXT';
    for (const size of [1, 2, 3, 7, body.length]) {
      let out = '';
      const d = new ChunkedDecoder((c) => (out += c.toString('latin1')));
      let rest = '';
      for (let i = 0; i < body.length; i += size) {
        const piece = Buffer.from(body.slice(i, i + size), 'latin1');
        if (d.done) {
          rest += piece.toString('latin1');
          continue;
        }
        const used = d.execute(piece);
        expect(typeof used).toBe('number');
        if (d.done) rest += piece.subarray(used as number).toString('latin1');
      }
      expect(out).toBe('Wikipedia in \r\n\r\nchunks.');
      expect(d.done).toBe(true);
      expect(rest).toBe('NEXT');
    }
  });

  it('refuses bare LF, bad sizes and missing CRLF after data', () => {
    for (const bad of [
      '4\nWiki\r\n',
      'zz\r\n',
      '4\r\nWikiX\r\n',
      '4\r\nWiki\r\n0\r\nT: 1\n\r\n',
      `${'1'.repeat(20)}\r\n`,
    ]) {
      const d = new ChunkedDecoder(() => undefined);
      expect(typeof d.execute(Buffer.from(bad, 'latin1')), bad).toBe('string');
    }
  });
});

describe('headText', () => {
  it('finds the end of a head at any offset, the CRLFCRLF anywhere around its search window', () => {
    // Heads are searched for in a 4096-byte string window first, then in the buffer.
    for (const len of [20, 4000, 4091, 4092, 4093, 4094, 4095, 4096, 4097, 9000]) {
      for (const start of [0, 7]) {
        const headLine = `X: ${'a'.repeat(len)}`;
        const buf = Buffer.from(`${'z'.repeat(start)}${headLine}\r\n\r\nBODY\r\n\r\n`, 'latin1');
        const text = headText(buf, start);
        expect(text, `len ${len} start ${start}`).toBe(headLine);
        // Latin1: the head's bytes end where its text does.
        expect(buf.toString('latin1', start + text!.length, start + text!.length + 8)).toBe('\r\n\r\nBODY');
        expect(headText(buf.subarray(0, start + headLine.length + 3), start)).toBeNull();
      }
    }
  });

  it('lets the response parser read a head longer than the window', () => {
    const big = 'v'.repeat(10_000);
    const events: { head: ResponseHead | null; body: string } = { head: null, body: '' };
    const p = new ResponseParser(
      {
        onHead: (h) => (events.head = h),
        onBody: (c) => (events.body += c.toString('latin1')),
        onComplete() {},
      },
      64 * 1024,
    );
    p.reset(false);
    const res = `HTTP/1.1 200 OK\r\nX-Big: ${big}\r\nContent-Length: 2\r\n\r\nok`;
    expect(p.execute(Buffer.from(res, 'latin1'))).toBeNull();
    expect(events.head?.headers).toEqual(['X-Big', big, 'Content-Length', '2']);
    expect(events.body).toBe('ok');
    expect(p.reusable).toBe(true);
  });
});

describe('newRequestId', () => {
  it('makes version 4 UUIDs, distinct across batches', () => {
    const ids = Array.from({ length: 1000 }, () => newRequestId());
    for (const id of ids)
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
