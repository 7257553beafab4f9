import { describe, expect, it } from 'vitest';
import {
  enumLabel,
  renderKeyValues,
  renderTable,
  statusColor,
  truncate,
  useColor,
} from '../../cli/output.js';
import { parseFilter, queryJson } from '../../cli/nlb-support.js';
import { parseStructured } from '../../cli/file-input.js';

describe('renderTable', () => {
  const rows = [
    { id: 'alb-1', status: 'HEALTHY', conns: 3 },
    { id: 'alb-10', status: 'UNHEALTHY', conns: 120 },
  ];
  const columns = [
    { header: 'INSTANCE', key: 'id' as const },
    { header: 'STATUS', key: 'status' as const, status: true },
    { header: 'CONNS', key: 'conns' as const },
  ];

  it('pads columns, right-aligns numbers and trims trailing space', () => {
    expect(renderTable(rows, columns)).toBe(
      ['INSTANCE  STATUS     CONNS', 'alb-1     HEALTHY        3', 'alb-10    UNHEALTHY    120'].join('\n'),
    );
  });

  it('prints the header alone for no rows, and "-" for empty cells', () => {
    expect(renderTable([], columns)).toBe('INSTANCE  STATUS  CONNS');
    expect(renderTable([{ id: '', status: 'x', conns: 1 }], columns)).toBe(
      'INSTANCE  STATUS  CONNS\n-         x           1',
    );
  });

  it('truncates long cells with an ellipsis', () => {
    expect(truncate('abcdefgh', 5)).toBe('abcd…');
    expect(renderTable([{ v: 'x'.repeat(10) }], [{ header: 'V', key: 'v' as const, maxWidth: 4 }])).toBe(
      'V\nxxx…',
    );
  });

  it('keeps the alignment when status cells are coloured', () => {
    const plain = renderTable(rows, columns);
    // eslint-disable-next-line no-control-regex
    const strip = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');
    expect(strip(renderTable(rows, columns, { color: true }))).toBe(plain);
  });
});

describe('statusColor and useColor', () => {
  it('leaves unknown words alone', () => {
    expect(statusColor('WHATEVER')).toBe('WHATEVER');
  });

  it('colours only on a TTY without NO_COLOR, unless --color/--no-color says so', () => {
    expect(useColor({}, {}, true)).toBe(true);
    expect(useColor({}, {}, false)).toBe(false);
    expect(useColor({}, { NO_COLOR: '1' }, true)).toBe(false);
    expect(useColor({ color: false }, {}, true)).toBe(false);
    expect(useColor({ color: true }, { NO_COLOR: '1' }, false)).toBe(true);
  });

  it('shortens enum names', () => {
    expect(enumLabel('HEALTH_STATUS_HEALTHY')).toBe('HEALTHY');
    expect(enumLabel('MODULE_TYPE_ALB', 'MODULE_TYPE_')).toBe('ALB');
    expect(enumLabel(undefined)).toBe('');
  });
});

describe('renderKeyValues', () => {
  it('aligns values and skips undefined ones', () => {
    expect(
      renderKeyValues([
        ['status', 'HEALTHY'],
        ['skipped', undefined],
        ['registered modules', 3],
      ]),
    ).toBe('status:             HEALTHY\nregistered modules: 3');
  });
});

describe('--filter and structured input', () => {
  const fields = ['version', 'current_connections'];

  it('maps operators, and a comma list to "in"', () => {
    expect(parseFilter('version=2.0', fields)).toEqual({ field: 'version', operator: 'eq', value: '2.0' });
    expect(parseFilter('version=1.0,2.0', fields)).toEqual({
      field: 'version',
      operator: 'in',
      value: '1.0,2.0',
    });
    expect(parseFilter('current_connections>=10', fields)).toMatchObject({ operator: 'gte', value: '10' });
    expect(parseFilter('version~=2', fields)).toMatchObject({ operator: 'contains' });
    expect(queryJson({ filter: ['version!=1.0'], sort: 'version', desc: true }, fields)).toEqual({
      filters: [{ field: 'version', operator: 'ne', value: '1.0' }],
      sortBy: 'version',
      sortDesc: true,
      pagination: { page: 1, pageSize: 0 },
    });
  });

  it('rejects unknown fields and malformed filters', () => {
    expect(() => parseFilter('colour=red', fields)).toThrow(/unknown field "colour"; use one of version/);
    expect(() => parseFilter('justtext', fields)).toThrow(/expected field=value/);
  });

  it('parses YAML and JSON, reporting the line of an error', () => {
    expect(parseStructured('a: 1\nb: [x, y]\n', 'f')).toEqual({ a: 1, b: ['x', 'y'] });
    expect(parseStructured('{"a": 1}', 'f')).toEqual({ a: 1 });
    expect(() => parseStructured('a: 1\nb: [x\n', '--file f.yaml')).toThrow(
      /^--file f\.yaml is not valid YAML or JSON at line \d+, column \d+: /,
    );
  });
});
