import { describe, expect, it } from 'vitest';
import {
  applyQuery,
  DEFAULT_PAGE_SIZE,
  MAX_PAGE_SIZE,
  type Fields,
  type QuerySpec,
} from '../../services/nlb/domain/query.js';
import { domainError } from './nlb-fixtures.js';

interface Item {
  id: string;
  type: string;
  conns: number;
  draining: boolean;
}

const ITEMS: Item[] = [
  { id: 'alb-1', type: 'ALB', conns: 10, draining: false },
  { id: 'alb-2', type: 'ALB', conns: 30, draining: true },
  { id: 'db-1', type: 'DBLB', conns: 20, draining: false },
  { id: 'db-2', type: 'DBLB', conns: 10, draining: false },
  { id: 'ai-1', type: 'AILB', conns: 5, draining: false },
];

const FIELDS: Fields<Item> = {
  instance_id: (i) => i.id,
  module_type: (i) => i.type,
  connections: (i) => i.conns,
  draining: (i) => i.draining,
};

const q = (over: Partial<QuerySpec> = {}): QuerySpec => ({
  filters: [],
  sortBy: '',
  sortDesc: false,
  page: 0,
  pageSize: 0,
  ...over,
});
const ids = (spec: Partial<QuerySpec>, defaultSort?: string) =>
  applyQuery(ITEMS, q(spec), FIELDS, defaultSort).items.map((i) => i.id);
const filter = (field: string, operator: string, value: string) => ({
  filters: [{ field, operator, value }],
});

describe('applyQuery filters', () => {
  it.each<[string, string, string, string[]]>([
    ['module_type', 'eq', 'alb', ['alb-1', 'alb-2']],
    ['module_type', '', 'DBLB', ['db-1', 'db-2']],
    ['module_type', 'EQ', 'AILB', ['ai-1']],
    ['module_type', 'ne', 'ALB', ['db-1', 'db-2', 'ai-1']],
    ['connections', 'eq', '10', ['alb-1', 'db-2']],
    ['connections', 'gt', '10', ['alb-2', 'db-1']],
    ['connections', 'lt', '10', ['ai-1']],
    ['connections', 'gte', '20', ['alb-2', 'db-1']],
    ['connections', 'lte', '5', ['ai-1']],
    ['module_type', 'in', 'AILB, dblb', ['db-1', 'db-2', 'ai-1']],
    ['connections', 'in', '5,30', ['alb-2', 'ai-1']],
    ['instance_id', 'contains', 'DB-', ['db-1', 'db-2']],
    ['instance_id', 'contains', '-2', ['alb-2', 'db-2']],
    ['instance_id', 'prefix', 'AL', ['alb-1', 'alb-2']],
    ['instance_id', 'prefix', 'lb', []],
    ['draining', 'eq', 'TRUE', ['alb-2']],
    ['draining', 'eq', 'false', ['alb-1', 'db-1', 'db-2', 'ai-1']],
  ])('%s %s %s', (field, operator, value, expected) => {
    expect(ids(filter(field, operator, value))).toEqual(expected);
  });

  it('combines filters with AND', () => {
    expect(
      ids({
        filters: [
          { field: 'module_type', operator: 'ne', value: 'AILB' },
          { field: 'connections', operator: 'lt', value: '20' },
        ],
      }),
    ).toEqual(['alb-1', 'db-2']);
  });
});

describe('applyQuery sort', () => {
  it('sorts numbers ascending, keeping the input order of ties (stable)', () => {
    expect(ids({ sortBy: 'connections' })).toEqual(['ai-1', 'alb-1', 'db-2', 'db-1', 'alb-2']);
  });

  it('sorts descending, still keeping the input order of ties', () => {
    expect(ids({ sortBy: 'connections', sortDesc: true })).toEqual([
      'alb-2',
      'db-1',
      'alb-1',
      'db-2',
      'ai-1',
    ]);
  });

  it('sorts strings', () => {
    expect(ids({ sortBy: 'instance_id' })).toEqual(['ai-1', 'alb-1', 'alb-2', 'db-1', 'db-2']);
    expect(ids({ sortBy: 'module_type', sortDesc: true })).toEqual([
      'db-1',
      'db-2',
      'alb-1',
      'alb-2',
      'ai-1',
    ]);
  });

  it('uses the default sort when none is given, and the input order when there is none', () => {
    expect(ids({}, 'instance_id')).toEqual(['ai-1', 'alb-1', 'alb-2', 'db-1', 'db-2']);
    expect(ids({})).toEqual(ITEMS.map((i) => i.id));
  });
});

describe('applyQuery pagination', () => {
  it.each([
    [1, 2, ['ai-1', 'alb-1']],
    [2, 2, ['alb-2', 'db-1']],
    [3, 2, ['db-2']],
    [4, 2, []],
  ])('page %i of size %i', (page, pageSize, expected) => {
    const r = applyQuery(ITEMS, q({ page, pageSize, sortBy: 'instance_id' }), FIELDS);
    expect(r.items.map((i) => i.id)).toEqual(expected);
    expect(r).toMatchObject({ total: 5, page, pageSize, totalPages: 3 });
  });

  it('counts the total after filtering, and defaults page 1 and the default page size', () => {
    const r = applyQuery(ITEMS, q(filter('module_type', 'eq', 'ALB')), FIELDS);
    expect(r).toMatchObject({ total: 2, page: 1, pageSize: DEFAULT_PAGE_SIZE, totalPages: 1 });
  });

  it('reports one page for an empty result', () => {
    const r = applyQuery([], q(), FIELDS);
    expect(r).toEqual({ items: [], total: 0, page: 1, pageSize: DEFAULT_PAGE_SIZE, totalPages: 1 });
  });

  it('allows the maximum page size', () => {
    expect(applyQuery(ITEMS, q({ pageSize: MAX_PAGE_SIZE }), FIELDS).pageSize).toBe(1000);
  });
});

describe('applyQuery errors', () => {
  const problems = (spec: Partial<QuerySpec>, items: Item[] = ITEMS) => {
    const e = domainError(() => applyQuery(items, q(spec), FIELDS));
    expect(e.kind).toBe('invalid_argument');
    return e.details.problems.split('\n');
  };

  it('names an unknown filter field, the allowed ones and the closest', () => {
    expect(problems(filter('modul_type', 'eq', 'ALB'))).toEqual([
      'query filter field "modul_type" is not a known field; use one of instance_id, module_type, connections, draining (did you mean module_type?)',
    ]);
  });

  it('gives no suggestion when nothing is close', () => {
    expect(problems({ sortBy: 'zzzzzzzz' })).toEqual([
      'query sort_by "zzzzzzzz" is not a known field; use one of instance_id, module_type, connections, draining',
    ]);
  });

  it('names an unknown operator', () => {
    expect(problems(filter('module_type', 'like', 'A'))).toEqual([
      'query filter operator "like" is not supported; use one of eq, ne, gt, lt, gte, lte, in, contains, prefix',
    ]);
  });

  it('refuses a non-number compared with a number field', () => {
    expect(problems(filter('connections', 'gt', 'many'))).toEqual([
      'query filter on connections compares numbers; "many" is not a number',
    ]);
  });

  it.each([
    [{ pageSize: MAX_PAGE_SIZE + 1 }, 'query pagination.page_size 1001 must be 1 to 1000'],
    [{ pageSize: -1 }, 'query pagination.page_size -1 must be 1 to 1000'],
    [{ page: -1 }, 'query pagination.page -1 must be 1 or more'],
  ])('refuses %o', (spec, message) => {
    expect(problems(spec)).toEqual([message]);
  });

  it('names every problem at once', () => {
    const e = domainError(() =>
      applyQuery(ITEMS, q({ ...filter('nope', 'eq', 'x'), sortBy: 'nope2', pageSize: 5000 }), FIELDS),
    );
    expect(e.message).toMatch(/^invalid query: 3 problems: /);
  });
});

describe('applyQuery over items already sorted by a unique field (sortedBy)', () => {
  // 200 items in id order, with repeated types and connection counts (ties for other sorts).
  const SORTED: Item[] = Array.from({ length: 200 }, (_, i) => ({
    id: `id-${String(i).padStart(3, '0')}`,
    type: ['ALB', 'DBLB', 'AILB'][i % 3],
    conns: (i * 7) % 13,
    draining: i % 5 === 0,
  }));
  const SHUFFLED = [...SORTED].sort(
    (a, b) => ((a.conns * 31 + a.id.length) % 17) - ((b.conns * 31 + b.id.length) % 17),
  );
  const notDraining = (i: Item) => !i.draining;

  it.each<Partial<QuerySpec>>([
    {},
    { page: 3, pageSize: 25 },
    { sortBy: 'instance_id', sortDesc: true, page: 2, pageSize: 30 },
    { sortDesc: true, pageSize: 1000 },
    { ...filter('module_type', 'eq', 'dblb'), page: 2, pageSize: 10 },
    { ...filter('connections', 'gte', '6'), sortBy: 'instance_id', sortDesc: true, pageSize: 7, page: 4 },
    { ...filter('instance_id', 'prefix', 'ID-1'), page: 9, pageSize: 50 },
  ])('gives the same page as sorting everything: %o', (spec) => {
    for (const where of [undefined, notDraining]) {
      const full = applyQuery(where ? SHUFFLED.filter(where) : SHUFFLED, q(spec), FIELDS, 'instance_id');
      const fast = applyQuery(SORTED, q(spec), FIELDS, 'instance_id', { sortedBy: 'instance_id', where });
      expect(fast).toEqual(full);
    }
  });

  it('sorts by other fields as before, breaking ties by input order, after `where`', () => {
    const spec = q({ sortBy: 'connections', sortDesc: true, page: 2, pageSize: 20 });
    expect(
      applyQuery(SHUFFLED, spec, FIELDS, 'instance_id', { sortedBy: 'instance_id', where: notDraining }),
    ).toEqual(applyQuery(SHUFFLED.filter(notDraining), spec, FIELDS, 'instance_id'));
  });

  it('returns the pages of the input slice by slice when nothing filters', () => {
    const r = applyQuery(SORTED, q({ page: 2, pageSize: 50 }), FIELDS, 'instance_id', {
      sortedBy: 'instance_id',
    });
    expect(r.items).toEqual(SORTED.slice(50, 100));
    expect(r).toMatchObject({ total: 200, totalPages: 4 });
    const desc = q({ sortBy: 'instance_id', sortDesc: true, page: 4, pageSize: 60 });
    expect(applyQuery(SORTED, desc, FIELDS, undefined, { sortedBy: 'instance_id' }).items).toEqual(
      SORTED.slice(0, 20).reverse(),
    );
  });

  it('judges a numeric comparison by the first item `where` keeps', () => {
    const gt = filter('connections', 'gt', 'many');
    // Nothing kept: nothing to compare, no error (as when filtering first).
    expect(applyQuery(SORTED, q(gt), FIELDS, 'instance_id', { where: () => false }).total).toBe(0);
    const e = domainError(() => applyQuery(SORTED, q(gt), FIELDS, 'instance_id', { where: notDraining }));
    expect(e.details.problems).toBe('query filter on connections compares numbers; "many" is not a number');
  });
});
