/**
 * The `mpctl top` screen, from props only: the NLB header, the per type and version table,
 * deployments as weight bars, the latest events and the key hints, fitted to width × height
 * (sections shrink, then go, on a short terminal; columns go on a narrow one).
 */
import { Box, Text } from 'ink';
import { DeploymentBars, deploymentLineCount } from './DeploymentBars.js';
import { EventList } from './EventList.js';
import { KeyHints } from './KeyHints.js';
import { ModuleTable } from './ModuleTable.js';
import { StatusHeader } from './StatusHeader.js';
import { splitHeight } from './text-layout.js';
import type { TopUiState } from './top-keys.js';
import { formatNumber, formatUptime, visibleRows, type NlbHeader, type SortKey } from './top-model.js';
import type { NlbStreamState } from './useNlbStream.js';

export interface TopProps {
  /** The NLB address, for the title. */
  target: string;
  data: NlbStreamState;
  ui: TopUiState<SortKey>;
  width: number;
  height: number;
}

const HEALTH_COLORS: Readonly<Record<string, string>> = {
  HEALTHY: 'green',
  DEGRADED: 'yellow',
  UNHEALTHY: 'red',
};

/** At most this many events, however tall the terminal. */
const MAX_EVENTS = 8;
/** Header (2), blank, table header, key hints. */
const FIXED_LINES = 5;

function title(target: string, h: NlbHeader | undefined): string {
  if (!h) return `NLB ${target}`;
  return `NLB ${target}  ${h.status}  v${h.version}  up ${formatUptime(h.uptimeSeconds)}`;
}

function summary(h: NlbHeader | undefined, statusError: string | undefined): string {
  if (!h) return statusError ? `status: ${statusError}` : 'waiting for the NLB status…';
  const types = Object.entries(h.modulesByType)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([type, n]) => `${type} ${n}`)
    .join(' · ');
  const healthy = h.healthyInstances === undefined ? '' : `${h.healthyInstances}/`;
  return [
    `requests ${formatNumber(h.totalRequests)}`,
    `connections ${formatNumber(h.activeConnections)}`,
    `instances ${healthy}${h.registeredModules} healthy`,
    types,
  ]
    .filter(Boolean)
    .join('  ');
}

export function Top({ target, data, ui, width, height }: TopProps) {
  const rows = visibleRows(data.rows, ui.sort, ui.filter);
  const depLines = deploymentLineCount(data.deployments);
  const events = Math.min(MAX_EVENTS, data.events.length);
  // Each section below the table is a blank line, a title and at least one line.
  const [tableLines, depGiven, evGiven] = splitHeight(
    height - 1 - FIXED_LINES,
    [Math.max(1, rows.length), depLines ? depLines + 2 : 0, events ? events + 2 : 0],
    [1, 3, 3],
  );
  return (
    <Box flexDirection="column" width={width} height={Math.max(FIXED_LINES, height - 1)}>
      <StatusHeader
        title={title(target, data.header)}
        titleColor={data.header ? HEALTH_COLORS[data.header.status] : undefined}
        summary={summary(data.header, data.statusError)}
        connection={data.connection}
        paused={ui.paused}
        updatedAt={data.updatedAt}
        width={width}
      />
      <Box height={1} />
      <ModuleTable
        rows={rows}
        total={data.rows.length}
        history={data.history}
        sort={ui.sort}
        filter={ui.filter}
        width={width}
        maxRows={tableLines}
      />
      {depGiven >= 3 && (
        <Box flexDirection="column">
          <Box height={1} />
          <Text bold>DEPLOYMENTS</Text>
          <DeploymentBars deployments={data.deployments} width={width} maxLines={depGiven - 2} />
        </Box>
      )}
      {evGiven >= 3 && (
        <Box flexDirection="column">
          <Box height={1} />
          <Text bold>EVENTS</Text>
          <EventList events={data.events} width={width} maxLines={evGiven - 2} />
        </Box>
      )}
      <Box flexGrow={1} />
      <KeyHints ui={ui} width={width} />
    </Box>
  );
}
