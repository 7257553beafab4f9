/**
 * AMF0 (Adobe's Action Message Format 0), the encoding of RTMP command and data messages: the
 * subset RTMP uses (number, boolean, string, object, null, undefined, ECMA array, strict array,
 * date, long string). Decoding is bounded (depth, counts) and never throws; it returns null on
 * malformed input.
 */

export type Amf0Value =
  number | boolean | string | null | undefined | Date | Amf0Value[] | { [key: string]: Amf0Value };

const NUMBER = 0x00;
const BOOLEAN = 0x01;
const STRING = 0x02;
const OBJECT = 0x03;
const NULL = 0x05;
const UNDEFINED = 0x06;
const ECMA_ARRAY = 0x08;
const OBJECT_END = 0x09;
const STRICT_ARRAY = 0x0a;
const DATE = 0x0b;
const LONG_STRING = 0x0c;

const MAX_DEPTH = 16;
const MAX_ITEMS = 4096;

class Malformed extends Error {}

/** Decodes every value in `buf`; null when the bytes are not well-formed AMF0. */
export function decodeAmf0(buf: Buffer): Amf0Value[] | null {
  const out: Amf0Value[] = [];
  let pos = 0;
  const need = (n: number) => {
    if (pos + n > buf.length) throw new Malformed();
  };
  const str16 = (): string => {
    need(2);
    const n = buf.readUInt16BE(pos);
    pos += 2;
    need(n);
    const s = buf.toString('utf8', pos, pos + n);
    pos += n;
    return s;
  };
  const props = (depth: number): Record<string, Amf0Value> => {
    const o: Record<string, Amf0Value> = {};
    for (let i = 0; ; i++) {
      if (i > MAX_ITEMS) throw new Malformed();
      const key = str16();
      need(1);
      if (key === '' && buf[pos] === OBJECT_END) {
        pos++;
        return o;
      }
      o[key] = value(depth + 1);
    }
  };
  const value = (depth: number): Amf0Value => {
    if (depth > MAX_DEPTH) throw new Malformed();
    need(1);
    const marker = buf[pos++];
    switch (marker) {
      case NUMBER: {
        need(8);
        const v = buf.readDoubleBE(pos);
        pos += 8;
        return v;
      }
      case BOOLEAN:
        need(1);
        return buf[pos++] !== 0;
      case STRING:
        return str16();
      case LONG_STRING: {
        need(4);
        const n = buf.readUInt32BE(pos);
        pos += 4;
        need(n);
        const s = buf.toString('utf8', pos, pos + n);
        pos += n;
        return s;
      }
      case OBJECT:
        return props(depth);
      case ECMA_ARRAY:
        need(4);
        pos += 4; // the count is advisory; the end marker ends it
        return props(depth);
      case STRICT_ARRAY: {
        need(4);
        const n = buf.readUInt32BE(pos);
        pos += 4;
        if (n > MAX_ITEMS) throw new Malformed();
        const a: Amf0Value[] = [];
        for (let i = 0; i < n; i++) a.push(value(depth + 1));
        return a;
      }
      case DATE: {
        need(10);
        const ms = buf.readDoubleBE(pos);
        pos += 10;
        return new Date(ms);
      }
      case NULL:
        return null;
      case UNDEFINED:
        return undefined;
      default:
        throw new Malformed();
    }
  };
  try {
    while (pos < buf.length) {
      if (out.length > MAX_ITEMS) return null;
      out.push(value(0));
    }
    return out;
  } catch (e) {
    if (e instanceof Malformed || e instanceof RangeError) return null;
    throw e;
  }
}

/** Encodes values as AMF0 (objects as anonymous objects, arrays as strict arrays). */
export function encodeAmf0(...values: Amf0Value[]): Buffer {
  const parts: Buffer[] = [];
  const str = (s: string) => {
    const b = Buffer.from(s, 'utf8');
    const h = Buffer.alloc(2);
    h.writeUInt16BE(Math.min(b.length, 0xffff));
    parts.push(h, b.subarray(0, 0xffff));
  };
  const put = (v: Amf0Value) => {
    if (typeof v === 'number') {
      const b = Buffer.alloc(9);
      b[0] = NUMBER;
      b.writeDoubleBE(v, 1);
      parts.push(b);
    } else if (typeof v === 'boolean') parts.push(Buffer.from([BOOLEAN, v ? 1 : 0]));
    else if (typeof v === 'string') {
      parts.push(Buffer.from([STRING]));
      str(v);
    } else if (v === null) parts.push(Buffer.from([NULL]));
    else if (v === undefined) parts.push(Buffer.from([UNDEFINED]));
    else if (v instanceof Date) {
      const b = Buffer.alloc(11);
      b[0] = DATE;
      b.writeDoubleBE(v.getTime(), 1);
      parts.push(b);
    } else if (Array.isArray(v)) {
      const h = Buffer.alloc(5);
      h[0] = STRICT_ARRAY;
      h.writeUInt32BE(v.length, 1);
      parts.push(h);
      v.forEach(put);
    } else {
      parts.push(Buffer.from([OBJECT]));
      for (const [k, x] of Object.entries(v)) {
        str(k);
        put(x);
      }
      parts.push(Buffer.from([0, 0, OBJECT_END]));
    }
  };
  values.forEach(put);
  return Buffer.concat(parts);
}
