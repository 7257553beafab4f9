/** HTTP field syntax (RFC 9110 §5.6.2, §5.5) shared by the request and response parsers. */

/** A token: method names and field names. */
export const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Controls other than HTAB (a bare CR or LF, NUL…), which no field value may contain. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
export const CONTROL_CHARS = /[\x00-\x08\x0a-\x1f\x7f]/;

/**
 * Optional whitespace around a field value (RFC 9110 §5.6.3: space and tab only). Anything else,
 * a bare CR say, stays in the value, where CONTROL_CHARS refuses it.
 */
function trimmable(c: number): boolean {
  return c === 32 || c === 9;
}

/** `text.slice(start, end)` without surrounding OWS, and without an intermediate string. */
export function trimmedSlice(text: string, start: number, end: number): string {
  while (start < end && trimmable(text.charCodeAt(start))) start++;
  while (end > start && trimmable(text.charCodeAt(end - 1))) end--;
  return text.slice(start, end);
}

/** Connection options (RFC 9110 §7.6.1) that the parsers act on. */
export const CONN_CLOSE = 1;
export const CONN_KEEP_ALIVE = 2;
export const CONN_UPGRADE = 4;

/**
 * The options of one Connection field value (lower case) as CONN_* bits; other tokens (names of
 * hop-by-hop fields to drop) go to `other`. Fields with several values accumulate by OR, so
 * `close` anywhere wins over `keep-alive`: callers test CONN_CLOSE first.
 */
export function connectionOptions(lower: string, other?: (token: string) => void): number {
  // One token is the common case: no split.
  if (lower === 'keep-alive') return CONN_KEEP_ALIVE;
  if (lower === 'close') return CONN_CLOSE;
  let bits = 0;
  for (const t of lower.split(',')) {
    const token = t.trim();
    if (token === 'close') bits |= CONN_CLOSE;
    else if (token === 'keep-alive') bits |= CONN_KEEP_ALIVE;
    else if (token === 'upgrade') bits |= CONN_UPGRADE;
    else if (token) other?.(token);
  }
  return bits;
}

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
/** Heads are looked for in a latin1 string of at most this many bytes first. */
const HEAD_WINDOW = 4096;

/**
 * The head starting at `start` in `buf` (latin1, without the final CRLFCRLF), or null when its
 * end has not arrived. Latin1 is one char per byte, so the head ends at `start + text.length`.
 * Searching the string the head is decoded into anyway is cheaper than Buffer#indexOf and a
 * second decode; a head longer than the window falls back to searching the buffer.
 */
export function headText(buf: Buffer, start: number): string | null {
  const windowEnd = Math.min(buf.length, start + HEAD_WINDOW);
  const text = buf.toString('latin1', start, windowEnd);
  const end = text.indexOf('\r\n\r\n');
  if (end >= 0) return text.slice(0, end);
  if (windowEnd === buf.length) return null;
  const at = buf.indexOf(CRLFCRLF, windowEnd - 3);
  return at < 0 ? null : buf.toString('latin1', start, at);
}
