/**
 * The top two lines of the top views: what is watched and how it is (left), the connection
 * badge and the time of the latest sample (right); then totals, or why the stream is down.
 */
import { Box, Text } from 'ink';
import { fit } from './text-layout.js';
import type { ConnectionState } from './useReconnectingStream.js';

export interface StatusHeaderProps {
  /** Left of line 1, e.g. "NLB 127.0.0.1:50050  HEALTHY  v0.1.0  up 4m05s". */
  title: string;
  /** Colour of the title (the NLB's health). */
  titleColor?: string;
  /** Line 2 while live: totals. */
  summary: string;
  connection: ConnectionState;
  paused: boolean;
  /** ISO time of the latest sample. */
  updatedAt?: string;
  width: number;
}

/** The badge for a connection state: text and colour. */
export function connectionBadge(connection: ConnectionState, paused: boolean): [string, string] {
  if (paused) return ['‖ paused', 'cyan'];
  switch (connection.phase) {
    case 'live':
      return ['● live', 'green'];
    case 'connecting':
      return ['○ connecting…', 'yellow'];
    case 'reconnecting':
      return [`⟳ reconnecting… (attempt ${connection.attempt})`, 'yellow'];
  }
}

export function StatusHeader(props: StatusHeaderProps) {
  const { connection, width } = props;
  const [badge, badgeColor] = connectionBadge(connection, props.paused);
  const time = props.updatedAt ? props.updatedAt.slice(11, 19) : '';
  const right = time && width >= 60 ? `${badge}  ${time}` : badge;
  const titleWidth = Math.max(0, width - [...right].length - 2);
  const down = connection.phase !== 'live' && connection.error;
  const second = down ? `${connection.error ?? ''}` : props.summary;
  return (
    <Box flexDirection="column">
      <Text wrap="truncate">
        <Text bold color={props.titleColor}>
          {fit(props.title, titleWidth)}
        </Text>
        {'  '}
        <Text color={badgeColor}>{right}</Text>
      </Text>
      <Text wrap="truncate" color={down ? 'yellow' : undefined} dimColor={!down}>
        {fit(second, width)}
      </Text>
    </Box>
  );
}
