/**
 * What the top views read, as ports: the commands back them with gRPC calls, tests with fakes.
 * Messages are protobuf JSON, as mpctl prints them.
 */
import type { DeploymentStateJson, NlbMetricsJson, NlbStatusJson } from './top-model.js';
import type { OpenStream } from './useReconnectingStream.js';

/** The NLB as `mpctl top` sees it. */
export interface NlbSource {
  /** StreamNLBMetrics with include_modules. */
  streamMetrics: OpenStream<NlbMetricsJson>;
  /** GetNLBStatus. */
  status(): Promise<NlbStatusJson>;
  /** UpdateDeployment STATUS for a module type ("ALB"); undefined when it has none. */
  deployment(type: string): Promise<DeploymentStateJson | undefined>;
}

/** StreamMetricsResponse in protobuf JSON. */
export interface ModuleSampleJson {
  metrics?: {
    moduleType?: string;
    metrics?: Array<{ name?: string; value?: number; labels?: Record<string, string> }>;
  };
  timestamp?: string;
}

/** A ModuleInstance in protobuf JSON. */
export interface ModuleInstanceJson {
  instanceId?: string;
  healthStatus?: string;
  version?: string;
  trafficAddress?: string;
  currentConnections?: number;
  maxConnections?: number;
  draining?: boolean;
}

/** One module controller as `mpctl module top` sees it. */
export interface ModuleSource {
  /** StreamMetrics (the controller's instances summed, or one instance). */
  streamMetrics: OpenStream<ModuleSampleJson>;
  /** GetInstances. */
  instances(): Promise<ModuleInstanceJson[]>;
}

/**
 * An OpenStream over a promise-returning stream call: `run` gets an AbortSignal (aborted by
 * the returned cancel) and a message callback, and settles when the stream is over. Settling
 * after cancel reports nothing: cancelling is not a failure. A CANCELLED failure (the server
 * shut down) is reported as the server ending the stream.
 */
export function streamPort<M>(
  run: (signal: AbortSignal, onMessage: (message: M) => void) => Promise<unknown>,
): OpenStream<M> {
  return ({ onMessage, onClose }) => {
    const abort = new AbortController();
    run(abort.signal, onMessage).then(
      () => {
        if (!abort.signal.aborted) onClose();
      },
      (e: unknown) => {
        if (abort.signal.aborted) return;
        // A server that shuts down cancels its streams: that is the stream ending, not a failure to report.
        if ((e as { code?: unknown }).code === 'CANCELLED') return onClose();
        onClose(e instanceof Error ? e : new Error(String(e)));
      },
    );
    return () => abort.abort();
  };
}
