/** The latest scaling and rollout events, newest first, one line each. */
import { Box, Text } from 'ink';
import { fit } from './text-layout.js';
import type { TopEvent } from './top-model.js';

export interface EventListProps {
  events: readonly TopEvent[];
  width: number;
  maxLines: number;
}

export function EventList({ events, width, maxLines }: EventListProps) {
  return (
    <Box flexDirection="column">
      {events.slice(0, maxLines).map((e, i) => (
        <Text key={`${e.at}-${i}`} wrap="truncate">
          <Text dimColor>{e.at.slice(11, 19) || '--:--:--'}</Text>{' '}
          <Text color={e.kind === 'rollout' ? 'cyan' : 'magenta'}>{e.kind.padEnd(7)}</Text>{' '}
          {fit(e.text, Math.max(0, width - 17))}
        </Text>
      ))}
    </Box>
  );
}
