/**
 * The keys of the top views wired to ink: keeps the UI state, calls `onQuit` for q, and
 * freezes a copy of `live` while paused so the screen holds still (the hook keeps collecting,
 * so the history has no gap after p resumes).
 */
import { useInput } from 'ink';
import { useRef, useState } from 'react';
import { initialUiState, reduceKey, type TopUiState } from './top-keys.js';

export function useTopKeys<S extends string, D>(
  sorts: readonly S[],
  live: D,
  onQuit: () => void,
): { ui: TopUiState<S>; shown: D } {
  const [ui, setUi] = useState(() => initialUiState(sorts[0]));
  const [frozen, setFrozen] = useState<{ data: D } | undefined>(undefined);
  const current = useRef({ ui, live });
  current.current = { ui, live };

  useInput((input, key) => {
    const before = current.current.ui;
    const next = reduceKey(before, input, key, sorts);
    if (next === 'quit') return onQuit();
    if (next.paused && !before.paused) setFrozen({ data: current.current.live });
    if (!next.paused && before.paused) setFrozen(undefined);
    current.current = { ...current.current, ui: next };
    setUi(next);
  });

  return { ui, shown: ui.paused && frozen ? frozen.data : live };
}
