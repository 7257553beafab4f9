/**
 * The `mpctl module top` screen, from props only: the controller header, each number with its
 * sparkline, the instances (sorted, filtered) and the key hints, fitted to width × height.
 */
import { Box, Text } from 'ink';
import { KeyHints } from './KeyHints.js';
import { healthLabel, MODULE_METRICS, visibleInstances, type InstanceSort } from './module-model.js';
import { StatusHeader } from './StatusHeader.js';
import { fit, fitColumns, sparkline, splitHeight, type ColumnSpec } from './text-layout.js';
import type { TopUiState } from './top-keys.js';
import { formatNumber } from './top-model.js';
import type { ModuleStreamState } from './useModuleStream.js';
import type { ModuleInstanceJson } from './sources.js';

export interface ModuleTopProps {
  /** The controller address, for the title. */
  target: string;
  data: ModuleStreamState;
  ui: TopUiState<InstanceSort>;
  width: number;
  height: number;
}

/** Header (2), blank, blank, instance table header, key hints. */
const FIXED_LINES = 6;

const INSTANCE_COLUMNS: readonly ColumnSpec[] = [
  { id: 'id', header: 'INSTANCE', width: 14, priority: 0, flex: true, maxWidth: 30 },
  { id: 'status', header: 'STATUS', width: 9, priority: 0 },
  { id: 'version', header: 'VERSION', width: 7, priority: 3 },
  { id: 'conn', header: 'CONN', width: 6, align: 'right', priority: 1 },
  { id: 'max', header: 'MAX', width: 6, align: 'right', priority: 4 },
  { id: 'traffic', header: 'TRAFFIC', width: 21, priority: 2 },
  { id: 'draining', header: 'DRAINING', width: 8, priority: 5 },
];

const STATUS_COLORS: Readonly<Record<string, string>> = {
  HEALTHY: 'green',
  DEGRADED: 'yellow',
  STARTING: 'yellow',
  STOPPING: 'yellow',
  UNHEALTHY: 'red',
  STOPPED: 'red',
};

function instanceCell(i: ModuleInstanceJson, id: string): string {
  switch (id) {
    case 'id':
      return i.instanceId ?? '';
    case 'status':
      return healthLabel(i);
    case 'version':
      return i.version ?? '';
    case 'conn':
      return String(i.currentConnections ?? 0);
    case 'max':
      return i.maxConnections ? String(i.maxConnections) : '-';
    case 'traffic':
      return i.trafficAddress ?? '';
    case 'draining':
      return i.draining ? 'yes' : 'no';
    default:
      return '';
  }
}

const fixed = (v: number) => (Number.isInteger(v) ? formatNumber(v) : v.toFixed(1));

export function ModuleTop({ target, data, ui, width, height }: ModuleTopProps) {
  const latest = data.latest;
  const instances = visibleInstances(data.instances, ui.sort, ui.filter);
  const healthy = data.instances.filter((i) => healthLabel(i) === 'HEALTHY').length;
  const [metricLines, instanceLines] = splitHeight(
    height - 1 - FIXED_LINES,
    [MODULE_METRICS.length, Math.max(1, instances.length)],
    [1, 1],
  );
  const title = latest?.type
    ? `${latest.type}${latest.version ? ` ${latest.version}` : ''} controller ${target}`
    : `controller ${target}`;
  const summary = [
    `instances ${data.instances.length} (${healthy} healthy)`,
    latest ? `requests ${formatNumber(latest.totalRequests)}` : '',
    latest ? `failed ${formatNumber(latest.failedRequests)}` : '',
    data.instancesError ? `instances: ${data.instancesError}` : '',
  ]
    .filter(Boolean)
    .join('  ');
  const columns = fitColumns(INSTANCE_COLUMNS, width);
  const sparkWidth = Math.max(0, width - 24);
  const shown =
    instances.length > instanceLines ? instances.slice(0, Math.max(0, instanceLines - 1)) : instances;
  return (
    <Box flexDirection="column" width={width} height={Math.max(FIXED_LINES, height - 1)}>
      <StatusHeader
        title={title}
        summary={summary}
        connection={data.connection}
        paused={ui.paused}
        updatedAt={data.updatedAt}
        width={width}
      />
      <Box height={1} />
      {MODULE_METRICS.slice(0, metricLines).map(({ id, label }) => (
        <Text key={id} wrap="truncate">
          <Text bold>{fit(label, 12)}</Text>
          {fit(latest ? fixed(latest.values[id]) : '-', 9, 'right')}
          {'  '}
          <Text color="green">{sparkline(data.history?.[id] ?? [], sparkWidth)}</Text>
        </Text>
      ))}
      <Box height={1} />
      <Text wrap="truncate" bold>
        {columns.map((c, i) => (i ? ' ' : '') + fit(c.header, c.width, c.align)).join('')}
      </Text>
      {data.instances.length === 0 && (
        <Text dimColor wrap="truncate">
          {fit('no instances (yet)', width)}
        </Text>
      )}
      {data.instances.length > 0 && instances.length === 0 && (
        <Text dimColor wrap="truncate">
          {fit(`no instance matches "${ui.filter}" (Esc clears the filter)`, width)}
        </Text>
      )}
      {shown.map((instance) => (
        <Text key={instance.instanceId} wrap="truncate">
          {columns.map((c, i) => (
            <Text key={c.id} color={c.id === 'status' ? STATUS_COLORS[healthLabel(instance)] : undefined}>
              {(i ? ' ' : '') + fit(instanceCell(instance, c.id), c.width, c.align)}
            </Text>
          ))}
        </Text>
      ))}
      {shown.length < instances.length && (
        <Text dimColor wrap="truncate">
          {fit(`… ${instances.length - shown.length} more (narrow them with /)`, width)}
        </Text>
      )}
      <Box flexGrow={1} />
      <KeyHints ui={ui} width={width} />
    </Box>
  );
}
