import { Flags } from '@oclif/core';
import { durationFlag } from '../../base-command.js';
import { usageFailure } from '../../exit-codes.js';
import { num, positiveIntFlag, toSeconds } from '../../nlb-support.js';
import type { MetricPointJson, ModuleMetricsJson } from '../../nlb-tables.js';
import { RpcCommand } from '../../rpc-command.js';

/** StreamNLBMetricsResponse in protobuf JSON. */
interface StreamMetricsJson {
  metrics?: MetricPointJson[];
  moduleMetrics?: Record<string, ModuleMetricsJson>;
  timestamp?: string;
}

/**
 * One snapshot as one line: "12:00:01  nlb_routes=1 … | ALB@1.0: instances=2 weight=100".
 * Module series drop the module_type and version labels their key already says.
 */
export function compactLine(message: StreamMetricsJson): string {
  const points = (ps: MetricPointJson[] | undefined, implied: readonly string[] = []) =>
    (ps ?? [])
      .map((p) => {
        const labels = Object.entries(p.labels ?? {})
          .filter(([k]) => !implied.includes(k))
          .map(([k, v]) => `${k}=${v}`)
          .join(',');
        return `${p.name ?? ''}${labels ? `{${labels}}` : ''}=${num(p.value ?? 0)}`;
      })
      .join(' ');
  const time = message.timestamp ? message.timestamp.slice(11, 19) : '--:--:--';
  const own = points(message.metrics) || '(no samples)';
  const modules = Object.entries(message.moduleMetrics ?? {}).map(
    ([key, m]) => `${key}: ${points(m.metrics, ['module_type', 'version'])}`,
  );
  return [`${time}  ${own}`, ...modules].join(' | ');
}

export default class MetricsWatch extends RpcCommand {
  static rpc = 'marchproxy.NLBService/StreamNLBMetrics';
  static override summary = "Follow the NLB's latest metrics: one line per snapshot, until Ctrl-C or --count";
  static override description =
    'Prints a compact line per snapshot (time, then name=value for each series; with --modules also each module type and version). With --json each snapshot is one JSON object per line (NDJSON).';

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --interval 5s --modules',
    '<%= config.bin %> <%= command.id %> --count 3 --json',
  ];

  static override flags = {
    interval: durationFlag({
      description: 'Time between snapshots, whole seconds (1s-1h) [default: the NLB’s]',
    }),
    count: positiveIntFlag({ description: 'Stop after this many snapshots' }),
    name: Flags.string({ description: 'Only this metric (repeatable)', multiple: true }),
    modules: Flags.boolean({ description: 'Include per module type and version series' }),
  };

  public async run(): Promise<undefined> {
    const { flags } = await this.parse(MetricsWatch);
    if (flags.interval !== undefined && flags.interval > 3_600_000) {
      throw usageFailure(`--interval: at most 1h, got ${flags.interval}ms`);
    }
    const json = this.jsonEnabled();
    await this.streamNlb(
      flags,
      'StreamNLBMetrics',
      {
        intervalSeconds: flags.interval === undefined ? 0 : toSeconds(flags.interval),
        metricNames: flags.name ?? [],
        includeModules: flags.modules,
      },
      {
        maxMessages: flags.count,
        onMessage: (message) =>
          this.out(json ? JSON.stringify(message) : compactLine(message as StreamMetricsJson)),
      },
    );
    return undefined;
  }
}
