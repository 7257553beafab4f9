/**
 * Fakes for the top views: snapshots and statuses in protobuf JSON as the NLB sends them, and
 * sources whose streams a test drives by hand (push a message, fail, end) and inspects.
 */
import type {
  ModuleInstanceJson,
  ModuleSampleJson,
  ModuleSource,
  NlbSource,
} from '../../../cli/ui/sources.js';
import type { DeploymentStateJson, NlbMetricsJson, NlbStatusJson } from '../../../cli/ui/top-model.js';
import type { StreamHandlers } from '../../../cli/ui/useReconnectingStream.js';

/** A StreamNLBMetricsResponse with `series[key][name] = value` ("ALB@1.0" → {instances: 2}). */
export function snapshot(
  series: Record<string, Record<string, number>>,
  timestamp = '2026-01-02T03:04:05.000Z',
): NlbMetricsJson {
  return {
    metrics: [{ name: 'nlb_registered_instances', value: 1, timestamp }],
    moduleMetrics: Object.fromEntries(
      Object.entries(series).map(([key, values]) => {
        const [type, version] = key.split('@');
        return [
          key,
          {
            moduleType: `MODULE_TYPE_${type}`,
            metrics: Object.entries(values).map(([name, value]) => ({
              name,
              value,
              labels: { module_type: type, version },
              timestamp,
            })),
          },
        ];
      }),
    ),
    timestamp,
  };
}

/** A row's full series. */
export function series(over: Partial<Record<string, number>> = {}): Record<string, number> {
  return {
    instances: 2,
    healthy_instances: 2,
    weight: 100,
    connections: 10,
    requests_per_second: 50,
    error_rate: 0,
    latency_p99_ms: 20,
    cpu_percent: 5,
    ...over,
  };
}

export const STATUS: NlbStatusJson = {
  status: 'HEALTH_STATUS_HEALTHY',
  version: '0.1.0',
  startedAt: '2026-01-02T02:00:00.000Z',
  totalRequests: 1234,
  activeConnections: 7,
  registeredModules: 3,
  modulesByType: { ALB: 2, DBLB: 1 },
  details: {
    uptime_seconds: '3725',
    healthy_instances: '3',
    'deployment.ALB': 'PROGRESSING 1.0=75 2.0=25',
    'deployment.DBLB': 'STABLE 1.0=100',
    'scaling_event.0': '2026-01-02T03:00:00.000Z ALB 1.0 scale_up: connections 90 % of target',
    'rollout_event.0': '2026-01-02T03:01:00.000Z ALB 2.0 step: weight 25',
  },
};

export const ALB_DEPLOYMENT: DeploymentStateJson = {
  moduleType: 'MODULE_TYPE_ALB',
  versionWeights: { '1.0': 75, '2.0': 25 },
  stableVersion: '1.0',
  targetVersion: '2.0',
  phase: 'ROLLOUT_PHASE_PROGRESSING',
  stepIndex: 1,
  steps: [5, 25, 50, 100],
};

/** One stream a fake source opened. */
export interface FakeStream<M> {
  handlers: StreamHandlers<M>;
  cancelled: boolean;
}

/** A source of `M` streams driven by the test. */
export class StreamDriver<M> {
  readonly streams: Array<FakeStream<M>> = [];
  readonly open = (handlers: StreamHandlers<M>) => {
    const stream: FakeStream<M> = { handlers, cancelled: false };
    this.streams.push(stream);
    return () => {
      stream.cancelled = true;
    };
  };

  get current(): FakeStream<M> {
    const s = this.streams.at(-1);
    if (!s) throw new Error('no stream was opened');
    return s;
  }

  push(message: M): void {
    this.current.handlers.onMessage(message);
  }

  fail(message = 'connection refused'): void {
    this.current.handlers.onClose(new Error(message));
  }
}

/** An NlbSource over a StreamDriver, answering status and deployment from `status` / `deployments`. */
export function fakeNlbSource(
  status: NlbStatusJson | (() => Promise<NlbStatusJson>) = STATUS,
  deployments: Record<string, DeploymentStateJson> = { ALB: ALB_DEPLOYMENT },
) {
  const driver = new StreamDriver<NlbMetricsJson>();
  let statusCalls = 0;
  const source: NlbSource = {
    streamMetrics: driver.open,
    status: () => {
      statusCalls++;
      return typeof status === 'function' ? status() : Promise.resolve(status);
    },
    deployment: (type) => Promise.resolve(deployments[type]),
  };
  return { source, driver, statusCalls: () => statusCalls };
}

/** A StreamMetricsResponse of a controller. */
export function moduleSample(
  values: Record<string, number>,
  timestamp: string,
  version = '1.0',
): ModuleSampleJson {
  return {
    metrics: {
      moduleType: 'MODULE_TYPE_ALB',
      metrics: Object.entries(values).map(([name, value]) => ({ name, value, labels: { version } })),
    },
    timestamp,
  };
}

/** A ModuleSource over a StreamDriver with fixed instances. */
export function fakeModuleSource(instances: ModuleInstanceJson[]) {
  const driver = new StreamDriver<ModuleSampleJson>();
  const source: ModuleSource = { streamMetrics: driver.open, instances: () => Promise.resolve(instances) };
  return { source, driver };
}
