/** Glob patterns ("*" spans anything) used by module CanHandle scorers and routing. */
import { globMatches } from '../../shared/glob.js';

/** Whether `value` matches a glob pattern (case-insensitive). "" and "*" match anything. */
export function globMatch(pattern: string, value: string): boolean {
  if (!pattern || pattern === '*') return true;
  return globMatches(pattern, value, true);
}

/** Specificity of a glob: literal characters count, wildcards do not. */
export function globSpecificity(pattern: string): number {
  return pattern.replace(/\*/g, '').length;
}
