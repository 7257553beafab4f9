/**
 * Everything `mpctl module top` shows, live: StreamMetrics of one controller (with reconnects)
 * for its numbers and their history, and GetInstances every few seconds for the instance list.
 */
import { useCallback, useState } from 'react';
import {
  appendModuleHistory,
  moduleNumbers,
  type ModuleHistory,
  type ModuleNumbers,
} from './module-model.js';
import type { ModuleInstanceJson, ModuleSampleJson, ModuleSource } from './sources.js';
import { usePolling } from './usePolling.js';
import {
  useReconnectingStream,
  type ConnectionState,
  type ReconnectOptions,
} from './useReconnectingStream.js';

/** Options of useModuleStream. */
export interface ModuleStreamOptions extends ReconnectOptions {
  /** Samples kept per metric (default 120). */
  historySize?: number;
  /** How often to ask GetInstances (default 3 s). */
  instancesIntervalMs?: number;
}

/** What useModuleStream returns. */
export interface ModuleStreamState {
  connection: ConnectionState;
  latest?: ModuleNumbers;
  history?: ModuleHistory;
  /** The latest sample's timestamp (ISO). */
  updatedAt?: string;
  instances: ModuleInstanceJson[];
  /** Why the last GetInstances failed, if it did. */
  instancesError?: string;
}

export function useModuleStream(source: ModuleSource, options: ModuleStreamOptions = {}): ModuleStreamState {
  const { historySize = 120, instancesIntervalMs = 3000, ...reconnect } = options;
  const [samples, setSamples] = useState<{
    latest?: ModuleNumbers;
    history?: ModuleHistory;
    updatedAt?: string;
  }>({});
  const onMessage = useCallback(
    (sample: ModuleSampleJson) =>
      setSamples((before) => {
        const latest = moduleNumbers(sample, before.latest);
        return {
          latest,
          history: appendModuleHistory(before.history, latest, historySize),
          updatedAt: sample.timestamp,
        };
      }),
    [historySize],
  );
  const connection = useReconnectingStream(source.streamMetrics, onMessage, reconnect);
  const polled = usePolling(() => source.instances(), instancesIntervalMs);
  return {
    connection,
    ...samples,
    instances: polled.value ?? [],
    instancesError: polled.error,
  };
}
