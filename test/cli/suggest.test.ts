import { describe, expect, it } from 'vitest';
import { closestMatches, didYouMean } from '../../cli/suggest.js';

describe('suggestions', () => {
  it('prefers the closest candidate and drops far ones', () => {
    expect(closestMatches('pageSzie', ['page', 'pageSize', 'totalPages'], 1)).toEqual(['pageSize']);
    expect(closestMatches('pagesiz', ['page', 'pageSize', 'totalPages'])).toEqual(['pageSize']);
    expect(closestMatches('modules', ['include_modules', 'version'])).toEqual(['include_modules']);
    expect(closestMatches('zzz', ['include_modules', 'version'])).toEqual([]);
  });

  it('compares by key and ignores case', () => {
    const names = ['marchproxy.NLBService/GetNLBStatus', 'marchproxy.ModuleService/GetStatus'];
    expect(closestMatches('getnlbstatus', names, 3, (n) => n.split('/')[1])).toEqual([
      'marchproxy.NLBService/GetNLBStatus',
    ]);
  });

  it('phrases the hint', () => {
    expect(didYouMean([])).toBe('');
    expect(didYouMean(['a'])).toBe(' did you mean "a"?');
    expect(didYouMean(['a', 'b', 'c'])).toBe(' did you mean "a", "b" or "c"?');
  });
});
