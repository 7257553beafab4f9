/** "Did you mean" hints for misspelled names. */

/** Levenshtein distance between two strings. */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length];
}

/** The closest candidates within `maxDistance` edits, best first. */
export function closest(word: string, candidates: readonly string[], maxDistance = 2): string[] {
  const w = word.toLowerCase();
  return candidates
    .map((c) => ({ c, d: editDistance(w, c.toLowerCase()) }))
    .filter((x) => x.d <= maxDistance)
    .sort((a, b) => a.d - b.d)
    .map((x) => x.c);
}

/** " (did you mean X?)" or "". */
export function suggest(word: string, candidates: readonly string[]): string {
  const best = closest(word, candidates)[0];
  return best ? ` (did you mean ${best}?)` : '';
}
