/** Glob patterns ("*" spans anything) used by module CanHandle scorers and routing. */

/** Whether `value` matches a glob pattern (case-insensitive). "" and "*" match anything. */
export function globMatch(pattern: string, value: string): boolean {
  if (!pattern || pattern === '*') return true;
  const re = new RegExp(
    `^${pattern
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
    'i',
  );
  return re.test(value);
}

/** Specificity of a glob: literal characters count, wildcards do not. */
export function globSpecificity(pattern: string): number {
  return pattern.replace(/\*/g, '').length;
}
