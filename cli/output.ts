/**
 * Human output of mpctl commands: aligned tables, key: value blocks and status colours. Colour
 * is only a hint (the words stay the same), used when stdout is a terminal and neither
 * --no-color nor NO_COLOR says otherwise. With --json none of this runs: run() returns data.
 */
import { Flags, ux } from '@oclif/core';

/** Flags every command with human output shares. */
export const outputFlags = {
  color: Flags.boolean({
    description:
      'Colour status values (default: when stdout is a terminal and NO_COLOR is unset); --no-color turns it off',
    allowNo: true,
  }),
};

/** Whether to colour: --color/--no-color when given, else a TTY stdout and no NO_COLOR. */
export function useColor(
  flags: { color?: boolean },
  env: NodeJS.ProcessEnv = process.env,
  isTty: boolean = process.stdout.isTTY === true,
): boolean {
  if (flags.color !== undefined) return flags.color;
  return isTty && !env.NO_COLOR;
}

/** "HEALTH_STATUS_HEALTHY" → "HEALTHY", "MODULE_TYPE_ALB" → "ALB"; other text unchanged. */
export function enumLabel(value: string | number | undefined | null, prefix?: string): string {
  if (value === undefined || value === null) return '';
  const text = String(value);
  if (prefix) return text.startsWith(prefix) ? text.slice(prefix.length) : text;
  return text.replace(
    /^(HEALTH_STATUS|MODULE_TYPE|PROTOCOL|STATUS_CODE|ROLLOUT_PHASE|DEPLOYMENT_ACTION|PROXY_PROTOCOL_MODE)_/,
    '',
  );
}

const STATUS_COLORS: Readonly<Record<string, string>> = {
  HEALTHY: 'green',
  DEGRADED: 'yellow',
  STARTING: 'yellow',
  STOPPING: 'yellow',
  UNHEALTHY: 'red',
  STOPPED: 'red',
};

/**
 * `text` coloured by the health status it names (HEALTHY green, DEGRADED/STARTING/STOPPING
 * yellow, UNHEALTHY/STOPPED red); accepts "HEALTHY" or "HEALTH_STATUS_HEALTHY". Other text is
 * returned unchanged.
 */
export function statusColor(text: string): string {
  const color = STATUS_COLORS[enumLabel(text.trim(), 'HEALTH_STATUS_')];
  return color ? ux.colorize(color, text) : text;
}

/** A cell value before formatting. */
export type Cell = string | number | bigint | boolean | null | undefined;

/** One column of a table. */
export interface Column<R> {
  /** Header text, printed as given (mpctl uses upper case: INSTANCE, STATUS). */
  header: string;
  /** The cell: a property of the row, or a function of it. */
  key?: keyof R & string;
  get?: (row: R) => Cell;
  /** Default: right when every non-empty cell is a number, else left. */
  align?: 'left' | 'right';
  /** Cells longer than this are cut with "…" (default 60; 0 means never). */
  maxWidth?: number;
  /** Colour the cell with statusColor when colour is on. */
  status?: boolean;
}

/** Options of renderTable. */
export interface TableOptions {
  color?: boolean;
  /** Between columns (default two spaces). */
  gap?: string;
}

/** Shown for an empty cell. */
export const EMPTY_CELL = '-';
const DEFAULT_MAX_WIDTH = 60;

function cellValue<R>(row: R, column: Column<R>): Cell {
  if (column.get) return column.get(row);
  if (column.key) return row[column.key] as Cell;
  return undefined;
}

function cellText(value: Cell): string {
  if (value === undefined || value === null || value === '') return EMPTY_CELL;
  return String(value).replace(/\s+/g, ' ');
}

/** `text` cut to `max` characters, ending in "…" when cut. */
export function truncate(text: string, max: number): string {
  if (max <= 0 || text.length <= max) return text;
  return max === 1 ? '…' : `${text.slice(0, max - 1)}…`;
}

/**
 * An aligned table: a header row, then one line per row; columns are separated by two spaces,
 * numbers are right-aligned, long cells are truncated with "…", trailing spaces are trimmed.
 * No rows gives the header alone.
 */
export function renderTable<R>(
  rows: readonly R[],
  columns: ReadonlyArray<Column<R>>,
  options: TableOptions = {},
): string {
  const gap = options.gap ?? '  ';
  const raw = rows.map((row) => columns.map((column) => cellValue(row, column)));
  const cells = raw.map((values) =>
    values.map((value, i) => truncate(cellText(value), columns[i].maxWidth ?? DEFAULT_MAX_WIDTH)),
  );
  const aligns = columns.map((column, i) => {
    if (column.align) return column.align;
    const present = raw.map((values) => values[i]).filter((v) => v !== undefined && v !== null && v !== '');
    return present.length > 0 && present.every((v) => typeof v === 'number' || typeof v === 'bigint')
      ? 'right'
      : 'left';
  });
  const widths = columns.map((column, i) =>
    Math.max(column.header.length, ...cells.map((line) => line[i].length)),
  );
  const pad = (text: string, i: number, colored = text) => {
    const fill = ' '.repeat(Math.max(0, widths[i] - text.length));
    return aligns[i] === 'right' ? fill + colored : colored + fill;
  };
  const lines = [
    columns
      .map((column, i) => pad(column.header, i))
      .join(gap)
      .trimEnd(),
  ];
  for (const line of cells) {
    lines.push(
      line
        .map((text, i) => pad(text, i, options.color && columns[i].status ? statusColor(text) : text))
        .join(gap)
        .trimEnd(),
    );
  }
  return lines.join('\n');
}

/**
 * "key: value" lines with the values aligned; undefined values are skipped, empty ones shown
 * as "-". `status` names keys whose value is coloured with statusColor.
 */
export function renderKeyValues(
  entries: ReadonlyArray<readonly [string, Cell]>,
  options: { color?: boolean; status?: readonly string[] } = {},
): string {
  const shown = entries.filter(([, value]) => value !== undefined);
  const width = Math.max(0, ...shown.map(([key]) => key.length + 1));
  return shown
    .map(([key, value]) => {
      const text = cellText(value);
      const colored = options.color && options.status?.includes(key) ? statusColor(text) : text;
      return `${`${key}:`.padEnd(width)} ${colored}`.trimEnd();
    })
    .join('\n');
}

/** "a=1, b=2" for a string map; "-" when empty. */
export function formatMap(map: Readonly<Record<string, unknown>> | undefined): string {
  const entries = Object.entries(map ?? {});
  return entries.length ? entries.map(([k, v]) => `${k}=${String(v)}`).join(', ') : EMPTY_CELL;
}
