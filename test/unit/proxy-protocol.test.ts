import { describe, expect, it } from 'vitest';
import {
  decodeProxyHeader,
  encodeProxyV2,
  encodeProxyV2Local,
  PROXY_V1_MAX_LINE_BYTES,
  PROXY_V2_SIGNATURE,
  type ProxyEndpoints,
} from '../../services/nlb/dataplane/proxy-protocol.js';
import { createRng } from '../../services/shared/rng.js';

const SIG = PROXY_V2_SIGNATURE.toString('hex');

/** A v2 header by hand: version/command byte, family/transport byte, payload. */
function v2(
  versionCommand: number,
  familyTransport: number,
  payload: Buffer,
  declared = payload.length,
): Buffer {
  const head = Buffer.alloc(4);
  head[0] = versionCommand;
  head[1] = familyTransport;
  head.writeUInt16BE(declared, 2);
  return Buffer.concat([PROXY_V2_SIGNATURE, head, payload]);
}

/** Every strict prefix decodes as need-more, the whole as a header. */
function expectNeedMoreOnPrefixes(buf: Buffer): void {
  for (let k = 1; k < buf.length; k++)
    expect(decodeProxyHeader(buf.subarray(0, k)), `prefix ${k}`).toEqual({ kind: 'need-more' });
  expect(decodeProxyHeader(buf).kind).toBe('header');
}

describe('encodeProxyV2 / decodeProxyHeader round trips', () => {
  it('TCP over IPv4: the spec layout, and back', () => {
    const e = { srcAddress: '203.0.113.7', srcPort: 51234, dstAddress: '10.0.0.1', dstPort: 443 };
    const h = encodeProxyV2(e);
    expect(h.toString('hex')).toBe(`${SIG}2111000ccb0071070a000001c82201bb`);
    expect(decodeProxyHeader(h)).toEqual({
      kind: 'header',
      length: 28,
      version: 2,
      command: 'PROXY',
      family: 'IPv4',
      transport: 'STREAM',
      ...e,
    });
  });

  it('TCP over IPv6, in RFC 5952 form (zone ids dropped)', () => {
    const h = encodeProxyV2({
      srcAddress: '2001:DB8:0:0:0:0:0:7',
      srcPort: 0,
      dstAddress: 'fe80::1%eth0',
      dstPort: 65535,
    });
    expect(h.length).toBe(16 + 36);
    expect(h[13]).toBe(0x21);
    expect(decodeProxyHeader(h)).toMatchObject({
      kind: 'header',
      length: 52,
      family: 'IPv6',
      srcAddress: '2001:db8::7',
      srcPort: 0,
      dstAddress: 'fe80::1',
      dstPort: 65535,
    });
  });

  it('IPv4-mapped IPv6 addresses are sent as IPv4; a mixed pair as IPv6', () => {
    const mapped = encodeProxyV2({
      srcAddress: '::ffff:192.0.2.1',
      srcPort: 1,
      dstAddress: '::ffff:7f00:1',
      dstPort: 2,
    });
    expect(decodeProxyHeader(mapped)).toMatchObject({
      family: 'IPv4',
      srcAddress: '192.0.2.1',
      dstAddress: '127.0.0.1',
    });
    const mixed = encodeProxyV2({ srcAddress: '192.0.2.1', srcPort: 1, dstAddress: '::1', dstPort: 2 });
    expect(decodeProxyHeader(mixed)).toMatchObject({
      family: 'IPv6',
      srcAddress: '::ffff:192.0.2.1',
      dstAddress: '::1',
    });
  });

  it('unreadable endpoints give PROXY over UNSPEC (use the connection itself), LOCAL is for health checks', () => {
    for (const bad of [
      { srcAddress: '', srcPort: 1, dstAddress: '10.0.0.1', dstPort: 2 },
      { srcAddress: '10.0.0.1', srcPort: 70000, dstAddress: '10.0.0.2', dstPort: 2 },
      { srcAddress: '010.0.0.1', srcPort: 1, dstAddress: '10.0.0.2', dstPort: 2 },
      { srcAddress: '1::2::3', srcPort: 1, dstAddress: '10.0.0.2', dstPort: 2 },
    ] satisfies ProxyEndpoints[]) {
      const h = encodeProxyV2(bad);
      expect(h.toString('hex')).toBe(`${SIG}21000000`);
      expect(decodeProxyHeader(h)).toEqual({
        kind: 'header',
        length: 16,
        version: 2,
        command: 'PROXY',
        family: 'UNSPEC',
        transport: 'UNSPEC',
        srcAddress: '',
        srcPort: 0,
        dstAddress: '',
        dstPort: 0,
      });
    }
    const local = encodeProxyV2Local();
    expect(local.toString('hex')).toBe(`${SIG}20000000`);
    expect(decodeProxyHeader(local)).toMatchObject({
      kind: 'header',
      length: 16,
      command: 'LOCAL',
      family: 'UNSPEC',
    });
  });

  it('random addresses round-trip and format as the WHATWG URL serializer does', () => {
    const rng = createRng('proxy-round-trip');
    for (let i = 0; i < 500; i++) {
      const groups = Array.from({ length: 8 }, () => (rng.chance(0.4) ? 0 : rng.int(0, 0xffff)).toString(16));
      const v6 = groups.join(':');
      const v4 = Array.from({ length: 4 }, () => rng.int(0, 255)).join('.');
      const srcPort = rng.int(0, 0xffff);
      const dstPort = rng.int(0, 0xffff);
      const d6 = decodeProxyHeader(encodeProxyV2({ srcAddress: v6, srcPort, dstAddress: '::1', dstPort }));
      const canonical = new URL(`http://[${v6}]/`).hostname.slice(1, -1);
      if (canonical.startsWith('::ffff:')) continue; // URL writes mapped addresses in hex; we send them as IPv4
      expect(d6).toMatchObject({ kind: 'header', srcAddress: canonical, srcPort, dstPort });
      const d4 = decodeProxyHeader(encodeProxyV2({ srcAddress: v4, srcPort, dstAddress: v4, dstPort }));
      expect(d4).toMatchObject({ kind: 'header', family: 'IPv4', srcAddress: v4, dstAddress: v4 });
    }
  });
});

describe('decodeProxyHeader', () => {
  it('is need-more on every prefix of a v2 or v1 header', () => {
    expectNeedMoreOnPrefixes(
      encodeProxyV2({ srcAddress: '198.51.100.9', srcPort: 4000, dstAddress: '10.1.2.3', dstPort: 80 }),
    );
    expectNeedMoreOnPrefixes(
      encodeProxyV2({ srcAddress: '2001:db8::1', srcPort: 4000, dstAddress: '2001:db8::2', dstPort: 80 }),
    );
    expectNeedMoreOnPrefixes(encodeProxyV2Local());
    expectNeedMoreOnPrefixes(Buffer.from('PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n'));
    expectNeedMoreOnPrefixes(Buffer.from('PROXY UNKNOWN\r\n'));
    expect(decodeProxyHeader(Buffer.alloc(0))).toEqual({ kind: 'need-more' });
  });

  it('a header followed by payload leaves the payload at `length`', () => {
    const payload = Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    for (const header of [
      encodeProxyV2({ srcAddress: '192.0.2.1', srcPort: 1, dstAddress: '192.0.2.2', dstPort: 2 }),
      encodeProxyV2({ srcAddress: '2001:db8::1', srcPort: 1, dstAddress: '2001:db8::2', dstPort: 2 }),
      encodeProxyV2Local(),
      Buffer.from('PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n'),
    ]) {
      const d = decodeProxyHeader(Buffer.concat([header, payload]));
      expect(d.kind).toBe('header');
      if (d.kind !== 'header') continue;
      expect(d.length).toBe(header.length);
      expect(Buffer.concat([header, payload]).subarray(d.length)).toEqual(payload);
    }
  });

  it('skips TLVs after the addresses and reads UNIX sockets', () => {
    const inet = encodeProxyV2({ srcAddress: '192.0.2.1', srcPort: 1, dstAddress: '192.0.2.2', dstPort: 2 });
    const tlv = Buffer.from('0400040a0b0c0d', 'hex'); // PP2_TYPE_NOOP
    const withTlv = v2(0x21, 0x11, Buffer.concat([inet.subarray(16), tlv]));
    expect(decodeProxyHeader(withTlv)).toMatchObject({
      kind: 'header',
      length: 16 + 12 + 7,
      srcAddress: '192.0.2.1',
    });
    const paths = Buffer.alloc(216);
    paths.write('/run/client.sock', 0);
    paths.write('/run/nlb.sock', 108);
    expect(decodeProxyHeader(v2(0x21, 0x31, paths))).toMatchObject({
      kind: 'header',
      family: 'UNIX',
      srcAddress: '/run/client.sock',
      dstAddress: '/run/nlb.sock',
    });
  });

  it('decodes v1 lines', () => {
    expect(decodeProxyHeader(Buffer.from('PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nhello'))).toEqual({
      kind: 'header',
      length: 45,
      version: 1,
      command: 'PROXY',
      family: 'IPv4',
      transport: 'STREAM',
      srcAddress: '192.0.2.1',
      srcPort: 56324,
      dstAddress: '198.51.100.2',
      dstPort: 443,
    });
    expect(decodeProxyHeader(Buffer.from('PROXY TCP6 2001:DB8::1 ::1 65535 0\r\n'))).toMatchObject({
      family: 'IPv6',
      srcAddress: '2001:db8::1',
      dstAddress: '::1',
    });
    expect(decodeProxyHeader(Buffer.from('PROXY UNKNOWN ffff::1 ::1 1 2\r\n'))).toMatchObject({
      kind: 'header',
      length: 31,
      family: 'UNSPEC',
      srcAddress: '',
    });
    const longest = `PROXY TCP6 ${'ffff:'.repeat(7)}ffff ${'ffff:'.repeat(7)}ffff 65535 65535\r\n`;
    expect(longest.length).toBeLessThanOrEqual(PROXY_V1_MAX_LINE_BYTES);
    expect(decodeProxyHeader(Buffer.from(longest)).kind).toBe('header');
  });

  it.each([
    ['v2 version 1', v2(0x11, 0x11, Buffer.alloc(12)), 'unsupported_version'],
    ['v2 command 2', v2(0x22, 0x11, Buffer.alloc(12)), 'unsupported_command'],
    ['v2 family 4', v2(0x21, 0x41, Buffer.alloc(12)), 'unsupported_family'],
    ['v2 transport 3', v2(0x21, 0x13, Buffer.alloc(12)), 'unsupported_family'],
    ['v2 length over 4096', v2(0x21, 0x11, Buffer.alloc(0), 4097), 'too_long'],
    ['v2 IPv4 block too short', v2(0x21, 0x11, Buffer.alloc(8)), 'short_address_block'],
    ['v2 IPv6 block too short', v2(0x21, 0x21, Buffer.alloc(12)), 'short_address_block'],
    ['v1 without CRLF', Buffer.from(`PROXY TCP4 ${'1'.repeat(120)}`), 'v1_line_too_long'],
    ['v1 LF without CR', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'), 'v1_bad_line_end'],
    ['v1 bad address', Buffer.from('PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n'), 'v1_malformed'],
    ['v1 IPv6 as TCP4', Buffer.from('PROXY TCP4 ::1 ::1 1 2\r\n'), 'v1_malformed'],
    ['v1 port 65536', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'), 'v1_malformed'],
    ['v1 port with a sign', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n'), 'v1_malformed'],
    ['v1 double space', Buffer.from('PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n'), 'v1_malformed'],
    ['v1 UDP', Buffer.from('PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n'), 'v1_malformed'],
  ])('%s is invalid', (_name, buf, reason) => {
    expect(decodeProxyHeader(buf)).toEqual({ kind: 'invalid', reason });
  });

  it('a v2 header whose declared length has not arrived is need-more; no header is none', () => {
    expect(decodeProxyHeader(v2(0x21, 0x11, Buffer.alloc(11), 12))).toEqual({ kind: 'need-more' });
    expect(decodeProxyHeader(Buffer.from('GET / HTTP/1.1\r\n'))).toEqual({ kind: 'none' });
    expect(decodeProxyHeader(Buffer.from('\r\n\r\nX'))).toEqual({ kind: 'none' });
    expect(decodeProxyHeader(Buffer.from('PROXX'))).toEqual({ kind: 'none' });
    expect(decodeProxyHeader(Buffer.from([0x16, 0x03, 0x01]))).toEqual({ kind: 'none' });
  });
});
