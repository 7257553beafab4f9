/** "Did you mean" support for names typed by people (RPC names, request fields, enum values). */
import { editDistance } from '../services/shared/suggest.js';

/**
 * Candidates close to `input`, best first. Close spellings (case-insensitive edit distance
 * within a third of the length, at least 2) win, keeping only those at most one edit worse
 * than the best; when nothing is spelled close, candidates containing the input (or contained
 * in it) are offered instead. `key` maps a candidate to the text compared (e.g. the method
 * part of an RPC name).
 */
export function closestMatches(
  input: string,
  candidates: readonly string[],
  limit = 3,
  key: (candidate: string) => string = (c) => c,
): string[] {
  const needle = input.toLowerCase();
  if (!needle) return [];
  const maxDistance = Math.max(2, Math.floor(needle.length / 3));
  const scored = candidates
    .map((candidate) => {
      const hay = key(candidate).toLowerCase();
      const contains = hay.includes(needle) || needle.includes(hay);
      return { candidate, contains, distance: editDistance(needle, hay) };
    })
    .sort((x, y) => x.distance - y.distance || x.candidate.localeCompare(y.candidate));
  const near = scored.filter(({ distance }) => distance <= maxDistance);
  const picked = near.length
    ? near.filter(({ distance }) => distance <= near[0].distance + 1)
    : scored.filter(({ contains }) => contains);
  return picked.slice(0, limit).map(({ candidate }) => candidate);
}

/** " did you mean a or b?" (with its leading space), or "" when there is nothing close. */
export function didYouMean(matches: readonly string[]): string {
  if (matches.length === 0) return '';
  const quoted = matches.map((m) => `"${m}"`);
  const list = quoted.length === 1 ? quoted[0] : `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)}`;
  return ` did you mean ${list}?`;
}
