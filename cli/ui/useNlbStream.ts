/**
 * Everything `mpctl top` shows, live: StreamNLBMetrics (with reconnects) for the per type and
 * version rows and their sparkline history, and GetNLBStatus every few seconds (plus
 * UpdateDeployment STATUS per deployed type, for the rollout step) for the header,
 * deployments and events. Owns the I/O and timers; the components only render what it returns.
 */
import { useCallback, useMemo, useState } from 'react';
import type { NlbSource } from './sources.js';
import {
  appendHistory,
  deploymentsFromStatus,
  deploymentTypes,
  eventsFromStatus,
  headerFromStatus,
  rowsFromSnapshot,
  type DeploymentStateJson,
  type DeploymentView,
  type History,
  type ModuleRow,
  type NlbHeader,
  type NlbMetricsJson,
  type TopEvent,
} from './top-model.js';
import { usePolling } from './usePolling.js';
import {
  useReconnectingStream,
  type ConnectionState,
  type ReconnectOptions,
} from './useReconnectingStream.js';

/** Options of useNlbStream. */
export interface NlbStreamOptions extends ReconnectOptions {
  /** Samples kept per series for sparklines (default 120: 4 minutes at 2 s). */
  historySize?: number;
  /** How often to ask GetNLBStatus (default 3 s). */
  statusIntervalMs?: number;
}

/** What useNlbStream returns. */
export interface NlbStreamState {
  connection: ConnectionState;
  rows: ModuleRow[];
  history: History;
  /** The latest snapshot's timestamp (ISO). */
  updatedAt?: string;
  header?: NlbHeader;
  deployments: DeploymentView[];
  events: TopEvent[];
  /** Why the last status poll failed, if it did (the last good status stays shown). */
  statusError?: string;
}

interface MetricsState {
  rows: ModuleRow[];
  history: History;
  updatedAt?: string;
}

export function useNlbStream(source: NlbSource, options: NlbStreamOptions = {}): NlbStreamState {
  const { historySize = 120, statusIntervalMs = 3000, ...reconnect } = options;
  const [metrics, setMetrics] = useState<MetricsState>({ rows: [], history: {} });

  const onMessage = useCallback(
    (message: NlbMetricsJson) =>
      setMetrics((before) => {
        const rows = rowsFromSnapshot(message);
        return {
          rows,
          history: appendHistory(before.history, rows, historySize),
          updatedAt: message.timestamp,
        };
      }),
    [historySize],
  );
  const connection = useReconnectingStream(source.streamMetrics, onMessage, reconnect);

  const polled = usePolling(async () => {
    const status = await source.status();
    const states: Record<string, DeploymentStateJson> = {};
    await Promise.all(
      deploymentTypes(status).map(async (type) => {
        // The step comes from here; without it the details' weights still show.
        const state = await source.deployment(type).catch(() => undefined);
        if (state) states[type] = state;
      }),
    );
    return { status, states };
  }, statusIntervalMs);

  const fromStatus = useMemo(() => {
    const value = polled.value;
    if (!value) return { deployments: [], events: [] };
    return {
      header: headerFromStatus(value.status),
      deployments: deploymentsFromStatus(value.status, value.states),
      events: eventsFromStatus(value.status),
    };
  }, [polled.value]);

  return { connection, ...metrics, ...fromStatus, statusError: polled.error };
}
