/**
 * Glob matching where "*" spans any characters (none included) and every other character stands
 * for itself. Route path patterns and module patterns come from clients, so the matcher must not
 * backtrack: a RegExp built from "/*a*a*a*…b" takes time exponential in the number of stars
 * (minutes for a 26-character pattern and a 40-character path), blocking the event loop on every
 * request it is tried against. This one is O(pattern × value) in the worst case and linear in
 * practice.
 */

/** The character `c` as a non-unicode `i`-flag RegExp compares it (ECMA-262 Canonicalize). */
function canonical(c: string): string {
  const up = c.toUpperCase();
  if (up.length !== 1) return c;
  return c.charCodeAt(0) >= 128 && up.charCodeAt(0) < 128 ? c : up;
}

/** Whether `value` matches `pattern` in full; `ignoreCase` compares as a RegExp `i` flag would. */
export function globMatches(pattern: string, value: string, ignoreCase = false): boolean {
  const p = ignoreCase ? Array.from(pattern, canonical).join('') : pattern;
  const v = ignoreCase ? Array.from(value, canonical).join('') : value;
  let pi = 0;
  let vi = 0;
  // The last star seen and where in `value` its match currently ends: on a mismatch, that star
  // takes one more character. Earlier stars never need to change (the classic greedy argument).
  let star = -1;
  let starEnd = 0;
  while (vi < v.length) {
    if (pi < p.length && p[pi] === '*') {
      star = pi++;
      starEnd = vi;
    } else if (pi < p.length && p[pi] === v[vi]) {
      pi++;
      vi++;
    } else if (star >= 0) {
      pi = star + 1;
      vi = ++starEnd;
    } else {
      return false;
    }
  }
  while (pi < p.length && p[pi] === '*') pi++;
  return pi === p.length;
}
