/**
 * The per module type and version table of `mpctl top`: instances (healthy/total), weight,
 * connections, requests/s, error rate, p99 latency, CPU and sparklines of the history. Columns
 * are dropped from the right of the priority list when the terminal is narrow.
 */
import { Box, Text } from 'ink';
import { fit, fitColumns, sparkline, type ColumnSpec, type FittedColumn } from './text-layout.js';
import { formatNumber, type History, type ModuleRow, type SortKey } from './top-model.js';

export interface ModuleTableProps {
  /** Sorted and filtered. */
  rows: readonly ModuleRow[];
  /** How many rows there are before filtering. */
  total: number;
  history: History;
  sort: SortKey;
  filter: string;
  width: number;
  /** Lines for rows (the header line is extra). */
  maxRows: number;
}

const COLUMNS: readonly ColumnSpec[] = [
  { id: 'module', header: 'MODULE', width: 12, priority: 0 },
  { id: 'inst', header: 'INST', width: 5, align: 'right', priority: 0 },
  { id: 'weight', header: 'WT %', width: 4, align: 'right', priority: 6 },
  { id: 'conn', header: 'CONN', width: 6, align: 'right', priority: 2 },
  { id: 'rps', header: 'REQ/S', width: 7, align: 'right', priority: 1 },
  { id: 'err', header: 'ERR %', width: 5, align: 'right', priority: 3 },
  { id: 'p99', header: 'P99 MS', width: 6, align: 'right', priority: 4 },
  { id: 'cpu', header: 'CPU %', width: 5, align: 'right', priority: 7 },
  { id: 'trend', header: 'REQ/S TREND', width: 12, priority: 5, flex: true, maxWidth: 40 },
  { id: 'p99trend', header: 'P99 TREND', width: 12, priority: 8, flex: true, maxWidth: 40 },
];

/** The column each sort orders by, to highlight its header. */
const SORT_COLUMN: Record<SortKey, string> = {
  name: 'module',
  rps: 'rps',
  connections: 'conn',
  errors: 'err',
  p99: 'p99',
};

/** The columns that fit `width` (exported for tests of narrow terminals). */
export function moduleColumns(width: number): FittedColumn[] {
  return fitColumns(COLUMNS, width);
}

function cell(row: ModuleRow, id: string, width: number, history: History): [string, string | undefined] {
  const h = history[row.key];
  switch (id) {
    case 'module':
      return [row.key, undefined];
    case 'inst':
      return [
        `${row.healthy}/${row.instances}`,
        row.healthy === 0 ? 'red' : row.healthy < row.instances ? 'yellow' : 'green',
      ];
    case 'weight':
      return [String(Math.round(row.weight)), undefined];
    case 'conn':
      return [formatNumber(row.connections), undefined];
    case 'rps':
      return [formatNumber(row.rps), undefined];
    case 'err': {
      const pct = row.errorRate * 100;
      return [pct.toFixed(1), pct >= 5 ? 'red' : pct >= 1 ? 'yellow' : undefined];
    }
    case 'p99':
      return [formatNumber(row.p99Ms), undefined];
    case 'cpu':
      return [row.cpuPercent.toFixed(0), undefined];
    case 'trend':
      return [sparkline(h?.rps ?? [], width), 'green'];
    case 'p99trend':
      return [sparkline(h?.p99Ms ?? [], width), 'magenta'];
    default:
      return ['', undefined];
  }
}

export function ModuleTable(props: ModuleTableProps) {
  const { rows, width, maxRows } = props;
  const columns = moduleColumns(width);
  const sorted = SORT_COLUMN[props.sort];
  const empty =
    props.total === 0
      ? 'no module instance is registered yet: start one with `mpctl serve module alb --version 1.0`'
      : rows.length === 0
        ? `no module matches "${props.filter}" (Esc clears the filter)`
        : undefined;
  const shown = rows.length > maxRows ? rows.slice(0, Math.max(0, maxRows - 1)) : rows;
  const hidden = rows.length - shown.length;
  return (
    <Box flexDirection="column">
      <Text wrap="truncate" bold>
        {columns.map((c, i) => (
          <Text key={c.id} color={c.id === sorted ? 'cyan' : undefined} underline={c.id === sorted}>
            {(i ? ' ' : '') + fit(c.header, c.width, c.align)}
          </Text>
        ))}
      </Text>
      {empty && maxRows > 0 && (
        <Text wrap="truncate" dimColor>
          {fit(empty, width)}
        </Text>
      )}
      {shown.map((row) => (
        <Text key={row.key} wrap="truncate">
          {columns.map((c, i) => {
            const [text, color] = cell(row, c.id, c.width, props.history);
            return (
              <Text key={c.id} color={color}>
                {(i ? ' ' : '') + fit(text, c.width, c.align)}
              </Text>
            );
          })}
        </Text>
      ))}
      {hidden > 0 && maxRows > 0 && (
        <Text wrap="truncate" dimColor>
          {fit(`… ${hidden} more (narrow them with /)`, width)}
        </Text>
      )}
    </Box>
  );
}
