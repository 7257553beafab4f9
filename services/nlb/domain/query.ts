/**
 * Query (filters, sort, pagination) over any listing, by named fields. Unknown fields or
 * operators are errors that name the allowed ones.
 */
import { Problems } from '../../shared/errors.js';
import { suggest } from '../../shared/suggest.js';

export type FieldValue = string | number | boolean;
export type Fields<T> = Record<string, (item: T) => FieldValue>;

export interface QuerySpec {
  filters: Array<{ field: string; operator: string; value: string }>;
  sortBy: string;
  sortDesc: boolean;
  page: number;
  pageSize: number;
}

export interface Page<T> {
  items: T[];
  total: number;
  page: number;
  pageSize: number;
  totalPages: number;
}

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;
const OPERATORS = ['eq', 'ne', 'gt', 'lt', 'gte', 'lte', 'in', 'contains', 'prefix'] as const;

/** Code-point order: deterministic across locales and much cheaper than localeCompare on 10k rows. */
function codePointCompare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The test of one filter as a function of the field's value, with the target's conversions
 * (lower case, number, list) done once per query instead of once per item.
 * Strings compare case-insensitively for eq/ne/in/contains/prefix and in code-point order for
 * gt/lt/gte/lte; numbers numerically; booleans by their name.
 */
function matcher(op: string, target: string): (v: FieldValue) => boolean {
  const lower = target.toLowerCase();
  const n = Number(target);
  const compare = (v: FieldValue): number => {
    if (typeof v === 'number') return v === n ? 0 : v < n ? -1 : 1;
    if (typeof v === 'boolean') return String(v) === lower ? 0 : 1;
    return v < target ? -1 : v > target ? 1 : 0;
  };
  switch (op) {
    case 'eq':
      return (v) =>
        typeof v === 'string'
          ? v.toLowerCase() === lower
          : typeof v === 'number'
            ? v === n
            : String(v) === lower;
    case 'ne': {
      const eq = matcher('eq', target);
      return (v) => !eq(v);
    }
    case 'gt':
      return (v) => compare(v) > 0;
    case 'lt':
      return (v) => compare(v) < 0;
    case 'gte':
      return (v) => compare(v) >= 0;
    case 'lte':
      return (v) => compare(v) <= 0;
    case 'in': {
      const any = target.split(',').map((t) => matcher('eq', t.trim()));
      return (v) => any.some((eq) => eq(v));
    }
    case 'contains':
      return (v) => String(v).toLowerCase().includes(lower);
    case 'prefix':
      return (v) => String(v).toLowerCase().startsWith(lower);
    default:
      return () => false;
  }
}

export interface QueryOptions<T> {
  /** Items to leave out before the query's own filters (cheaper than filtering a copy first). */
  where?: (item: T) => boolean;
  /**
   * The field `items` are already sorted by, ascending, with no two items equal in it (e.g. a
   * unique id kept in order). A query sorted by it (or by default, when it is the default sort)
   * then needs no sort and no copy: matches are counted and only the requested page is kept.
   */
  sortedBy?: string;
}

/** Filters, sorts and pages `items`; throws invalid_argument naming every bad field/operator. */
export function applyQuery<T>(
  items: readonly T[],
  q: QuerySpec,
  fieldTable: Fields<T>,
  defaultSort?: string,
  opts: QueryOptions<T> = {},
): Page<T> {
  // Field names come from the client: without a prototype, "__proto__", "constructor" or
  // "hasOwnProperty" are unknown fields like any other, not Object.prototype members to call.
  const fields: Fields<T> = Object.assign(Object.create(null) as Fields<T>, fieldTable);
  const { where } = opts;
  const p = new Problems();
  const names = Object.keys(fields);
  const fieldProblem = (where: string, f: string) =>
    p.add(`${where} "${f}" is not a known field; use one of ${names.join(', ')}${suggest(f, names)}`);
  let sample: { item: T } | undefined;
  for (const f of q.filters) {
    if (!fields[f.field]) fieldProblem('query filter field', f.field);
    const op = (f.operator || 'eq').toLowerCase();
    if (!(OPERATORS as readonly string[]).includes(op)) {
      p.add(`query filter operator "${f.operator}" is not supported; use one of ${OPERATORS.join(', ')}`);
    }
    if ((op === 'gt' || op === 'lt' || op === 'gte' || op === 'lte') && fields[f.field]) {
      sample ??= firstOf(items, where);
      const value = sample ? fields[f.field](sample.item) : undefined;
      if (typeof value === 'number' && !Number.isFinite(Number(f.value))) {
        p.add(`query filter on ${f.field} compares numbers; "${f.value}" is not a number`);
      }
    }
  }
  if (q.sortBy && !fields[q.sortBy]) fieldProblem('query sort_by', q.sortBy);
  if (q.page < 0) p.add(`query pagination.page ${q.page} must be 1 or more`);
  if (q.pageSize < 0 || q.pageSize > MAX_PAGE_SIZE)
    p.add(`query pagination.page_size ${q.pageSize} must be 1 to ${MAX_PAGE_SIZE}`);
  p.check('query');

  const tests = q.filters.map((f) => ({
    get: fields[f.field],
    test: matcher((f.operator || 'eq').toLowerCase(), f.value),
  }));
  const matches = (it: T) => (!where || where(it)) && tests.every((t) => t.test(t.get(it)));
  const pageSize = q.pageSize || DEFAULT_PAGE_SIZE;
  const page = q.page || 1;
  const from = (page - 1) * pageSize;
  const to = page * pageSize;
  const sortKey = q.sortBy || defaultSort;
  const pageOf = (pageItems: T[], total: number): Page<T> => ({
    items: pageItems,
    total,
    page,
    pageSize,
    totalPages: Math.max(1, Math.ceil(total / pageSize)),
  });

  if (sortKey === undefined || sortKey === '' || (sortKey === opts.sortedBy && fields[sortKey])) {
    // Already in order (input order, or sorted by a unique key): count, keep only the page.
    const desc = Boolean(sortKey) && q.sortDesc;
    if (!where && tests.length === 0) {
      const n = items.length;
      const slice = desc
        ? items.slice(Math.max(0, n - to), Math.max(0, n - from)).reverse()
        : items.slice(from, to);
      return pageOf(slice, n);
    }
    const out: T[] = [];
    let total = 0;
    for (let k = 0; k < items.length; k++) {
      const it = items[desc ? items.length - 1 - k : k];
      if (!matches(it)) continue;
      if (total >= from && total < to) out.push(it);
      total++;
    }
    return pageOf(out, total);
  }

  let out = items.filter(matches);
  if (fields[sortKey]) {
    const get = fields[sortKey];
    out = out
      .map((it, i) => ({ it, i, k: get(it) }))
      .sort((a, b) => {
        const c =
          typeof a.k === 'number' && typeof b.k === 'number'
            ? a.k - b.k
            : codePointCompare(String(a.k), String(b.k));
        return (q.sortDesc ? -c : c) || a.i - b.i;
      })
      .map((x) => x.it);
  }
  return pageOf(out.slice(from, to), out.length);
}

/** The first item `where` keeps (all when there is no `where`). */
function firstOf<T>(items: readonly T[], where: ((item: T) => boolean) | undefined): { item: T } | undefined {
  for (const item of items) if (!where || where(item)) return { item };
  return undefined;
}
