/**
 * The keys of `mpctl top` and `mpctl module top` as a pure reducer: q quits, s cycles the sort,
 * / edits the filter (typing narrows live, Enter keeps it, Esc clears it), p pauses. While the
 * filter is being edited every printable key is text, so "/sq" filters for "sq".
 */

/** What the keys change. */
export interface TopUiState<S extends string = string> {
  sort: S;
  filter: string;
  editingFilter: boolean;
  paused: boolean;
}

/** The parts of ink's Key this reads. */
export interface KeyLike {
  return?: boolean;
  escape?: boolean;
  backspace?: boolean;
  delete?: boolean;
  ctrl?: boolean;
  meta?: boolean;
}

/** The state before any key: sorted by `sort`, no filter, live. */
export function initialUiState<S extends string>(sort: S): TopUiState<S> {
  return { sort, filter: '', editingFilter: false, paused: false };
}

/** The state after one key, or 'quit'. `sorts` is the cycle `s` walks. */
export function reduceKey<S extends string>(
  state: TopUiState<S>,
  input: string,
  key: KeyLike,
  sorts: readonly S[],
): TopUiState<S> | 'quit' {
  if (state.editingFilter) {
    if (key.escape) return { ...state, filter: '', editingFilter: false };
    if (key.return) return { ...state, editingFilter: false };
    // Terminals send DEL (0x7f) for Backspace, which ink reports as `delete`.
    if (key.backspace || key.delete) return { ...state, filter: state.filter.slice(0, -1) };
    if (key.ctrl || key.meta || !input) return state;
    // Printable text only (pasted text arrives as one chunk).
    const text = [...input].filter((c) => c >= ' ' && c !== '\u007f').join('');
    return text ? { ...state, filter: (state.filter + text).slice(0, 64) } : state;
  }
  if (key.escape && state.filter) return { ...state, filter: '' };
  if (key.ctrl || key.meta) return state;
  switch (input) {
    case 'q':
      return 'quit';
    case 's':
      return { ...state, sort: sorts[(sorts.indexOf(state.sort) + 1) % sorts.length] };
    case '/':
      return { ...state, editingFilter: true };
    case 'p':
    case ' ':
      return { ...state, paused: !state.paused };
    default:
      return state;
  }
}
