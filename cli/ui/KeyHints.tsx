/** The bottom line of the top views: the keys, the sort and the filter (or the filter being typed). */
import { Text } from 'ink';
import { fit } from './text-layout.js';
import type { TopUiState } from './top-keys.js';

export interface KeyHintsProps {
  ui: TopUiState;
  width: number;
}

export function KeyHints({ ui, width }: KeyHintsProps) {
  if (ui.editingFilter) {
    return (
      <Text wrap="truncate">
        <Text color="cyan">{fit(`filter: ${ui.filter}█   Enter keeps it, Esc clears it`, width)}</Text>
      </Text>
    );
  }
  const parts = [
    'q quit',
    `s sort: ${ui.sort}`,
    ui.filter ? `/ filter: ${ui.filter} (Esc clears)` : '/ filter',
    ui.paused ? 'p resume' : 'p pause',
  ];
  return (
    <Text wrap="truncate" dimColor={!ui.paused && !ui.filter}>
      {fit(parts.join('  '), width)}
    </Text>
  );
}
