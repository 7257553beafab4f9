/**
 * Fitting text to a terminal: which table columns fit a width (lowest priority dropped first,
 * the flexible column taking what is left), padding and cutting cells, splitting a height
 * between sections, sparklines and bars of a given width.
 */
import sparkly from 'sparkly';

/** A table column before it is fitted. */
export interface ColumnSpec {
  id: string;
  header: string;
  width: number;
  align?: 'left' | 'right';
  /** Lower stays longer when the terminal is narrow; 0 always stays. */
  priority: number;
  /** Takes the width left over, up to `maxWidth` (`width` is its minimum). */
  flex?: boolean;
  maxWidth?: number;
}

/** A column with its final width. */
export type FittedColumn = ColumnSpec & { width: number };

/** The columns that fit `total` characters with `gap` between them, in their given order. */
export function fitColumns(columns: readonly ColumnSpec[], total: number, gap = 1): FittedColumn[] {
  const byPriority = [...columns].sort((a, b) => a.priority - b.priority);
  const kept = new Set<ColumnSpec>();
  let used = 0;
  for (const column of byPriority) {
    const extra = column.width + (kept.size ? gap : 0);
    if (column.priority > 0 && used + extra > total) continue;
    kept.add(column);
    used += extra;
  }
  let left = Math.max(0, total - used);
  return columns
    .filter((c) => kept.has(c))
    .map((c) => {
      if (!c.flex) return { ...c };
      const grow = Math.min(left, Math.max(0, (c.maxWidth ?? Infinity) - c.width));
      left -= grow;
      return { ...c, width: c.width + grow };
    });
}

/** `text` cut to `width` (ending in "…" when cut) and padded to it. */
export function fit(text: string, width: number, align: 'left' | 'right' = 'left'): string {
  if (width <= 0) return '';
  const chars = [...text];
  const cut = chars.length > width ? `${chars.slice(0, width - 1).join('')}…` : text;
  const fill = ' '.repeat(Math.max(0, width - [...cut].length));
  return align === 'right' ? fill + cut : cut + fill;
}

/**
 * Splits `available` lines between sections that want `wants[i]` lines, in priority order. A
 * section gets nothing rather than less than its floor (`floors[i]`, default 1), and floors
 * of later sections are kept back while earlier ones take what they want.
 */
export function splitHeight(
  available: number,
  wants: readonly number[],
  floors: readonly number[] = [],
): number[] {
  const floorOf = (i: number) => Math.min(wants[i], floors[i] ?? 1);
  // Drop the floors of the last sections until the floors fit.
  const kept = wants.map((_, i) => floorOf(i));
  let reserved = kept.reduce((a, b) => a + b, 0);
  for (let i = kept.length - 1; i >= 0 && reserved > available; i--) {
    reserved -= kept[i];
    kept[i] = 0;
  }
  let left = Math.max(0, available);
  return wants.map((want, i) => {
    if (kept[i] === 0 && want > 0 && floorOf(i) > 0) return 0;
    const laterFloors = kept.slice(i + 1).reduce((a, b) => a + b, 0);
    const give = Math.max(kept[i], Math.min(want, left - laterFloors));
    left -= give;
    return give;
  });
}

/**
 * `values` (oldest first) as a sparkline from 0 at most `width` cells wide, right-aligned. When
 * there are more values than cells, each cell is the mean of a run of them, so the whole
 * history fits; the newest run may be shorter.
 */
export function sparkline(values: readonly number[], width: number): string {
  if (width <= 0) return '';
  const clean = values.map((v) => (Number.isFinite(v) ? Math.max(0, v) : 0));
  const per = Math.max(1, Math.ceil(clean.length / width));
  const cells: number[] = [];
  for (let end = clean.length; end > 0 && cells.length < width; end -= per) {
    const run = clean.slice(Math.max(0, end - per), end);
    cells.unshift(run.reduce((a, b) => a + b, 0) / run.length);
  }
  return ' '.repeat(width - cells.length) + (cells.length ? sparkly(cells, { minimum: 0 }) : '');
}

/** A 0-100 weight as a bar of `width` cells: "████░░░░". */
export function bar(weight: number, width: number): string {
  const filled = Math.round((Math.min(100, Math.max(0, weight)) / 100) * width);
  return '█'.repeat(filled) + '░'.repeat(Math.max(0, width - filled));
}
