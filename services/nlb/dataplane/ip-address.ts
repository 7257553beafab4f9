/**
 * IP address text ⇄ bytes for the PROXY protocol, without node:net (the data-plane codecs stay
 * pure). Strict: dotted-quad IPv4 without leading zeros; RFC 4291 §2.2 IPv6 text (a zone id
 * after "%" is dropped); output in RFC 5952 form.
 */

const IPV4_PART = /^(0|[1-9][0-9]{0,2})$/;
const IPV6_GROUP = /^[0-9a-fA-F]{1,4}$/;
/** Longer text cannot be an address (with a zone id of a sane length). */
const MAX_ADDRESS_CHARS = 100;

/** "a.b.c.d" → 4 bytes, or undefined. */
export function parseIPv4(text: string): Uint8Array | undefined {
  if (text.length > 15) return undefined;
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    if (!IPV4_PART.test(parts[i])) return undefined;
    const n = Number(parts[i]);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

/** The 16-bit groups of one side of "::"; an IPv4 tail is allowed only at the very end. */
function ipv6Groups(part: string, last: boolean): number[] | undefined {
  if (part === '') return [];
  const items = part.split(':');
  const out: number[] = [];
  for (let i = 0; i < items.length; i++) {
    const g = items[i];
    if (last && i === items.length - 1 && g.includes('.')) {
      const v4 = parseIPv4(g);
      if (!v4) return undefined;
      out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    } else if (IPV6_GROUP.test(g)) out.push(parseInt(g, 16));
    else return undefined;
  }
  return out;
}

/** IPv6 text → 16 bytes, or undefined. */
export function parseIPv6(text: string): Uint8Array | undefined {
  if (text.length > MAX_ADDRESS_CHARS) return undefined;
  const zone = text.indexOf('%');
  if (zone === 0 || zone === text.length - 1 || text.includes('%', zone + 1)) return undefined;
  const address = zone > 0 ? text.slice(0, zone) : text;
  const halves = address.split('::');
  if (halves.length > 2) return undefined;
  const head = ipv6Groups(halves[0], halves.length === 1);
  const tail = halves.length === 2 ? ipv6Groups(halves[1], true) : [];
  if (!head || !tail) return undefined;
  if (halves.length === 1 ? head.length !== 8 : head.length + tail.length > 7) return undefined;
  const groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** Whether 16 bytes are an IPv4-mapped IPv6 address (::ffff:a.b.c.d). */
export function isIPv4Mapped(b: Uint8Array): boolean {
  if (b.length !== 16 || b[10] !== 0xff || b[11] !== 0xff) return false;
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return true;
}

/** 4 bytes → "a.b.c.d". */
export function formatIPv4(b: Uint8Array): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

/** 16 bytes → RFC 5952 text (the longest run of two or more zero groups becomes "::"). */
export function formatIPv6(b: Uint8Array): string {
  if (isIPv4Mapped(b)) return `::ffff:${formatIPv4(b.subarray(12))}`;
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((b[2 * i] << 8) | b[2 * i + 1]);
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}
